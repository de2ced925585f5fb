// A poison document: one document whose handler kills its own process (as a native crash or an
// out-of-memory kill would), among a backlog of ordinary ones, with every agent restarted as
// Kubernetes restarts a pod. A crash is an attempt, so the poison must end `failed` after
// MAX_RETRIES + 1 crashes, within (MAX_RETRIES + 1) × (lease + sweep) plus the restarts, and it
// must never starve the others: every other document is processed, once each (or again only when
// the crashed agent was holding it).

import { type ChaosAgent, ChaosFleet } from '../agents.js';
import { describeLost, readLedger } from '../ledger.js';
import { backlog, figure, FLEET_ENV, type Scenario, seconds, sleep } from '../scenario.js';
import { createDatabase } from '../stores.js';

const EXPIRED = 'lease expired';

export const poison: Scenario = {
  id: 'poison',
  title: 'Poison document',
  async run({ store, params, scope, log }, result) {
    const p = params.poison;
    const leaseSeconds = store.kind === 'mongodb' ? p.ferretdbLeaseSeconds : p.leaseSeconds;
    const db = await createDatabase(store.kind, store.sharedUrl);
    scope.defer('dropping the database', () => db.cleanup());
    // Not watched: its crashes are the point. Any exit other than the poison's SIGKILL is counted below.
    const fleet = new ChaosFleet({
      ...db.env,
      ...FLEET_ENV,
      LEASE_TIMEOUT: String(leaseSeconds),
      MAX_RETRIES: String(p.maxRetries),
      HANDLER_DELAY_MS: String(p.handlerDelayMs),
      CONCURRENCY: '4',
      RETRY_BACKOFF_BASE: '0.2',
    });
    scope.defer('stopping the agents', () => fleet.stopAll());

    const slots: ChaosAgent[] = await fleet.startMany('poison-', p.agents);
    await slots[0]!.call('POST', '/api/cluster/pause?reason=chaos+poison+loading');
    const [poisonId] = await db.store.insertDocuments([{ crash: true }]);
    const others = await db.store.insertDocuments(
      Array.from({ length: backlog(p, store.kind) }, (_, n) => ({ n })),
    );
    const started = Date.now();
    await slots[0]!.call('POST', '/api/cluster/resume?reason=chaos+poison+go');

    // The restart loop: a process that died is started again after restartDelayMs, as a pod is.
    let crashes = 0;
    let restarts = 0;
    const otherExits: string[] = [];
    let stopping = false;
    const restartLoops = slots.map(async (_, slot) => {
      for (let n = 1; !stopping; n++) {
        const agent = slots[slot]!;
        await agent.exited;
        if (stopping) return;
        if (agent.exitSignal === 'SIGKILL') crashes++;
        else otherExits.push(`${agent.id} exited ${agent.exitCode ?? agent.exitSignal}`);
        await sleep(p.restartDelayMs);
        if (stopping) return;
        slots[slot] = await fleet.start(`poison-${slot + 1}-r${n}`);
        restarts++;
      }
    });

    // Each crash costs a lease and at most a sweep (a quarter lease) before another agent can try,
    // plus a restart; the limit allows twice that, and a minute for the backlog on a slow store.
    const perCrashMs = leaseSeconds * 1250 + p.restartDelayMs + 2_000;
    const limitMs = (p.maxRetries + 1) * perCrashMs * 2 + 60_000;
    let poisonFailedAt: number | null = null;
    let othersDoneAt: number | null = null;
    const deadline = started + limitMs;
    while (Date.now() < deadline && (poisonFailedAt === null || othersDoneAt === null)) {
      const doc = await db.store.getDocument(poisonId!).catch(() => null);
      if (poisonFailedAt === null && doc?.status === 'failed') poisonFailedAt = Date.now();
      if (othersDoneAt === null) {
        const counts = await db.store.countDocuments().catch(() => null);
        const processed = counts?.processed ?? 0;
        if (processed >= others.length) othersDoneAt = Date.now();
      }
      await sleep(200);
    }
    stopping = true;
    const records = fleet.records(); // before stopAll, which removes the fleet's folder
    await fleet.stopAll();
    await Promise.race([Promise.all(restartLoops), sleep(5_000)]);

    const final = await db.store.getDocument(poisonId!);
    const ledger = readLedger(others, records);
    log(
      `poison ${final?.status} after ${crashes} crashes (${final?.attempts} attempts); others done: ${othersDoneAt !== null}`,
    );
    result.figures.push(
      figure('lease / MAX_RETRIES', leaseSeconds, `${leaseSeconds} s / ${p.maxRetries}`),
      figure('crashes until failed', crashes, `${crashes} (limit ${p.maxRetries + 1})`),
      figure(
        'poison failed after (limit)',
        poisonFailedAt === null ? null : poisonFailedAt - started,
        `${poisonFailedAt === null ? 'never' : seconds(poisonFailedAt - started)} (${seconds(limitMs, 0)})`,
      ),
      figure('poison attempts, error', final?.attempts ?? null, `${final?.attempts}, ${final?.error ?? '—'}`),
      figure('others', others.length),
      figure(
        'others done after',
        othersDoneAt === null ? null : othersDoneAt - started,
        othersDoneAt === null ? 'never' : seconds(othersDoneAt - started),
      ),
      figure('others lost', ledger.lost.length),
      figure('restarts', restarts),
    );
    if (poisonFailedAt === null)
      result.broken.push(
        `the poison document was not failed within ${seconds(limitMs, 0)} (status ${final?.status}, ${crashes} crashes)`,
      );
    if (crashes > p.maxRetries + 1)
      result.broken.push(`the poison crashed its agents ${crashes} times, more than MAX_RETRIES + 1`);
    if (final?.status === 'failed' && !(final.error ?? '').includes(EXPIRED))
      result.broken.push(`the poison failed with an unexpected error: ${final.error}`);
    if (othersDoneAt === null) result.broken.push('the other documents were not all processed: starved');
    if (ledger.lost.length > 0)
      result.broken.push(
        `${ledger.lost.length} other document(s) lost: ${await describeLost(db, ledger.lost)}`,
      );
    if (otherExits.length > 0) result.broken.push(`unexpected exits: ${otherExits.join(', ')}`);
  },
};
