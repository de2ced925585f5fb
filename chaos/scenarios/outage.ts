// Store outage: while agents pull a backlog and a command is on its way (acknowledged just before),
// the store goes away for a while (its own server stopped, or the SQLite file locked), then comes
// back. Meanwhile agents must stay up, keep their state and keep answering; a command sent during
// the outage must get a clean 503 PA_STORE_UNAVAILABLE (or succeed, if the store comes back while
// it waits); sent again after recovery it must reach every agent; and no document may be lost.

import { type ChaosAgent, ChaosFleet } from '../agents.js';
import { describeLost, drained, readLedger, RecordCounter, storeDocuments } from '../ledger.js';
import { backlog, figure, FLEET_ENV, type Scenario, seconds, sleep } from '../scenario.js';
import { type OutageServer, sqliteLock, startServer } from '../servers.js';
import { type ChaosDatabase, createDatabase } from '../stores.js';

interface Sample {
  at: number;
  agent: string;
  state: string | null;
  version: number | null;
  ms: number;
}

interface CommandAnswer {
  status: number;
  code: string | null;
  version: number | null;
  ms: number;
}

async function command(agent: ChaosAgent, path: string, timeoutMs: number): Promise<CommandAnswer> {
  const started = Date.now();
  try {
    const a = await agent.call<{ version?: number; error?: string }>('POST', path, timeoutMs);
    return { status: a.status, code: a.body.error ?? null, version: a.body.version ?? null, ms: a.ms };
  } catch (error) {
    return { status: 0, code: (error as Error).name, version: null, ms: Date.now() - started };
  }
}

/** Samples every agent's /api/agent/state every 250 ms until stopped. */
function sampleStates(agents: ChaosAgent[]): { stop(): Promise<Sample[]> } {
  const samples: Sample[] = [];
  let running = true;
  const loop = (async () => {
    for (let i = 0; running && i < 10_000; i++) {
      const at = Date.now();
      await Promise.all(
        agents.map(async (a) => {
          const t = performance.now();
          try {
            const s = await a.state(2_000);
            // Stamped when the answer came: a state seen after the store came back is not a
            // state held during the outage.
            samples.push({
              at: Date.now(),
              agent: a.id,
              state: s.state,
              version: s.applied_version,
              ms: performance.now() - t,
            });
          } catch {
            samples.push({ at, agent: a.id, state: null, version: null, ms: performance.now() - t });
          }
        }),
      );
      await sleep(Math.max(0, 250 - (Date.now() - at)));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return samples;
    },
  };
}

export const outage: Scenario = {
  id: 'outage',
  title: 'Store outage',
  async run({ store, params, scope, log, watch }, result) {
    const p = params.outage;
    const documents = backlog(p, store.kind);
    let server: OutageServer;
    let db: ChaosDatabase;
    if (store.kind === 'sqlite') {
      db = await createDatabase('sqlite', '');
      scope.defer('dropping the database', () => db.cleanup());
      server = sqliteLock(db.env.STORE_URL!.slice('sqlite:'.length));
      scope.defer('releasing the lock', () => server.stop());
    } else {
      log(`starting a ${store.kind} server of its own`);
      server = await startServer(store.kind);
      scope.defer('stopping its own server', () => server.stop());
      db = await createDatabase(store.kind, server.url);
      scope.defer('dropping the database', () => db.cleanup());
    }
    const fleet = watch(
      new ChaosFleet({
        ...db.env,
        ...FLEET_ENV,
        HANDLER_DELAY_MS: String(p.handlerDelayMs),
        BATCH_SIZE: '10',
      }),
    );
    scope.defer('stopping the agents', () => fleet.stopAll());
    let down = false;
    // Released first: agents stop cleanly and the database is dropped only with the store back.
    scope.defer('bringing the store back', async () => {
      if (down) await server.up();
    });

    const agents = await fleet.startMany('out-', p.agents);
    const [first, second, third] = agents as [ChaosAgent, ChaosAgent, ChaosAgent];
    await first.call('POST', '/api/cluster/pause?reason=chaos+outage+loading');
    const ids = await storeDocuments(db.store, documents);
    await first.call('POST', '/api/cluster/resume?reason=chaos+outage+go');
    const counter = new RecordCounter(fleet.recordFile);
    for (let i = 0; i < 600 && counter.count() < documents / 10; i++) await sleep(100);

    // The first agent is paused locally; the cluster resume just before the outage must bring it
    // back, and reaches the others as a new version: a command on its way when the store goes.
    await first.call('POST', '/api/agent/pause');
    const before = await command(second, '/api/cluster/resume?reason=chaos+before+outage', 15_000);
    const beforeVersion = before.version;
    if (before.status !== 200 || beforeVersion === null)
      throw new Error(`the command before the outage answered ${before.status} ${before.code}`);
    const handledBefore = counter.count();
    await server.down();
    down = true;
    const downAt = Date.now();
    log(`store down (${server.fault}); version ${beforeVersion} was acknowledged just before`);
    const sampler = sampleStates(agents);

    await sleep(Math.min(1_000, p.outageMs / 4));
    const duringPromise = command(
      third,
      '/api/cluster/pause?reason=chaos+during+outage',
      p.outageMs + 60_000,
    );
    await sleep(Math.max(0, downAt + p.outageMs - Date.now()));
    const handledDuring = counter.count() - handledBefore;
    // The outage ends when the store starts coming back (it may answer before up() returns);
    // recovery is timed from the moment it answers.
    const backAt = Date.now();
    await server.up();
    down = false;
    const upAt = Date.now();
    const samples = (await sampler.stop()).filter((s) => s.at >= downAt && s.at < backAt);
    const during = await duringPromise;
    log(
      `store back after ${seconds(backAt - downAt)} (answering ${seconds(upAt - backAt)} later); the command during the outage got ${during.status} ${during.code ?? ''}`,
    );

    // Sent again after recovery, until the store takes it.
    let after: CommandAnswer | null = null;
    for (let i = 0; i < 240 && Date.now() - upAt < 120_000; i++) {
      after = await command(third, '/api/cluster/pause?reason=chaos+after+outage', 30_000);
      if (after.status === 200) break;
      await sleep(250);
    }
    const afterOkMs = Date.now() - upAt;
    let lastVersion = after?.version ?? -1;
    let converged = 0;
    for (let i = 0; i < 2_400 && Date.now() - upAt < 180_000; i++) {
      lastVersion = await db.store.readControlVersion().catch(() => lastVersion);
      const states = await Promise.all(agents.map((a) => a.state(2_000).catch(() => null)));
      converged = states.filter((s) => s?.applied_version === lastVersion && s.state === 'paused').length;
      if (converged === agents.length) break;
      await sleep(50);
    }
    const convergeMs = Date.now() - upAt;

    // Let them finish the backlog.
    await second.call('POST', '/api/cluster/resume?reason=chaos+outage+finish');
    const allHandled = await drained(db.store, 240_000);
    const ledger = readLedger(ids, fleet.records());

    // State held: during the outage each agent answered, and changed state only by applying a
    // version written before the outage.
    const unanswered = samples.filter((s) => s.state === null).length;
    const slowest = Math.max(0, ...samples.map((s) => s.ms));
    const moved = new Set<string>();
    const changes: string[] = [];
    for (const agent of agents) {
      const mine = samples.filter((s) => s.agent === agent.id && s.state !== null);
      for (let i = 0; i < mine.length; i++) {
        const s = mine[i]!;
        const bad = (s.state !== 'running' && s.state !== 'paused') || (s.version ?? 0) > beforeVersion;
        if (bad) moved.add(agent.id);
        const prev = mine[i - 1];
        if (prev && prev.state !== s.state)
          changes.push(`${agent.id} ${prev.state}→${s.state} (v${s.version})`);
      }
    }
    const held = agents.length - moved.size;
    const duringClean =
      (during.status === 503 && during.code === 'PA_STORE_UNAVAILABLE') || during.status === 200;
    const appliedBefore =
      samples.length === 0
        ? 0
        : new Set(samples.filter((s) => (s.version ?? -1) >= beforeVersion).map((s) => s.agent)).size;

    result.figures.push(
      figure('outage', backAt - downAt, seconds(backAt - downAt)),
      figure(
        'state held',
        held,
        `${held}/${agents.length}; ${samples.length} samples, ${unanswered} unanswered, slowest ${Math.round(slowest)} ms${changes.length ? `; ${changes.join(', ')}` : ''}`,
      ),
      figure(
        'command before',
        beforeVersion,
        `v${beforeVersion}: on ${appliedBefore}/${agents.length} during the outage`,
      ),
      figure(
        'command during',
        during.status,
        `${during.status} ${during.code ?? (during.version !== null ? `v${during.version}` : '')} after ${seconds(during.ms)}`,
      ),
      figure(
        'again after recovery',
        afterOkMs,
        after?.status === 200
          ? `v${after.version} after ${seconds(afterOkMs)}`
          : `${after?.status} ${after?.code}`,
      ),
      figure(
        'converged after recovery',
        convergeMs,
        `${converged}/${agents.length} in ${seconds(convergeMs)}`,
      ),
      figure(
        'handled before / during / total',
        handledDuring,
        `${handledBefore} / ${handledDuring} / ${ids.length}`,
      ),
      figure('lost', ledger.lost.length),
      figure('processed twice', ledger.twice.size),
    );
    result.notes.push(`fault: ${server.fault}`);
    if (moved.size > 0)
      result.broken.push(
        `state not held during the outage by ${[...moved].join(', ')}: ${changes.join(', ')}`,
      );
    if (unanswered > 0)
      result.broken.push(`${unanswered} state sample(s) unanswered within 2 s during the outage`);
    if (!duringClean)
      result.broken.push(
        `the command during the outage answered ${during.status} ${during.code ?? ''}, not 503 PA_STORE_UNAVAILABLE`,
      );
    if (after?.status !== 200)
      result.broken.push(
        `the command was still refused 120 s after recovery (${after?.status} ${after?.code})`,
      );
    if (converged !== agents.length)
      result.broken.push(
        `${agents.length - converged} agent(s) not on the last version ${lastVersion} ${seconds(convergeMs)} after recovery`,
      );
    if (!allHandled) result.broken.push('documents still pending or processing 240 s after the outage');
    if (ledger.lost.length > 0)
      result.broken.push(`${ledger.lost.length} document(s) lost: ${await describeLost(db, ledger.lost)}`);
    if (ledger.twice.size > 0) {
      const [id, by] = ledger.twice.entries().next().value as [string, string[]];
      result.broken.push(
        `${ledger.twice.size} document(s) processed twice though no agent died (e.g. ${id} by ${by.join(', ')})`,
      );
    }
  },
};
