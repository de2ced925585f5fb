// The shared store suite on MongoDB-protocol servers: FerretDB (always in CI: no change streams,
// the seed's single-node case) and, when MONGODB_TEST_URI is set, the user's own MongoDB (a
// replica set also runs the change-stream cases for real). Every harness gets a fresh database.

import { createMongoStore } from '../../src/stores/mongodb/index.js';
import {
  dropDatabase,
  FERRETDB_HOW_TO,
  FERRETDB_URL,
  freshDatabase,
  manualBump,
  MONGODB_TEST_URI,
  policyRawWrites,
  setVersion,
} from '../helpers/mongodb.js';
import { unavailable } from '../helpers/targets.js';
import { describeStore, type StoreHarness } from './conformance.js';

function harness(url: string): () => Promise<StoreHarness> {
  return async () => {
    const database = freshDatabase();
    return {
      async open() {
        const store = createMongoStore({ url, database });
        await store.init();
        return store;
      },
      manualBump: () => manualBump(url, database),
      setVersion: (version: number) => setVersion(url, database, version),
      ...policyRawWrites(url, database),
      cleanup: () => dropDatabase(url, database),
    };
  };
}

describeStore('mongodb (FerretDB)', harness(FERRETDB_URL ?? ''), {
  skip: FERRETDB_URL ? undefined : unavailable('MongoDB (FerretDB)', 'PA_TEST_MONGODB_URL', FERRETDB_HOW_TO),
});

if (MONGODB_TEST_URI) describeStore('mongodb (MONGODB_TEST_URI)', harness(MONGODB_TEST_URI));
