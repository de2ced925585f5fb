// The shared store suite on a real PostgreSQL server: every harness gets a schema of its own on
// the server at PA_TEST_POSTGRES_URL and drops it afterwards.

import { createPostgresStore } from '../../src/stores/postgres/index.js';
import {
  dropSchema,
  freshSchema,
  policyRawWrites,
  POSTGRES_HOW_TO,
  POSTGRES_URL,
  rawQuery,
} from '../helpers/postgres.js';
import { unavailable } from '../helpers/targets.js';
import { describeStore } from './conformance.js';

const skip = POSTGRES_URL ? undefined : unavailable('PostgreSQL', 'PA_TEST_POSTGRES_URL', POSTGRES_HOW_TO);

describeStore(
  'postgres',
  async () => {
    const url = POSTGRES_URL as string;
    const schema = freshSchema();
    return {
      async open() {
        const store = createPostgresStore({ url, schema });
        await store.init();
        return store;
      },
      async manualBump() {
        await rawQuery(
          url,
          `UPDATE "${schema}".agent_control SET version = version + 1 WHERE id = 'global_control'`,
        );
      },
      async setVersion(version: number) {
        await rawQuery(
          url,
          `UPDATE "${schema}".agent_control SET version = ${BigInt(version)} WHERE id = 'global_control'`,
        );
      },
      ...policyRawWrites(url, schema),
      async cleanup() {
        await dropSchema(url, schema);
      },
    };
  },
  { skip },
);
