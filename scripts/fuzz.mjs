// `npm run fuzz`: runs schemathesis against a real agent on every configured store (SQLite always;
// PostgreSQL with PA_TEST_POSTGRES_URL, MongoDB with PA_TEST_MONGODB_URL), generating requests from
// the agent's own /openapi.json. Fails on any 5xx, any answer that does not match the document,
// any request logged as failed, or an agent that died. `--quick` (CI) generates fewer examples.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';

const quick = process.argv.includes('--quick');
const examples = quick ? 20 : 200;
const ci = process.env.CI === 'true';
const schemathesis =
  process.env.SCHEMATHESIS ?? join(homedir(), '.cache/pulling-agent/schemathesis-4.32.5/bin/schemathesis');

if (!existsSync(schemathesis)) {
  const why = `fuzzing skipped: schemathesis not found at ${schemathesis} (run: source scripts/ci/schemathesis.sh)`;
  if (ci) {
    console.error(`CI=true but ${why}`);
    process.exit(1);
  }
  console.log(why);
  process.exit(0);
}

const suffix = randomBytes(4).toString('hex');
const stores = [{ name: 'sqlite', env: {}, cleanup: async () => {} }];
if (process.env.PA_TEST_POSTGRES_URL) {
  const url = process.env.PA_TEST_POSTGRES_URL;
  const schema = `fuzz_${suffix}`;
  stores.push({
    name: 'postgres',
    env: { STORE_URL: url, PG_SCHEMA: schema },
    cleanup: async () => {
      const { default: pg } = await import('pg');
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await client.end();
    },
  });
} else if (ci) missing('PostgreSQL', 'PA_TEST_POSTGRES_URL');
else console.log('fuzzing on PostgreSQL skipped: PA_TEST_POSTGRES_URL is not set');
if (process.env.PA_TEST_MONGODB_URL) {
  const url = process.env.PA_TEST_MONGODB_URL;
  const database = `fuzz_${suffix}`;
  stores.push({
    name: 'mongodb',
    env: { STORE_URL: url, MONGODB_DATABASE: database },
    cleanup: async () => {
      const { MongoClient } = await import('mongodb');
      const client = new MongoClient(url, { serverSelectionTimeoutMS: 5_000 });
      await client.db(database).dropDatabase();
      await client.close();
    },
  });
} else if (ci) missing('MongoDB', 'PA_TEST_MONGODB_URL');
else console.log('fuzzing on MongoDB skipped: PA_TEST_MONGODB_URL is not set');

function missing(store, variable) {
  console.error(`CI=true but ${variable} is not set: cannot fuzz on ${store}`);
  process.exit(1);
}

async function startAgent(store, dir) {
  const child = spawn(process.execPath, ['dist/src/cli/pulling-agent.js'], {
    env: {
      PATH: process.env.PATH,
      HOST: '127.0.0.1',
      PORT: '0',
      DATA_DIR: dir,
      CONTROL_FILE: join(dir, 'control'),
      AGENT_ID: `fuzz-${store.name}`,
      LOG_LEVEL: 'info',
      POLL_INTERVAL: '0.5',
      RATE_LIMIT_COMMANDS: '1000000',
      RATE_LIMIT_DOCUMENTS: '1000000',
      ...store.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const port = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(output)?.[1];
    if (port && /Agent \S+ started/.test(output))
      return { child, url: `http://127.0.0.1:${port}`, output: () => output };
    if (child.exitCode !== null) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  child.kill('SIGKILL');
  throw new Error(`the agent on ${store.name} did not start:\n${output}`);
}

const results = [];
for (const store of stores) {
  const dir = mkdtempSync(join(tmpdir(), 'pa-fuzz-'));
  let agent;
  try {
    agent = await startAgent(store, dir);
    console.log(`\n=== schemathesis on ${store.name} (${agent.url}, ${examples} examples per operation)`);
    const run = spawnSync(
      schemathesis,
      [
        '--config-file',
        'fuzz/schemathesis.toml',
        'run',
        `${agent.url}/openapi.json`,
        '--max-examples',
        String(examples),
        // FerretDB answers document writes slowly beside a fuzzer's thousands of documents.
        '--request-timeout',
        '60',
        // Shutting the agent down would end the run; those two are covered by the tests.
        '--exclude-path',
        '/api/cluster/shutdown',
        '--exclude-path',
        '/api/agent/shutdown',
      ],
      { stdio: 'inherit', env: { ...process.env, NO_COLOR: '1' } },
    );
    const alive = agent.child.exitCode === null && (await fetch(`${agent.url}/health`)).ok;
    const failedRequests = (agent.output().match(/\[ERROR\] Request failed/g) ?? []).length;
    results.push({ store: store.name, schemathesis: run.status, alive, failedRequests });
  } catch (error) {
    results.push({
      store: store.name,
      schemathesis: null,
      alive: false,
      failedRequests: 0,
      error: String(error),
    });
  } finally {
    agent?.child.kill('SIGTERM');
    if (agent && agent.child.exitCode === null)
      await new Promise((resolve) => agent.child.once('exit', resolve));
    await store.cleanup().catch((error) => console.error(`cleanup of ${store.name}: ${error}`));
    rmSync(dir, { recursive: true, force: true });
  }
}

console.log('\nstore      schemathesis  agent alive  requests logged as failed');
let ok = true;
for (const r of results) {
  const passed = r.schemathesis === 0 && r.alive && r.failedRequests === 0;
  ok &&= passed;
  console.log(
    `${r.store.padEnd(10)} ${String(r.schemathesis === 0 ? 'passed' : 'FAILED').padEnd(13)} ${String(r.alive).padEnd(12)} ${r.failedRequests}${r.error ? `  ${r.error}` : ''}`,
  );
}
process.exit(ok ? 0 : 1);
