// The way agent processes reach PostgreSQL: environment → loadConfig → openStore (which loads the
// pg driver only now), as the postgres test target hands it to the store-agnostic tests.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { loadConfig } from '../../src/config.js';
import { openStore } from '../../src/stores/index.js';
import { dropSchema, freshSchema, POSTGRES_URL, rawQuery } from '../helpers/postgres.js';
import { postgresTarget } from '../helpers/targets.js';

describe('postgres target and store selection', { skip: postgresTarget.skip }, () => {
  it('opens the store an agent process would, in the schema named by PG_SCHEMA', async () => {
    const target = await postgresTarget.create();
    try {
      assert.equal(target.env.STORE_URL, POSTGRES_URL);
      const store = await target.open();
      try {
        assert.equal(store.kind, 'postgres');
        assert.ok(store.description.includes(`(schema ${target.env.PG_SCHEMA})`));
        if (new URL(POSTGRES_URL as string).password) assert.match(store.description, /:\*\*\*@/);
        await store.writeCommand({ command: 'pause', reason: 'target', updated_by: 'test' });
      } finally {
        await store.close();
      }
      const rows = await rawQuery(
        POSTGRES_URL as string,
        `SELECT version FROM "${target.env.PG_SCHEMA}".agent_control`,
      );
      assert.equal(Number(rows[0]?.version), 1);
    } finally {
      await target.cleanup();
    }
    const left = await rawQuery(POSTGRES_URL as string, 'SELECT 1 FROM pg_namespace WHERE nspname = $1', [
      target.env.PG_SCHEMA,
    ]);
    assert.equal(left.length, 0);
  });

  it('takes DATABASE_URL as an alias of STORE_URL, postgresql:// too', async () => {
    const schema = freshSchema();
    const url = (POSTGRES_URL as string).replace(/^postgres:/, 'postgresql:');
    const config = loadConfig({ DATABASE_URL: url, PG_SCHEMA: schema });
    assert.deepEqual(config.store, { kind: 'postgres', url, schema });
    const store = await openStore(config.store);
    try {
      await store.init();
      assert.equal(await store.readControlVersion(), 0);
    } finally {
      await store.close();
      await dropSchema(POSTGRES_URL as string, schema);
    }
  });
});
