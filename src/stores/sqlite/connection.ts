// One SQLite connection per store: opened lazily in WAL mode, with its prepared statements cached
// on the handle (each statement text is parsed once per connection, not on every call; a reopened
// connection prepares afresh), and every operation retried while another process holds the lock.
// It also keeps to the file at the path: once a second (and on file events) it compares the device
// and inode of the file it holds with the path's, and when they differ (deleted, replaced, moved)
// it lets go of the old one and opens the one at the path, telling its listeners.

import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import Database from 'better-sqlite3';

import { describeError, PullingAgentError, StoreTimeoutError, StoreUnavailableError } from '../../errors.js';
import { FileClock } from './clock.js';

/** The store's time (clock.ts), in SQL: milliseconds since the epoch, and the ISO text of it. */
export const NOW_MS = `pa_now_ms()`;
export const NOW_ISO = `strftime('%Y-%m-%dT%H:%M:%fZ', pa_now_ms() / 1000.0, 'unixepoch')`;

/** How often the file at the path is compared with the one held. */
export const IDENTITY_CHECK_MS = 1_000;

/** What the connection tells its listeners about the file at its path. */
export interface FileChange {
  /** `lost`: the file held is not the path's and none could be opened there (yet); `reopened`. */
  kind: 'lost' | 'reopened';
  reason: string;
}

interface FileIdentity {
  dev: number;
  ino: number;
}

/** How long one call may wait for another process's lock when none is configured (STORE_TIMEOUT). */
export const DEFAULT_TIMEOUT_MS = 10_000;

function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}

/** An open database and the statements prepared on it. */
export class Handle {
  readonly #statements = new Map<string, Database.Statement>();
  constructor(readonly db: Database.Database) {}

  /** The statement for this text, prepared on first use on this handle. */
  statement(sql: string): Database.Statement {
    let prepared = this.#statements.get(sql);
    if (prepared === undefined) {
      prepared = this.db.prepare(sql);
      this.#statements.set(sql, prepared);
    }
    return prepared;
  }
}

export class SqliteConnection {
  #handle: Handle | null = null;
  #identity: FileIdentity | null = null;
  /** After the first open, the file must exist: a later open never creates a store of its own. */
  #opened = false;
  #lost: string | null = null;
  #timer: NodeJS.Timeout | null = null;
  readonly #listeners = new Set<(change: FileChange) => void>();
  readonly clock: FileClock;
  /** Run on every reopened handle before use (the migrations: a file may come back without them). */
  onReopen: ((h: Handle) => void) | null = null;

  constructor(
    readonly path: string,
    readonly inMemory: boolean,
    /**
     * The deadline of one call. A statement runs synchronously and briefly (one file, one
     * process's statements at a time), so the only wait is another process's lock: at most 50 ms
     * inside the library per try, retried asynchronously until this runs out.
     */
    readonly timeoutMs = DEFAULT_TIMEOUT_MS,
  ) {
    this.clock = new FileClock(inMemory ? null : `${path}-clock`);
  }

  /**
   * The open handle, opening the file on first use or after close(): the first open creates the
   * file (and its directory), as a starting agent does; a reopen takes only a file that exists,
   * so that an agent never makes a store of its own beside a directory that is unreachable.
   */
  handle(): Handle {
    if (this.#handle) return this.#handle;
    const reopening = this.#opened;
    let opened: Database.Database | null = null;
    try {
      if (!this.inMemory && !reopening) mkdirSync(dirname(this.path), { recursive: true });
      opened = new Database(this.path, { fileMustExist: reopening && !this.inMemory });
      const clock = this.clock;
      opened.function('pa_now_ms', { deterministic: false }, () => clock.nowMs());
      // A very short in-library wait (it blocks the event loop: handlers' timers, HTTP, heartbeats);
      // longer contention is retried asynchronously, every few ms at most 20 ms apart, so that
      // several agents sharing the file take turns quickly. With 50 ms here and retries up to
      // 200 ms apart, 4 agents × 20 slots reached 0.37 of the ideal rate in the benchmark; with
      // this, 0.65.
      opened.pragma('busy_timeout = 5');
      opened.pragma('journal_mode = WAL');
      opened.pragma('synchronous = NORMAL');
      const handle = new Handle(opened);
      if (reopening && !this.inMemory) this.onReopen?.(handle);
      if (!this.inMemory) {
        this.#identity = identityOf(this.path);
        this.clock.measure();
        this.#startChecking();
      }
      this.#opened = true;
      this.#handle = handle;
      return handle;
    } catch (error) {
      opened?.close();
      if (error instanceof PullingAgentError) throw error;
      throw new StoreUnavailableError(`opening ${this.path}`, error);
    }
  }

  /** Listens to the file at the path changing under the store; returns the unsubscribe. */
  onFileChange(listener: (change: FileChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Compares the file held with the one at the path. When they differ, lets go of the old one
   * (so that nothing more is written into a deleted file) and opens the one there, if there is one;
   * while there is none, every call fails as unavailable and this is tried again at each check.
   */
  checkIdentity(): void {
    if (this.inMemory || !this.#opened) return;
    if (this.#handle) {
      const now = tryIdentityOf(this.path);
      const held = this.#identity;
      if (now !== null && held !== null && now.dev === held.dev && now.ino === held.ino) return;
      const reason =
        now === null
          ? `the file at ${this.path} is gone (deleted or moved, or its directory unreachable)`
          : `the file at ${this.path} is another file now (replaced, or moved there)`;
      this.#drop();
      this.#lost = reason;
      this.#tell({ kind: 'lost', reason: `${reason}; no longer using the one this agent had open` });
    }
    const reason = this.#lost;
    if (reason === null || tryIdentityOf(this.path) === null) return;
    const cause = reason.split('; reopening failed: ')[0] as string;
    try {
      this.handle();
    } catch (error) {
      this.#lost = `${cause}; reopening failed: ${describeError(error)}`;
      return;
    }
    this.#lost = null;
    this.#tell({ kind: 'reopened', reason: `${cause}; opened the file now at that path` });
  }

  #tell(change: FileChange): void {
    for (const listener of this.#listeners) {
      try {
        listener(change);
      } catch {
        // A listener's failure is its own.
      }
    }
  }

  #startChecking(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.checkIdentity(), IDENTITY_CHECK_MS);
    this.#timer.unref();
  }

  #drop(): void {
    try {
      this.#handle?.db.close();
    } catch {
      // closing a connection to a deleted file cannot fail in a way that matters
    }
    this.#handle = null;
    this.#identity = null;
    this.clock.close();
  }

  /** Runs a synchronous operation, retrying while another process holds the write lock. */
  async run<T>(what: string, operation: (h: Handle) => T): Promise<T> {
    const deadline = Date.now() + this.timeoutMs;
    let delay = 2;
    if (this.#lost !== null) {
      // Never the file's replacement opened behind the listeners' back: through the check only.
      this.checkIdentity();
      if (this.#lost !== null) throw new StoreUnavailableError(what, new Error(this.#lost));
    }
    for (;;) {
      try {
        const h = this.handle();
        this.clock.refresh();
        return operation(h);
      } catch (error) {
        if (error instanceof PullingAgentError) throw error;
        if (!isBusy(error)) throw new StoreUnavailableError(what, error);
        if (Date.now() > deadline) throw new StoreTimeoutError(what, error);
        await sleep(delay * (0.5 + Math.random()));
        delay = Math.min(delay * 2, 20);
      }
    }
  }

  close(): void {
    // The cached statements belong to this handle and go with it.
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    this.#handle?.db.close();
    this.#handle = null;
    this.#identity = null;
    this.#lost = null;
    this.#opened = false;
    this.clock.close();
  }
}

function identityOf(path: string): FileIdentity {
  const s = statSync(path);
  return { dev: s.dev, ino: s.ino };
}

function tryIdentityOf(path: string): FileIdentity | null {
  try {
    return identityOf(path);
  } catch {
    return null;
  }
}

export function toDateOrNull(value: unknown): Date | null {
  return typeof value === 'string' ? new Date(value) : null;
}
