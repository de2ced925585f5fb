// `npm run chaos` (full form) and `npm run chaos -- --quick` (CI): every scenario on every
// configured store, each with real agent processes and its own database, then the table on the
// terminal, chaos/results/<timestamp>.json and chaos/results/latest.md. Exits 1 when a promise
// broke (and says which), 2 when the harness itself failed.
//   --only=kills,outage   run these scenarios only      --stores=sqlite,postgres   these stores only

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { type ChaosFleet } from './agents.js';
import { renderMarkdown, renderTerminal, type RunReport } from './report.js';
import { FULL, QUICK, type Scenario, type ScenarioResult, Scope } from './scenario.js';
import { clock } from './scenarios/clock.js';
import { commanders } from './scenarios/commanders.js';
import { frozen } from './scenarios/frozen.js';
import { kills } from './scenarios/kills.js';
import { outage } from './scenarios/outage.js';
import { poison } from './scenarios/poison.js';
import { replaced } from './scenarios/replaced.js';
import { shutdown } from './scenarios/shutdown.js';
import { steady } from './scenarios/steady.js';
import { configuredStores, type StoreKind } from './stores.js';

const SCENARIOS: Scenario[] = [outage, kills, commanders, shutdown, steady, poison, frozen, clock, replaced];
const RESULTS = fileURLToPath(new URL('../../chaos/results/', import.meta.url));
const DIST_SRC = fileURLToPath(new URL('../src/', import.meta.url));
const fleets = new Set<ChaosFleet>();

const say = (line: string) => process.stderr.write(`${line}\n`);

/** The commit, marked `+changes` when src/ differs from it (the agents run the working tree). */
function commit(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { encoding: 'utf8' }).trim();
    return dirty ? `${head}+changes` : head;
  } catch {
    return 'unknown';
  }
}

/** A fingerprint of the compiled agent: a rebuild during a run means results from two versions. */
function agentBuild(dir = DIST_SRC): string {
  const hash = createHash('sha1');
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true }).sort((a, b) =>
      a.name.localeCompare(b.name),
    )) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) walk(path);
      else hash.update(`${path} ${statSync(path).size} ${statSync(path).mtimeMs}\n`);
    }
  };
  walk(dir);
  return hash.digest('hex');
}

async function runOne(
  scenario: Scenario,
  ctxStore: ReturnType<typeof configuredStores>['stores'][number],
  params: typeof FULL,
) {
  const result: ScenarioResult = {
    scenario: scenario.id,
    store: ctxStore.label,
    figures: [],
    broken: [],
    notes: [],
    seconds: 0,
  };
  const started = Date.now();
  const scope = new Scope();
  const mine: ChaosFleet[] = [];
  const log = (message: string) =>
    say(
      `[chaos ${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${scenario.id} on ${ctxStore.label}: ${message}`,
    );
  log('start');
  try {
    await scenario.run(
      {
        store: ctxStore,
        params,
        scope,
        log,
        watch: (fleet) => {
          fleets.add(fleet);
          mine.push(fleet);
          return fleet;
        },
      },
      result,
    );
  } catch (error) {
    // The harness could not finish the scenario: that proves nothing either way, so it is
    // reported as broken (a run that cannot show its figures must not pass).
    const message = error instanceof Error ? error.message : String(error);
    result.broken.push(`the scenario could not finish: ${message}`);
    log(`FAILED: ${error instanceof Error ? (error.stack ?? message) : message}`);
  } finally {
    await scope.close();
    for (const fleet of mine) fleets.delete(fleet);
  }
  const crashes = mine.flatMap((f) => f.crashes);
  result.figures.unshift({ label: 'crashes', text: String(crashes.length), value: crashes.length });
  for (const crash of crashes) {
    result.broken.push(`${crash.agent} crashed (exit ${crash.code ?? crash.signal})`);
    say(
      `--- ${crash.agent} crashed (exit ${crash.code ?? crash.signal}); its last lines:\n${crash.tail}\n---`,
    );
  }
  for (const problem of scope.problems) result.notes.push(`clean-up: ${problem}`);
  result.seconds = (Date.now() - started) / 1000;
  log(
    `${result.broken.length === 0 ? 'kept' : `BROKEN: ${result.broken.join('; ')}`} (${result.seconds.toFixed(0)} s)`,
  );
  return result;
}

/** Whether `scenario` runs on `kind`: a store it means something on, and in the quick set unasked. */
function runsOn(scenario: Scenario, kind: StoreKind, quickSet: boolean): boolean {
  if (scenario.stores && !scenario.stores.includes(kind)) return false;
  return !quickSet || !scenario.quickStores || scenario.quickStores.includes(kind);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { quick: { type: 'boolean' }, only: { type: 'string' }, stores: { type: 'string' } },
    strict: true,
  });
  const params = values.quick ? QUICK : FULL;
  const only = values.only?.split(',');
  const scenarios = SCENARIOS.filter((s) => !only || only.includes(s.id));
  const configured = configuredStores();
  const wanted = values.stores?.split(',');
  const stores = configured.stores.filter((s) => !wanted || wanted.includes(s.kind));
  if (scenarios.length === 0 || stores.length === 0) {
    say(
      `nothing to run: scenarios ${SCENARIOS.map((s) => s.id).join(', ')}; stores ${configured.stores.map((s) => s.kind).join(', ')}`,
    );
    return 2;
  }
  for (const s of configured.skipped) say(s);
  const startedAt = new Date();
  const build = agentBuild();
  const revision = commit();
  say(
    `chaos (${params.mode}): ${scenarios.map((s) => s.id).join(', ')} on ${stores.map((s) => s.label).join(', ')}`,
  );
  for (const s of scenarios)
    for (const store of stores)
      if (runsOn(s, store.kind, false) && !runsOn(s, store.kind, params.mode === 'quick' && !only))
        say(`${s.id} on ${store.label}: not in the quick set (cannot pass yet); run it with --only=${s.id}`);

  const results: ScenarioResult[] = [];
  for (const scenario of scenarios)
    for (const store of stores)
      if (runsOn(scenario, store.kind, params.mode === 'quick' && !only))
        results.push(await runOne(scenario, store, params));

  const rebuilt = agentBuild() !== build;
  if (rebuilt)
    say('warning: dist/src was rebuilt during the run; agents started after that ran another build');
  const report: RunReport = {
    mode: params.mode,
    startedAt: startedAt.toISOString(),
    seconds: (Date.now() - startedAt.getTime()) / 1000,
    commit: revision,
    warnings: rebuilt ? ['dist/src was rebuilt during the run: later agents ran a different build'] : [],
    machine: `${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
    stores: stores.map((s) => s.label),
    skipped: configured.skipped,
    scenarios: scenarios.map(({ id, title }) => ({
      id,
      title,
      n: SCENARIOS.findIndex((s) => s.id === id) + 1,
    })),
    results,
  };
  process.stdout.write(renderTerminal(report));
  mkdirSync(RESULTS, { recursive: true });
  const stamp = report.startedAt.replaceAll(':', '-').replace(/\.\d+Z$/, 'Z');
  writeFileSync(
    join(RESULTS, `${stamp}-${params.mode}.json`),
    JSON.stringify({ params, ...report }, null, 2),
  );
  writeFileSync(
    join(RESULTS, params.mode === 'full' ? 'latest.md' : 'latest-quick.md'),
    renderMarkdown(report),
  );
  say(`took ${Math.round(report.seconds)} s; results in chaos/results/`);
  return results.some((r) => r.broken.length > 0) ? 1 : 0;
}

// Nothing the suite started may outlive it: Ctrl-C releases every scope (servers, databases).
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    say(`${signal}: stopping every agent and server the chaos run started`);
    for (const fleet of fleets) fleet.killAllNow();
    void Promise.all([...Scope.open].map((s) => s.close())).finally(() => process.exit(130));
  });
}
process.on('exit', () => {
  for (const fleet of fleets) fleet.killAllNow();
});

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    say(`chaos: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    for (const fleet of fleets) fleet.killAllNow();
    void Promise.all([...Scope.open].map((s) => s.close())).finally(() => process.exit(2));
  },
);
