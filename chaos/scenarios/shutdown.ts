// Slow handler and shutdown: every handler takes longer than SHUTDOWN_TIMEOUT, and a cluster
// shutdown arrives while each agent is in the middle of its batch. Each process must exit 0 within
// the timeout (plus the command's propagation and a small margin), give its claims back (nothing
// left processing), and a later fleet must handle every document exactly once.

import { ChaosFleet } from '../agents.js';
import { describeLost, drained, readLedger, storeDocuments } from '../ledger.js';
import { figure, FLEET_ENV, type Scenario, seconds, sleep } from '../scenario.js';
import { createDatabase } from '../stores.js';

export const shutdown: Scenario = {
  id: 'shutdown',
  title: 'Slow handler and shutdown',
  async run({ store, params, scope, log, watch }, result) {
    const p = params.shutdown;
    const db = await createDatabase(store.kind, store.sharedUrl);
    scope.defer('dropping the database', () => db.cleanup());
    const fleet = watch(
      new ChaosFleet({
        ...db.env,
        ...FLEET_ENV,
        SHUTDOWN_TIMEOUT: String(p.shutdownTimeoutSeconds),
        HANDLER_DELAY_MS: String(p.handlerDelayMs),
        BATCH_SIZE: String(p.batchSize),
        CONCURRENCY: String(p.concurrency),
      }),
    );
    scope.defer('stopping the agents', () => fleet.stopAll());
    const agents = await fleet.startMany('slow-', p.agents);
    const polling =
      (await agents[0]!.call<{ watch_mode: string }>('GET', '/api/cluster/stats')).body.watch_mode ===
      'polling';

    await agents[0]!.call('POST', '/api/cluster/pause?reason=chaos+shutdown+loading');
    const ids = await storeDocuments(db.store, p.agents * p.batchSize * 3);
    await agents[0]!.call('POST', '/api/cluster/resume?reason=chaos+shutdown+go');

    // Wait until every agent holds a batch, so that the shutdown lands in the middle of each.
    let held: string[][] = [];
    for (let i = 0; i < 300; i++) {
      held = await Promise.all(agents.map((a) => db.inspector.heldBy(a.id)));
      if (held.every((h) => h.length > 0)) break;
      await sleep(100);
    }
    if (!held.every((h) => h.length > 0)) throw new Error('not every agent claimed a batch within 30 s');
    await sleep(300); // handlers under way
    held = await Promise.all(agents.map((a) => db.inspector.heldBy(a.id)));
    const heldIds = held.flat();

    for (const agent of agents) agent.expected = 'shutdown';
    const sent = Date.now();
    const answer = await agents[0]!.call('POST', '/api/cluster/shutdown?reason=chaos+shutdown');
    if (answer.status !== 200) throw new Error(`shutdown answered ${answer.status}`);
    const propagationMs = polling ? 1_100 : 1_000;
    const limitMs = p.shutdownTimeoutSeconds * 1000 + propagationMs + p.marginMs;
    await Promise.race([Promise.all(agents.map((a) => a.exited)), sleep(limitMs + 30_000)]);
    const exits = agents.map((a) => (a.exitedAt === null ? null : a.exitedAt - sent));
    const slowest = Math.max(...exits.map((e) => e ?? Infinity));
    const codes = agents.map((a) => (a.alive ? 'running' : String(a.exitCode ?? a.exitSignal)));
    log(
      `exits after ${exits.map((e) => (e === null ? 'never' : seconds(e))).join(', ')} (codes ${codes.join(', ')})`,
    );

    const counts = await db.store.countDocuments();
    const after = await Promise.all(heldIds.map((id) => db.store.getDocument(id)));
    const released = after.filter((d) => d?.status === 'pending').length;
    const aborted = agents.filter((a) =>
      /Shutdown timeout .* aborting running handlers/.test(a.output()),
    ).length;

    // A later fleet (no delay) takes the released documents: nothing may be lost or run twice.
    const later = watch(new ChaosFleet({ ...db.env, ...FLEET_ENV }));
    scope.defer('stopping the later agents', () => later.stopAll());
    const [first] = await later.startMany('after-', 2);
    await first!.call('POST', '/api/cluster/resume?reason=chaos+shutdown+after');
    const allHandled = await drained(db.store, 60_000);
    const ledger = readLedger(ids, [...fleet.records(), ...later.records()]);

    result.figures.push(
      figure('agents', agents.length),
      figure(
        'SHUTDOWN_TIMEOUT / handler',
        p.shutdownTimeoutSeconds,
        `${p.shutdownTimeoutSeconds} s / ${seconds(p.handlerDelayMs, 0)}`,
      ),
      figure('exit codes', codes.join(','), codes.join(', ')),
      figure(
        'slowest exit (limit)',
        slowest,
        `${Number.isFinite(slowest) ? seconds(slowest) : 'never'} (${seconds(limitMs)})`,
      ),
      figure('handlers aborted by the timeout', aborted, `${aborted}/${agents.length} agents`),
      figure(
        'claims released',
        released,
        `${released}/${heldIds.length}, ${counts.processing} left processing`,
      ),
      figure('lost', ledger.lost.length),
      figure('processed twice', ledger.twice.size),
    );
    if (codes.some((c) => c !== '0')) result.broken.push(`exit codes ${codes.join(', ')} (all must be 0)`);
    if (!(slowest <= limitMs))
      result.broken.push(
        `an agent took ${Number.isFinite(slowest) ? seconds(slowest) : 'for ever'} to exit, past the ${seconds(limitMs)} allowed`,
      );
    if (counts.processing > 0)
      result.broken.push(`${counts.processing} document(s) still processing after every agent exited`);
    if (released < heldIds.length)
      result.broken.push(
        `${heldIds.length - released} of the ${heldIds.length} claims held at the shutdown were not released to pending`,
      );
    if (!allHandled) result.broken.push('the later fleet did not handle every document within 60 s');
    if (ledger.lost.length > 0)
      result.broken.push(`${ledger.lost.length} document(s) lost: ${await describeLost(db, ledger.lost)}`);
    if (ledger.twice.size > 0) result.broken.push(`${ledger.twice.size} document(s) processed twice`);
  },
};
