// The control watch: a dedicated connection (LISTEN needs a session of its own, so not one from
// the pool) listening on the schema's control and documents channels. It proves itself at start:
// a test notification sent through the pool must come back on it, which never happens behind
// PgBouncer in transaction pooling mode. It never reconnects: the control watcher above the
// stores polls meanwhile, opens a new watch with backoff and re-reads the state.

import { randomUUID } from 'node:crypto';

import pg from 'pg';

import { describeError, WatchUnavailableError } from '../../errors.js';
import type { ControlWatch, WatchHandlers } from '../types.js';
import { clientConfig, type Queryable } from './connection.js';
import { type Names, quoteIdent } from './names.js';

export const FEATURE = 'PostgreSQL LISTEN/NOTIFY';
const DESCRIPTION = 'PostgreSQL LISTEN/NOTIFY (event-driven, real-time)';
/** Payloads of test notifications; every listener ignores them, so a probe wakes nobody. */
const PROBE_PREFIX = 'probe:';
/** Payloads of the fleet policy's notifications: `policy:<version>`. */
export const POLICY_PREFIX = 'policy:';
const PGBOUNCER_REASON =
  'the listen connection did not receive its own test notification within %s ms; the likely cause is ' +
  'PgBouncer (or another pooler) in transaction pooling mode between the agent and PostgreSQL, where ' +
  'LISTEN does not work. Point STORE_URL at PostgreSQL directly or at a session-mode pool';

export interface ListenOptions {
  url: string;
  names: Names;
  /** Where the test notification is sent from: another connection, as a real command would be. */
  pool: Queryable;
  /** How long the test notification may take to arrive. */
  probeTimeoutMs: number;
  /**
   * Interval of a `SELECT 1` on the listen connection that notices a silently dead peer (0: off);
   * it must answer within the same time. TCP keep-alive alone takes minutes (the kernel's probes
   * and retries) and never notices a peer that still acknowledges but does not answer.
   */
  keepAliveMs: number;
  /** The deadline of the connection's own statements (STORE_TIMEOUT). */
  timeoutMs?: number;
  /** The keep-alive query got no answer: the path to the server may have died silently. */
  onSilent?(): void;
}

class Timeout extends Error {}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Timeout()), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

export async function openControlWatch(
  options: ListenOptions,
  handlers: WatchHandlers,
): Promise<ControlWatch> {
  const { names } = options;
  // No statement_timeout (PgBouncer would refuse it before saying why LISTEN cannot work there):
  // the connection runs LISTEN and its keep-alive only, each bounded by query_timeout.
  const { statement_timeout: _unused, ...config } = clientConfig(
    options.url,
    'pulling-agent listen',
    options.timeoutMs,
  );
  const client = new pg.Client(config);
  const probeToken = `${PROBE_PREFIX}${randomUUID()}`;
  let state: 'starting' | 'open' | 'closed' = 'starting';
  let keepAliveTimer: NodeJS.Timeout | undefined;
  let probeArrived!: () => void;
  let startFailed!: (error: Error) => void;
  const probe = new Promise<void>((resolve, reject) => {
    probeArrived = resolve;
    startFailed = reject;
  });
  probe.catch(() => undefined); // may fail before anybody awaits it

  client.on('notification', (message) => {
    if (message.channel === names.controlChannel) {
      if (message.payload?.startsWith(PROBE_PREFIX)) {
        if (message.payload === probeToken) probeArrived();
      } else if (message.payload?.startsWith(POLICY_PREFIX)) {
        // The fleet policy's trigger (migration 6). An older agent reads this payload as no
        // number, so it only wakes and reads the control version; nothing is misread as one.
        if (state !== 'open') return;
        const digits = message.payload.slice(POLICY_PREFIX.length);
        const version = /^\d+$/.test(digits) ? Number(digits) : NaN;
        handlers.onPolicy?.(Number.isSafeInteger(version) ? { version } : undefined);
      } else if (state === 'open') {
        // The trigger sends the row's new version; anything else (a hand-made NOTIFY) just wakes.
        const version = Number(message.payload);
        const announced = message.payload && Number.isSafeInteger(version) ? { version } : undefined;
        handlers.onWake(announced);
      }
    } else if (message.channel === names.documentsChannel && state === 'open') {
      // The trigger sends how many rows the INSERT stored; an older trigger (or a hand-made
      // NOTIFY) sends nothing usable, which still wakes, without a count.
      const count = Number(message.payload);
      handlers.onDocuments?.(
        message.payload && Number.isSafeInteger(count) && count > 0 ? { count } : undefined,
      );
    }
  });

  /** The connection broke: reported once, and only for a watch that was established. */
  function broken(error: Error): void {
    if (state === 'starting') return startFailed(error);
    if (state === 'closed') return;
    state = 'closed';
    clearTimeout(keepAliveTimer);
    // A peer that stopped answering would never acknowledge a polite end: drop the socket.
    (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
    client.end().catch(() => undefined);
    handlers.onError(error);
  }
  client.on('error', broken);
  client.on('end', () => broken(new Error('the listen connection was closed')));

  function scheduleKeepAlive(): void {
    if (options.keepAliveMs <= 0) return;
    keepAliveTimer = setTimeout(() => {
      withTimeout(client.query('SELECT 1'), options.keepAliveMs).then(
        () => state === 'open' && scheduleKeepAlive(),
        (error: unknown) => {
          if (error instanceof Timeout && state === 'open') options.onSilent?.();
          broken(
            error instanceof Timeout
              ? new Error(
                  `the listen connection did not answer a keep-alive query within ${options.keepAliveMs} ms`,
                )
              : (error as Error),
          );
        },
      );
    }, options.keepAliveMs);
    keepAliveTimer.unref();
  }

  try {
    await client.connect();
    await client.query(
      `LISTEN ${quoteIdent(names.controlChannel)}; LISTEN ${quoteIdent(names.documentsChannel)}`,
    );
    await options.pool.query('SELECT pg_notify($1, $2)', [names.controlChannel, probeToken]);
    await withTimeout(probe, options.probeTimeoutMs);
  } catch (error) {
    state = 'closed';
    await client.end().catch(() => undefined);
    if (error instanceof Timeout) {
      throw new WatchUnavailableError(
        FEATURE,
        PGBOUNCER_REASON.replace('%s', String(options.probeTimeoutMs)),
      );
    }
    throw new WatchUnavailableError(FEATURE, `could not open the listen connection: ${describeError(error)}`);
  }
  state = 'open';
  scheduleKeepAlive();

  return {
    mode: 'listen_notify',
    description: DESCRIPTION,
    async close() {
      if (state === 'closed') return;
      state = 'closed';
      clearTimeout(keepAliveTimer);
      await client.end().catch(() => undefined);
    },
  };
}
