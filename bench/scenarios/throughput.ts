// Throughput: documents (jobs) per second with a no-op handler, k workers of concurrency 1 each,
// for pulling-agent on every store and, on the same machine in the same run, BullMQ (Redis) and
// graphile-worker (the same PostgreSQL). Everything is enqueued first (timed separately), the
// workers are started and connected, then released at once; the rate counts from the first job
// started to the last one finished, from the workers' own timestamps.

import { type ChildProcess, fork } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Queue } from 'bullmq';
import { Logger, runMigrations } from 'graphile-worker';
import { Redis } from 'ioredis';
import pg from 'pg';

import { openStore } from '../../src/stores/index.js';
import { post, ProcessFleet } from '../lib/processes.js';
import { ROOT, type Servers } from '../lib/servers.js';
import { sleep } from '../lib/stats.js';
import { freshDatabase, STORE_LABELS, type StoreKind } from '../lib/stores.js';

export interface ThroughputRun {
  system: string;
  store: string;
  workers: number;
  batchSize: number | null;
  documents: number;
  processed: number;
  seconds: number;
  perSecond: number;
  enqueueSeconds: number;
  /** The run hit its time cap before every document was processed. */
  capped: boolean;
}

export interface ThroughputOptions {
  documents: number;
  capMs: number;
}

const NOOP_HANDLER = join(ROOT, 'bench/fixtures/noop-handler.mjs');
const PEER_WORKER = join(ROOT, 'dist/bench/peers/worker.js');

export interface Stats {
  first: number;
  last: number;
  count: number;
}

function combine(stats: Stats[]): { processed: number; seconds: number } {
  const active = stats.filter((s) => s.count > 0);
  if (active.length === 0) return { processed: 0, seconds: 0 };
  const first = Math.min(...active.map((s) => s.first));
  const last = Math.max(...active.map((s) => s.last));
  return { processed: active.reduce((n, s) => n + s.count, 0), seconds: (last - first) / 1000 };
}

function result(
  base: Omit<ThroughputRun, 'processed' | 'seconds' | 'perSecond'>,
  stats: Stats[],
): ThroughputRun {
  const { processed, seconds } = combine(stats);
  return { ...base, processed, seconds, perSecond: seconds > 0 ? processed / seconds : 0 };
}

/** Polls until done() or the cap; resolves with whether it was capped. */
export async function waitDone(done: () => Promise<boolean>, capMs: number): Promise<boolean> {
  const deadline = Date.now() + capMs;
  while (Date.now() < deadline) {
    if (await done()) return false;
    await sleep(250);
  }
  return true;
}

export async function throughputAgents(
  kind: StoreKind,
  workers: number,
  batchSize: number,
  servers: Servers,
  options: ThroughputOptions,
): Promise<ThroughputRun> {
  const db = await freshDatabase(kind, servers);
  const store = await openStore(db.target);
  const fleet = new ProcessFleet({
    ...db.env,
    HANDLER: NOOP_HANDLER,
    BATCH_SIZE: String(batchSize),
    CONCURRENCY: '1',
    ENABLE_CHANGE_STREAMS: String(kind !== 'mongodb'),
    CONTROL_POLLING_INTERVAL: '1',
    POLL_INTERVAL: '1',
  });
  const statsDir = mkdtempSync(join(tmpdir(), 'pa-bench-stats-'));
  const statsFile = join(statsDir, 'stats');
  try {
    await store.init();
    // Paused while they start, so that all begin together on a local resume.
    await store.writeCommand({ command: 'pause', reason: 'bench: set-up', updated_by: 'bench' });
    const enqueueStarted = performance.now();
    for (let i = 0; i < options.documents; i += 5_000) {
      const n = Math.min(5_000, options.documents - i);
      await store.insertDocuments(Array.from({ length: n }, (_, j) => ({ n: i + j })));
    }
    const enqueueSeconds = (performance.now() - enqueueStarted) / 1000;
    const agents = await fleet.startMany(
      Array.from({ length: workers }, (_, i) => `agent-${i + 1}`),
      { BENCH_STATS_FILE: statsFile },
    );
    await Promise.all(agents.map((a) => post(`${a.url}/api/agent/resume`)));
    const capped = await waitDone(async () => {
      const counts = await store.countDocuments();
      return counts.processed + counts.failed >= options.documents;
    }, options.capMs);
    await fleet.stopAll().catch(() => undefined);
    const stats = readdirSync(statsDir).map(
      (f) => JSON.parse(readFileSync(join(statsDir, f), 'utf8')) as Stats,
    );
    return result(
      {
        system: 'pulling-agent',
        store: STORE_LABELS[kind],
        workers,
        batchSize,
        documents: options.documents,
        enqueueSeconds,
        capped,
      },
      stats,
    );
  } finally {
    await fleet.stopAll().catch(() => undefined);
    await store.close();
    await db.cleanup().catch(() => undefined);
    rmSync(statsDir, { recursive: true, force: true });
  }
}

/** Forks k peer workers, waits until each is connected, releases them together; stops them. */
export class PeerWorkers {
  readonly #children: ChildProcess[] = [];

  async start(k: number, env: Record<string, string>): Promise<void> {
    await Promise.all(
      Array.from({ length: k }, () => {
        const child = fork(PEER_WORKER, [], {
          env: { ...process.env, ...env },
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        });
        this.#children.push(child);
        return new Promise<void>((resolve, reject) => {
          child.on('message', (m: { type: string; message?: string }) => {
            if (m.type === 'ready') resolve();
            if (m.type === 'error') reject(new Error(m.message));
          });
          child.once('exit', (code) => reject(new Error(`peer worker exited with ${code}`)));
        });
      }),
    );
  }

  go(): void {
    for (const child of this.#children) child.send('go');
  }

  /** The stats each worker reports (those of bench/fixtures/latency-handler.mjs with PEER_HANDLER=latency). */
  async stop<T extends Stats = Stats>(): Promise<T[]> {
    const stats = await Promise.all(
      this.#children.map(
        (child) =>
          new Promise<T>((resolve) => {
            if (child.exitCode !== null) return resolve({ first: 0, last: 0, count: 0 } as T);
            const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
            child.on('message', (m: T & { type: string }) => {
              if (m.type === 'stats') resolve(m);
            });
            child.once('exit', () => {
              clearTimeout(timer);
              resolve({ first: 0, last: 0, count: 0 } as T);
            });
            child.send('stop');
          }),
      ),
    );
    await Promise.all(
      this.#children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : undefined)),
    );
    return stats;
  }

  kill(): void {
    for (const child of this.#children) if (child.exitCode === null) child.kill('SIGKILL');
  }
}

export async function throughputBullmq(
  workers: number,
  servers: Servers,
  options: ThroughputOptions,
): Promise<ThroughputRun> {
  const redis = servers.redis!;
  const connection = new Redis({ host: redis.host, port: redis.port, maxRetriesPerRequest: null });
  const queue = new Queue('bench', { connection });
  const peers = new PeerWorkers();
  try {
    await queue.obliterate({ force: true });
    const enqueueStarted = performance.now();
    for (let i = 0; i < options.documents; i += 1_000) {
      const n = Math.min(1_000, options.documents - i);
      await queue.addBulk(Array.from({ length: n }, (_, j) => ({ name: 'noop', data: { n: i + j } })));
    }
    const enqueueSeconds = (performance.now() - enqueueStarted) / 1000;
    await peers.start(workers, { PEER: 'bullmq', REDIS_PORT: String(redis.port) });
    peers.go();
    const capped = await waitDone(async () => {
      const counts = await queue.getJobCounts('completed', 'failed');
      return (counts.completed ?? 0) + (counts.failed ?? 0) >= options.documents;
    }, options.capMs);
    const stats = await peers.stop();
    return result(
      {
        system: 'BullMQ',
        store: redis.version,
        workers,
        batchSize: null,
        documents: options.documents,
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

export async function throughputGraphile(
  workers: number,
  servers: Servers,
  options: ThroughputOptions,
): Promise<ThroughputRun> {
  const url = servers.postgres!.url;
  const schema = `gw_bench_${Math.random().toString(16).slice(2, 10)}`;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const peers = new PeerWorkers();
  try {
    await runMigrations({ connectionString: url, schema, logger: new Logger(() => () => undefined) });
    const enqueueStarted = performance.now();
    for (let i = 0; i < options.documents; i += 10_000) {
      const n = Math.min(10_000, options.documents - i);
      await client.query(
        `SELECT count(*) FROM "${schema}".add_jobs((
           SELECT array_agg(ROW('noop', json_build_object('n', g), NULL, NULL, NULL, NULL, NULL, NULL)::"${schema}".job_spec)
           FROM generate_series($1::int, $2::int) AS g))`,
        [i, i + n - 1],
      );
    }
    const enqueueSeconds = (performance.now() - enqueueStarted) / 1000;
    await peers.start(workers, { PEER: 'graphile-worker', PG_URL: url, PG_SCHEMA: schema });
    peers.go();
    const capped = await waitDone(async () => {
      const { rows } = await client.query<{ n: string }>(
        `SELECT count(*) AS n FROM "${schema}"._private_jobs`,
      );
      return Number(rows[0]?.n ?? 1) === 0;
    }, options.capMs);
    const stats = await peers.stop();
    return result(
      {
        system: 'graphile-worker',
        store: `PostgreSQL ${servers.postgres!.version}`,
        workers,
        batchSize: null,
        documents: options.documents,
        enqueueSeconds,
        capped,
      },
      stats,
    );
  } finally {
    peers.kill();
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
    await client.end();
  }
}
