// A child process that hosts an in-process fleet: N agents made with createAgent, each with its own
// store instance (its own connection(s), as separate pods would have). The commands come from
// outside (the benchmark POSTs to a separate commander agent process), so that the 200 is never
// held up by this process's busy event loop; each agent's `applied` event is stamped on the
// machine's clock (performance.timeOrigin + performance.now(), the same clock as the benchmark's).
// It also reports the heap per agent and, when asked, the exact store traffic of the idle fleet.
// Driven by messages from bench/lib/host.ts: start → ready, collect → applied, load → load, stop.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';

import { type Agent, createAgent } from '../src/agent/agent.js';
import type { StoreTarget } from '../src/config.js';
import { openStore } from '../src/stores/index.js';
import { createMongoStore } from '../src/stores/mongodb/index.js';
import type { Store } from '../src/stores/types.js';
import {
  Counter,
  countingStore,
  countMongoCommands,
  countPostgresQueries,
  diffStatements,
  statStatements,
} from './lib/counting.js';
import { sleep, until } from './lib/stats.js';

export interface FleetTask {
  target: StoreTarget;
  agents: number;
  eventDriven: boolean;
  watchMode: string;
  pollingIntervalMs: number;
  /** Count store traffic (a proxy per store, the drivers' own monitoring). */
  counting: boolean;
  /** Superuser connection for pg_stat_statements (own PostgreSQL only). */
  pgAdmin: Record<string, unknown> | null;
  startParallel: number;
}

export interface FleetReady {
  startSeconds: number;
  heapPerAgentKiB: number;
  rssPerAgentKiB: number;
  connections: number | null;
}

export interface FleetLoad {
  windowSeconds: number;
  agentsCounted: number;
  store: Record<string, number>;
  wire: Record<string, number>;
  /** pg_stat_statements: every client of the schema, the commander process included. */
  server: Record<string, number> | null;
}

export type HostRequest =
  | { type: 'start'; task: FleetTask }
  | { type: 'collect'; version: number; waitMs: number }
  | { type: 'load'; windowMs: number }
  | { type: 'loop' }
  | { type: 'stop' };

export type HostReply =
  | { type: 'progress'; text: string }
  | { type: 'ready'; ready: FleetReady }
  | { type: 'applied'; version: number; times: number[] }
  | { type: 'load'; load: FleetLoad }
  | { type: 'loop'; delay: { p50: number; p99: number; max: number } }
  | { type: 'stopped' }
  | { type: 'error'; message: string };

const now = () => performance.timeOrigin + performance.now();

function send(message: HostReply): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) return resolve();
    process.send(message, () => resolve());
  });
}

async function inChunks<T>(items: T[], size: number, work: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(work));
}

class Fleet {
  readonly #task: FleetTask;
  /** Made (and removed, even if this process is killed) by the benchmark's side, lib/host.ts. */
  readonly #tmp = process.env.PA_BENCH_HOST_DIR ?? mkdtempSync(join(tmpdir(), 'pa-bench-host-'));
  readonly #storeCounter = new Counter();
  readonly #wireCounter = new Counter();
  readonly #applied = new Map<number, number[]>();
  readonly agents: Agent[] = [];
  #mongoConnections: { open: number } | null = null;
  /** How late this process's event loop ran (all agents share it), from ready on. */
  readonly #loopDelay: IntervalHistogram = monitorEventLoopDelay({ resolution: 5 });

  constructor(task: FleetTask) {
    this.#task = task;
    if (task.counting && task.target.kind === 'postgres') countPostgresQueries(this.#wireCounter);
    if (task.target.kind === 'mongodb') this.#mongoConnections = countMongoCommands(this.#wireCounter);
  }

  async #openStore(): Promise<Store> {
    const t = this.#task.target;
    const store =
      t.kind === 'mongodb'
        ? createMongoStore({
            url: t.url,
            database: t.database,
            collection: t.collection,
            // One pool connection (plus the driver's monitoring one) per agent: 500 agents with
            // the default pool of 5 opened ~2,000 connections and FerretDB stopped answering.
            clientOptions: { monitorCommands: this.#task.counting, maxPoolSize: 1 },
          })
        : await openStore(t);
    return this.#task.counting ? countingStore(store, this.#storeCounter) : store;
  }

  async start(): Promise<FleetReady> {
    const task = this.#task;
    global.gc?.();
    const before = process.memoryUsage();
    const started = performance.now();
    for (let i = 0; i < task.agents; i++) {
      const id = `inproc-${i + 1}`;
      const agent = createAgent({
        agentId: id,
        store: task.target,
        eventDriven: task.eventDriven,
        controlPollingIntervalMs: task.pollingIntervalMs,
        controlFile: join(this.#tmp, `${id}.control`),
        handler: () => undefined,
        storeInstance: await this.#openStore(),
      });
      agent.on('applied', (state, initial) => {
        if (initial) return;
        const list = this.#applied.get(state.version) ?? [];
        list.push(now());
        this.#applied.set(state.version, list);
      });
      this.agents.push(agent);
    }
    let done = 0;
    await inChunks(this.agents, task.startParallel, async (a) => {
      await a.start();
      if (++done % 100 === 0) void send({ type: 'progress', text: `${done}/${task.agents} agents started` });
    });
    const startSeconds = (performance.now() - started) / 1000;
    const modesOk = await until(
      () => this.agents.every((a) => a.controlStatus?.watchMode === task.watchMode),
      20_000,
      50,
    );
    if (!modesOk) {
      const modes = new Set(this.agents.map((a) => a.controlStatus?.watchMode));
      throw new Error(
        `agents did not all reach watch mode ${task.watchMode} (have: ${[...modes].join(', ')})`,
      );
    }
    await sleep(1_000);
    global.gc?.();
    const after = process.memoryUsage();
    this.#loopDelay.enable();
    return {
      startSeconds,
      heapPerAgentKiB: (after.heapUsed - before.heapUsed) / 1024 / task.agents,
      rssPerAgentKiB: (after.rss - before.rss) / 1024 / task.agents,
      connections: await this.#connections(),
    };
  }

  async #connections(): Promise<number | null> {
    const t = this.#task.target;
    if (t.kind === 'postgres') {
      const pg = await import('pg');
      const client = new pg.default.Client({ connectionString: t.url });
      await client.connect();
      try {
        const { rows } = await client.query<{ n: string }>(
          `SELECT count(*) AS n FROM pg_stat_activity WHERE application_name LIKE 'pulling-agent%' AND pid <> pg_backend_pid()`,
        );
        return Number(rows[0]?.n ?? 0);
      } finally {
        await client.end();
      }
    }
    // Pool connections, plus one server-monitoring connection per client.
    if (this.#mongoConnections) return this.#mongoConnections.open + this.#task.agents;
    return null;
  }

  /** The agents' apply times (ms since the epoch) for a version, once all have it or after waitMs. */
  async collect(version: number, waitMs: number): Promise<number[]> {
    await until(() => (this.#applied.get(version)?.length ?? 0) >= this.#task.agents, waitMs, 2);
    return this.#applied.get(version) ?? [];
  }

  /** Event-loop delay in ms since ready (or the last call), then starts again. */
  loopDelay(): { p50: number; p99: number; max: number } {
    const h = this.#loopDelay;
    const delay = { p50: h.percentile(50) / 1e6, p99: h.percentile(99) / 1e6, max: h.max / 1e6 };
    h.reset();
    return delay;
  }

  async load(windowMs: number): Promise<FleetLoad> {
    const t = this.#task.target;
    const admin = t.kind === 'postgres' ? this.#task.pgAdmin : null;
    const schema = t.kind === 'postgres' ? t.schema : '';
    const before = admin ? await statStatements(admin, schema) : null;
    this.#storeCounter.reset();
    this.#wireCounter.reset();
    const started = performance.now();
    await sleep(windowMs);
    const windowSeconds = (performance.now() - started) / 1000;
    const store = this.#storeCounter.snapshot();
    const wire = this.#wireCounter.snapshot();
    const after = admin ? await statStatements(admin, schema) : null;
    return {
      windowSeconds,
      agentsCounted: this.#task.agents,
      store,
      wire: t.kind === 'sqlite' ? {} : wire,
      server: before && after ? diffStatements(before, after) : null,
    };
  }

  async stop(): Promise<void> {
    await inChunks(this.agents, 50, (a) => a.stop().catch(() => undefined));
    rmSync(this.#tmp, { recursive: true, force: true });
  }
}

let fleet: Fleet | null = null;

async function handle(request: HostRequest): Promise<void> {
  switch (request.type) {
    case 'start':
      fleet = new Fleet(request.task);
      return send({ type: 'ready', ready: await fleet.start() });
    case 'collect':
      return send({
        type: 'applied',
        version: request.version,
        times: await (fleet as Fleet).collect(request.version, request.waitMs),
      });
    case 'load':
      return send({ type: 'load', load: await (fleet as Fleet).load(request.windowMs) });
    case 'loop':
      return send({ type: 'loop', delay: (fleet as Fleet).loopDelay() });
    case 'stop':
      await fleet?.stop();
      await send({ type: 'stopped' });
      process.exit(0);
  }
}

process.on('message', (request: HostRequest) => {
  handle(request).catch(async (error: unknown) => {
    await send({
      type: 'error',
      message: error instanceof Error ? (error.stack ?? error.message) : String(error),
    });
    await fleet?.stop().catch(() => undefined);
    process.exit(1);
  });
});
