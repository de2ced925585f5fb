// Clock offset of one agent: one process of the fleet runs with its wall clock moved (libfaketime,
// chaos/faketime.ts) while the fleet drains a backlog with a short lease. Halfway, that agent
// pauses the fleet with wait=true; then another resumes it. Targets (issue 13): no extra re-run
// (no document handled twice: nobody dies here), no agent marked lost in anybody's view, and the
// barrier never answers "drained" while a handler runs; and the registry shows the skewed agent's
// offset, which it warned about. PostgreSQL and MongoDB use the server's clock; SQLite's time base
// is the file system's clock (src/stores/sqlite/clock.ts), which libfaketime does not move.

import { type ChaosAgent, ChaosFleet, dumpOutputs } from '../agents.js';
import { faketimeEnv, measuredOffsetMs } from '../faketime.js';
import { describeLost, drained, readLedger, RecordCounter, storeDocuments } from '../ledger.js';
import { backlog, figure, FLEET_ENV, type Scenario, seconds, sleep } from '../scenario.js';
import { createDatabase } from '../stores.js';
import { LostWatch, reached } from '../watchers.js';

export const clock: Scenario = {
  id: 'clock',
  title: 'Clock offset of one agent',
  async run({ store, params, scope, log, watch }, result) {
    const p = params.clock;
    const documents = backlog(p, store.kind);
    const skewEnv = faketimeEnv(p.offsetSeconds);
    const offsetMs = measuredOffsetMs(skewEnv);
    if (Math.abs(offsetMs - p.offsetSeconds * 1000) > 5_000)
      throw new Error(
        `libfaketime did not move node's clock by ${p.offsetSeconds} s (measured ${seconds(offsetMs)})`,
      );
    const db = await createDatabase(store.kind, store.sharedUrl);
    scope.defer('dropping the database', () => db.cleanup());
    // The backlog lasts about workMs, so that the pause lands on handlers in flight.
    const handlerDelayMs = Math.max(p.handlerDelayMs, Math.round((p.workMs * p.agents) / documents));
    const leaseSeconds = store.kind === 'mongodb' ? Math.max(p.leaseSeconds, 10) : p.leaseSeconds;
    const fleet = watch(
      new ChaosFleet({
        ...db.env,
        ...FLEET_ENV,
        LEASE_TIMEOUT: String(leaseSeconds),
        HANDLER_DELAY_MS: String(handlerDelayMs),
        BATCH_SIZE: String(p.batchSize),
      }),
    );
    scope.defer('stopping the agents', () => fleet.stopAll());
    const skewedId = `clock-${p.offsetSeconds >= 0 ? 'ahead' : 'behind'}`;
    const others = await Promise.all(
      Array.from({ length: p.agents - 1 }, (_, i) => fleet.start(`clock-right-${i + 1}`)),
    );
    const skewed = await fleet.start(skewedId, skewEnv);
    const agents: ChaosAgent[] = [...others, skewed];
    for (const a of agents) await fleet.adopted(a);
    log(`${skewedId} runs ${seconds(offsetMs)} off (libfaketime, measured)`);
    const right = others[0]!;
    const loading = await right.call('POST', '/api/cluster/pause?reason=chaos+clock+loading');
    if (loading.status !== 200) throw new Error(`pause answered ${loading.status}`);
    const ids = await storeDocuments(db.store, documents);
    const lostWatch = new LostWatch(agents, 1_000);
    scope.defer('stopping the lost watch', () => lostWatch.stop());
    await right.call('POST', '/api/cluster/resume?reason=chaos+clock+go');
    const counter = new RecordCounter(fleet.recordFile);
    await sleep(p.workMs / 2);

    // The skewed agent pauses with wait=true: its barrier must wait for the handlers in flight.
    const inFlight = (await Promise.all(agents.map((a) => a.state(2_000).catch(() => null)))).filter(
      (s) => s?.batch_in_flight,
    ).length;
    const pause = await skewed.call<{ version?: number; error?: string; barrier?: { complete?: boolean } }>(
      'POST',
      '/api/cluster/pause?wait=true&timeout=60&reason=chaos+clock',
      90_000,
    );
    const atBarrier = counter.count();
    const pauseAt = Date.now();
    const version = pause.body.version ?? -1;
    const reach = await reached(agents, version, 'paused', pauseAt - pause.ms, 60_000);
    await sleep(2_000);
    const afterBarrier = counter.count() - atBarrier;
    const falseDrain = pause.status === 200 && afterBarrier > 0;
    log(
      `pause through ${skewedId} answered ${pause.status} after ${seconds(pause.ms)}; ${afterBarrier} run(s) ended after it`,
    );

    const resume = await right.call('POST', '/api/cluster/resume?reason=chaos+clock+finish');
    if (resume.status !== 200) throw new Error(`resume answered ${resume.status}`);
    const allHandled = await drained(db.store, Math.max(120_000, documents * handlerDelayMs * 2));
    // A lease the skewed agent misjudges shows after the backlog too: a few more seconds of views.
    await sleep(3_000);
    await lostWatch.stop();
    // The registry, through a correct agent: every agent's clock offset as it measured it.
    const registry = await right.call<{ agents?: { agent_id: string; clock_offset_ms?: number | null }[] }>(
      'GET',
      '/api/cluster/agents',
    );
    const offsetOf = (id: string) =>
      registry.body.agents?.find((r) => r.agent_id === id)?.clock_offset_ms ?? null;
    const skewedSeen = offsetOf(skewedId);
    const othersSeen = others.map((a) => offsetOf(a.id));
    const worstOther = Math.max(...othersSeen.map((o) => (o === null ? Infinity : Math.abs(o))));
    const warned = skewed.output().includes("[Clock] This agent's clock is");
    const falseWarnings = others.filter((a) => a.output().includes("[Clock] This agent's clock is")).length;
    dumpOutputs(fleet);
    const ledger = readLedger(ids, fleet.records());
    const skewedRuns = fleet.records().filter((r) => r.agent === skewedId).length;
    const reachMax = Math.max(...reach.map((r) => r.appliedMs ?? Infinity));
    const fmt = (ms: number) => (Number.isFinite(ms) ? seconds(ms) : 'never');

    result.figures.push(
      figure('offset', offsetMs, `${skewedId} ${offsetMs >= 0 ? '+' : ''}${seconds(offsetMs, 0)}`),
      figure('lease', leaseSeconds, `${leaseSeconds} s`),
      figure(
        'registry offset (skewed / others)',
        skewedSeen,
        `${skewedSeen === null ? 'none' : seconds(skewedSeen)} / ≤ ${Number.isFinite(worstOther) ? seconds(worstOther) : 'none'}; ${warned ? 'warned' : 'no warning'}`,
      ),
      figure('pause reached all', Number.isFinite(reachMax) ? reachMax : null, fmt(reachMax)),
      figure(
        'barrier (through the skewed agent)',
        pause.status,
        `${pause.status === 200 && pause.body.barrier?.complete ? 'drained' : `${pause.status} ${pause.body.error ?? ''}`.trim()} after ${seconds(pause.ms)}; ${inFlight} agent(s) busy before`,
      ),
      figure(
        'drained while a handler ran',
        falseDrain,
        falseDrain ? `YES (${afterBarrier} runs ended later)` : 'no',
      ),
      figure(
        'seen lost',
        lostWatch.lost.size,
        lostWatch.lost.size === 0 ? '0' : [...lostWatch.lost].slice(0, 4).join(', '),
      ),
      figure('documents (skewed agent)', ids.length, `${ids.length} (${skewedRuns})`),
      figure('lost', ledger.lost.length),
      figure('processed twice', ledger.twice.size),
    );
    // The registry must show the skewed agent about as far off as it is (within 5 s), the others
    // within the warning threshold, and only the skewed agent must warn.
    if (skewedSeen === null || Math.abs(skewedSeen - offsetMs) > 5_000)
      result.broken.push(
        `the registry shows ${skewedId}'s clock offset as ${skewedSeen ?? 'null'} ms (it is ${Math.round(offsetMs)} ms)`,
      );
    if (!(worstOther <= 5_000))
      result.broken.push(
        `the registry shows a correct agent off by ${worstOther} ms (${othersSeen.join(', ')})`,
      );
    if (!warned) result.broken.push(`${skewedId} never warned about its clock`);
    if (falseWarnings > 0) result.broken.push(`${falseWarnings} correct agent(s) warned about their clock`);
    if (lostWatch.lost.size > 0) result.broken.push(`agents marked lost: ${[...lostWatch.lost].join(', ')}`);
    if (falseDrain)
      result.broken.push(`the barrier answered drained, then ${afterBarrier} handler run(s) ended`);
    if (!Number.isFinite(reachMax)) result.broken.push('the pause did not reach every agent within 60 s');
    if (!allHandled) result.broken.push('documents still pending or processing at the deadline');
    if (ledger.lost.length > 0)
      result.broken.push(`${ledger.lost.length} document(s) lost: ${await describeLost(db, ledger.lost)}`);
    if (ledger.twice.size > 0) {
      const [id, by] = ledger.twice.entries().next().value as [string, string[]];
      const bySkewed = [...ledger.twice.values()].filter((list) => list.includes(skewedId)).length;
      result.broken.push(
        `${ledger.twice.size} document(s) re-run though nobody died (${bySkewed} involving ${skewedId}; e.g. ${id} by ${by.join(', ')})`,
      );
    }
  },
};
