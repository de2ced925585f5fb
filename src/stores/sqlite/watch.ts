// The event-driven watch: a file-system watch on the database's directory (its -wal file changes on
// every commit from any process). Every event wakes the control watcher, which confirms by reading
// the version; a burst of events also leads to one read of the documents' AUTOINCREMENT high-water
// mark, whose growth is announced as that many new documents, and one read of the fleet policy
// row's version and timestamp, announced with onPolicy when they moved.

import { type FSWatcher, watch } from 'node:fs';
import { basename, dirname } from 'node:path';

import { describeError, WatchUnavailableError } from '../../errors.js';
import type { ControlWatch, WatchHandlers } from '../types.js';
import type { SqliteConnection } from './connection.js';
import { documentsHighWater } from './documents.js';
import { readPolicyStamp } from './policy.js';

export const FEATURE = 'SQLite file events';
/** One commit touches the -wal and -shm files several times within a few milliseconds. */
const BURST_MS = 5;

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

  async function announceDocuments(): Promise<void> {
    if (!onDocuments) return;
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

  async function announcePolicy(): Promise<void> {
    if (!onPolicy) return;
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
      await announcePolicy();
    } finally {
      reading = false;
    }
    if (readAgain) {
      readAgain = false;
      await announce();
    }
  }

  const file = basename(conn.path);
  let watcher: FSWatcher;
  try {
    watcher = watch(dirname(conn.path), { persistent: false }, (_event, name) => {
      if (closed || (name !== null && !name.startsWith(file))) return;
      handlers.onWake();
      if ((onDocuments || onPolicy) && burst === undefined) {
        burst = setTimeout(() => {
          burst = undefined;
          void announce();
        }, BURST_MS);
      }
    });
  } catch (error) {
    // No inotify here, or out of watches: the caller polls.
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
      watcher.close();
    },
  };
}
