import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import Database from 'better-sqlite3';

import { createSqliteStore } from '../../src/stores/sqlite/index.js';
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
