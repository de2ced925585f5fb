// Two scenarios with handlers that take time, measured the same way for pulling-agent and its peers:
//
// "Real-world latencies" (--only=realworld): throughput when every document sleeps a log-normal,
// heavy-tailed time (bench/lib/latencies.ts; median 5 ms, p99 ≈ 120 ms) and 1 % throw once. k
// worker processes of concurrency c: pulling-agent processes with CONCURRENCY=c (BATCH_SIZE left
// at its default), BullMQ Workers with `concurrency: c`, graphile-worker `run()` with
// `concurrency: c`, all running bench/fixtures/latency-handler.mjs on the same documents. As in the
// no-op throughput scenario, everything is enqueued first, the workers started, then released at
// once; the rate counts from the first handler start to the last handler end (the handlers' own
// clocks), and is compared with the ideal k × c ÷ mean latency.
//
// "Enqueue → start" (--only=pickup): an idle fleet of 2 workers, one document at a time every
// 50–100 ms; the time from just before the enqueue call is sent (POST /api/documents to agent A,
// graphile-worker's add_job, BullMQ's queue.add) to the handler's start, both stamped with
// performance.timeOrigin + performance.now() (the same machine clock in every process).

import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Queue } from 'bullmq';
import { Logger, runMigrations } from 'graphile-worker';
import { Redis } from 'ioredis';
import pg from 'pg';

import { openStore } from '../../src/stores/index.js';
import { type LatencyPayload, type LatencySet, mulberry32 } from '../lib/latencies.js';
import { epochNow, post, ProcessFleet } from '../lib/processes.js';
import { ROOT, type Servers } from '../lib/servers.js';
import { sleep, until } from '../lib/stats.js';
import { freshDatabase, STORE_LABELS, type StoreKind } from '../lib/stores.js';
import { PeerWorkers, type Stats, waitDone } from './throughput.js';

const LATENCY_HANDLER = join(ROOT, 'bench/fixtures/latency-handler.mjs');

/** What bench/fixtures/latency-handler.mjs reports per process. */
export interface HandlerStats extends Stats {
  failures: number;
  starts: [number, number][];
}

export interface RealWorldRun {
  system: string;
  store: string;
  workers: number;
  concurrency: number;
  /** pulling-agent's BATCH_SIZE (its default unless set), null for the peers. */
  batchSize: number | null;
  documents: number;
  processed: number;
  /** Planned first-attempt failures seen by the handlers (each retried once). */
  failures: number;
  seconds: number;
  perSecond: number;
  enqueueSeconds: number;
  capped: boolean;
}

export interface RealWorldOptions {
  set: LatencySet;
  capMs: number;
}

function combine(stats: HandlerStats[]): { processed: number; failures: number; seconds: number } {
  const active = stats.filter((s) => s.count > 0);
  const failures = stats.reduce((n, s) => n + (s.failures ?? 0), 0);
  if (active.length === 0) return { processed: 0, failures, seconds: 0 };
  const first = Math.min(...active.map((s) => s.first));
  const last = Math.max(...active.map((s) => s.last));
  return { processed: active.reduce((n, s) => n + s.count, 0), failures, seconds: (last - first) / 1000 };
}

function realWorldResult(
  base: Omit<RealWorldRun, 'processed' | 'failures' | 'seconds' | 'perSecond'>,
  stats: HandlerStats[],
): RealWorldRun {
  const { processed, failures, seconds } = combine(stats);
  return { ...base, processed, failures, seconds, perSecond: seconds > 0 ? processed / seconds : 0 };
}

function readStats(dir: string): HandlerStats[] {
  return readdirSync(dir).map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as HandlerStats);
}

async function insertChunks(
  payloads: LatencyPayload[],
  size: number,
  insert: (chunk: LatencyPayload[]) => Promise<unknown>,
): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < payloads.length; i += size) await insert(payloads.slice(i, i + size));
  return (performance.now() - started) / 1000;
}

export async function realWorldAgents(
  kind: StoreKind,
  workers: number,
  concurrency: number,
  servers: Servers,
  options: RealWorldOptions,
): Promise<RealWorldRun> {
  const db = await freshDatabase(kind, servers);
  const store = await openStore(db.target);
  const fleet = new ProcessFleet({
    ...db.env,
    HANDLER: LATENCY_HANDLER,
    CONCURRENCY: String(concurrency),
    CONTROL_POLLING_INTERVAL: '1',
    POLL_INTERVAL: '1',
    // A document fails once and must be retried, never marked failed.
    MAX_RETRIES: '3',
  });
  const statsDir = mkdtempSync(join(tmpdir(), 'pa-bench-stats-'));
  const n = options.set.payloads.length;
  try {
    await store.init();
    await store.writeCommand({ command: 'pause', reason: 'bench: set-up', updated_by: 'bench' });
    const enqueueSeconds = await insertChunks(options.set.payloads, 5_000, (chunk) =>
      store.insertDocuments(chunk),
    );
    const agents = await fleet.startMany(
      Array.from({ length: workers }, (_, i) => `agent-${i + 1}`),
      { BENCH_STATS_FILE: join(statsDir, 'stats') },
    );
    // Recorded as the agent reports it (its default unless the environment sets one).
    const batchSize = findNumber(await fetchJson(`${agents[0]!.url}/api/config`), /^batch_?size$/i);
    await Promise.all(agents.map((a) => post(`${a.url}/api/agent/resume`)));
    const capped = await waitDone(async () => {
      const counts = await store.countDocuments();
      return counts.processed + counts.failed >= n;
    }, options.capMs);
    await fleet.stopAll().catch(() => undefined);
    return realWorldResult(
      {
        system: 'pulling-agent',
        store: STORE_LABELS[kind],
        workers,
        concurrency,
        batchSize,
        documents: n,
        enqueueSeconds,
        capped,
      },
      readStats(statsDir),
    );
  } finally {
    await fleet.stopAll().catch(() => undefined);
    await store.close();
    await db.cleanup().catch(() => undefined);
    rmSync(statsDir, { recursive: true, force: true });
  }
}

async function fetchJson(url: string): Promise<unknown> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    return await response.json();
  } catch {
    return null;
  }
}

/** The first number under a key matching `key`, anywhere in a JSON value. */
function findNumber(value: unknown, key: RegExp): number | null {
  if (value === null || typeof value !== 'object') return null;
  for (const [k, v] of Object.entries(value)) {
    if (key.test(k) && typeof v === 'number') return v;
    const inner = findNumber(v, key);
    if (inner !== null) return inner;
  }
  return null;
}

export async function realWorldBullmq(
  workers: number,
  concurrency: number,
  servers: Servers,
  options: RealWorldOptions,
): Promise<RealWorldRun> {
  const redis = servers.redis!;
  const connection = new Redis({ host: redis.host, port: redis.port, maxRetriesPerRequest: null });
  const queue = new Queue('bench', { connection });
  const peers = new PeerWorkers();
  const n = options.set.payloads.length;
  try {
    await queue.obliterate({ force: true });
    // attempts: 2 and no back-off: a failed job goes straight back to the waiting list.
    const enqueueSeconds = await insertChunks(options.set.payloads, 1_000, (chunk) =>
      queue.addBulk(chunk.map((data) => ({ name: 'latency', data, opts: { attempts: 2 } }))),
    );
    await peers.start(workers, {
      PEER: 'bullmq',
      REDIS_PORT: String(redis.port),
      PEER_HANDLER: 'latency',
      PEER_CONCURRENCY: String(concurrency),
    });
    peers.go();
    const capped = await waitDone(async () => {
      const counts = await queue.getJobCounts('completed', 'failed');
      return (counts.completed ?? 0) + (counts.failed ?? 0) >= n;
    }, options.capMs);
    const stats = await peers.stop<HandlerStats>();
    return realWorldResult(
      {
        system: 'BullMQ',
        store: redis.version,
        workers,
        concurrency,
        batchSize: null,
        documents: n,
        enqueueSeconds,
        capped,
      },
      stats,
    );
  } finally {
    peers.kill();
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
    connection.disconnect();
  }
}

async function graphileSchema(url: string): Promise<string> {
  const schema = `gw_bench_${Math.random().toString(16).slice(2, 10)}`;
  await runMigrations({ connectionString: url, schema, logger: new Logger(() => () => undefined) });
  return schema;
}

export async function realWorldGraphile(
  workers: number,
  concurrency: number,
  servers: Servers,
  options: RealWorldOptions,
): Promise<RealWorldRun> {
  const url = servers.postgres!.url;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const peers = new PeerWorkers();
  let schema = '';
  const n = options.set.payloads.length;
  try {
    schema = await graphileSchema(url);
    // Default max_attempts (25); graphile-worker delays a retry by e^attempts seconds (≈ 2.7 s).
    const enqueueSeconds = await insertChunks(options.set.payloads, 10_000, (chunk) =>
      client.query(
        `SELECT count(*) FROM "${schema}".add_jobs((
           SELECT array_agg(ROW('latency', json_build_object('n', t.n, 'ms', t.ms, 'fail', t.fail), NULL, NULL, NULL, NULL, NULL, NULL)::"${schema}".job_spec)
           FROM unnest($1::int[], $2::float8[], $3::bool[]) AS t(n, ms, fail)))`,
        [chunk.map((p) => p.n), chunk.map((p) => p.ms), chunk.map((p) => p.fail)],
      ),
    );
    await peers.start(workers, {
      PEER: 'graphile-worker',
      PG_URL: url,
      PG_SCHEMA: schema,
      PEER_HANDLER: 'latency',
      PEER_CONCURRENCY: String(concurrency),
    });
    peers.go();
    const capped = await waitDone(async () => {
      const { rows } = await client.query<{ n: string }>(
        `SELECT count(*) AS n FROM "${schema}"._private_jobs`,
      );
      return Number(rows[0]?.n ?? 1) === 0;
    }, options.capMs);
    const stats = await peers.stop<HandlerStats>();
    return realWorldResult(
      {
        system: 'graphile-worker',
        store: `PostgreSQL ${servers.postgres!.version}`,
        workers,
        concurrency,
        batchSize: null,
        documents: n,
        enqueueSeconds,
        capped,
      },
      stats,
    );
  } finally {
    peers.kill();
    if (schema) await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
    await client.end();
  }
}

// --- enqueue → start on an idle fleet ---

export interface PickupRun {
  system: string;
  store: string;
  workers: number;
  /** How the document was enqueued. */
  via: string;
  sent: number;
  /** ms from just before the enqueue call was sent to the handler's start, one per document. */
  delaysMs: number[];
  /** ms the enqueue call itself took (until its answer). */
  enqueueMs: number[];
  /** Documents whose start was not seen (lost or not started within the wait). */
  missing: number;
  /** pulling-agent only: share of documents started by agent A, the one the POSTs went to. */
  shareOfA: number | null;
}

export interface PickupOptions {
  documents: number;
  gapMinMs: number;
  gapMaxMs: number;
  /** ms an idle fleet is left alone before the first document. */
  idleMs: number;
}

/** Sends `documents` one at a time, each after the previous answered and a random gap. */
async function sendSpaced(
  options: PickupOptions,
  enqueue: (payload: LatencyPayload) => Promise<unknown>,
): Promise<{ sentAt: Map<number, number>; enqueueMs: number[] }> {
  const random = mulberry32(7);
  const sentAt = new Map<number, number>();
  const enqueueMs: number[] = [];
  for (let n = 0; n < options.documents; n++) {
    const at = epochNow();
    sentAt.set(n, at);
    await enqueue({ n, ms: 0, fail: false });
    enqueueMs.push(epochNow() - at);
    await sleep(options.gapMinMs + random() * (options.gapMaxMs - options.gapMinMs));
  }
  return { sentAt, enqueueMs };
}

function delays(sentAt: Map<number, number>, stats: HandlerStats[]): { delaysMs: number[]; missing: number } {
  const started = new Map<number, number>();
  for (const s of stats) for (const [n, t] of s.starts ?? []) if (!started.has(n)) started.set(n, t);
  const delaysMs: number[] = [];
  for (const [n, at] of sentAt) {
    const t = started.get(n);
    if (t !== undefined) delaysMs.push(Math.round((t - at) * 100) / 100);
  }
  return { delaysMs, missing: sentAt.size - delaysMs.length };
}

export async function pickupAgents(
  kind: StoreKind,
  servers: Servers,
  options: PickupOptions,
): Promise<PickupRun> {
  const db = await freshDatabase(kind, servers);
  const store = await openStore(db.target);
  // Defaults otherwise (POLL_INTERVAL 5 s, BATCH_SIZE 100, CONCURRENCY 1): an idle fleet as deployed.
  const fleet = new ProcessFleet({ ...db.env, HANDLER: LATENCY_HANDLER });
  const statsDir = mkdtempSync(join(tmpdir(), 'pa-bench-stats-'));
  try {
    await store.init();
    const agents = await fleet.startMany(['agent-a', 'agent-b'], {
      BENCH_STATS_FILE: join(statsDir, 'stats'),
    });
    const a = agents[0]!;
    await sleep(options.idleMs);
    const { sentAt, enqueueMs } = await sendSpaced(options, async (payload) => {
      const response = await fetch(`${a.url}/api/documents`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify([payload]),
        signal: AbortSignal.timeout(30_000),
      });
      if (response.status !== 201) throw new Error(`POST /api/documents answered ${response.status}`);
      await response.arrayBuffer();
    });
    await until(async () => (await store.countDocuments()).processed >= options.documents, 15_000, 50);
    await fleet.stopAll().catch(() => undefined);
    const files = readdirSync(statsDir);
    const stats = readStats(statsDir);
    const aFile = files.findIndex((f) => f.endsWith(`.${a.child.pid}.json`));
    const fromA = aFile >= 0 ? (stats[aFile]?.starts.length ?? 0) : 0;
    const { delaysMs, missing } = delays(sentAt, stats);
    return {
      system: 'pulling-agent',
      store: STORE_LABELS[kind],
      workers: 2,
      via: 'POST /api/documents to agent A',
      sent: options.documents,
      delaysMs,
      enqueueMs,
      missing,
      shareOfA: delaysMs.length ? fromA / delaysMs.length : null,
    };
  } finally {
    await fleet.stopAll().catch(() => undefined);
    await store.close();
    await db.cleanup().catch(() => undefined);
    rmSync(statsDir, { recursive: true, force: true });
  }
}

export async function pickupBullmq(servers: Servers, options: PickupOptions): Promise<PickupRun> {
  const redis = servers.redis!;
  const connection = new Redis({ host: redis.host, port: redis.port, maxRetriesPerRequest: null });
  const queue = new Queue('bench', { connection });
  const peers = new PeerWorkers();
  try {
    await queue.obliterate({ force: true });
    await peers.start(2, { PEER: 'bullmq', REDIS_PORT: String(redis.port), PEER_HANDLER: 'latency' });
    peers.go();
    await sleep(options.idleMs);
    const { sentAt, enqueueMs } = await sendSpaced(options, (data) => queue.add('latency', data));
    await until(
      async () => ((await queue.getJobCounts('completed')).completed ?? 0) >= options.documents,
      15_000,
      50,
    );
    const stats = await peers.stop<HandlerStats>();
    return {
      system: 'BullMQ',
      store: redis.version,
      workers: 2,
      via: 'queue.add',
      sent: options.documents,
      ...delays(sentAt, stats),
      enqueueMs,
      shareOfA: null,
    };
  } finally {
    peers.kill();
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
    connection.disconnect();
  }
}

export async function pickupGraphile(servers: Servers, options: PickupOptions): Promise<PickupRun> {
  const url = servers.postgres!.url;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const peers = new PeerWorkers();
  let schema = '';
  try {
    schema = await graphileSchema(url);
    await peers.start(2, {
      PEER: 'graphile-worker',
      PG_URL: url,
      PG_SCHEMA: schema,
      PEER_HANDLER: 'latency',
    });
    peers.go();
    await sleep(options.idleMs);
    const { sentAt, enqueueMs } = await sendSpaced(options, (payload) =>
      client.query(`SELECT "${schema}".add_job('latency', $1::json)`, [JSON.stringify(payload)]),
    );
    await until(
      async () => {
        const { rows } = await client.query<{ n: string }>(
          `SELECT count(*) AS n FROM "${schema}"._private_jobs`,
        );
        return Number(rows[0]?.n ?? 1) === 0;
      },
      15_000,
      50,
    );
    const stats = await peers.stop<HandlerStats>();
    return {
      system: 'graphile-worker',
      store: `PostgreSQL ${servers.postgres!.version}`,
      workers: 2,
      via: 'add_job',
      sent: options.documents,
      ...delays(sentAt, stats),
      enqueueMs,
      shareOfA: null,
    };
  } finally {
    peers.kill();
    if (schema) await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
    await client.end();
  }
}
