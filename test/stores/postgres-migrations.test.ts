// PostgreSQL migrations: numbered, applied once under an advisory lock however many agents start
// together, in a schema that may already exist, and refused when the schema is newer than known.

import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';

import { PullingAgentError } from '../../src/errors.js';
import { SCHEMA_VERSION } from '../../src/stores/postgres/index.js';
import { MIGRATIONS } from '../../src/stores/postgres/migrations/index.js';
import { POSTGRES_HOW_TO, POSTGRES_URL, rawQuery, usePostgresSchema } from '../helpers/postgres.js';
import { unavailable } from '../helpers/targets.js';

const skip = POSTGRES_URL ? undefined : unavailable('PostgreSQL', 'PA_TEST_POSTGRES_URL', POSTGRES_HOW_TO);

describe('postgres migrations', { skip }, () => {
  const fixture = usePostgresSchema();
  const { url, store } = fixture;
  let schema: string;
  beforeEach(() => {
    schema = fixture.schema;
  });

  it('run once when ten agents start together', async () => {
    const stores = Array.from({ length: 10 }, () => store());
    await Promise.all(stores.map((s) => s.init()));
    const applied = await rawQuery<{ version: number; name: string }>(
      url,
      `SELECT version, name FROM "${schema}".schema_migrations ORDER BY version`,
    );
    assert.deepEqual(
      applied.map((m) => m.version),
      MIGRATIONS.map((m) => m.version),
    );
    assert.equal((await stores[3]!.readControl()).version, 0);
    const rows = await rawQuery(url, `SELECT * FROM "${schema}".agent_control`);
    assert.equal(rows.length, 1);
  });

  it('refuse to start against a schema newer than this agent knows', async () => {
    await store().init();
    await rawQuery(
      url,
      `INSERT INTO "${schema}".schema_migrations (version, name) VALUES ($1, 'from the future')`,
      [SCHEMA_VERSION + 1],
    );
    await assert.rejects(store().init(), (error: unknown) => {
      assert.ok(error instanceof PullingAgentError);
      assert.equal(error.code, 'PA_SCHEMA_TOO_NEW');
      assert.match(error.message, new RegExp(`${schema} is at migration ${SCHEMA_VERSION + 1}`));
      return true;
    });
  });

  it('use a schema that a DBA created beforehand', async () => {
    await rawQuery(url, `CREATE SCHEMA "${schema}"`);
    const s = store();
    await s.init();
    assert.equal(await s.readControlVersion(), 0);
  });

  it('seed a deleted control row again, and the next command goes above every version seen', async () => {
    const s = store();
    await s.init();
    await s.writeCommand({ command: 'pause', reason: null, updated_by: 't' });
    await s.writeCommand({ command: 'pause', reason: null, updated_by: 't' });
    await rawQuery(url, `DELETE FROM "${schema}".agent_control`);
    await store().init();
    assert.equal(await s.readControlVersion(), 0);
    assert.equal(
      (await s.writeCommand({ command: 'running', reason: 'repair', updated_by: 't' })).version,
      3,
    );
    await rawQuery(url, `UPDATE "${schema}".agent_control SET version = 1`);
    assert.equal((await s.writeCommand({ command: 'pause', reason: null, updated_by: 't' })).version, 4);
    // What SQLite must repair, PostgreSQL refuses in the first place.
    await assert.rejects(
      rawQuery(url, `UPDATE "${schema}".agent_control SET command = 'explode'`),
      /agent_control_command_check/,
    );
  });
});
