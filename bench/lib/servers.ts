// The servers a run measures: the PostgreSQL and MongoDB (FerretDB) named by PA_TEST_POSTGRES_URL and
// PA_TEST_MONGODB_URL, or throwaway ones started here with the CI scripts when they are not set
// (PostgreSQL then gets max_connections = 3000 and pg_stat_statements, which the 500-agent fleet and
// exact query counts need), and a Redis for BullMQ started from Debian's redis-server binary on a
// free 127.0.0.1 port without persistence. Under CI=true a missing server is an error. Everything
// started here is stopped by stop(), also after a failure.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { MongoClient } from 'mongodb';
import pg from 'pg';

import { sleep } from './stats.js';

export const ROOT = new URL('../../../', import.meta.url).pathname;
const CI = process.env.CI === 'true';

export interface PostgresServer {
  url: string;
  version: string;
  /** Started by this run (so configured for it), or given by PA_TEST_POSTGRES_URL. */
  own: boolean;
  maxConnections: number;
  /** A superuser connection (own server only), for pg_stat_statements. */
  admin: pg.ClientConfig | null;
  statStatements: boolean;
}

export interface MongoServer {
  url: string;
  version: string;
  own: boolean;
}

export interface RedisServer {
  host: string;
  port: number;
  version: string;
}

export interface Servers {
  postgres: PostgresServer | null;
  mongodb: MongoServer | null;
  redis: RedisServer | null;
  /** Why a server is missing, and which ones were started here. */
  notes: string[];
  stop(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** Runs a bash snippet from the repository root; resolves with its KEY=value lines. */
function bash(script: string, env: Record<string, string>): Record<string, string> {
  const out = execFileSync('bash', ['-c', script], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 300_000,
  });
  return Object.fromEntries(
    out
      .split('\n')
      .filter((line) => line.startsWith('PA_'))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
}

const START_POSTGRES = `set -euo pipefail
source scripts/ci/postgres.sh >&2
dir="$CI_TMP/postgres"
bin=$(pa_pg_bindir)
as_pg=""
if [ "$(id -u)" = 0 ]; then as_pg="runuser -u postgres --"; fi
$as_pg tee -a "$dir/data/postgresql.conf" >/dev/null <<CONF
max_connections = 3000
shared_preload_libraries = 'pg_stat_statements'
CONF
(cd / && $as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 restart >/dev/null)
echo "PA_URL=$PA_TEST_POSTGRES_URL"
echo "PA_SOCKET=$dir"
echo "PA_PORT=$(sed -n 's/^port = //p' "$dir/data/postgresql.conf" | tail -n 1)"`;

const START_FERRETDB = `set -euo pipefail
source scripts/ci/ferretdb.sh >&2
echo "PA_URL=$PA_TEST_MONGODB_URL"`;

async function describePostgres(
  url: string,
  own: boolean,
  admin: pg.ClientConfig | null,
): Promise<PostgresServer> {
  const client = new pg.Client(admin ?? { connectionString: url });
  await client.connect();
  try {
    const setting = async (name: string) =>
      (await client.query<{ v: string }>('SELECT current_setting($1) AS v', [name])).rows[0]?.v ?? '?';
    const version = await setting('server_version');
    const max = Number(await setting('max_connections'));
    let statStatements = false;
    if (admin) {
      await client.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
      statStatements = true;
    }
    return { url, version, own, maxConnections: max, admin, statStatements };
  } finally {
    await client.end();
  }
}

async function describeMongo(url: string, own: boolean): Promise<MongoServer> {
  const client = new MongoClient(url, { serverSelectionTimeoutMS: 5_000, maxPoolSize: 1 });
  try {
    const info = await client.db('admin').command({ buildInfo: 1 });
    const ferret = (info.ferretdbVersion as string | undefined) ?? null;
    return {
      url,
      version: ferret ? `FerretDB ${ferret} (MongoDB ${info.version})` : `MongoDB ${info.version}`,
      own,
    };
  } finally {
    await client.close();
  }
}

function redisBinary(): string | null {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/bin', '/usr/sbin'])) {
    if (dir && existsSync(join(dir, 'redis-server'))) return join(dir, 'redis-server');
  }
  return null;
}

async function startRedis(dir: string): Promise<{ server: RedisServer; child: ChildProcess }> {
  const binary = redisBinary();
  if (!binary)
    throw new Error('redis-server is not installed (apt-get install redis-server, or scripts/ci/redis.sh)');
  const port = await freePort();
  const child = spawn(
    binary,
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      '--daemonize',
      'no',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  for (let i = 0; i < 100 && !/Ready to accept connections/.test(output); i++) {
    if (child.exitCode !== null) throw new Error(`redis-server exited: ${output}`);
    await sleep(50);
  }
  if (!/Ready to accept connections/.test(output)) throw new Error(`redis-server did not start: ${output}`);
  const version = /v=(\S+)/.exec(execFileSync(binary, ['--version'], { encoding: 'utf8' }))?.[1] ?? '?';
  return { server: { host: '127.0.0.1', port, version: `Redis ${version}` }, child };
}

export async function startServers(options: {
  peers: boolean;
  /** false: no MongoDB/FerretDB at all (no scenario of the run uses it); default true. */
  mongodb?: boolean;
  log(text: string): void;
}): Promise<Servers> {
  const notes: string[] = [];
  const tmp = mkdtempSync(join(tmpdir(), 'pa-bench-servers-'));
  let redisChild: ChildProcess | null = null;
  const servers: Servers = {
    postgres: null,
    mongodb: null,
    redis: null,
    notes,
    async stop() {
      if (redisChild && redisChild.exitCode === null) {
        redisChild.kill('SIGTERM');
        await new Promise((resolve) => redisChild?.once('exit', resolve));
      }
      for (const file of readdirSync(tmp).filter((f) => f.endsWith('.stop'))) {
        try {
          execFileSync('bash', [join(tmp, file)], { stdio: 'ignore', timeout: 60_000 });
        } catch {
          // best effort: the next stop still runs
        }
      }
      rmSync(tmp, { recursive: true, force: true });
    },
  };
  try {
    const pgUrl = process.env.PA_TEST_POSTGRES_URL;
    if (pgUrl) {
      servers.postgres = await describePostgres(pgUrl, false, null);
      notes.push(`PostgreSQL: PA_TEST_POSTGRES_URL (max_connections ${servers.postgres.maxConnections})`);
    } else if (CI) {
      throw new Error('CI=true but PA_TEST_POSTGRES_URL is not set (.ci/run sources scripts/ci/postgres.sh)');
    } else {
      options.log(
        'PA_TEST_POSTGRES_URL is not set: starting a throwaway PostgreSQL (scripts/ci/postgres.sh)',
      );
      const out = bash(START_POSTGRES, { CI_TMP: tmp });
      const admin = {
        host: out.PA_SOCKET,
        port: Number(out.PA_PORT),
        user: 'postgres',
        database: 'postgres',
      };
      servers.postgres = await describePostgres(out.PA_URL as string, true, admin);
      notes.push(
        'PostgreSQL: started by the benchmark (scripts/ci/postgres.sh, then max_connections = 3000 and pg_stat_statements)',
      );
    }
    const mongoUrl = process.env.PA_TEST_MONGODB_URL;
    if (options.mongodb === false) {
      notes.push('MongoDB: not needed by the scenarios or stores chosen');
    } else if (mongoUrl) {
      servers.mongodb = await describeMongo(mongoUrl, false);
      notes.push('MongoDB: PA_TEST_MONGODB_URL');
    } else if (CI) {
      throw new Error('CI=true but PA_TEST_MONGODB_URL is not set (.ci/run sources scripts/ci/ferretdb.sh)');
    } else {
      options.log('PA_TEST_MONGODB_URL is not set: starting a throwaway FerretDB (scripts/ci/ferretdb.sh)');
      const out = bash(START_FERRETDB, { CI_TMP: tmp });
      servers.mongodb = await describeMongo(out.PA_URL as string, true);
      notes.push('MongoDB: FerretDB started by the benchmark (scripts/ci/ferretdb.sh)');
    }
    if (options.peers) {
      try {
        const redis = await startRedis(tmp);
        servers.redis = redis.server;
        redisChild = redis.child;
        notes.push(`Redis: started by the benchmark on 127.0.0.1:${redis.server.port}, no persistence`);
      } catch (error) {
        if (CI) throw error;
        notes.push(`BullMQ skipped: ${(error as Error).message}`);
      }
    }
  } catch (error) {
    await servers.stop();
    throw error;
  }
  return servers;
}
