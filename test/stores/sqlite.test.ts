import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import Database from 'better-sqlite3';

import { createSqliteStore } from '../../src/stores/sqlite/index.js';
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
    async cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
