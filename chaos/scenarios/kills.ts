// Agent kills: a random agent is SIGKILLed every few seconds while a large backlog drains, and
// restarted at once under a new id (a new pod). Nothing may be lost; a document may be handled
// twice only if an agent was killed while holding its claim. The claims a victim held are read
// from the store just before the kill and again once it is dead (exactly what it held at its
// death), and each duplicate is checked against them.

import { type ChaosAgent, ChaosFleet } from '../agents.js';
import { describeLost, drained, readLedger, RecordCounter, storeDocuments } from '../ledger.js';
import { backlog, figure, FLEET_ENV, medianMax, type Scenario, seconds, sleep } from '../scenario.js';
import { createDatabase, type Inspector } from '../stores.js';

interface Kill {
  victim: string;
  at: number;
  /** Claims held at the moment of death (read from the store once the process was gone). */
  heldAtDeath: string[];
  /** Read just before the kill; may include documents completed in between. */
  heldBefore: string[];
  /** From the kill until none of heldAtDeath was held by the victim any more; null if never. */
  recoveryMs: number | null;
}

/** Polls until the dead agent holds none of its documents; the time from the kill, or null. */
async function leaseRecovery(inspector: Inspector, kill: Kill, timeoutMs: number): Promise<number | null> {
  const deadline = kill.at + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if ((await inspector.stillHeld(kill.victim, kill.heldAtDeath)) === 0) return Date.now() - kill.at;
    } catch {
      // a slow read: try again
    }
    await sleep(100);
  }
  return null;
}

export const kills: Scenario = {
  id: 'kills',
  title: 'Agent kills',
  async run({ store, params, scope, log, watch }, result) {
    const p = params.kills;
    const documents = backlog(p, store.kind);
    // Each handler waits long enough for the backlog to last through every kill (a kill and its
    // restart take about minGap + 1 s), so that kills land on agents that hold claims.
    const handlerDelayMs = Math.round((p.kills * (p.minGapMs + 1_000) * p.agents) / documents);
    // FerretDB's renewals take up to a second or more under this load, which a 2 s lease (renewed
    // every second) cannot absorb: live agents would lose their claims (docs/chaos.md).
    const leaseSeconds = store.kind === 'mongodb' ? p.ferretdbLeaseSeconds : p.leaseSeconds;
    const db = await createDatabase(store.kind, store.sharedUrl);
    scope.defer('dropping the database', () => db.cleanup());
    const fleet = watch(
      new ChaosFleet({
        ...db.env,
        ...FLEET_ENV,
        LEASE_TIMEOUT: String(leaseSeconds),
        BATCH_SIZE: String(p.batchSize),
        HANDLER_DELAY_MS: String(handlerDelayMs),
      }),
    );
    scope.defer('stopping the agents', () => fleet.stopAll());

    const slots: ChaosAgent[] = await fleet.startMany('kill-', p.agents);
    await slots[0]!.call('POST', '/api/cluster/pause?reason=chaos+kills+loading');
    log(`storing ${documents} documents`);
    const ids = await storeDocuments(db.store, documents);
    await slots[0]!.call('POST', '/api/cluster/resume?reason=chaos+kills+go');
    const started = Date.now();
    const counter = new RecordCounter(fleet.recordFile);

    const done: Kill[] = [];
    const recoveries: Promise<void>[] = [];
    const restarts: number[] = [];
    let last = started;
    const killDeadline = started + p.kills * p.maxGapMs * 2 + 120_000;
    for (let k = 1; k <= p.kills && Date.now() < killDeadline; k++) {
      // Paced by progress (kill k at k/(kills+1) of the backlog), within [minGap, maxGap].
      const due = (k / (p.kills + 1)) * documents;
      while (Date.now() - last < p.maxGapMs && (Date.now() - last < p.minGapMs || counter.count() < due))
        await sleep(100);
      const slot = Math.floor(Math.random() * slots.length);
      const victim = slots[slot]!;
      const heldBefore = await db.inspector.heldBy(victim.id);
      const at = Date.now();
      await victim.kill();
      const kill: Kill = {
        victim: victim.id,
        at,
        heldAtDeath: await db.inspector.heldBy(victim.id),
        heldBefore,
        recoveryMs: null,
      };
      done.push(kill);
      last = Date.now();
      if (kill.heldAtDeath.length > 0)
        recoveries.push(
          leaseRecovery(db.inspector, kill, 120_000).then((ms) => {
            kill.recoveryMs = ms;
          }),
        );
      const restartedAt = Date.now();
      slots[slot] = await fleet.start(`kill-${slot + 1}-r${k}`);
      await fleet.adopted(slots[slot]!);
      restarts.push(Date.now() - restartedAt);
      if (k % 10 === 0 || k === p.kills)
        log(
          `${k} kills, ${counter.count()}/${documents} handled, last victim held ${kill.heldAtDeath.length}`,
        );
    }
    const allHandled = await drained(
      db.store,
      Math.max(300_000, documents * (store.kind === 'mongodb' ? 500 : 50)),
    );
    await Promise.all(recoveries);
    const tookMs = Date.now() - started;

    const ledger = readLedger(ids, fleet.records());
    // A run that did not finish is explained only by a kill of the agent that ran it, while it
    // held the claim; the last run is the one that counted.
    const heldBy = new Map<string, Set<string>>();
    for (const kill of done) heldBy.set(kill.victim, new Set([...kill.heldAtDeath, ...kill.heldBefore]));
    const unexplained: string[] = [];
    for (const [id, runs] of ledger.twice) {
      const explained = runs.slice(0, -1).every((agent) => heldBy.get(agent)?.has(id) === true);
      if (!explained) unexplained.push(`${id} (runs by ${runs.join(', ')})`);
    }
    const recovered = done.filter((k) => k.heldAtDeath.length > 0);
    const recovery = medianMax(recovered.flatMap((k) => (k.recoveryMs === null ? [] : [k.recoveryMs])));
    const heldTotal = recovered.reduce((n, k) => n + k.heldAtDeath.length, 0);
    // Re-runs per kill against what a victim could have had to re-run: what it held at death
    // (running, buffered, or finished but not yet recorded). A runtime that records outcomes as
    // they happen re-runs at most that; one that writes at a batch's end re-runs whole claims.
    const rerunsPerKill = done.length > 0 ? ledger.twice.size / done.length : 0;
    const heldMax = Math.max(0, ...done.map((k) => k.heldAtDeath.length));

    result.figures.push(
      figure('kills', done.length, `${done.length}/${p.kills}`),
      figure('lease', leaseSeconds, `${leaseSeconds} s`),
      figure('documents', ids.length),
      figure('lost', ledger.lost.length),
      figure(
        'processed twice',
        ledger.twice.size,
        `${ledger.twice.size} (${unexplained.length} unexplained)`,
      ),
      figure('claims held at kills', heldTotal, `${heldTotal} in ${recovered.length} kills`),
      figure(
        're-runs per kill',
        rerunsPerKill,
        `${rerunsPerKill.toFixed(1)} (held at death: mean ${(heldTotal / Math.max(1, done.length)).toFixed(1)}, max ${heldMax}; BATCH_SIZE ${p.batchSize})`,
      ),
      figure('lease recovery (median / max)', recovery.max, recovery.text),
      figure('restart (median / max)', medianMax(restarts).max, medianMax(restarts).text),
      figure('duration', tookMs, seconds(tookMs, 0)),
    );
    result.notes.push(
      `LEASE_TIMEOUT=${p.leaseSeconds}, BATCH_SIZE=${p.batchSize}, HANDLER_DELAY_MS=${handlerDelayMs}`,
    );
    if (done.length < p.kills)
      result.broken.push(`only ${done.length} of ${p.kills} kills happened before the deadline`);
    if (!allHandled) result.broken.push('documents still pending or processing at the deadline');
    if (ledger.lost.length > 0)
      result.broken.push(`${ledger.lost.length} document(s) lost: ${await describeLost(db, ledger.lost)}`);
    if (unexplained.length > 0)
      result.broken.push(
        `${unexplained.length} document(s) processed twice without a kill of an agent holding them: ${unexplained.slice(0, 3).join('; ')}`,
      );
    const stuck = recovered.filter((k) => k.recoveryMs === null);
    if (stuck.length > 0)
      result.broken.push(
        `${stuck.length} killed agent(s) still held claims 120 s after the kill (${stuck[0]!.victim})`,
      );
    if (ledger.strangers > 0) result.broken.push(`${ledger.strangers} handler run(s) of unknown documents`);
  },
};
