// The event-driven watch: a file-system watch on the database's directory (its -wal file changes on
// every commit from any process), and a poll of PRAGMA data_version every 25 ms, which changes
// once another connection's commit is visible to this one. The file event is the fast path; it can
// fire before the commit is visible (a command written by hand with the sqlite3 shell), or not at
// all (a directory replaced, inotify out of watches), and the poll is what makes every commit seen
// within its interval for about 4 µs a read. Either wakes the control watcher, which confirms by
// reading the version, and has the fleet policy row's version and timestamp read at once
// (announced with onPolicy when they moved); a burst also leads to one read of the documents'
// AUTOINCREMENT high-water mark, and its growth is announced as that many new documents. A rename
// in the directory has the connection compare the file it holds with the path's at once
// (connection.ts).

import { type FSWatcher, watch } from 'node:fs';
import { basename, dirname } from 'node:path';

import { describeError, WatchUnavailableError } from '../../errors.js';
import type { ControlWatch, WatchHandlers } from '../types.js';
import type { Handle, SqliteConnection } from './connection.js';
import { documentsHighWater } from './documents.js';
import { readPolicyStamp } from './policy.js';

export const FEATURE = 'SQLite file events';
/** One commit touches the -wal and -shm files several times within a few milliseconds. */
const BURST_MS = 5;
/** How often data_version is read: the longest a visible commit can go unnoticed. */
export const DATA_VERSION_POLL_MS = 25;

function readDataVersion(h: Handle): number {
  return (h.statement('PRAGMA data_version').get() as { data_version: number }).data_version;
}

export async function openFileWatch(conn: SqliteConnection, handlers: WatchHandlers): Promise<ControlWatch> {
  if (conn.inMemory) throw new WatchUnavailableError(FEATURE, 'an in-memory database has no file to watch');
  conn.handle(); // opens (creates) the file, as the store's other operations would
  const onDocuments = handlers.onDocuments?.bind(handlers);
  const onPolicy = handlers.onPolicy?.bind(handlers);
  // Read before the watch starts, so that only what is written from now on is announced.
  let highWater = onDocuments ? await conn.run('reading the documents sequence', documentsHighWater) : 0;
  let policyStamp = onPolicy ? await conn.run('reading the policy version', readPolicyStamp) : null;
  let closed = false;
  let burst: NodeJS.Timeout | undefined;
  let reading = false;
  let readAgain = false;

  let checkingPolicy = false;
  let checkPolicyAgain = false;
  async function announcePolicy(): Promise<void> {
    if (!onPolicy || closed) return;
    if (checkingPolicy) {
      checkPolicyAgain = true;
      return;
    }
    checkingPolicy = true;
    try {
      const stamp = await conn.run('reading the policy version', readPolicyStamp);
      if (closed || stamp === policyStamp || stamp === null) return;
      policyStamp = stamp;
      // `<version>@<timestamp>`; a version edited by hand into something else still wakes, with no
      // version, and the caller's read reports what is wrong.
      const version = Number(stamp.slice(0, stamp.indexOf('@')));
      onPolicy(Number.isSafeInteger(version) && version >= 0 ? { version } : undefined);
    } catch {
      // As for documents: the caller's polling reads the policy anyway, and the next event reads again.
    } finally {
      checkingPolicy = false;
    }
    if (checkPolicyAgain) {
      checkPolicyAgain = false;
      await announcePolicy();
    }
  }

  async function announce(): Promise<void> {
    if (closed) return;
    if (reading) {
      // Events during a read may be commits it did not see: one more read after it.
      readAgain = true;
      return;
    }
    reading = true;
    try {
      await announceDocuments();
    } finally {
      reading = false;
    }
    if (readAgain) {
      readAgain = false;
      await announce();
    }
  }

  async function announceDocuments(): Promise<void> {
    if (!onDocuments || closed) return;
    try {
      const seq = await conn.run('reading the documents sequence', documentsHighWater);
      if (!closed && seq > highWater) {
        const count = seq - highWater;
        highWater = seq;
        onDocuments({ count });
      } else if (seq < highWater) {
        highWater = seq; // the table was recreated by hand
      }
    } catch {
      // A failed read only loses a count; the agents' polling still finds the documents, and the
      // next file event reads again.
    }
  }

  function wake(): void {
    if (closed) return;
    handlers.onWake();
    // At once, like the control version the wake-up has the caller read: a policy command must
    // reach the fleet as fast as a pause (one indexed row read, as cheap as the version read).
    void announcePolicy();
    if (onDocuments && burst === undefined) {
      burst = setTimeout(() => {
        burst = undefined;
        void announce();
      }, BURST_MS);
    }
  }

  let dataVersion = await conn.run('reading the data version', readDataVersion);
  let polling = false;
  const poll = setInterval(() => {
    if (closed || polling) return;
    polling = true;
    conn
      .run('reading the data version', readDataVersion)
      .then(
        (version) => {
          if (version === dataVersion) return;
          dataVersion = version;
          wake();
        },
        () => undefined, // the store's other calls report it; the next poll tries again
      )
      .finally(() => {
        polling = false;
      });
  }, DATA_VERSION_POLL_MS);
  poll.unref();

  const file = basename(conn.path);
  const probe = `${file}-clock`;
  let watcher: FSWatcher;
  try {
    watcher = watch(dirname(conn.path), { persistent: false }, (event, name) => {
      if (closed || name === probe || (name !== null && !name.startsWith(file))) return;
      if (event === 'rename') conn.checkIdentity();
      wake();
    });
  } catch (error) {
    // No inotify here, or out of watches: the caller polls.
    clearInterval(poll);
    throw new WatchUnavailableError(FEATURE, describeError(error));
  }
  watcher.on('error', (error) => {
    if (!closed) handlers.onError(error);
  });
  return {
    mode: 'file_events',
    description: 'SQLite file events (event-driven, real-time)',
    async close() {
      closed = true;
      clearTimeout(burst);
      clearInterval(poll);
      watcher.close();
    },
  };
}
