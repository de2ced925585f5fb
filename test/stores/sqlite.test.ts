import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import Database from 'better-sqlite3';
import { pino } from 'pino';

import { ControlWatcher } from '../../src/control/watcher.js';
import { CORRECT_FROM_MS } from '../../src/stores/sqlite/clock.js';
import { CLAIM_DUE, DUE_OF_QUEUE } from '../../src/stores/sqlite/documents.js';
import { createSqliteStore } from '../../src/stores/sqlite/index.js';
import type { StoreReplacement } from '../../src/stores/types.js';
import { waitFor } from '../helpers/wait.js';
import { describeStore } from './conformance.js';

describeStore('sqlite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pa-sqlite-'));
  const path = join(dir, 'store.db');
  return {
    async open() {
      const store = createSqliteStore({ path });
      await store.init();
      return store;
    },
    async manualBump() {
      const db = new Database(path);
      db.prepare(`UPDATE agent_control SET version = version + 1 WHERE id = 'global_control'`).run();
      db.close();
    },
    async setVersion(version: number) {
      const db = new Database(path);
      db.prepare(`UPDATE agent_control SET version = ? WHERE id = 'global_control'`).run(BigInt(version));
      db.close();
    },
    async setRawPolicy(version: number, body: Record<string, unknown>) {
      const db = new Database(path);
      db.prepare(
        `INSERT INTO fleet_policy (id, version, timestamp, body)
         VALUES ('fleet_policy', ?, strftime('%Y-%m-%dT%H:%M:%fZ','now'), ?)
         ON CONFLICT (id) DO UPDATE SET version = excluded.version, timestamp = excluded.timestamp,
           body = excluded.body`,
      ).run(BigInt(version), JSON.stringify(body));
      db.close();
    },
    async addRawPolicyHistory(entry: Record<string, unknown>) {
      const db = new Database(path);
      db.prepare(
        `INSERT INTO fleet_policy_history (version, timestamp, command, queue, updated_by)
         VALUES (?, ?, ?, ?, ?)`,
      ).run(entry.version, entry.timestamp, entry.command, entry.queue, entry.updated_by);
      db.close();
    },
    async cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe('sqlite claims', () => {
  it('walk their due index in order: no sort of every pending row per claim', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pa-sqlite-plan-'));
    try {
      const path = join(dir, 'plan.db');
      const store = createSqliteStore({ path });
      await store.init();
      await store.enqueueDocuments(
        Array.from({ length: 500 }, (_, n) => ({ payload: n, queue: n % 2 ? 'a' : 'b' })),
      );
      await store.close();
      const db = new Database(path);
      db.function('pa_now_ms', { deterministic: false }, () => Date.now());
      try {
        for (const [sql, index, params] of [
          [CLAIM_DUE, 'documents_due', ['agent', 'token', 60_000, 10]],
          [DUE_OF_QUEUE, 'documents_queue_due', ['a', 10]],
        ] as const) {
          const plan = (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[])
            .map((r) => r.detail)
            .join(' | ');
          assert.match(plan, new RegExp(`INDEX ${index}\\b`), plan);
          // Without the index named, the planner took documents_lease and sorted every pending row.
          assert.doesNotMatch(plan, /TEMP B-TREE/, plan);
        }
      } finally {
        db.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('sqlite file watch', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pa-sqlite-watch-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('announces documents another connection inserted, with their count', async () => {
    const path = join(dir, 'count.db');
    const watching = createSqliteStore({ path });
    const writer = createSqliteStore({ path });
    await watching.init();
    await writer.init();
    await writer.insertDocuments(['before the watch']);
    const announced: ({ count: number } | undefined)[] = [];
    const watch = await watching.watchControl({
      onWake: () => undefined,
      onDocuments: (a) => announced.push(a),
      onError: (error) => assert.fail(error),
    });
    const total = () => announced.reduce((sum, a) => sum + (a?.count ?? 0), 0);
    try {
      await writer.insertDocuments([1, 2, 3, 4, 5, 6, 7]);
      await waitFor(() => total() >= 7, { what: 'onDocuments counts summing to 7' });
      await writer.insertDocuments([8, 9]);
      await waitFor(() => total() >= 9, { what: 'onDocuments counts summing to 9' });
      // Other commits (a command, a heartbeat) wake the watch but announce no documents.
      await writer.writeCommand({ command: 'pause', reason: null, updated_by: 'test' });
      await writer.insertDocuments([10]);
      await waitFor(() => total() >= 10, { what: 'onDocuments counts summing to 10' });
      assert.equal(total(), 10, 'the document inserted before the watch is not announced');
      assert.ok(announced.every((a) => a !== undefined && a.count > 0));
    } finally {
      await watch.close();
      await watching.close();
      await writer.close();
    }
  });
});

describe('sqlite: a command written by hand, the file replaced, the clock', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pa-sqlite-quiet-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** The seed's recipe in the sqlite3 shell: version + 1 and a command, from a raw connection. */
  function writeByHand(path: string, command = 'pause'): void {
    const raw = new Database(path);
    raw
      .prepare(
        `UPDATE agent_control SET version = version + 1, command = ?, updated_by = 'dba' WHERE id = 'global_control'`,
      )
      .run(command);
    raw.close();
  }

  it('sees a command written by hand even when no file event reaches the watch (data_version)', async (t) => {
    // The database is reached through a symbolic link in another directory: SQLite writes the
    // -wal beside the real file, so the watched directory sees no event at all for this commit.
    // Only the data_version poll can notice it.
    mkdirSync(join(dir, 'real'));
    mkdirSync(join(dir, 'linked'));
    const real = join(dir, 'real', 'store.db');
    const linked = join(dir, 'linked', 'store.db');
    const setup = createSqliteStore({ path: real });
    await setup.init();
    await setup.close();
    symlinkSync(real, linked);
    const watching = createSqliteStore({ path: linked });
    await watching.init();
    const seen: number[] = [];
    const watch = await watching.watchControl({
      onWake: () => void watching.readControlVersion().then((v) => seen.push(v)),
      onError: (error) => assert.fail(error),
    });
    try {
      const started = performance.now();
      writeByHand(real);
      await waitFor(() => seen.includes(1), { what: 'a wake-up that reads version 1' });
      const elapsed = performance.now() - started;
      assert.equal((await watching.readControl()).command, 'pause');
      // Reported, not asserted (a shared machine): the poll's interval is 25 ms.
      t.diagnostic(`hand-written command seen after ${elapsed.toFixed(0)} ms without a file event`);
    } finally {
      await watch.close();
      await watching.close();
    }
  });

  it('a control watcher applies a hand-written command at once, in file-events mode', async () => {
    const path = join(dir, 'hand.db');
    const store = createSqliteStore({ path });
    await store.init();
    const applied: string[] = [];
    const watcher = new ControlWatcher({
      store,
      logger: pino({ level: 'silent' }),
      eventDriven: true,
      // Far beyond the wait below: only the watch can deliver the command in time.
      pollingIntervalMs: 600_000,
      reconcileIntervalMs: 600_000,
      onState: (state) => void applied.push(`${state.version}:${state.command}`),
    });
    try {
      await watcher.start();
      assert.equal(watcher.status.watchMode, 'file_events');
      for (const [i, command] of (['pause', 'running', 'pause'] as const).entries()) {
        writeByHand(path, command);
        await waitFor(() => applied.includes(`${i + 1}:${command}`), {
          what: `version ${i + 1} (${command}) applied`,
          timeoutMs: 10_000,
        });
      }
    } finally {
      await watcher.stop();
      await store.close();
    }
  });

  it('follows the file at its path when it is replaced, and reads the new control state afresh', async () => {
    const data = join(dir, 'data');
    const path = join(data, 'pa.db');
    const old = createSqliteStore({ path });
    await old.init();
    const changes: StoreReplacement[] = [];
    const unsubscribe = old.onReplaced?.((c) => changes.push(c));
    assert.ok(unsubscribe, 'the SQLite store reports replacements');
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const applied: string[] = [];
    const watcher = new ControlWatcher({
      store: old,
      logger,
      eventDriven: true,
      pollingIntervalMs: 600_000,
      reconcileIntervalMs: 600_000,
      onState: (state) => void applied.push(`${state.version}:${state.command}`),
    });
    await old.writeCommand({ command: 'pause', reason: 'before the deploy', updated_by: 'test' });
    await old.writeCommand({ command: 'pause', reason: 'still', updated_by: 'test' });
    await watcher.start();
    assert.deepEqual(applied, ['2:pause']);
    // A deploy script recreates the data directory; a new agent makes a fresh store there.
    rmSync(data, { recursive: true, force: true });
    const fresh = createSqliteStore({ path });
    await fresh.init();
    try {
      await waitFor(() => applied.includes('0:running'), {
        what: "the fresh file's version 0 (running) applied, below the old 2",
      });
      assert.deepEqual(
        changes.map((c) => c.kind),
        ['lost', 'reopened'],
      );
      assert.ok(lines.some((l) => l.includes('Store reopened: the file at') && l.includes('afresh')));
      // The old handle writes into the file now at the path, and a new command there is followed.
      await old.insertDocuments(['after the swap']);
      assert.equal((await fresh.countDocuments()).pending, 1);
      await fresh.writeCommand({ command: 'pause', reason: 'on the new file', updated_by: 'test' });
      await waitFor(() => applied.includes('1:pause'), { what: 'version 1 of the new file applied' });

      // The directory unreachable, then back: calls fail, naming it, and the file is taken up again.
      const away = join(dir, 'data-away');
      renameSync(data, away);
      await waitFor(() => changes.length >= 3, { what: 'the file reported lost' });
      await assert.rejects(old.readControlVersion(), /is gone/);
      assert.ok(!existsSync(data), 'no store of its own was created at the path meanwhile');
      renameSync(away, data);
      await waitFor(() => changes.at(-1)?.kind === 'reopened' && changes.length === 4, {
        what: 'the file reopened once back',
      });
      assert.equal(await old.readControlVersion(), 1);
    } finally {
      unsubscribe();
      await watcher.stop();
      await old.close();
      await fresh.close();
    }
  });

  it("stamps by the file system's clock, not a process clock that is off, and reads it", async () => {
    const path = join(dir, 'clock.db');
    const store = createSqliteStore({ path });
    await store.init();
    try {
      const clock = await store.readClock();
      const probe = statSync(`${path}-clock`).mtimeMs;
      // This process's clock is right here: the store's is within the probe's granularity of it.
      assert.ok(Math.abs(clock.getTime() - Date.now()) < CORRECT_FROM_MS, clock.toISOString());
      assert.ok(Math.abs(probe - Date.now()) < 5_000);
      // The registry passes the agent's measured offset through.
      await store.upsertAgent({
        agent_id: 'a',
        instance_id: 'a/1',
        host: 'h',
        software_version: '0',
        state: 'running',
        applied_version: 0,
        applied_at: null,
        batch_in_flight: false,
        watch_mode: 'polling',
        started_at: new Date(),
        counters: {},
        clock_offset_ms: 120_000,
      });
      assert.equal((await store.listAgents())[0]?.clock_offset_ms, 120_000);
    } finally {
      await store.close();
    }
  });
});
