// The event-driven control watch: a change stream on agent_control filtered to the control
// document and the fleet policy document. An event of the control document only wakes the caller,
// who re-reads the version; one of the policy document calls onPolicy with the version it wrote
// when the event carries it. Every resume does both, so that a command or a policy written while
// the stream was down is read, never lost.
//
// Resuming is layered. The driver resumes by itself, with the last resume token, after a network
// error or a getMore error that the server labels ResumableChangeStreamError (or CursorNotFound);
// we learn of it when the stream's old cursor closes, and wake the caller. Any other error closes the
// driver's stream: we reopen it with `resumeAfter` and the token we kept, a few times, and give up
// with onError once when the server keeps refusing. An `invalidate` (the collection was dropped or
// renamed) ends the stream for good, so it is reopened without the token. Polling while the stream
// is down, and upgrading back, are the control watcher's job, not this file's.
//
// The resuming itself (ResumableChangeStream) knows nothing of the control document: the documents
// watch (documentStream.ts) runs the same machinery on a cursor of its own.

import { setTimeout as sleep } from 'node:timers/promises';

import {
  type ChangeStream,
  type ChangeStreamDocument,
  type Collection,
  type Document,
  MongoServerError,
  type ResumeToken,
} from 'mongodb';

import { describeError, StoreUnavailableError, WatchUnavailableError } from '../../errors.js';
import { CONTROL_ID } from '../../model/control.js';
import { POLICY_ID } from '../../model/policy.js';
import type { ControlWatch, WatchHandlers } from '../types.js';
import { isUnreachable, type LooseDocument } from './connection.js';

export const CHANGE_STREAMS = 'MongoDB Change Streams';
export const CHANGE_STREAMS_DESCRIPTION = 'MongoDB Change Streams (event-driven, real-time)';

export interface ChangeStreamOptions {
  /** How long the first round trip (the `$changeStream` aggregate) may take. Default 10 s. */
  establishTimeoutMs?: number;
  /** Attempts to reopen a broken stream before onError. Default 3. */
  reopenAttempts?: number;
  /** Pause before the second attempt, doubled for each further one. Default 500 ms. */
  reopenDelayMs?: number;
  /** Server-side wait of each getMore; the server's default is 1 s. */
  maxAwaitTimeMS?: number;
}

const PIPELINE: Document[] = [
  {
    $match: {
      $or: [
        { 'documentKey._id': { $in: [CONTROL_ID, POLICY_ID] } },
        { operationType: { $in: ['drop', 'rename', 'dropDatabase', 'invalidate'] } },
      ],
    },
  },
];

/** Server codes that say the resume token itself is unusable: reopen without it. */
const TOKEN_UNUSABLE = new Set([
  260, // InvalidResumeToken
  280, // ChangeStreamFatalError
  286, // ChangeStreamHistoryLost
]);

class EstablishTimeout extends Error {}

interface Opened {
  stream: ChangeStream;
  /** The stream's pending first next(); the loop awaits it. */
  next: Promise<ChangeStreamDocument>;
}

/** Why the server will not give us a change stream, as the log line shows it. */
function refusalReason(error: MongoServerError): string {
  const message = error.message.replace(/\.\s*$/, '');
  if (error.code === 40573) return `Replica set required: ${message} (code 40573)`;
  return error.code === undefined ? message : `${message} (code ${error.code})`;
}

function classify(error: unknown, timeoutMs: number): Error {
  if (error instanceof EstablishTimeout) {
    return new WatchUnavailableError(
      CHANGE_STREAMS,
      `the server did not answer the $changeStream aggregate within ${timeoutMs / 1000} s`,
    );
  }
  if (isUnreachable(error)) return new StoreUnavailableError('opening a change stream', error);
  if (error instanceof MongoServerError)
    return new WatchUnavailableError(CHANGE_STREAMS, refusalReason(error));
  return new WatchUnavailableError(CHANGE_STREAMS, describeError(error));
}

/** What a resumable stream tells its owner. A throwing callback never ends the stream. */
export interface StreamHooks {
  /** An event arrived (not an `invalidate`: that one is handled here and reported as a gap). */
  onChange(change: ChangeStreamDocument): void;
  /** Events may have been missed (a resume, a reopen, an invalidate): the owner re-reads. */
  onGap(): void;
  /** Reopening failed every attempt: the stream has stopped for good. Called at most once. */
  onGiveUp(error: Error): void;
}

/** Opens the watch and resolves once the server accepted it; rejects with why it cannot. */
export async function watchControlChanges(
  control: Collection<LooseDocument>,
  handlers: WatchHandlers,
  options: ChangeStreamOptions = {},
): Promise<ResumableChangeStream> {
  const wake = () => handlers.onWake();
  const policy = (version?: number) => handlers.onPolicy?.(version === undefined ? undefined : { version });
  // After a gap either document may have changed.
  const wakeAll = () => {
    wake();
    policy();
  };
  // Routes one change event by the document it is about.
  const dispatch = (change: ChangeStreamDocument) => {
    const c = change as {
      documentKey?: { _id?: unknown };
      fullDocument?: { version?: unknown } | null;
      updateDescription?: { updatedFields?: { version?: unknown } };
    };
    // drop, rename, dropDatabase: about the collection, so about both documents.
    if (c.documentKey === undefined) return wakeAll();
    if (c.documentKey._id !== POLICY_ID) return wake();
    const raw = c.updateDescription?.updatedFields?.version ?? c.fullDocument?.version;
    const version = typeof raw === 'object' && raw !== null ? Number(raw.toString()) : Number(raw);
    policy(raw !== undefined && Number.isSafeInteger(version) && version >= 0 ? version : undefined);
  };
  const watch = new ResumableChangeStream(
    control,
    PIPELINE,
    { onChange: dispatch, onGap: wakeAll, onGiveUp: (error) => handlers.onError(error) },
    options,
  );
  await watch.establish();
  return watch;
}

/** A change stream that resumes after errors as the header says, and reports to its hooks. */
export class ResumableChangeStream implements ControlWatch {
  readonly mode = 'change_streams' as const;
  readonly description = CHANGE_STREAMS_DESCRIPTION;
  readonly #collection: Collection<LooseDocument>;
  readonly #pipeline: Document[];
  readonly #hooks: StreamHooks;
  readonly #timeoutMs: number;
  readonly #attempts: number;
  readonly #delayMs: number;
  readonly #maxAwaitTimeMS: number | undefined;
  readonly #stop = new AbortController();
  #stream: ChangeStream | null = null;
  #token: ResumeToken | undefined;
  #stopped = false;
  #loop: Promise<void> = Promise.resolve();
  #closing: Promise<void> | null = null;

  constructor(
    collection: Collection<LooseDocument>,
    pipeline: Document[],
    hooks: StreamHooks,
    options: ChangeStreamOptions,
  ) {
    this.#collection = collection;
    this.#pipeline = pipeline;
    this.#hooks = hooks;
    this.#timeoutMs = options.establishTimeoutMs ?? 10_000;
    this.#attempts = Math.max(1, options.reopenAttempts ?? 3);
    this.#delayMs = options.reopenDelayMs ?? 500;
    this.#maxAwaitTimeMS = options.maxAwaitTimeMS;
  }

  async establish(): Promise<void> {
    let first: Opened;
    try {
      first = await this.#open(undefined);
    } catch (error) {
      this.#stopped = true;
      throw classify(error, this.#timeoutMs);
    }
    this.#loop = this.#run(first);
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#stopped = true;
      this.#stop.abort();
      await this.#stream?.close().catch(() => undefined);
      await this.#loop;
    })();
    return this.#closing;
  }

  #tell(hook: () => void): void {
    if (this.#stopped) return;
    try {
      hook();
    } catch {
      // A throwing handler must not end the watch; the caller's next read will tell.
    }
  }

  #gap(): void {
    this.#tell(() => this.#hooks.onGap());
  }

  /**
   * Opens a stream and waits for the server's answer to its aggregate (watch() alone sends
   * nothing). The answer shows as the stream's first `resumeTokenChanged`: every server the driver
   * supports (4.2+) returns a postBatchResumeToken, even with an empty first batch.
   */
  async #open(resumeAfter: ResumeToken | undefined): Promise<Opened> {
    const stream = this.#collection.watch(this.#pipeline, {
      ...(resumeAfter !== undefined && { resumeAfter }),
      ...(this.#maxAwaitTimeMS !== undefined && { maxAwaitTimeMS: this.#maxAwaitTimeMS }),
    });
    this.#stream = stream;
    if (resumeAfter !== undefined) this.#token = resumeAfter;
    let answered!: () => void;
    const accepted = new Promise<void>((resolve) => (answered = resolve));
    stream.on('resumeTokenChanged', (token: ResumeToken) => {
      this.#token = token;
      answered();
    });
    // A cursor of an established stream closed: the driver is resuming after a resumable error
    // (or the stream ended, which the loop handles too). Wake the caller, who reads what may have
    // been missed meanwhile; the resumed stream replays from the token as well. A wake-up too many
    // costs one read of the version; one too few could cost a command.
    let live = false;
    stream.on('close', () => {
      if (live) this.#gap();
    });
    const next = stream.next();
    next.catch(() => undefined); // awaited by the loop; this only keeps an early failure handled
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        accepted,
        next.then(() => undefined),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new EstablishTimeout()), this.#timeoutMs);
        }),
      ]);
    } catch (error) {
      await stream.close().catch(() => undefined);
      throw error;
    } finally {
      clearTimeout(timer);
    }
    live = true;
    return { stream, next };
  }

  async #run(first: Opened): Promise<void> {
    let { stream, next } = first;
    for (;;) {
      let change: ChangeStreamDocument;
      try {
        change = await next;
      } catch (error) {
        if (this.#stopped) return;
        await stream.close().catch(() => undefined);
        const reopened = await this.#reopen(error);
        if (reopened === null) return;
        ({ stream, next } = reopened);
        this.#gap();
        continue;
      }
      if (this.#stopped) return;
      if (change.operationType === 'invalidate') {
        await stream.close().catch(() => undefined);
        this.#token = undefined; // an invalidated stream cannot be resumed; the re-read covers the gap
        const reopened = await this.#reopen(null);
        if (reopened === null) return;
        ({ stream, next } = reopened);
        this.#gap();
      } else {
        next = stream.next();
        next.catch(() => undefined);
        this.#tell(() => this.#hooks.onChange(change));
      }
    }
  }

  /** Reopens after the last token, a few times; after the last failure, onError once and stop. */
  async #reopen(cause: unknown): Promise<Opened | null> {
    let lastError = cause;
    let delayMs = this.#delayMs;
    for (let attempt = 1; attempt <= this.#attempts; attempt++) {
      if (attempt > 1) {
        try {
          await sleep(delayMs * (0.75 + Math.random() / 2), undefined, { signal: this.#stop.signal });
        } catch {
          return null; // closed while waiting
        }
        delayMs *= 2;
      }
      if (this.#stopped) return null;
      try {
        const opened = await this.#open(this.#token);
        if (this.#stopped) {
          await opened.stream.close().catch(() => undefined);
          return null;
        }
        return opened;
      } catch (error) {
        lastError = error;
        if (error instanceof MongoServerError && TOKEN_UNUSABLE.has(Number(error.code)))
          this.#token = undefined;
      }
    }
    this.#stopped = true;
    const reason =
      lastError instanceof EstablishTimeout ? 'no answer from the server' : describeError(lastError);
    try {
      this.#hooks.onGiveUp(
        new Error(
          `the change stream could not be re-established after ${this.#attempts} attempts: ${reason}`,
          {
            cause: lastError,
          },
        ),
      );
    } catch {
      // nothing more to tell anyone
    }
    return null;
  }
}
