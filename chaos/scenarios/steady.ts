// Without kills: many agents drain one large backlog. Every document must be handled exactly
// once (no fault excuses a duplicate here), and the throughput is the figure to watch.

import { ChaosFleet } from '../agents.js';
import { describeLost, drained, readLedger, storeDocuments } from '../ledger.js';
import { backlog, figure, FLEET_ENV, type Scenario, seconds } from '../scenario.js';
import { createDatabase } from '../stores.js';

export const steady: Scenario = {
  id: 'steady',
  title: 'Without kills',
  async run({ store, params, scope, log, watch }, result) {
    const p = params.steady;
    const documents = backlog(p, store.kind);
    const db = await createDatabase(store.kind, store.sharedUrl);
    scope.defer('dropping the database', () => db.cleanup());
    const fleet = watch(new ChaosFleet({ ...db.env, ...FLEET_ENV }));
    scope.defer('stopping the agents', () => fleet.stopAll());

    const agents = await fleet.startMany('steady-', p.agents);
    // Paused while the backlog is stored, so that the clock starts with every agent ready.
    const pause = await agents[0]!.call('POST', '/api/cluster/pause?reason=chaos+steady+loading');
    if (pause.status !== 200) throw new Error(`pause answered ${pause.status}`);
    log(`storing ${documents} documents`);
    const ids = await storeDocuments(db.store, documents);
    const resume = await agents[0]!.call('POST', '/api/cluster/resume?reason=chaos+steady+go');
    if (resume.status !== 200) throw new Error(`resume answered ${resume.status}`);
    const started = Date.now();
    const done = await drained(
      db.store,
      Math.max(300_000, documents * (store.kind === 'mongodb' ? 500 : 20)),
      documents > 10_000 ? 500 : 100,
    );
    const tookMs = Date.now() - started;
    const ledger = readLedger(ids, fleet.records());
    const throughput = (ids.length - ledger.lost.length) / (tookMs / 1000);
    log(`${ids.length} documents in ${seconds(tookMs)}: ${throughput.toFixed(0)}/s`);

    result.figures.push(
      figure('agents', p.agents),
      figure('documents', ids.length),
      figure('lost', ledger.lost.length),
      figure('processed twice', ledger.twice.size),
      figure('duration', tookMs, seconds(tookMs)),
      figure('throughput', Math.round(throughput), `${throughput.toFixed(0)} docs/s`),
    );
    if (!done) result.broken.push(`documents still pending or processing after ${seconds(tookMs, 0)}`);
    if (ledger.lost.length > 0)
      result.broken.push(`${ledger.lost.length} document(s) lost: ${await describeLost(db, ledger.lost)}`);
    if (ledger.twice.size > 0) {
      const [id, by] = ledger.twice.entries().next().value as [string, string[]];
      result.broken.push(
        `${ledger.twice.size} document(s) processed twice without any fault (e.g. ${id} by ${by.join(', ')})`,
      );
    }
    if (ledger.strangers > 0) result.broken.push(`${ledger.strangers} handler run(s) of unknown documents`);
  },
};
