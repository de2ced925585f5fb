// Concurrent commanders: many clients send pause and resume together, each command through a
// different agent than the one before. Every acknowledged command must own a version of its own;
// the versions must run 1…N without a gap or a repeat; the history must hold each exactly once;
// and every agent must end on the last version, in the state it commands.

import { ChaosFleet } from '../agents.js';
import { figure, FLEET_ENV, medianMax, type Scenario, seconds, sleep } from '../scenario.js';
import { createDatabase } from '../stores.js';

interface Sent {
  client: number;
  command: 'pause' | 'running';
  status: number;
  code: string | null;
  version: number | null;
  ms: number;
}

export const commanders: Scenario = {
  id: 'commanders',
  title: 'Concurrent commanders',
  async run({ store, params, scope, log, watch }, result) {
    const p = params.commanders;
    const db = await createDatabase(store.kind, store.sharedUrl);
    scope.defer('dropping the database', () => db.cleanup());
    const fleet = watch(new ChaosFleet({ ...db.env, ...FLEET_ENV }));
    scope.defer('stopping the agents', () => fleet.stopAll());
    const agents = await fleet.startMany('cmd-', p.agents);

    const perClient = Math.ceil(p.commands / p.clients);
    const sent: Sent[] = [];
    const started = Date.now();
    log(`${p.clients} clients × ${perClient} commands through ${agents.length} agents`);
    await Promise.all(
      Array.from({ length: p.clients }, async (_, client) => {
        for (let i = 0; i < perClient && client * perClient + i < p.commands; i++) {
          const agent = agents[(client + i) % agents.length]!;
          const command = Math.random() < 0.5 ? 'pause' : 'running';
          const path = command === 'pause' ? 'pause' : 'resume';
          try {
            const answer = await agent.call<{ version?: number; error?: string }>(
              'POST',
              `/api/cluster/${path}?updated_by=client-${client}&reason=chaos+${i}`,
              // Longer than any store's own budget for a contended write (30 s on MongoDB, then a
              // clean 503), so that the store answers, not the harness's patience.
              90_000,
            );
            sent.push({
              client,
              command,
              status: answer.status,
              code: answer.body.error ?? null,
              version: answer.status === 200 ? (answer.body.version ?? null) : null,
              ms: answer.ms,
            });
          } catch (error) {
            sent.push({ client, command, status: 0, code: (error as Error).name, version: null, ms: 0 });
          }
        }
      }),
    );
    const sendingMs = Date.now() - started;
    const acked = sent.filter((s) => s.status === 200 && s.version !== null);
    const last = acked.reduce((a, b) => ((b.version ?? 0) > (a?.version ?? -1) ? b : a), acked[0]);
    log(
      `${acked.length}/${sent.length} acknowledged in ${seconds(sendingMs)}; last version ${last?.version}`,
    );

    // Every agent on the last version, in the state that version commands.
    const convergeStarted = Date.now();
    let converged = 0;
    const wantState = last?.command === 'pause' ? 'paused' : 'running';
    for (let i = 0; i < 600; i++) {
      const states = await Promise.all(agents.map((a) => a.state().catch(() => null)));
      converged = states.filter(
        (s) => s !== null && s.applied_version === last?.version && s.state === wantState,
      ).length;
      if (converged === agents.length) break;
      await sleep(50);
    }
    const convergeMs = Date.now() - convergeStarted;

    // The history, straight from the store.
    const history = await db.store.listHistory(p.commands + 100);
    const versions = history.map((h) => h.version).sort((a, b) => a - b);
    const distinct = new Set(versions);
    const max = versions.length > 0 ? versions[versions.length - 1]! : 0;
    const contiguous = distinct.size === versions.length && versions.every((v, i) => v === i + 1);
    const ackedVersions = acked.map((a) => a.version!);
    const ackedUnique = new Set(ackedVersions).size === ackedVersions.length;
    const byVersion = new Map(history.map((h) => [h.version, h]));
    const missing = acked.filter((a) => byVersion.get(a.version!)?.command !== a.command);
    const failures = sent.filter((s) => s.status !== 200);
    const byCode = new Map<string, number>();
    for (const f of failures)
      byCode.set(`${f.status} ${f.code}`, (byCode.get(`${f.status} ${f.code}`) ?? 0) + 1);
    const latency = medianMax(acked.map((a) => a.ms));

    result.figures.push(
      figure('acknowledged', acked.length, `${acked.length}/${p.commands}`),
      figure(
        'refused',
        failures.length,
        failures.length === 0 ? '0' : [...byCode].map(([c, n]) => `${n}× ${c}`).join(', '),
      ),
      figure(
        'versions contiguous & unique',
        contiguous && ackedUnique,
        contiguous && ackedUnique ? `yes (1…${max})` : 'NO',
      ),
      figure(
        'history complete',
        missing.length === 0 && versions.length === acked.length,
        `${versions.length} entries, ${missing.length} acknowledged missing`,
      ),
      figure('agents on last version', converged, `${converged}/${agents.length} in ${seconds(convergeMs)}`),
      figure(
        'commands/s',
        Math.round(sent.length / (sendingMs / 1000)),
        (sent.length / (sendingMs / 1000)).toFixed(0),
      ),
      figure('latency (median / max)', latency.max, latency.text),
    );
    if (!contiguous)
      result.broken.push(
        `history versions are not exactly 1…${max} once each (${versions.length} entries, ${distinct.size} distinct)`,
      );
    if (!ackedUnique) result.broken.push('two acknowledged commands were given the same version');
    if (missing.length > 0)
      result.broken.push(
        `${missing.length} acknowledged command(s) missing from the history (e.g. version ${missing[0]!.version})`,
      );
    if (versions.length !== acked.length)
      result.broken.push(
        `history holds ${versions.length} entries for ${acked.length} acknowledged commands`,
      );
    if (converged !== agents.length)
      result.broken.push(
        `${agents.length - converged} agent(s) not on the last version ${last?.version} (${wantState}) after ${seconds(convergeMs)}`,
      );
    const unclean = failures.filter((f) => !(f.status === 503 && f.code === 'PA_STORE_UNAVAILABLE'));
    if (unclean.length > 0)
      result.broken.push(
        `${unclean.length} command(s) failed other than with 503 PA_STORE_UNAVAILABLE (${[...byCode.keys()].join(', ')})`,
      );
  },
};
