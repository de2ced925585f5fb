// A store the outage scenario may take away and give back: its own throwaway PostgreSQL or
// FerretDB (chaos/servers.sh, on top of the CI scripts), or, for SQLite, an exclusive lock held on
// the database file by another connection. Never the servers other suites use.

import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import Database from 'better-sqlite3';

import type { StoreKind } from './stores.js';

const run = promisify(execFile);
const SERVERS_SH = fileURLToPath(new URL('../../chaos/servers.sh', import.meta.url));

export interface OutageServer {
  /** What `down()` does, for the report. */
  readonly fault: string;
  /** The server's URL ('' for SQLite, whose database is a file). */
  readonly url: string;
  /** Takes the store away; resolves once it is gone. */
  down(): Promise<void>;
  /** Gives it back; resolves once it answers. */
  up(): Promise<void>;
  /** Stops for good and removes its files. Idempotent, never throws. */
  stop(): Promise<void>;
}

/** A server of `kind` started for this scenario alone. */
export async function startServer(kind: Exclude<StoreKind, 'sqlite'>): Promise<OutageServer> {
  const name = kind === 'postgres' ? 'postgres' : 'ferretdb';
  const dir = mkdtempSync(join(tmpdir(), `pa-chaos-${name}-`));
  const script = (step: string) => join(dir, `${name}.${step}`);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await run('bash', [script('stop')], { timeout: 60_000 }).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  // The CI scripts take a port nothing answers on, which a client's outgoing connection may still
  // hold (bind then fails): a second or third port does it.
  for (let attempt = 1; ; attempt++) {
    try {
      await run('bash', [SERVERS_SH, name, dir], { timeout: 300_000 });
      break;
    } catch (error) {
      const why = (error as { stderr?: string }).stderr ?? String(error);
      if (attempt >= 3 || !/already in use/i.test(why)) {
        await stop();
        throw new Error(`could not start a ${name} of its own: ${why}`);
      }
      await run('bash', [script('stop')], { timeout: 60_000 }).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir);
    }
  }
  return {
    fault:
      kind === 'postgres'
        ? 'PostgreSQL stopped (pg_ctl stop -m fast) and started'
        : 'FerretDB SIGKILLed and restarted',
    url: readFileSync(script('url'), 'utf8').trim(),
    down: async () => void (await run('bash', [script('down')], { timeout: 60_000 })),
    // Same port on purpose (agents reconnect to the URL they have); retried for a while in case a
    // client's outgoing connection took the port in the meantime.
    async up() {
      for (let attempt = 1; ; attempt++) {
        try {
          await run('bash', [script('up')], { timeout: 60_000 });
          return;
        } catch (error) {
          if (attempt >= 20) throw error;
          await new Promise((resolve) => setTimeout(resolve, 1_000));
        }
      }
    },
    stop,
  };
}

/**
 * SQLite: another connection holds `BEGIN EXCLUSIVE` on the file. In WAL mode that locks out every
 * writer (claims, completions, heartbeats, commands) while readers still read: SQLite never lets
 * a lock keep WAL readers out while other connections are open.
 */
export function sqliteLock(path: string): OutageServer {
  let db: Database.Database | null = null;
  return {
    fault: 'SQLite file locked (BEGIN EXCLUSIVE from another connection)',
    url: '',
    async down() {
      const opened = new Database(path);
      // Agents write all the time; wait our turn for the lock, then keep it.
      opened.pragma('busy_timeout = 10000');
      opened.exec('BEGIN EXCLUSIVE');
      db = opened;
    },
    async up() {
      db?.exec('COMMIT');
      db?.close();
      db = null;
    },
    async stop() {
      try {
        db?.close();
      } catch {
        // already closed
      }
      db = null;
    },
  };
}
