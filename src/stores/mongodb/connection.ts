// The one MongoClient a store holds, the database name it uses, and which driver errors mean "the
// server cannot be reached right now" (those become StoreUnavailableError, so that the agent keeps
// its state and retries; anything else is rethrown unchanged).

import {
  MongoClient,
  type MongoClientOptions,
  MongoError,
  MongoNetworkError,
  MongoNetworkTimeoutError,
  MongoOperationTimeoutError,
  MongoServerSelectionError,
  MongoTopologyClosedError,
  type ObjectId,
} from 'mongodb';

import { ConfigError, PullingAgentError, StoreTimeoutError, StoreUnavailableError } from '../../errors.js';

/** An _id the store can name: ObjectId, string or integer. */
export type DocId = ObjectId | string | number;

/**
 * What the store's collections hold: a string _id for the control and registry documents, an
 * ObjectId, string or integer one in the user's collection, and fields of any BSON type.
 */
export interface LooseDocument {
  _id: DocId;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- BSON fields of any type, checked where read
  [field: string]: any;
}

/** The deadline of one store call when none is configured (STORE_TIMEOUT). */
export const DEFAULT_TIMEOUT_MS = 10_000;

/**
 * Defaults that keep an agent's footprint small and bound every call by `timeoutMs`: a server
 * that cannot be selected, a connection that does not open, a socket that stays silent (the driver
 * then discards that connection, and the next call opens another). A value given in the URL's
 * query wins.
 */
export function clientDefaults(timeoutMs = DEFAULT_TIMEOUT_MS): MongoClientOptions {
  const ms = Math.max(1, Math.round(timeoutMs));
  return {
    appName: 'pulling-agent',
    maxPoolSize: 5,
    minPoolSize: 0,
    serverSelectionTimeoutMS: Math.min(5_000, ms),
    connectTimeoutMS: Math.min(5_000, ms),
    // Above maxTimeMS (the server's own bound) and the change stream's maxAwaitTimeMS, so that a
    // slow but living server answers with its error first.
    socketTimeoutMS: ms + Math.min(2_000, ms),
  };
}

export function createClient(
  url: string,
  overrides: MongoClientOptions = {},
  timeoutMs = DEFAULT_TIMEOUT_MS,
): MongoClient {
  const query = url.includes('?') ? url.slice(url.indexOf('?') + 1).toLowerCase() : '';
  const inUrl = new Set(query.split('&').map((pair) => pair.split('=')[0] ?? ''));
  const defaults = Object.fromEntries(
    Object.entries(clientDefaults(timeoutMs)).filter(([key]) => !inUrl.has(key.toLowerCase())),
  );
  return new MongoClient(url, { ...defaults, ...overrides });
}

/**
 * The store's one client, connected on first use. A MongoClient whose first connection attempt
 * failed keeps a closed topology and answers "Topology is closed" for ever after, so until a
 * connection succeeds every attempt uses a new client; once connected, the driver itself rides out
 * outages and reconnects.
 */
export class MongoConnection {
  readonly #url: string;
  readonly #options: MongoClientOptions;
  readonly #timeoutMs: number;
  #client: MongoClient | null = null;
  #connecting: Promise<MongoClient> | null = null;
  #closed = false;

  constructor(url: string, options: MongoClientOptions = {}, timeoutMs = DEFAULT_TIMEOUT_MS) {
    this.#url = url;
    this.#options = options;
    this.#timeoutMs = timeoutMs;
  }

  get closed(): boolean {
    return this.#closed;
  }

  async client(): Promise<MongoClient> {
    if (this.#client) return this.#client;
    this.#connecting ??= (async () => {
      const client = createClient(this.#url, this.#options, this.#timeoutMs);
      try {
        await client.connect();
      } catch (error) {
        await client.close().catch(() => undefined);
        throw error;
      } finally {
        this.#connecting = null;
      }
      if (this.#closed) {
        await client.close();
        throw new MongoTopologyClosedError();
      }
      this.#client = client;
      return client;
    })();
    return this.#connecting;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#connecting?.catch(() => undefined);
    await this.#client?.close();
    this.#client = null;
  }
}

/** The database named in the URL's path (`mongodb://host/db?…`), if any. */
export function databaseFromUrl(url: string): string | undefined {
  // Not `new URL()`: a MongoDB URL may list several hosts (`h1:27017,h2:27017`).
  const match = /^mongodb(?:\+srv)?:\/\/[^/?]*\/([^?#]*)/.exec(url);
  const name = match?.[1] ? decodeURIComponent(match[1]) : '';
  return name === '' ? undefined : name;
}

/** MONGODB_DATABASE wins over the URL's path, which is often only the authentication database. */
export function resolveDatabase(url: string, database: string | undefined): string {
  const name = database ?? databaseFromUrl(url);
  if (name === undefined || name === '') {
    throw new ConfigError([
      'MongoDB needs a database: set MONGODB_DATABASE or name it in the URL path (mongodb://host:27017/mydb)',
    ]);
  }
  if (/[/\\. "$\0]/.test(name) || name.length > 63) {
    throw new ConfigError([`MONGODB_DATABASE=${JSON.stringify(name)} is not a valid MongoDB database name`]);
  }
  return name;
}

/** Server codes that a retry later can cure (from the driver's list of resumable and retryable errors). */
const TRANSIENT_CODES = new Set([
  6, // HostUnreachable
  7, // HostNotFound
  18, // AuthenticationFailed: the credentials or the user may be fixed without restarting us
  89, // NetworkTimeout
  91, // ShutdownInProgress
  189, // PrimarySteppedDown
  9001, // SocketException
  10107, // NotWritablePrimary
  11600, // InterruptedAtShutdown
  11602, // InterruptedDueToReplStateChange
  13435, // NotPrimaryNoSecondaryOk
  13436, // NotPrimaryOrSecondary
  133, // FailedToSatisfyReadPreference
  50, // MaxTimeMSExpired: the call's deadline (STORE_TIMEOUT)
]);

/** The driver's monitor got no answer in time and interrupted the connections in use with this. */
const MONITOR_TIMEOUT = /interrupted due to server monitor timeout/;

/**
 * A missed deadline: the server's maxTimeMS, a silent socket, no server selectable in time, or a
 * call interrupted because the driver's monitor got no answer in time (its connection is closed
 * with the pool's others, so a call made right after opens a new one).
 */
export function isTimeout(error: unknown): boolean {
  if (
    error instanceof MongoNetworkTimeoutError ||
    error instanceof MongoOperationTimeoutError ||
    error instanceof MongoServerSelectionError
  ) {
    return true;
  }
  if (error instanceof MongoNetworkError && MONITOR_TIMEOUT.test(error.message)) return true;
  return error instanceof MongoError && error.code === 50;
}

export function isUnreachable(error: unknown): boolean {
  if (error instanceof MongoNetworkError || error instanceof MongoServerSelectionError) return true;
  if (!(error instanceof MongoError)) return false;
  if (error instanceof MongoTopologyClosedError) return false; // we closed it ourselves
  if (typeof error.code === 'number' && TRANSIENT_CODES.has(error.code)) return true;
  return error.hasErrorLabel('RetryableWriteError') || error.hasErrorLabel('ResumableChangeStreamError');
}

/** E11000: an insert (or upsert) whose _id, or another unique key, is already taken. */
export function isDuplicateKey(error: unknown): boolean {
  return error instanceof MongoError && error.code === 11000;
}

/** Runs one store operation and translates an unreachable server into StoreUnavailableError. */
export async function guard<T>(what: string, operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    if (error instanceof PullingAgentError || !isUnreachable(error)) throw error;
    if (isTimeout(error)) throw new StoreTimeoutError(what, error);
    throw new StoreUnavailableError(what, error);
  }
}

/** MONGODB_COLLECTION must be a usable name and not one of the agents' own collections. */
export function checkCollectionName(name: string, reserved: readonly string[]): void {
  if (name === '' || name.startsWith('system.') || name.includes('$') || name.includes('\0')) {
    throw new ConfigError([`MONGODB_COLLECTION=${JSON.stringify(name)} is not a valid collection name`]);
  }
  if (reserved.includes(name)) {
    throw new ConfigError([
      `MONGODB_COLLECTION=${JSON.stringify(name)} is a collection the agents use for themselves`,
    ]);
  }
}
