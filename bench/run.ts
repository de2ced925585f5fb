// `npm run bench` (`-- --quick` for CI): every figure the README claims, measured side by side in one
// run on this machine: propagation, the drain barrier, the database load of an idle fleet,
// throughput against BullMQ and graphile-worker, memory and start-up. Prints tables, writes
// bench/results/<timestamp>.json, a Markdown summary and SVG charts. Fails on errors, never on figures.
//   --quick            tiny sizes (CI)
//   --only=a,b         propagation, drain, load, throughput, memory (load rides on propagation),
//                      realworld (throughput with log-normal handler latencies), pickup (enqueue → start),
//                      throttle (the fleet throttle's accuracy, joins and leaves, a queue's pause, the
//                      policy's overhead; --quick: SQLite only, about 60 s)
//   --latency-seconds=N  realworld: seconds of ideal work per row (default 20, quick 3)
//   --stores=a,b       sqlite, postgres, mongodb
//   --agents=100       in-process fleet sizes for propagation (default 100,500)
// A run narrowed by --only, --stores or --agents writes partial-<timestamp>.json and partial.md, so
// that the committed full run (latest.md and its charts) stays as it was.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { abortAll } from './lib/cleanup.js';
import { drawLatencies, idealPerSecond, LATENCY_PLAN, type LatencySet } from './lib/latencies.js';
import { describeMachine, loadNow } from './lib/machine.js';
import { Progress } from './lib/progress.js';
import type {
  DrainFigure,
  LoadFigure,
  MemoryFigure,
  PickupFigure,
  PropagationFigure,
  RealWorldFigure,
  Results,
  ThroughputFigure,
} from './lib/results.js';
import { ROOT, type Servers, startServers } from './lib/servers.js';
import { percentile, round, roundSummary, summarize } from './lib/stats.js';
import { availableStores, type BenchMode, modesOf, type StoreKind } from './lib/stores.js';
import {
  checkTargets,
  markdown,
  propagationSvg,
  realWorldSvg,
  terminalTables,
  throughputSvg,
} from './report.js';
import { drainBarrier } from './scenarios/drain.js';
import {
  pickupAgents,
  pickupBullmq,
  pickupGraphile,
  type PickupRun,
  realWorldAgents,
  realWorldBullmq,
  realWorldGraphile,
  type RealWorldRun,
} from './scenarios/latency.js';
import { memoryAndStartup } from './scenarios/memory.js';
import { propagationInProcess, propagationProcesses, type PropagationRun } from './scenarios/propagation.js';
import { overheadOf, queuePause, throttleFleet } from './scenarios/throttle.js';
import {
  throughputAgents,
  throughputBullmq,
  throughputGraphile,
  type ThroughputRun,
} from './scenarios/throughput.js';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean' },
    only: { type: 'string' },
    stores: { type: 'string' },
    agents: { type: 'string' },
    'latency-seconds': { type: 'string' },
  },
  strict: true,
});
const quick = values.quick === true;
const partial =
  values.only !== undefined ||
  values.stores !== undefined ||
  values.agents !== undefined ||
  values['latency-seconds'] !== undefined;
const agentsOption = values.agents?.split(',').map(Number);
if (agentsOption?.some((n) => !Number.isSafeInteger(n) || n < 1)) {
  console.error(`--agents takes fleet sizes like 100 or 100,500, not ${values.agents}`);
  process.exit(2);
}
const SCENARIOS = ['propagation', 'load', 'drain', 'throughput', 'memory', 'realworld', 'pickup', 'throttle'];
const only = new Set(
  (values.only ?? 'propagation,drain,throughput,memory,realworld,pickup,throttle').split(','),
);
const unknown = [...only].filter((s) => !SCENARIOS.includes(s));
if (unknown.length) {
  console.error(`--only takes ${SCENARIOS.join(', ')}, not ${unknown.join(', ')}`);
  process.exit(2);
}
if (only.has('load')) only.add('propagation');
const latencySeconds = values['latency-seconds'] === undefined ? null : Number(values['latency-seconds']);
if (latencySeconds !== null && !(latencySeconds > 0)) {
  console.error(`--latency-seconds takes a positive number of seconds, not ${values['latency-seconds']}`);
  process.exit(2);
}

const PLAN = quick
  ? {
      processAgents: 3,
      inProcessAgents: agentsOption ?? [5],
      loadAgents: 5,
      commands: 5,
      pollingIntervalMs: 500,
      loadWindowMs: 2_000,
      drain: { agents: 3, rounds: 2, handlerMs: 200 },
      throughput: {
        documents: 2_000,
        workers: [2],
        capMs: 60_000,
        batch1Documents: 500,
        ferretDocuments: 300,
        ferretCapMs: 15_000,
      },
      memory: { samples: 1, idleMs: 1_000 },
      realworld: { idealSeconds: latencySeconds ?? 3, workers: [2], concurrency: [10], capMs: 30_000 },
      pickup: { documents: 20, gapMinMs: 50, gapMaxMs: 100, idleMs: 1_000 },
      throttle: {
        rate: 30,
        agents: 3,
        concurrency: 10,
        // Short heartbeats so that joins, leaves and a loss fit in seconds (lost after 3 s).
        heartbeatSeconds: 1,
        accuracySeconds: 10,
        reportWindowSeconds: 5,
        rateWindowSeconds: 3,
        observeSeconds: { resume: 4, join: 5, leave: 5, kill: 8 },
        commands: 3,
      },
      queuePause: { agents: 3, concurrency: 10, seconds: 3, rounds: 1, documents: 20_000 },
      throttleOverhead: { idealSeconds: latencySeconds ?? 3, workers: 2, concurrency: 10 },
    }
  : {
      processAgents: 10,
      inProcessAgents: agentsOption ?? [100, 500],
      loadAgents: 100,
      commands: 20,
      pollingIntervalMs: 1_000,
      loadWindowMs: 30_000,
      drain: { agents: 10, rounds: 10, handlerMs: 500 },
      throughput: {
        documents: 100_000,
        workers: [1, 2, 4],
        capMs: 150_000,
        batch1Documents: 10_000,
        // FerretDB 1.24's SQLite backend scans the whole collection for every update (see
        // docs/benchmarks.md): fewer documents and a cap, or one run would take hours.
        ferretDocuments: 5_000,
        ferretCapMs: 60_000,
      },
      memory: { samples: 5, idleMs: 5_000 },
      realworld: {
        idealSeconds: latencySeconds ?? 20,
        workers: [2, 4],
        concurrency: [10, 20],
        capMs: 120_000,
      },
      pickup: { documents: 200, gapMinMs: 50, gapMaxMs: 100, idleMs: 2_000 },
      throttle: {
        rate: 30,
        agents: 3,
        concurrency: 10,
        heartbeatSeconds: 5, // the default: its tick (min(CONTROL_POLLING_INTERVAL, heartbeat)) is 5 s
        accuracySeconds: 60,
        reportWindowSeconds: 5,
        rateWindowSeconds: 5,
        observeSeconds: { resume: 25, join: 30, leave: 25, kill: 40 },
        commands: 10,
      },
      queuePause: { agents: 3, concurrency: 10, seconds: 15, rounds: 1, documents: 60_000 },
      // 8 s of work per row, as the committed SQLite reference (sqlite-after-busy-fix.json).
      throttleOverhead: { idealSeconds: latencySeconds ?? 8, workers: 2, concurrency: 10 },
    };

interface Step {
  label: string;
  run(): Promise<void>;
}

function propagationFigure(run: PropagationRun): PropagationFigure {
  return {
    mode: run.mode,
    store: run.store,
    watch_mode: run.watch_mode,
    agents: run.agents,
    how: run.how,
    commands: run.commands,
    from_ack_ms: roundSummary(summarize(run.delaysFromAck)),
    from_send_ms: roundSummary(summarize(run.delaysFromSend)),
    post_ms: roundSummary(summarize(run.ackMs)),
    missing: run.missing,
    start_seconds: round(run.startSeconds),
    ...(run.heapPerAgentKiB !== undefined ? { heap_per_agent_kib: round(run.heapPerAgentKiB) } : {}),
    ...(run.rssPerAgentKiB !== undefined ? { rss_per_agent_kib: round(run.rssPerAgentKiB) } : {}),
    ...(run.connections !== undefined ? { connections: run.connections } : {}),
    ...(run.hostLoopDelayMs
      ? {
          host_event_loop_delay_ms: {
            p50: round(run.hostLoopDelayMs.p50),
            p99: round(run.hostLoopDelayMs.p99),
            max: round(run.hostLoopDelayMs.max),
          },
        }
      : {}),
    samples_from_ack_ms: run.delaysFromAck.map((d) => Math.round(d * 10) / 10),
  };
}

function loadFigure(mode: BenchMode, run: PropagationRun, intervalMs: number): LoadFigure | null {
  const load = run.load;
  if (!load) return null;
  const per = (counts: Record<string, number>) =>
    Object.fromEntries(
      Object.entries(counts).map(([k, v]) => [k, round(v / load.windowSeconds / load.agentsCounted)]),
    );
  const store = per(load.store);
  const get = (k: string) => store[k] ?? 0;
  return {
    mode: mode.label,
    watch_mode: mode.watchMode,
    agents: load.agentsCounted,
    window_seconds: round(load.windowSeconds),
    polling_interval_seconds: intervalMs / 1000,
    control_reads: round(get('control: version read') + get('control: document read')),
    formula: mode.eventDriven ? 0 : round(1000 / intervalMs),
    heartbeats: round(get('heartbeat: upsert') + get('heartbeat: prune')),
    claims: get('documents: claim'),
    store_calls: store,
    wire: per(load.wire),
    // pg_stat_statements also sees the commander process.
    server: load.server
      ? Object.fromEntries(
          Object.entries(load.server).map(([k, v]) => [
            k,
            round(v / load.windowSeconds / (load.agentsCounted + 1)),
          ]),
        )
      : null,
  };
}

async function main(): Promise<number> {
  const startedAt = new Date();
  const machine = describeMachine();
  const results: Results = {
    quick,
    started_at: startedAt.toISOString(),
    finished_at: '',
    duration_seconds: 0,
    machine,
    servers: [],
    settings: { ...PLAN, only: [...only] },
    propagation: [],
    load: [],
    drain: [],
    throughput: [],
    memory: [],
    realworld: [],
    realworld_settings: null,
    pickup: [],
    throttle: [],
    queue_pause: [],
    throttle_overhead: [],
    targets: [],
    errors: [],
  };
  console.error(
    `pulling-agent benchmark${quick ? ' (quick)' : ''}: ${machine.cpu_model}, ${machine.cores} cores, load ${machine.load_average_at_start.join(' ')}`,
  );
  const wantedStores = values.stores ? new Set(values.stores.split(',')) : null;
  // The throttle's quick form runs on SQLite only: it needs no FerretDB.
  const storeScenarios = [
    'propagation',
    'drain',
    'throughput',
    'memory',
    ...(quick ? [] : ['throttle']),
  ].some((x) => only.has(x));
  const servers: Servers = await startServers({
    peers: only.has('throughput') || only.has('realworld') || only.has('pickup'),
    // realworld and pickup run on SQLite and PostgreSQL only: no FerretDB to start for them.
    mongodb: storeScenarios && (wantedStores === null || wantedStores.has('mongodb')),
    log: (t) => console.error(t),
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.error(`\n${signal}: stopping every agent and server this run started`);
      abortAll();
      void servers.stop().finally(() => process.exit(130));
    });
  }
  try {
    results.servers = servers.notes;
    if (servers.postgres) machine.stores.postgres = `PostgreSQL ${servers.postgres.version}`;
    if (servers.mongodb) machine.stores.mongodb = servers.mongodb.version;
    if (servers.redis) machine.stores.redis = servers.redis.version;
    machine.stores.sqlite = `SQLite ${await sqliteVersion()} (better-sqlite3)`;

    let stores = availableStores(servers);
    if (wantedStores) stores = stores.filter((s) => wantedStores.has(s.kind));
    const modes = modesOf(stores);
    const steps: Step[] = [];
    const attempt = async (scenario: string, work: () => Promise<void>) => {
      try {
        await work();
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        results.errors.push({ scenario, message });
        progress.note(`ERROR: ${message.split('\n')[0]}`);
      }
    };

    if (only.has('propagation')) {
      for (const mode of modes) {
        steps.push({
          label: `propagation ${mode.label}, ${PLAN.processAgents} agent processes`,
          run: () =>
            attempt(`propagation ${mode.label} ${PLAN.processAgents} processes`, async () => {
              const run = await propagationProcesses(mode, PLAN.processAgents, servers, {
                commands: PLAN.commands,
                pollingIntervalMs: PLAN.pollingIntervalMs,
                note: (t) => progress.note(t),
              });
              results.propagation.push(propagationFigure(run));
            }),
        });
        for (const requested of PLAN.inProcessAgents) {
          steps.push({
            label: `propagation ${mode.label}, ${requested} in-process agents`,
            run: () =>
              attempt(`propagation ${mode.label} ${requested} in-process`, async () => {
                let agents = requested;
                const pgServer = servers.postgres;
                if (mode.store.kind === 'postgres' && pgServer && pgServer.maxConnections < agents * 5 + 20) {
                  agents = Math.floor((pgServer.maxConnections - 20) / 5);
                  progress.note(
                    `max_connections ${pgServer.maxConnections} fits ${agents} agents (5 connections each at most), not ${requested}`,
                  );
                }
                const options = {
                  commands: PLAN.commands,
                  pollingIntervalMs: PLAN.pollingIntervalMs,
                  loadWindowMs: requested === PLAN.loadAgents ? PLAN.loadWindowMs : 0,
                  note: (t: string) => progress.note(t),
                };
                let run: PropagationRun;
                let limit: string | undefined;
                try {
                  run = await propagationInProcess(mode, agents, servers, options);
                } catch (error) {
                  // The largest fleet may not fit a store: that is a figure (the store's limit), so
                  // it is recorded, and half the fleet is measured instead, once.
                  if (requested !== Math.max(...PLAN.inProcessAgents) || requested === PLAN.loadAgents)
                    throw error;
                  limit = `${agents} agents failed: ${(error as Error).message.split('\n')[0]}`;
                  progress.note(`${limit}; measuring ${Math.floor(agents / 2)} instead`);
                  agents = Math.floor(agents / 2);
                  run = await propagationInProcess(mode, agents, servers, options);
                }
                results.propagation.push({ ...propagationFigure(run), ...(limit ? { limit } : {}) });
                const load = loadFigure(mode, run, PLAN.pollingIntervalMs);
                if (load) results.load.push(load);
              }),
          });
        }
      }
    }
    if (only.has('drain')) {
      for (const mode of modes) {
        steps.push({
          label: `drain barrier ${mode.label}, ${PLAN.drain.agents} + 1 agent processes`,
          run: () =>
            attempt(`drain ${mode.label}`, async () => {
              const run = await drainBarrier(mode, PLAN.drain.agents, servers, {
                rounds: PLAN.drain.rounds,
                handlerMs: PLAN.drain.handlerMs,
                pollingIntervalMs: PLAN.pollingIntervalMs,
              });
              const pick = (f: (r: (typeof run.rounds)[number]) => number) =>
                roundSummary(summarize(run.rounds.map(f)));
              const figure: DrainFigure = {
                mode: run.mode,
                agents: run.agents + 1,
                handler_ms: run.handlerMs,
                rounds: run.rounds.length,
                barrier_ms: pick((r) => r.barrierMs),
                longest_remaining_ms: pick((r) => r.longestRemainingMs),
                overhead_ms: pick((r) => r.overheadMs),
                after_last_handler_ms: pick((r) => r.afterLastHandlerMs),
                started_after_send: run.rounds.reduce((n, r) => n + r.startedAfterSend, 0),
              };
              results.drain.push(figure);
            }),
        });
      }
    }
    const throughput: ThroughputRun[] = [];
    if (only.has('throughput')) {
      const t = PLAN.throughput;
      const options = { documents: t.documents, capMs: t.capMs };
      for (const store of stores) {
        const ferret = store.kind === 'mongodb';
        for (const k of t.workers) {
          steps.push({
            label: `throughput pulling-agent ${store.label}, ${k} agent(s), BATCH_SIZE=100`,
            run: () =>
              attempt(`throughput ${store.label} ${k}`, async () => {
                const sized = ferret ? { documents: t.ferretDocuments, capMs: t.ferretCapMs } : options;
                throughput.push(await throughputAgents(store.kind as StoreKind, k, 100, servers, sized));
              }),
          });
        }
        // BATCH_SIZE=1 costs two collection scans per document on FerretDB: not run there.
        for (const k of ferret ? [] : t.workers) {
          steps.push({
            label: `throughput pulling-agent ${store.label}, ${k} agent(s), BATCH_SIZE=1`,
            run: () =>
              attempt(`throughput ${store.label} ${k} batch 1`, async () => {
                throughput.push(
                  await throughputAgents(store.kind as StoreKind, k, 1, servers, {
                    documents: t.batch1Documents,
                    capMs: t.capMs,
                  }),
                );
              }),
          });
        }
      }
      for (const k of t.workers) {
        if (servers.redis) {
          steps.push({
            label: `throughput BullMQ, ${k} worker(s)`,
            run: () =>
              attempt(
                `throughput BullMQ ${k}`,
                async () => void throughput.push(await throughputBullmq(k, servers, options)),
              ),
          });
        }
        if (servers.postgres) {
          steps.push({
            label: `throughput graphile-worker, ${k} worker(s)`,
            run: () =>
              attempt(
                `throughput graphile-worker ${k}`,
                async () => void throughput.push(await throughputGraphile(k, servers, options)),
              ),
          });
        }
      }
    }
    if (only.has('memory')) {
      for (const store of stores) {
        steps.push({
          label: `start-up and memory, ${store.label}`,
          run: () =>
            attempt(`memory ${store.label}`, async () => {
              const run = await memoryAndStartup(store.kind, servers, PLAN.memory);
              const small = await memoryAndStartup(store.kind, servers, {
                ...PLAN.memory,
                nodeOptions: '--max-semi-space-size=1',
              });
              // The largest in-process fleet measured on this store (500, or what fitted).
              const at500 = results.propagation
                .filter((p) => p.store === store.label && p.how === 'in-process')
                .sort((a, b) => b.agents - a.agents)[0];
              const figure: MemoryFigure = {
                store: run.store,
                start_to_ready_ms: roundSummary(summarize(run.startToReadyMs)),
                rss_mib: roundSummary(summarize(run.rssMiB)),
                rss_mib_small_semi_space: roundSummary(summarize(small.rssMiB)),
                idle_seconds: run.idleSeconds,
                heap_per_agent_kib_at_500: at500?.heap_per_agent_kib ?? null,
                rss_per_agent_kib_at_500: at500?.rss_per_agent_kib ?? null,
              };
              results.memory.push(figure);
            }),
        });
      }
    }

    const realWorld: RealWorldRun[] = [];
    const realWorldSets = new Map<RealWorldRun, LatencySet>();
    if (only.has('realworld')) {
      const w = PLAN.realworld;
      results.realworld_settings = { ...LATENCY_PLAN, ...w };
      // The plan's mean (median × e^(σ²/2)) sizes each row; the drawn latencies give the ideal.
      const planMean = LATENCY_PLAN.medianMs * Math.exp(LATENCY_PLAN.sigma ** 2 / 2);
      const sets = new Map<number, LatencySet>();
      const setFor = (slots: number) => {
        let set = sets.get(slots);
        if (!set) {
          set = drawLatencies(Math.max(200, Math.round((slots * w.idealSeconds * 1000) / planMean)));
          sets.set(slots, set);
        }
        return set;
      };
      const options = (slots: number) => ({ set: setFor(slots), capMs: w.capMs });
      const push = (slots: number) => (run: RealWorldRun) => {
        realWorld.push(run);
        realWorldSets.set(run, setFor(slots));
      };
      const rwStores = stores.filter((s) => s.kind !== 'mongodb');
      for (const k of w.workers) {
        for (const c of w.concurrency) {
          const slots = k * c;
          const what = `${k} × concurrency ${c}`;
          for (const store of rwStores) {
            steps.push({
              label: `real-world latencies pulling-agent ${store.label}, ${what}`,
              run: () =>
                attempt(`realworld ${store.label} ${k}x${c}`, async () =>
                  push(slots)(await realWorldAgents(store.kind, k, c, servers, options(slots))),
                ),
            });
          }
          if (servers.postgres) {
            steps.push({
              label: `real-world latencies graphile-worker, ${what}`,
              run: () =>
                attempt(`realworld graphile-worker ${k}x${c}`, async () =>
                  push(slots)(await realWorldGraphile(k, c, servers, options(slots))),
                ),
            });
          }
          if (servers.redis) {
            steps.push({
              label: `real-world latencies BullMQ, ${what}`,
              run: () =>
                attempt(`realworld BullMQ ${k}x${c}`, async () =>
                  push(slots)(await realWorldBullmq(k, c, servers, options(slots))),
                ),
            });
          }
        }
      }
    }
    if (only.has('pickup')) {
      const p = PLAN.pickup;
      const record = (run: PickupRun) => {
        const d = summarize(run.delaysMs);
        const sorted = [...run.delaysMs].sort((a, b) => a - b);
        const e = [...run.enqueueMs].sort((a, b) => a - b);
        const { delaysMs: _d, enqueueMs: _e, ...rest } = run;
        const figure: PickupFigure = {
          ...rest,
          ...(rest.shareOfA !== null ? { shareOfA: round(rest.shareOfA) } : {}),
          delay_ms: {
            n: d.n,
            p50: round(d.p50),
            p90: round(percentile(sorted, 90)),
            p99: round(d.p99),
            max: round(d.max),
            mean: round(d.mean),
          },
          enqueue_ms: { p50: round(percentile(e, 50)), p99: round(percentile(e, 99)) },
          gap_ms: [p.gapMinMs, p.gapMaxMs],
          samples_ms: run.delaysMs,
        };
        results.pickup?.push(figure);
      };
      for (const store of stores.filter((s) => s.kind !== 'mongodb')) {
        steps.push({
          label: `enqueue → start pulling-agent ${store.label}, 2 idle agents`,
          run: () =>
            attempt(`pickup ${store.label}`, async () => record(await pickupAgents(store.kind, servers, p))),
        });
      }
      if (servers.postgres) {
        steps.push({
          label: 'enqueue → start graphile-worker, 2 idle workers',
          run: () => attempt('pickup graphile-worker', async () => record(await pickupGraphile(servers, p))),
        });
      }
      if (servers.redis) {
        steps.push({
          label: 'enqueue → start BullMQ, 2 idle workers',
          run: () => attempt('pickup BullMQ', async () => record(await pickupBullmq(servers, p))),
        });
      }
    }

    if (only.has('throttle')) {
      // --quick: SQLite only, so that the scenario stays within about a minute in CI.
      const throttleStores = quick ? stores.filter((s) => s.kind === 'sqlite') : stores;
      for (const store of throttleStores) {
        steps.push({
          label: `throttle ${store.label}: ${PLAN.throttle.agents} agent processes at rate=${PLAN.throttle.rate}, a 4th joins, one leaves, one is killed`,
          run: () =>
            attempt(`throttle ${store.label}`, async () => {
              results.throttle?.push(await throttleFleet(store.kind, servers, PLAN.throttle));
            }),
        });
        steps.push({
          label: `queue pause ${store.label}: pause?queue=a&wait=true while b flows, ${PLAN.queuePause.agents} agent processes`,
          run: () =>
            attempt(`queue pause ${store.label}`, async () => {
              results.queue_pause?.push(await queuePause(store.kind, servers, PLAN.queuePause));
            }),
        });
      }
      const o = PLAN.throttleOverhead;
      // The real-world latencies run on SQLite and PostgreSQL only (as their scenario).
      for (const store of throttleStores.filter((s) => s.kind !== 'mongodb')) {
        steps.push({
          label: `throttle overhead ${store.label}: real-world latencies, ${o.workers} × concurrency ${o.concurrency}, policy unused`,
          run: () =>
            attempt(`throttle overhead ${store.label}`, async () => {
              const load = loadNow();
              // The realworld scenario's row of this run, when it measured one.
              const same = realWorld.find(
                (r) =>
                  r.system === 'pulling-agent' &&
                  r.store === store.label &&
                  r.workers === o.workers &&
                  r.concurrency === o.concurrency,
              );
              const sameSet = same ? realWorldSets.get(same) : undefined;
              if (same && sameSet) {
                const ideal = idealPerSecond(o.workers * o.concurrency, sameSet);
                results.throttle_overhead?.push(
                  overheadOf(same, same.perSecond / ideal, 'realworld scenario', load),
                );
                return;
              }
              const planMean = LATENCY_PLAN.medianMs * Math.exp(LATENCY_PLAN.sigma ** 2 / 2);
              const set = drawLatencies(
                Math.max(200, Math.round((o.workers * o.concurrency * o.idealSeconds * 1000) / planMean)),
              );
              const run = await realWorldAgents(store.kind, o.workers, o.concurrency, servers, {
                set,
                capMs: PLAN.realworld.capMs,
              });
              const ideal = idealPerSecond(o.workers * o.concurrency, set);
              results.throttle_overhead?.push(overheadOf(run, run.perSecond / ideal, 'this scenario', load));
            }),
        });
      }
    }

    const progress = new Progress(steps.length);
    for (const step of steps) {
      progress.step(step.label);
      const errorsBefore = results.errors.length;
      await step.run();
      progress.done(results.errors.length > errorsBefore ? 'FAILED' : `done (load ${loadNow().join(' ')})`);
    }

    results.throughput = withRatios(throughput);
    results.realworld = realWorldFigures(realWorld, realWorldSets);
    machine.load_average_at_end = loadNow();
    const finishedAt = new Date();
    results.finished_at = finishedAt.toISOString();
    results.duration_seconds = round((finishedAt.getTime() - startedAt.getTime()) / 1000);
    results.targets = checkTargets(results);
    writeResults(results);
    console.log(terminalTables(results));
    if (results.errors.length > 0) {
      console.error(`\n${results.errors.length} scenario(s) failed:`);
      for (const e of results.errors) console.error(`- ${e.scenario}: ${e.message.split('\n')[0]}`);
      return 1;
    }
    return 0;
  } finally {
    await servers.stop();
  }
}

function withRatios(runs: ThroughputRun[]): ThroughputFigure[] {
  const peer = (system: string, workers: number) =>
    runs.find((r) => r.system === system && r.workers === workers && r.perSecond > 0)?.perSecond ?? null;
  return runs.map((r) => {
    const graphile = peer('graphile-worker', r.workers);
    const bullmq = peer('BullMQ', r.workers);
    return {
      ...r,
      seconds: round(r.seconds),
      perSecond: round(r.perSecond),
      enqueueSeconds: round(r.enqueueSeconds),
      vs_graphile_worker: graphile ? round(r.perSecond / graphile) : null,
      vs_bullmq: bullmq ? round(r.perSecond / bullmq) : null,
    };
  });
}

function realWorldFigures(runs: RealWorldRun[], sets: Map<RealWorldRun, LatencySet>): RealWorldFigure[] {
  const peers = (r: RealWorldRun) =>
    runs
      .filter(
        (p) =>
          p.system !== 'pulling-agent' &&
          p.workers === r.workers &&
          p.concurrency === r.concurrency &&
          p.perSecond > 0,
      )
      .sort((a, b) => b.perSecond - a.perSecond);
  return runs.map((r) => {
    const set = sets.get(r) as LatencySet;
    const ideal = idealPerSecond(r.workers * r.concurrency, set);
    const better = r.system === 'pulling-agent' ? peers(r)[0] : undefined;
    const s = set.summary;
    return {
      ...r,
      seconds: round(r.seconds),
      perSecond: round(r.perSecond),
      enqueueSeconds: round(r.enqueueSeconds),
      latency_ms: {
        median: round(s.median),
        p90: round(s.p90),
        p99: round(s.p99),
        max: round(s.max),
        mean: round(s.mean),
      },
      planned_failures: set.failures,
      ideal_per_second: round(ideal),
      fraction_of_ideal: round(r.perSecond / ideal),
      better_peer: better ? better.system : null,
      vs_better_peer: better ? round(r.perSecond / better.perSecond) : null,
    };
  });
}

async function sqliteVersion(): Promise<string> {
  const { default: Database } = await import('better-sqlite3');
  const db = new Database(':memory:');
  try {
    return (db.prepare('SELECT sqlite_version() AS v').get() as { v: string }).v;
  } finally {
    db.close();
  }
}

function writeResults(results: Results): void {
  const dir = join(ROOT, 'bench/results');
  mkdirSync(dir, { recursive: true });
  const stamp = results.started_at.replace(/[:.]/g, '-').replace(/-\d{3}Z$/, 'Z');
  const prefix = results.quick ? 'quick-' : partial ? 'partial-' : '';
  const json = join(dir, `${prefix}${stamp}.json`);
  writeFileSync(json, `${JSON.stringify(results, null, 2)}\n`);
  const md = join(dir, results.quick ? 'quick.md' : partial ? 'partial.md' : 'latest.md');
  writeFileSync(md, markdown(results, `${prefix}${stamp}.json`, prefix));
  if (results.propagation.length > 0)
    writeFileSync(join(dir, `${prefix}propagation.svg`), propagationSvg(results));
  if (results.throughput.length > 0)
    writeFileSync(join(dir, `${prefix}throughput.svg`), throughputSvg(results));
  if (results.realworld?.length) writeFileSync(join(dir, `${prefix}realworld.svg`), realWorldSvg(results));
  console.error(`\nWrote ${json} and ${md}`);
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exit(1);
  },
);
