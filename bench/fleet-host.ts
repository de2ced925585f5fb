// A child process that hosts an in-process fleet: N agents made with createAgent, each with its own
// store instance (its own connection(s), as separate pods would have), plus one commander agent
// whose HTTP API receives the commands. It measures, on one clock (performance.now()):
// propagation (the POST's 200 → each agent's `applied` event), the heap per agent, and, when asked,
// the exact store traffic of the idle fleet. Forked by the benchmark; one task per process.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { pino } from 'pino';

import { type Agent, createAgent } from '../src/agent/agent.js';
import type { StoreTarget } from '../src/config.js';
import { buildApp } from '../src/http/app.js';
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
  commands: number;
  /** Idle window over which store traffic is counted; 0 = no counting. */
  loadWindowMs: number;
  /** Superuser connection for pg_stat_statements (own PostgreSQL only). */
  pgAdmin: Record<string, unknown> | null;
  startParallel: number;
}

export interface FleetResult {
  agents: number;
  startSeconds: number;
  heapPerAgentKiB: number;
  rssPerAgentKiB: number;
  /** Per command, each agent's delay in ms from the POST's 200 (negative: applied before the 200). */
  delaysFromAck: number[];
  delaysFromSend: number[];
  ackMs: number[];
  missing: number;
  connections: number | null;
  load: {
    windowSeconds: number;
    agentsCounted: number;
    store: Record<string, number>;
    wire: Record<string, number>;
    server: Record<string, number> | null;
  } | null;
}

type Message =
  | { type: 'progress'; text: string }
  | { type: 'result'; result: FleetResult }
  | { type: 'error'; message: string };

function send(message: Message): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) return resolve();
    process.send(message, () => resolve());
  });
}

async function inChunks<T>(items: T[], size: number, work: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(work));
}

async function run(task: FleetTask): Promise<FleetResult> {
  const tmp = mkdtempSync(join(tmpdir(), 'pa-bench-host-'));
  const storeCounter = new Counter();
  const wireCounter = new Counter();
  const counting = task.loadWindowMs > 0;
  let mongoConnections: { open: number } | null = null;
  if (counting && task.target.kind === 'postgres') countPostgresQueries(wireCounter);
  if (task.target.kind === 'mongodb') mongoConnections = countMongoCommands(wireCounter);

  const openOne = async (): Promise<Store> => {
    const t = task.target;
    const store =
      t.kind === 'mongodb'
        ? createMongoStore({
            url: t.url,
            database: t.database,
            collection: t.collection,
            clientOptions: { monitorCommands: counting },
          })
        : await openStore(t);
    return counting ? countingStore(store, storeCounter) : store;
  };
  const settings = (id: string) => ({
    agentId: id,
    store: task.target,
    eventDriven: task.eventDriven,
    controlPollingIntervalMs: task.pollingIntervalMs,
    controlFile: join(tmp, `${id}.control`),
    handler: () => undefined,
  });

  const silent = pino({ level: 'silent' });
  const commander = createAgent({ ...settings('commander'), storeInstance: await openOne() });
  const app = await buildApp({
    agent: commander,
    logger: silent,
    publicConfig: {},
    security: { rateLimitCommands: 1_000_000, rateLimitDocuments: 1_000_000 },
  });
  const agents: Agent[] = [];
  try {
    await commander.start();
    const address = await app.listen({ port: 0, host: '127.0.0.1' });

    global.gc?.();
    const heap0 = process.memoryUsage();
    const applied = new Map<number, number[]>();
    const started = performance.now();
    for (let i = 0; i < task.agents; i++) {
      const agent = createAgent({ ...settings(`inproc-${i + 1}`), storeInstance: await openOne() });
      agent.on('applied', (state, initial) => {
        if (initial) return;
        const list = applied.get(state.version) ?? [];
        list.push(performance.now());
        applied.set(state.version, list);
      });
      agents.push(agent);
    }
    let done = 0;
    await inChunks(agents, task.startParallel, async (a) => {
      await a.start();
      if (++done % 100 === 0) void send({ type: 'progress', text: `${done}/${task.agents} agents started` });
    });
    const startSeconds = (performance.now() - started) / 1000;
    const modesOk = await until(
      () => agents.every((a) => a.controlStatus?.watchMode === task.watchMode),
      20_000,
      50,
    );
    if (!modesOk) {
      const modes = new Set(agents.map((a) => a.controlStatus?.watchMode));
      throw new Error(
        `agents did not all reach watch mode ${task.watchMode} (have: ${[...modes].join(', ')})`,
      );
    }
    await sleep(1_000);
    global.gc?.();
    const heap1 = process.memoryUsage();
    let connections: number | null = null;
    if (task.target.kind === 'postgres') {
      const pg = await import('pg');
      const client = new pg.default.Client({ connectionString: task.target.url });
      await client.connect();
      const { rows } = await client.query<{ n: string }>(
        `SELECT count(*) AS n FROM pg_stat_activity WHERE application_name LIKE 'pulling-agent%'`,
      );
      await client.end();
      connections = Number(rows[0]?.n ?? 0);
    } else if (mongoConnections) {
      // Pool connections, plus one server-monitoring connection per client.
      connections = mongoConnections.open + task.agents + 1;
    }

    // Propagation: alternate pause and resume, each waited for, with a random gap in between so
    // that commands do not fall in step with polls or heartbeats.
    const delaysFromAck: number[] = [];
    const delaysFromSend: number[] = [];
    const ackMs: number[] = [];
    let missing = 0;
    const waitMs = task.eventDriven ? 10_000 : task.pollingIntervalMs * 3 + 5_000;
    for (let i = 0; i < task.commands; i++) {
      const command = i % 2 === 0 ? 'pause' : 'resume';
      const sentAt = performance.now();
      const response = await fetch(`${address}/api/cluster/${command}?updated_by=bench`, { method: 'POST' });
      const ackAt = performance.now();
      const body = (await response.json()) as { version?: number };
      if (response.status !== 200 || typeof body.version !== 'number')
        throw new Error(`POST ${command} answered ${response.status}: ${JSON.stringify(body)}`);
      const version = body.version;
      await until(() => (applied.get(version)?.length ?? 0) >= task.agents, waitMs, 2);
      const times = applied.get(version) ?? [];
      missing += task.agents - times.length;
      for (const t of times) {
        delaysFromAck.push(t - ackAt);
        delaysFromSend.push(t - sentAt);
      }
      ackMs.push(ackAt - sentAt);
      await sleep(50 + Math.random() * 200);
    }

    let load: FleetResult['load'] = null;
    if (counting) {
      // The last command was a resume: the fleet is running and idle (no documents).
      await sleep(2_000);
      const admin = task.pgAdmin;
      const schema = task.target.kind === 'postgres' ? task.target.schema : '';
      const before = admin ? await statStatements(admin, schema) : null;
      storeCounter.reset();
      wireCounter.reset();
      const windowStarted = performance.now();
      await sleep(task.loadWindowMs);
      const windowSeconds = (performance.now() - windowStarted) / 1000;
      const store = storeCounter.snapshot();
      const wire = wireCounter.snapshot();
      const after = admin ? await statStatements(admin, schema) : null;
      load = {
        windowSeconds,
        agentsCounted: task.agents + 1,
        store,
        wire: task.target.kind === 'sqlite' ? {} : wire,
        server: before && after ? diffStatements(before, after) : null,
      };
    }

    return {
      agents: task.agents,
      startSeconds,
      heapPerAgentKiB: (heap1.heapUsed - heap0.heapUsed) / 1024 / task.agents,
      rssPerAgentKiB: (heap1.rss - heap0.rss) / 1024 / task.agents,
      delaysFromAck,
      delaysFromSend,
      ackMs,
      missing,
      connections,
      load,
    };
  } finally {
    await inChunks(agents, 50, (a) => a.stop().catch(() => undefined));
    await commander.stop().catch(() => undefined);
    await app.close().catch(() => undefined);
    rmSync(tmp, { recursive: true, force: true });
  }
}

process.once('message', (task: FleetTask) => {
  run(task).then(
    async (result) => {
      await send({ type: 'result', result });
      process.exit(0);
    },
    async (error: unknown) => {
      await send({
        type: 'error',
        message: error instanceof Error ? (error.stack ?? error.message) : String(error),
      });
      process.exit(1);
    },
  );
});
