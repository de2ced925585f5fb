// New documents wake idle agents: a change stream of its own on the documents collection (inserts
// of pending documents, and documents put back to pending), beside the control stream and never in
// its way. Events seen within a few milliseconds are announced as one onDocuments({count}), so
// that idle agents claim what was stored rather than all racing for one document. Documents not
// due yet (a retry's backoff, a run_at in the future) announce nothing: their agents find them by
// polling, as they would anyway.
//
// It never calls onError: a broken documents stream must not cost the control watch anything. It
// resumes like the control stream (changeStream.ts); when that gives up, or the server refuses it
// from the start, it says so once through onDocumentsWatch and tries again with backoff, while idle
// agents find new documents every POLL_INTERVAL.

import { setTimeout as sleep } from 'node:timers/promises';

import type { ChangeStreamDocument, Collection, Document } from 'mongodb';

import { describeError, WatchUnavailableError } from '../../errors.js';
import type { WatchHandlers } from '../types.js';
import { type ChangeStreamOptions, ResumableChangeStream } from './changeStream.js';
import type { ServerClock } from './clock.js';
import type { LooseDocument } from './connection.js';

/** Events this close together are one announcement (one getMore's batch arrives within this). */
export const COALESCE_MS = 5;
/** A document due within this of the server's clock (as estimated) counts as due now. */
const DUE_SLACK_MS = 100;

export interface DocumentStreamOptions extends ChangeStreamOptions {
  /** Pause before trying again after the stream gave up or was refused, doubled up to retryMaxMs. */
  retryBaseMs?: number;
  retryMaxMs?: number;
}

/**
 * Only what becomes claimable, and of each event only what says when it is due: the payloads never
 * travel. An update's `updatedFields` holds `status` only when the status changed.
 */
const PIPELINE: Document[] = [
  {
    $match: {
      $or: [
        { operationType: { $in: ['insert', 'replace'] }, 'fullDocument.status': 'pending' },
        { operationType: 'update', 'updateDescription.updatedFields.status': 'pending' },
        { operationType: { $in: ['drop', 'rename', 'dropDatabase', 'invalidate'] } },
      ],
    },
  },
  {
    $project: {
      operationType: 1,
      'fullDocument.run_at': 1,
      'updateDescription.updatedFields.run_at': 1,
    },
  },
];

/** Whether an event's document is claimable now (no run_at, as a hand-inserted one, is). */
function isDueNow(change: ChangeStreamDocument, now: number): boolean {
  const fields: Document | undefined =
    'fullDocument' in change
      ? (change.fullDocument as Document | undefined)
      : 'updateDescription' in change
        ? change.updateDescription.updatedFields
        : undefined;
  if (fields === undefined) return false; // drop, rename: nothing new to claim
  const runAt: unknown = fields.run_at;
  return !(runAt instanceof Date) || runAt.getTime() <= now + DUE_SLACK_MS;
}

export function describeDocumentStream(collection: string): string {
  return `a MongoDB change stream on ${collection}`;
}

/** Watches the documents collection until closed; start() returns at once. */
export class DocumentStream {
  readonly #collection: Collection<LooseDocument>;
  readonly #clock: ServerClock;
  readonly #handlers: WatchHandlers;
  readonly #options: DocumentStreamOptions;
  readonly #stop = new AbortController();
  #stream: ResumableChangeStream | null = null;
  #pending = 0;
  #flushTimer: NodeJS.Timeout | undefined;
  #loop: Promise<void> = Promise.resolve();
  /** What onDocumentsWatch was last told: an outage is said once, however often it is retried. */
  #told: 'up' | 'down' | null = null;

  constructor(
    collection: Collection<LooseDocument>,
    clock: ServerClock,
    handlers: WatchHandlers,
    options: DocumentStreamOptions = {},
  ) {
    this.#collection = collection;
    this.#clock = clock;
    this.#handlers = handlers;
    this.#options = options;
  }

  start(): void {
    this.#loop = this.#run();
  }

  async close(): Promise<void> {
    if (this.#stop.signal.aborted) return this.#loop;
    this.#stop.abort();
    clearTimeout(this.#flushTimer);
    await this.#stream?.close();
    await this.#loop;
  }

  /** Opens the stream, waits for it to give up, reopens after a backoff; until closed. */
  async #run(): Promise<void> {
    const base = this.#options.retryBaseMs ?? 5_000;
    const max = this.#options.retryMaxMs ?? 300_000;
    let delayMs = base;
    let reopened = false;
    while (!this.#stop.signal.aborted) {
      let gaveUp!: (error: Error) => void;
      const ended = new Promise<Error>((resolve) => (gaveUp = resolve));
      const stream = new ResumableChangeStream(
        this.#collection,
        PIPELINE,
        {
          onChange: (change) => this.#onChange(change),
          onGap: () => this.#announce(undefined),
          onGiveUp: gaveUp,
        },
        this.#options,
      );
      let reason: string;
      try {
        await stream.establish();
        this.#stream = stream;
        if (this.#stop.signal.aborted) break;
        this.#report('up', () => ({ watching: true, description: describeDocumentStream(this.#name) }));
        // Documents stored while it was down are found now, not at the next poll.
        if (reopened) this.#announce(undefined);
        delayMs = base;
        const error = await Promise.race([ended, this.#stopped()]);
        if (error === null) break;
        reason = `its change stream broke: ${describeError(error)}`;
      } catch (error) {
        reason =
          error instanceof WatchUnavailableError
            ? error.message
            : `no change stream: ${describeError(error)}`;
      } finally {
        await stream.close();
        if (this.#stream === stream) this.#stream = null;
      }
      if (this.#stop.signal.aborted) break;
      this.#report('down', () => ({ watching: false, reason }));
      reopened = true;
      try {
        await sleep(delayMs * (0.75 + Math.random() / 2), undefined, { signal: this.#stop.signal });
      } catch {
        break; // closed while waiting
      }
      delayMs = Math.min(max, delayMs * 2);
    }
  }

  get #name(): string {
    return this.#collection.collectionName;
  }

  #stopped(): Promise<null> {
    const signal = this.#stop.signal;
    if (signal.aborted) return Promise.resolve(null);
    return new Promise((resolve) => signal.addEventListener('abort', () => resolve(null), { once: true }));
  }

  #report(
    key: 'up' | 'down',
    state: () => { watching: true; description: string } | { watching: false; reason: string },
  ): void {
    if (this.#told === key || this.#stop.signal.aborted) return;
    this.#told = key;
    try {
      this.#handlers.onDocumentsWatch?.(state());
    } catch {
      // a log line that failed; the stream goes on
    }
  }

  #onChange(change: ChangeStreamDocument): void {
    if (!isDueNow(change, Date.now() + this.#clock.offsetMs)) return;
    this.#pending++;
    this.#flushTimer ??= setTimeout(() => this.#flush(), COALESCE_MS);
  }

  /** Something may have been missed: a wake-up without a count (it may cover any number). */
  #announce(count: number | undefined): void {
    if (this.#stop.signal.aborted) return;
    try {
      this.#handlers.onDocuments?.(count === undefined ? undefined : { count });
    } catch {
      // the agent's problem; the stream goes on
    }
  }

  #flush(): void {
    this.#flushTimer = undefined;
    const count = this.#pending;
    this.#pending = 0;
    if (count > 0) this.#announce(count);
  }
}
