// The fleet policy's "How well" figures (issue 14), with real agent processes running the
// log-normal latency handler (bench/fixtures/latency-handler.mjs), which appends the time and queue
// of every handler start to a file of its own (BENCH_STARTS_LOG, written synchronously, so that a
// SIGKILLed agent keeps what it started). Every figure is read from those starts, the handlers'
// own clocks (performance.timeOrigin + performance.now(), the same machine clock as the bench's).
//
// 1. Throttle (throttleFleet): 3 agents; first the propagation of the throttle beside that of a
//    pause (each command sent to agent-1; per agent, the `Applying fleet policy version N` /
//    `Applying command …` log line; for the fleet, the first GET /api/cluster/agents in which every
//    live agent reports the version); then a backlog under rate=30: starts per second over the
//    window, per 5 s window and overall; then a 4th agent joins, then it leaves gracefully
//    (SIGTERM), then one agent is killed (SIGKILL): the time until the fleet's rate is back within
//    ±10 % of the rate. The rate "at t" is the count of starts in a window of W seconds centred on
//    t, divided by W; back = from then on until the end of the observation every such window is
//    within ±10 % (recovery 0 = it never left the band).
// 2. Per-queue pause (queuePause): queues a and b, both with a backlog, 3 unthrottled agents;
//    b's starts per second for N s, then pause?queue=a&wait=true: the documents of a that start
//    after the answer (target 0), and b's starts per second for N s after it.
// 3. Overhead: one row of the real-world latencies scenario (realWorldAgents, 2 × concurrency 10),
//    compared (fraction of the ideal) with the committed figure from before the policy existed
//    (bench/results/runtime-2026-12-01/).

import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { openStore } from '../../src/stores/index.js';
import { drawLatencies, type LatencyPayload } from '../lib/latencies.js';
import { loadNow } from '../lib/machine.js';
import { type AgentProcess, epochNow, getJson, type LogLine, post, ProcessFleet } from '../lib/processes.js';
import { ROOT, type Servers } from '../lib/servers.js';
import { round, roundSummary, sleep, summarize, type Summary, until } from '../lib/stats.js';
import { freshDatabase, STORE_LABELS, type StoreKind } from '../lib/stores.js';
import type { RealWorldRun } from './latency.js';

const LATENCY_HANDLER = join(ROOT, 'bench/fixtures/latency-handler.mjs');
/** The band the issue asks for around the rate. */
export const THROTTLE_TOLERANCE = 0.1;

export interface ThrottlePlan {
  rate: number;
  agents: number;
  concurrency: number;
  heartbeatSeconds: number;
  /** Seconds the fleet runs at the rate before anything changes. */
  accuracySeconds: number;
  /** Length of the windows the accuracy is reported in (min/mean/max). */
  reportWindowSeconds: number;
  /** W: the centred window the rate "at t" is counted over, for the recoveries. */
  rateWindowSeconds: number;
  /** Seconds observed after a global resume, a join, a graceful leave and a kill -9. */
  observeSeconds: { resume: number; join: number; leave: number; kill: number };
  /** Commands of each kind for the propagation figures (throttle, pause/resume). */
  commands: number;
}

export interface QueuePausePlan {
  agents: number;
  concurrency: number;
  /** Seconds b is measured before the pause and after its answer. */
  seconds: number;
  /**
   * Pauses measured. Claims take the earliest due first across queues, so after a resume a's
   * backlog is behind b's and takes every claim until it catches up: a round after the first
   * measures that, not b's rate before a pause. Keep 1 unless the queues are refilled.
   */
  rounds: number;
  /** Documents enqueued in each of a and b. */
  documents: number;
}

/** Propagation of one kind of command: ms from the POST's answer. */
export interface PolicyPropagation {
  commands: number;
  /** Each other agent's apply (its log line), ms from the answer; negative = before it. */
  apply_from_ack_ms: Summary;
  /** The first GET /api/cluster/agents in which every live agent reports the version. */
  all_reported_from_ack_ms: Summary;
  post_ms: Summary;
  missing: number;
}

export interface Recovery {
  event: string;
  agents_before: number;
  agents_after: number;
  observed_seconds: number;
  /** Seconds from the event until the rate stays within ±10 %; 0 = never left; null = not within the observation. */
  recovery_seconds: number | null;
  /** The lowest and highest rate (centred windows) seen from the event on, per second. */
  min_per_second: number;
  max_per_second: number;
  /** What docs/operations.md says to expect, seconds. */
  expected_seconds: number;
}

export interface ThrottleRun {
  store: string;
  watch_mode: string;
  rate: number;
  agents: number;
  concurrency: number;
  heartbeat_seconds: number;
  rate_window_seconds: number;
  load_average_at_start: number[];
  propagation: { throttle: PolicyPropagation; pause: PolicyPropagation };
  accuracy: {
    seconds: number;
    started: number;
    overall_per_second: number;
    window_seconds: number;
    /** Starts per second in each report window, in order. */
    windows_per_second: number[];
    windows: Summary;
  };
  resume: Recovery;
  join: Recovery;
  leave: Recovery;
  kill: Recovery;
}

export interface QueuePauseRun {
  store: string;
  agents: number;
  concurrency: number;
  rounds: number;
  seconds: number;
  load_average_at_start: number[];
  /** b's starts per second before each pause and after each answer, and their ratio (all rounds). */
  b_before_per_second: number;
  b_after_per_second: number;
  b_ratio: number;
  /** a's starts per second before each pause: with b's, what the whole fleet ran. */
  a_before_per_second: number;
  /** Per round: b's starts per second before and after. */
  rounds_b_per_second: [number, number][];
  /** Documents of a started after the pause's answer (target 0). */
  a_started_after_answer: number;
  /** Documents of a started while the pause was on its way (sent → answered), for the record. */
  a_started_during_barrier: number;
  /** The pause with wait=true: sent → answered. */
  barrier_ms: Summary;
}

export interface OverheadReference {
  file: string;
  per_second: number;
  fraction_of_ideal: number;
  documents: number;
  load_average: number[];
}

export interface ThrottleOverhead {
  store: string;
  workers: number;
  concurrency: number;
  documents: number;
  per_second: number;
  fraction_of_ideal: number;
  /** Measured by this scenario, or the realworld scenario's row of the same run. */
  source: 'this scenario' | 'realworld scenario';
  load_average: number[];
  reference: OverheadReference | null;
  /** 1 − fraction_of_ideal ÷ the reference's: the share lost (negative = faster). */
  drop: number | null;
}

export interface Start {
  t: number;
  queue: string;
}

/** Every start written so far (complete lines only), in time order. */
function readStarts(dir: string): Start[] {
  const starts: Start[] = [];
  for (const file of readdirSync(dir)) {
    const text = readFileSync(join(dir, file), 'utf8');
    const end = text.lastIndexOf('\n');
    if (end < 0) continue;
    for (const line of text.slice(0, end).split('\n')) {
      const [t, queue] = line.split(' ');
      if (t && queue) starts.push({ t: Number(t), queue });
    }
  }
  return starts.sort((a, b) => a.t - b.t);
}

function countIn(starts: readonly Start[], from: number, to: number, queue?: string): number {
  let n = 0;
  for (const s of starts) if (s.t >= from && s.t < to && (queue === undefined || s.queue === queue)) n++;
  return n;
}

/** Starts per second in a window of `windowMs` centred on each t from `from` to `to`, every 100 ms. */
function centredRates(
  starts: readonly Start[],
  from: number,
  to: number,
  windowMs: number,
): { t: number; rate: number }[] {
  const out: { t: number; rate: number }[] = [];
  for (let t = from; t <= to - windowMs / 2; t += 100) {
    out.push({ t, rate: (countIn(starts, t - windowMs / 2, t + windowMs / 2) * 1000) / windowMs });
  }
  return out;
}

export function recoveryOf(
  starts: readonly Start[],
  event: { at: number; until: number },
  rate: number,
  windowMs: number,
): { recovery: number | null; min: number; max: number } {
  const rates = centredRates(starts, event.at, event.until, windowMs);
  const inBand = (r: number) => Math.abs(r - rate) <= rate * THROTTLE_TOLERANCE + 1e-9;
  let lastOut = -1;
  rates.forEach((r, i) => {
    if (!inBand(r.rate)) lastOut = i;
  });
  const values = rates.map((r) => r.rate);
  const min = values.length ? Math.min(...values) : Number.NaN;
  const max = values.length ? Math.max(...values) : Number.NaN;
  if (rates.length === 0 || lastOut === rates.length - 1) return { recovery: null, min, max };
  const back = lastOut < 0 ? event.at : (rates[lastOut + 1] as { t: number }).t;
  return { recovery: (back - event.at) / 1000, min, max };
}

async function sleepUntil(epochMs: number): Promise<void> {
  const wait = epochMs - epochNow();
  if (wait > 0) await sleep(wait);
}

function payloads(count: number): LatencyPayload[] {
  // The real-world latencies (median 5 ms, p99 ≈ 120 ms), without the planned failures: a retry
  // would be a second start of one document, which the rate counts but the reader would not expect.
  return drawLatencies(count).payloads.map((p) => ({ ...p, fail: false }));
}

async function enqueue(
  store: Awaited<ReturnType<typeof openStore>>,
  documents: { payload: LatencyPayload; queue?: string }[],
): Promise<void> {
  for (let i = 0; i < documents.length; i += 5_000) {
    await store.enqueueDocuments(documents.slice(i, i + 5_000));
  }
}

interface FleetAgents {
  agents: { agent_id: string; state: string; applied_version: number; applied_policy_version?: number }[];
}

/** Waits until the registry, as `via` reads it, shows exactly these agents live. */
async function expectLive(via: AgentProcess, ids: string[], timeoutMs = 60_000): Promise<void> {
  const want = [...ids].sort().join(',');
  let seen = '';
  const ok = await until(
    async () => {
      const body = await getJson<FleetAgents>(`${via.url}/api/cluster/agents`);
      seen = body.agents
        .filter((a) => a.state !== 'lost')
        .map((a) => a.agent_id)
        .sort()
        .join(',');
      return seen === want;
    },
    timeoutMs,
    100,
  );
  if (!ok) throw new Error(`the registry shows ${seen || 'no agent'} live, not ${want}`);
}

/** Sends commands to the commander, one at a time, and measures how each reaches the fleet. */
async function propagate(
  commander: AgentProcess,
  members: AgentProcess[],
  commands: { path: string; version: (body: Record<string, unknown>) => number; logged: RegExp }[],
  reported: (agent: FleetAgents['agents'][number]) => number,
): Promise<PolicyPropagation> {
  const applyMs: number[] = [];
  const allMs: number[] = [];
  const postMs: number[] = [];
  let missing = 0;
  for (const command of commands) {
    const answer = await post(`${commander.url}${command.path}`);
    if (answer.status !== 200)
      throw new Error(`POST ${command.path} answered ${answer.status}: ${JSON.stringify(answer.body)}`);
    const version = command.version(answer.body);
    postMs.push(answer.ackAt - answer.sentAt);
    // The fleet view: the first read in which every live agent reports the version.
    let allAt: number | null = null;
    await until(
      async () => {
        const body = await getJson<FleetAgents>(`${commander.url}/api/cluster/agents`);
        const live = body.agents.filter((a) => a.state !== 'lost');
        if (live.length >= members.length + 1 && live.every((a) => reported(a) >= version)) {
          allAt = epochNow();
          return true;
        }
        return false;
      },
      15_000,
      10,
    );
    if (allAt === null) missing++;
    else allMs.push(allAt - answer.ackAt);
    // Each other agent's own apply, from its log line (the commander applied it before answering).
    const applied = (a: AgentProcess) =>
      a.lines.find((l: LogLine) => {
        const m = command.logged.exec(l.msg);
        return m !== null && Number(m[1]) === version;
      });
    await until(() => members.every((a) => applied(a) !== undefined), 15_000, 5);
    for (const a of members) {
      const line = applied(a);
      if (line) applyMs.push(line.time - answer.ackAt);
      else missing++;
    }
    await sleep(50 + Math.random() * 200);
  }
  return {
    commands: commands.length,
    apply_from_ack_ms: roundSummary(summarize(applyMs)),
    all_reported_from_ack_ms: roundSummary(summarize(allMs)),
    post_ms: roundSummary(summarize(postMs)),
    missing,
  };
}

async function stopGracefully(agent: AgentProcess): Promise<void> {
  agent.child.kill('SIGTERM');
  const timer = setTimeout(() => agent.child.kill('SIGKILL'), 30_000);
  await agent.exited;
  clearTimeout(timer);
}

export async function throttleFleet(
  kind: StoreKind,
  servers: Servers,
  plan: ThrottlePlan,
): Promise<ThrottleRun> {
  const load = loadNow();
  const db = await freshDatabase(kind, servers);
  const store = await openStore(db.target);
  const startsDir = mkdtempSync(join(tmpdir(), 'pa-bench-starts-'));
  const fleet = new ProcessFleet({
    ...db.env,
    HANDLER: LATENCY_HANDLER,
    CONCURRENCY: String(plan.concurrency),
    HEARTBEAT_INTERVAL: String(plan.heartbeatSeconds),
    BENCH_STARTS_LOG: join(startsDir, 'starts'),
  });
  const hbMs = plan.heartbeatSeconds * 1000;
  const windowMs = plan.rateWindowSeconds * 1000;
  try {
    await store.init();
    const ids = Array.from({ length: plan.agents }, (_, i) => `agent-${i + 1}`);
    const agents = await fleet.startMany(ids);
    const [commander, ...members] = agents as [AgentProcess, ...AgentProcess[]];
    await expectLive(commander, ids);

    // Propagation, on an idle fleet: throttles ending at the rate, then pauses ending in a resume.
    const n = plan.commands;
    const throttle = await propagate(
      commander,
      members,
      Array.from({ length: n }, (_, i) => ({
        path: `/api/cluster/throttle?rate=${(n - 1 - i) % 2 === 0 ? plan.rate : plan.rate + 1}&updated_by=bench`,
        version: (body) => Number(body.policy_version),
        logged: /^\[Distributed Control\] Applying fleet policy version (\d+)/,
      })),
      (a) => a.applied_policy_version ?? -1,
    );
    const pause = await propagate(
      commander,
      members,
      Array.from({ length: n % 2 === 0 ? n : n + 1 }, (_, i) => ({
        path: `/api/cluster/${i % 2 === 0 ? 'pause' : 'resume'}?updated_by=bench`,
        version: (body) => Number(body.version),
        logged: /^\[Distributed Control\] Applying command \S+ \(version (\d+)\)/,
      })),
      (a) => a.applied_version,
    );

    // The pauses above may have fallen on a tick (a paused agent counts itself alone): wait until
    // every agent counts the whole fleet again before anything is measured.
    const counted = await until(
      async () => {
        const views = await Promise.all(
          agents.map((a) =>
            getJson<{ this_agent?: { live_agents?: number } }>(`${a.url}/api/cluster/policy`),
          ),
        );
        return views.every((v) => v.this_agent?.live_agents === plan.agents);
      },
      4 * hbMs + 10_000,
      100,
    );
    if (!counted) throw new Error(`the agents did not all count ${plan.agents} live agents`);

    // A backlog for everything that follows, enqueued while the fleet runs under the rate.
    const o = plan.observeSeconds;
    const total =
      plan.accuracySeconds + o.resume + 2 * plan.heartbeatSeconds + o.join + o.leave + o.kill + 60;
    await enqueue(
      store,
      payloads(Math.ceil(plan.rate * total * 1.5)).map((payload) => ({ payload })),
    );

    // 1. Accuracy: the rate over the window, from the end of the enqueue.
    const t0 = epochNow();
    await sleepUntil(t0 + plan.accuracySeconds * 1000);
    let starts = readStarts(startsDir);
    const report = plan.reportWindowSeconds * 1000;
    const windows: number[] = [];
    for (let t = t0; t + report <= t0 + plan.accuracySeconds * 1000 + 1; t += report) {
      windows.push(round((countIn(starts, t, t + report) * 1000) / report));
    }
    const started = countIn(starts, t0, t0 + plan.accuracySeconds * 1000);

    const observe = async (
      event: string,
      at: number,
      seconds: number,
      before: number,
      after: number,
      expected: number,
    ): Promise<Recovery> => {
      const end = at + seconds * 1000;
      await sleepUntil(end);
      starts = readStarts(startsDir);
      const r = recoveryOf(starts, { at, until: end }, plan.rate, windowMs);
      return {
        event,
        agents_before: before,
        agents_after: after,
        observed_seconds: seconds,
        recovery_seconds: r.recovery === null ? null : round(r.recovery),
        min_per_second: round(r.min),
        max_per_second: round(r.max),
        expected_seconds: expected,
      };
    };

    // 2. A global pause long enough for every agent to recount the live agents (two ticks), then a
    // resume: paused agents are not counted, so each starts again with a share of its own.
    const paused = await post(`${commander.url}/api/cluster/pause?updated_by=bench&wait=true`);
    if (paused.status !== 200) throw new Error(`pause answered ${paused.status}`);
    await sleep(2 * hbMs + 500);
    const resumed = await post(`${commander.url}/api/cluster/resume?updated_by=bench&wait=true`);
    if (resumed.status !== 200) throw new Error(`resume answered ${resumed.status}`);
    const resume = await observe(
      `global pause of ${2 * plan.heartbeatSeconds} s, then resume`,
      resumed.ackAt,
      o.resume,
      plan.agents,
      plan.agents,
      hbMs / 1000,
    );

    // 3. A 4th agent joins: from its "started" line (it counts itself at once; the others learn of
    // it at their next tick after its first heartbeat: one tick plus one heartbeat at most).
    const joiner = await fleet.start(`agent-${plan.agents + 1}`);
    await until(() => joiner.lines.some((l) => /^Agent \S+ started/.test(l.msg)), 60_000, 10);
    const joinedAt = joiner.lines.find((l) => /^Agent \S+ started/.test(l.msg))?.time ?? epochNow();
    const join = await observe(
      `agent-${plan.agents + 1} joins`,
      joinedAt,
      o.join,
      plan.agents,
      plan.agents + 1,
      (2 * hbMs) / 1000,
    );

    // 4. It leaves gracefully: it removes its row; the others take its share at their next tick.
    const leftAt = epochNow();
    await stopGracefully(joiner);
    const leave = await observe(
      `agent-${plan.agents + 1} stops (SIGTERM)`,
      leftAt,
      o.leave,
      plan.agents + 1,
      plan.agents,
      hbMs / 1000,
    );

    // 5. One is killed: it counts until it is lost (three heartbeats), then the others' next tick.
    const victim = agents[agents.length - 1] as AgentProcess;
    const killedAt = epochNow();
    victim.child.kill('SIGKILL');
    await victim.exited;
    const kill = await observe(
      `${victim.id} killed (SIGKILL)`,
      killedAt,
      o.kill,
      plan.agents,
      plan.agents - 1,
      (4 * hbMs) / 1000,
    );
    const counts = await store.countDocuments();
    if (counts.pending === 0)
      throw new Error('the backlog ran out before the end: the figures would be wrong');

    return {
      store: STORE_LABELS[kind],
      watch_mode:
        (await getJson<{ watch_mode?: string }>(`${commander.url}/api/cluster/stats`)).watch_mode ?? '?',
      rate: plan.rate,
      agents: plan.agents,
      concurrency: plan.concurrency,
      heartbeat_seconds: plan.heartbeatSeconds,
      rate_window_seconds: plan.rateWindowSeconds,
      load_average_at_start: load,
      propagation: { throttle, pause },
      accuracy: {
        seconds: plan.accuracySeconds,
        started,
        overall_per_second: round(started / plan.accuracySeconds),
        window_seconds: plan.reportWindowSeconds,
        windows_per_second: windows,
        windows: roundSummary(summarize(windows)),
      },
      resume,
      join,
      leave,
      kill,
    };
  } finally {
    await fleet.stopAll().catch(() => undefined);
    await store.close();
    await db.cleanup().catch(() => undefined);
    rmSync(startsDir, { recursive: true, force: true });
  }
}

export async function queuePause(
  kind: StoreKind,
  servers: Servers,
  plan: QueuePausePlan,
): Promise<QueuePauseRun> {
  const load = loadNow();
  const db = await freshDatabase(kind, servers);
  const store = await openStore(db.target);
  const startsDir = mkdtempSync(join(tmpdir(), 'pa-bench-starts-'));
  const fleet = new ProcessFleet({
    ...db.env,
    HANDLER: LATENCY_HANDLER,
    CONCURRENCY: String(plan.concurrency),
    POLL_INTERVAL: '1',
    BENCH_STARTS_LOG: join(startsDir, 'starts'),
  });
  try {
    await store.init();
    await store.writeCommand({ command: 'pause', reason: 'bench: set-up', updated_by: 'bench' });
    // Interleaved, so that before the pause every claim takes from both queues.
    const drawn = payloads(plan.documents * 2);
    await enqueue(
      store,
      drawn.map((payload, i) => ({ payload, queue: i % 2 === 0 ? 'a' : 'b' })),
    );
    const ids = Array.from({ length: plan.agents }, (_, i) => `agent-${i + 1}`);
    const agents = await fleet.startMany(ids);
    const commander = agents[0] as AgentProcess;
    await expectLive(commander, ids);
    const resumed = await post(`${commander.url}/api/cluster/resume?updated_by=bench&wait=true`);
    if (resumed.status !== 200) throw new Error(`resume answered ${resumed.status}`);
    await sleep(1_000); // past the first claims

    const ms = plan.seconds * 1000;
    let bBefore = 0;
    let bAfter = 0;
    let aBefore = 0;
    const perRound: [number, number][] = [];
    let aAfter = 0;
    let aDuring = 0;
    const barrierMs: number[] = [];
    for (let i = 0; i < plan.rounds; i++) {
      const from = epochNow();
      await sleepUntil(from + ms);
      const paused = await post<{ barrier?: { complete?: boolean } }>(
        `${commander.url}/api/cluster/pause?queue=a&wait=true&timeout=60&updated_by=bench`,
      );
      if (paused.status !== 200 || paused.body.barrier?.complete !== true)
        throw new Error(`pause?queue=a&wait=true answered ${paused.status}: ${JSON.stringify(paused.body)}`);
      barrierMs.push(paused.ackAt - paused.sentAt);
      await sleepUntil(paused.ackAt + ms);
      const resumeSent = epochNow();
      const starts = readStarts(startsDir);
      const before = countIn(starts, from, from + ms, 'b');
      const after = countIn(starts, paused.ackAt, paused.ackAt + ms, 'b');
      perRound.push([round(before / plan.seconds), round(after / plan.seconds)]);
      bBefore += before;
      bAfter += after;
      aBefore += countIn(starts, from, from + ms, 'a');
      aAfter += countIn(starts, paused.ackAt, resumeSent, 'a');
      aDuring += countIn(starts, paused.sentAt, paused.ackAt, 'a');
      const again = await post(`${commander.url}/api/cluster/resume?queue=a&wait=true&updated_by=bench`);
      if (again.status !== 200) throw new Error(`resume?queue=a answered ${again.status}`);
      await sleep(1_000);
    }
    const queues = await store.countQueues();
    for (const q of ['a', 'b']) {
      if ((queues.find((x) => x.queue === q)?.counts.pending ?? 0) === 0)
        throw new Error(`queue ${q}'s backlog ran out before the end: the figures would be wrong`);
    }
    const seconds = (plan.rounds * ms) / 1000;
    return {
      store: STORE_LABELS[kind],
      agents: plan.agents,
      concurrency: plan.concurrency,
      rounds: plan.rounds,
      seconds: plan.seconds,
      load_average_at_start: load,
      b_before_per_second: round(bBefore / seconds),
      b_after_per_second: round(bAfter / seconds),
      b_ratio: round(bBefore > 0 ? bAfter / bBefore : Number.NaN),
      a_before_per_second: round(aBefore / seconds),
      rounds_b_per_second: perRound,
      a_started_after_answer: aAfter,
      a_started_during_barrier: aDuring,
      barrier_ms: roundSummary(summarize(barrierMs)),
    };
  } finally {
    await fleet.stopAll().catch(() => undefined);
    await store.close();
    await db.cleanup().catch(() => undefined);
    rmSync(startsDir, { recursive: true, force: true });
  }
}

/** The committed real-world rows from before the fleet policy existed, best match first. */
const REFERENCES = [
  // The last SQLite figures before the policy: after the SQLite lock-wait fix, rows of 8 s of work.
  'bench/results/runtime-2026-12-01/sqlite-after-busy-fix.json',
  // The continuous runtime's run (before that fix on SQLite), rows of 20 s of work.
  'bench/results/runtime-2026-12-01/results.json',
];

/** The committed row of the same store, processes and concurrency whose length is nearest this one's. */
export function overheadReference(
  store: string,
  workers: number,
  concurrency: number,
  documents: number,
): OverheadReference | null {
  const found: OverheadReference[] = [];
  for (const file of REFERENCES) {
    try {
      const results = JSON.parse(readFileSync(join(ROOT, file), 'utf8')) as {
        machine: { load_average_at_start: number[] };
        realworld?: {
          system: string;
          store: string;
          workers: number;
          concurrency: number;
          documents: number;
          perSecond: number;
          fraction_of_ideal: number;
        }[];
      };
      const row = results.realworld?.find(
        (r) =>
          r.system === 'pulling-agent' &&
          r.store === store &&
          r.workers === workers &&
          r.concurrency === concurrency,
      );
      if (row) {
        found.push({
          file,
          per_second: row.perSecond,
          fraction_of_ideal: row.fraction_of_ideal,
          documents: row.documents,
          load_average: results.machine.load_average_at_start,
        });
      }
    } catch {
      // a missing or unreadable reference: try the next
    }
  }
  // Shorter rows lose more to the start and the tail: compare with a row of about the same length.
  const distance = (r: OverheadReference) => Math.abs(Math.log(r.documents / documents));
  return found.sort((a, b) => distance(a) - distance(b))[0] ?? null;
}

/** Compares a real-world row (2 × 10, queues and policy built in but unused) with the reference. */
export function overheadOf(
  run: RealWorldRun,
  fractionOfIdeal: number,
  source: ThrottleOverhead['source'],
  load: number[],
): ThrottleOverhead {
  const reference = overheadReference(run.store, run.workers, run.concurrency, run.documents);
  return {
    store: run.store,
    workers: run.workers,
    concurrency: run.concurrency,
    documents: run.documents,
    per_second: round(run.perSecond),
    fraction_of_ideal: round(fractionOfIdeal),
    source,
    load_average: load,
    reference,
    drop: reference ? round(1 - fractionOfIdeal / reference.fraction_of_ideal) : null,
  };
}
