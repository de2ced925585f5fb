// Silent connection death: two agents reach the store through a relay (chaos/relay.ts) that, while
// they work, stops carrying bytes on every connection open at that moment without closing any (a
// NAT or firewall that forgot them); new connections work. A third agent reaches the store
// directly. One second after the freeze the healthy agent pauses the fleet with wait=true, later
// resumes it. Targets (issue 13): the pause reaches every agent within 15 s, no heartbeat gap
// exceeds 2 intervals, the barrier never answers "drained" while a handler may still run, no
// document is lost, and the backlog moves again on the cut-off agents within 15 s of the resume.

import { startRelay, throughRelay } from '../../test/helpers/relay.js';
import { type ChaosAgent, ChaosFleet } from '../agents.js';
import { dumpOutputs } from '../agents.js';
import { describeLost, drained, readLedger, RecordCounter, storeDocuments } from '../ledger.js';
import { backlog, figure, FLEET_ENV, type Scenario, seconds, sleep } from '../scenario.js';
import { createDatabase } from '../stores.js';
import { HeartbeatWatch, LostWatch, reached } from '../watchers.js';

const PAUSE_TARGET_MS = 15_000;
const RESUME_TARGET_MS = 15_000;

interface Barrier {
  status: number;
  complete: boolean;
  ms: number;
  version: number | null;
  stragglers: string[];
  error: string | null;
}

export const frozen: Scenario = {
  id: 'frozen',
  title: 'Silent connection death',
  stores: ['postgres', 'mongodb'],
  // In CI's quick set: about 50 s on PostgreSQL and 60 s on FerretDB (docs/chaos.md).
  quickStores: ['postgres', 'mongodb'],
  async run({ store, params, scope, log, watch }, result) {
    const p = params.frozen;
    const documents = backlog(p, store.kind);
    const db = await createDatabase(store.kind, store.sharedUrl);
    scope.defer('dropping the database', () => db.cleanup());
    const target = new URL(store.sharedUrl);
    const relay = await startRelay(target.hostname, Number(target.port));
    // Released after the agents stopped (scope releases last first).
    scope.defer('closing the relay', () => relay.close());
    const urlKey = store.kind === 'postgres' ? 'STORE_URL' : 'MONGODB_URI';
    const relayed = { [urlKey]: throughRelay(store.sharedUrl, relay.port) };
    const heartbeatMs = p.heartbeatSeconds * 1000;
    const fleet = watch(
      new ChaosFleet({
        ...db.env,
        ...FLEET_ENV,
        // The product's defaults for what the targets are about: two missed 5 s heartbeats.
        HEARTBEAT_INTERVAL: String(p.heartbeatSeconds),
        HANDLER_DELAY_MS: String(p.handlerDelayMs),
        BATCH_SIZE: String(p.batchSize),
        CONCURRENCY: String(p.concurrency),
      }),
    );
    scope.defer('stopping the agents', () => fleet.stopAll());

    const [cut1, cut2, healthy] = (await Promise.all([
      fleet.start('frozen-cut-1', relayed),
      fleet.start('frozen-cut-2', relayed),
      fleet.start('frozen-direct'),
    ])) as [ChaosAgent, ChaosAgent, ChaosAgent];
    for (const a of [cut1, cut2, healthy]) await fleet.adopted(a);
    const cut = [cut1, cut2];
    const loading = await healthy.call('POST', '/api/cluster/pause?reason=chaos+frozen+loading');
    if (loading.status !== 200) throw new Error(`pause answered ${loading.status}`);
    const ids = await storeDocuments(db.store, documents);
    await healthy.call('POST', '/api/cluster/resume?reason=chaos+frozen+go');
    const counter = new RecordCounter(fleet.recordFile);
    const byAgent = (agent: string, after = 0) =>
      fleet
        .records()
        .slice(after)
        .filter((r) => r.agent === agent).length;
    // Both cut-off agents must be working (connections open, handlers running) when the relay freezes.
    for (let i = 0; i < 600 && (byAgent(cut1.id) < 3 || byAgent(cut2.id) < 3); i++) await sleep(100);
    if (byAgent(cut1.id) < 3 || byAgent(cut2.id) < 3)
      throw new Error('the agents behind the relay handled nothing within 60 s');

    const heartbeats = new HeartbeatWatch(db.store, store.kind === 'mongodb' ? 500 : 250);
    scope.defer('stopping the heartbeat watch', () => heartbeats.stop());
    const lostWatch = new LostWatch([healthy], 1_000);
    scope.defer('stopping the lost watch', () => lostWatch.stop());
    await sleep(heartbeatMs + 500);

    const frozenCount = relay.freeze();
    const freezeAt = Date.now();
    log(`relay froze ${frozenCount} open connection(s); the agents behind it do not know`);
    await sleep(1_000);

    // The healthy agent pauses with wait=true; the record file tells whether any handler finished
    // after the barrier answered (it records each run when it ends, before its outcome is written).
    const recordsAtPause = counter.count();
    const pauseStarted = Date.now();
    const barrierPromise = healthy
      .call<{
        version?: number;
        error?: string;
        barrier?: { complete?: boolean; summary?: { stragglers?: string[] } };
      }>(
        'POST',
        `/api/cluster/pause?wait=true&timeout=${p.barrierTimeoutSeconds}&reason=chaos+frozen`,
        (p.barrierTimeoutSeconds + 30) * 1000,
      )
      .then(
        (a): Barrier => ({
          status: a.status,
          complete: a.body.barrier?.complete === true,
          ms: a.ms,
          version: a.body.version ?? null,
          stragglers: a.body.barrier?.summary?.stragglers ?? [],
          error: a.body.error ?? null,
        }),
        (error: unknown): Barrier => ({
          status: 0,
          complete: false,
          ms: Date.now() - pauseStarted,
          version: null,
          stragglers: [],
          error: (error as Error).name,
        }),
      );
    // The version the pause got, straight from the store, so that reaching it is timed even while
    // the barrier still waits.
    let version = -1;
    const before = Number(loading.body.version);
    for (let i = 0; i < 200 && version <= before; i++) {
      version = await db.store.readControlVersion().catch(() => -1);
      if (version <= before) await sleep(50);
    }
    const pauseWrittenAt = Date.now();
    const reachedPromise = reached(cut, version, 'paused', pauseWrittenAt, p.observeMs);
    const barrier = await barrierPromise;
    const recordsAtBarrier = counter.count();
    const barrierAt = Date.now();
    log(
      `barrier answered ${barrier.status} ${barrier.error ?? ''} after ${seconds(barrier.ms)}${barrier.stragglers.length ? ` (stragglers ${barrier.stragglers.join(', ')})` : ''}`,
    );
    const reach = await reachedPromise;
    // Heartbeat gaps are watched for a while in the paused fleet too.
    await sleep(Math.max(0, freezeAt + p.observeMs - Date.now()));
    const finishedAfterPause = counter.count() - recordsAtPause;
    const finishedAfterBarrier = counter.count() - recordsAtBarrier;

    const recordsAtResume = fleet.records().length;
    const atResume = await db.store.countDocuments();
    const resume = await healthy.call('POST', '/api/cluster/resume?reason=chaos+frozen+resume');
    if (resume.status !== 200) throw new Error(`resume answered ${resume.status}`);
    const resumeAt = Date.now();
    // The backlog moves when any agent finishes a document again (the issue's measure); each
    // cut-off agent's own first run after the resume is reported beside it.
    const movedMs = new Map<string, number>();
    let fleetMovedMs: number | null = null;
    for (let i = 0; i < 100_000 && Date.now() - resumeAt < 60_000 && movedMs.size < cut.length; i++) {
      if (fleetMovedMs === null && fleet.records().length > recordsAtResume)
        fleetMovedMs = Date.now() - resumeAt;
      for (const a of cut)
        if (!movedMs.has(a.id) && byAgent(a.id, recordsAtResume) > 0)
          movedMs.set(a.id, Date.now() - resumeAt);
      // Nothing left for a cut-off agent to take: waiting longer would show nothing.
      if (i % 10 === 9 && fleetMovedMs !== null) {
        const left = await db.store.countDocuments().catch(() => null);
        if (left && left.pending + left.scheduled === 0) break;
      }
      await sleep(100);
    }
    const gapEnd = Date.now();
    dumpOutputs(fleet);
    await heartbeats.stop();
    await lostWatch.stop();

    const allHandled = await drained(
      db.store,
      Math.max(180_000, documents * (store.kind === 'mongodb' ? 500 : 50)),
    );
    const ledger = readLedger(ids, fleet.records());
    const gaps = cut.map((a) => ({ agent: a.id, ms: heartbeats.maxGap(a.id, freezeAt, gapEnd) }));
    const healthyGap = heartbeats.maxGap(healthy.id, freezeAt, gapEnd);
    const worstGap = Math.max(...gaps.map((g) => g.ms));
    const reachMax = Math.max(...reach.map((r) => r.appliedMs ?? Infinity));
    const drainMax = Math.max(...reach.map((r) => r.drainedMs ?? Infinity));
    const moveMax = fleetMovedMs ?? Infinity;
    const cutMoveMax = Math.max(...cut.map((a) => movedMs.get(a.id) ?? Infinity));
    const stats = relay.stats();
    const fmt = (ms: number) => (Number.isFinite(ms) ? seconds(ms) : 'never');
    const barrierAnswer =
      barrier.status === 200 && barrier.complete
        ? 'drained'
        : `${barrier.status} ${barrier.error ?? ''}`.trim();
    const falseDrain = barrier.status === 200 && finishedAfterBarrier > 0;

    result.figures.push(
      figure('connections frozen', frozenCount, `${frozenCount} (${stats.openedSinceFreeze} opened since)`),
      figure(
        'pause reached (applied / drained)',
        Number.isFinite(reachMax) ? reachMax : null,
        `${fmt(reachMax)} / ${fmt(drainMax)}`,
      ),
      figure('barrier', barrier.status, `${barrierAnswer} after ${seconds(barrier.ms)}`),
      figure(
        'drained while a handler ran',
        falseDrain,
        falseDrain ? `YES (${finishedAfterBarrier} runs ended later)` : 'no',
      ),
      figure('runs ended after the pause', finishedAfterPause),
      figure(
        'heartbeat gap (cut / direct)',
        worstGap,
        `${seconds(worstGap)} / ${seconds(healthyGap)} (interval ${p.heartbeatSeconds} s)`,
      ),
      figure(
        'seen lost',
        lostWatch.lost.size,
        lostWatch.lost.size === 0 ? '0' : [...lostWatch.lost].join(', '),
      ),
      figure(
        'moved after resume (fleet / cut)',
        Number.isFinite(moveMax) ? moveMax : null,
        `${fmt(moveMax)} / ${fmt(cutMoveMax)}; ${atResume.pending + atResume.scheduled} pending, ${atResume.processing} processing at the resume`,
      ),
      figure('documents', ids.length),
      figure('lost', ledger.lost.length),
      figure('processed twice', ledger.twice.size),
    );
    result.notes.push(
      `reach: ${reach.map((r) => `${r.agent} ${fmt(r.appliedMs ?? Infinity)} / ${fmt(r.drainedMs ?? Infinity)}`).join('; ')}; heartbeat gaps: ${gaps.map((g) => `${g.agent} ${seconds(g.ms)}`).join('; ')}; barrier answered at +${seconds(barrierAt - freezeAt)} after the freeze`,
    );
    if (reachMax > PAUSE_TARGET_MS)
      result.broken.push(
        `the pause reached the cut-off agents after ${fmt(reachMax)} (target ${seconds(PAUSE_TARGET_MS)})`,
      );
    if (worstGap > 2 * heartbeatMs + heartbeats.intervalMs)
      result.broken.push(
        `heartbeat gap of ${seconds(worstGap)} (${gaps.map((g) => `${g.agent} ${seconds(g.ms)}`).join(', ')}), more than 2 intervals of ${p.heartbeatSeconds} s`,
      );
    if (falseDrain)
      result.broken.push(`the barrier answered drained, then ${finishedAfterBarrier} handler run(s) ended`);
    if (moveMax > RESUME_TARGET_MS)
      result.broken.push(
        `the backlog moved ${fmt(moveMax)} after the resume (target ${seconds(RESUME_TARGET_MS)})`,
      );
    if (cutMoveMax > RESUME_TARGET_MS)
      result.notes.push(
        `a cut-off agent finished its first document ${fmt(cutMoveMax)} after the resume (${cut.map((a) => `${a.id} ${fmt(movedMs.get(a.id) ?? Infinity)}`).join(', ')})`,
      );
    if (!allHandled) result.broken.push('documents still pending or processing at the deadline');
    if (ledger.lost.length > 0)
      result.broken.push(`${ledger.lost.length} document(s) lost: ${await describeLost(db, ledger.lost)}`);
    if (ledger.twice.size > 0) {
      const [id, by] = ledger.twice.entries().next().value as [string, string[]];
      result.notes.push(`${ledger.twice.size} document(s) processed twice (e.g. ${id} by ${by.join(', ')})`);
    }
    if (lostWatch.lost.size > 0) result.notes.push(`marked lost: ${[...lostWatch.lost].join(', ')}`);
  },
};
