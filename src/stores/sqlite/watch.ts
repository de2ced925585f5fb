// The event-driven watch: a file-system watch on the database's directory (its -wal file changes on
// every commit from any process). Every event wakes the control watcher, which confirms by reading
// the version; a burst of events also leads to one read of the documents' AUTOINCREMENT high-water
// mark, and its growth is announced as that many new documents.

import { type FSWatcher, watch } from 'node:fs';
import { basename, dirname } from 'node:path';

import { describeError, WatchUnavailableError } from '../../errors.js';
import type { ControlWatch, WatchHandlers } from '../types.js';
import type { SqliteConnection } from './connection.js';
import { documentsHighWater } from './documents.js';

export const FEATURE = 'SQLite file events';
/** One commit touches the -wal and -shm files several times within a few milliseconds. */
const BURST_MS = 5;

export async function openFileWatch(conn: SqliteConnection, handlers: WatchHandlers): Promise<ControlWatch> {
  if (conn.inMemory) throw new WatchUnavailableError(FEATURE, 'an in-memory database has no file to watch');
  conn.handle(); // opens (creates) the file, as the store's other operations would
  const onDocuments = handlers.onDocuments?.bind(handlers);
  // Read before the watch starts, so that only documents inserted from now on are announced.
  let highWater = onDocuments ? await conn.run('reading the documents sequence', documentsHighWater) : 0;
  let closed = false;
  let burst: NodeJS.Timeout | undefined;
  let reading = false;
  let readAgain = false;

  async function announceDocuments(): Promise<void> {
    if (!onDocuments || closed) return;
    if (reading) {
      // Events during a read may be commits it did not see: one more read after it.
      readAgain = true;
      return;
    }
    reading = true;
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
    } finally {
      reading = false;
    }
    if (readAgain) {
      readAgain = false;
      await announceDocuments();
    }
  }

  const file = basename(conn.path);
  let watcher: FSWatcher;
  try {
    watcher = watch(dirname(conn.path), { persistent: false }, (_event, name) => {
      if (closed || (name !== null && !name.startsWith(file))) return;
      handlers.onWake();
      if (onDocuments && burst === undefined) {
        burst = setTimeout(() => {
          burst = undefined;
          void announceDocuments();
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
