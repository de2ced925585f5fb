// The test MongoDB servers: FerretDB at PA_TEST_MONGODB_URL (started by scripts/ci/ferretdb.sh or
// scripts/dev/ferretdb.sh) and, when a user sets it, a real MongoDB at MONGODB_TEST_URI. Each test
// gets a database of its own, dropped afterwards; raw driver access is for set-up and assertions
// that do not go through the store.

import { randomBytes } from 'node:crypto';

import { type Db, MongoClient } from 'mongodb';

export const FERRETDB_URL = process.env.PA_TEST_MONGODB_URL;
export const MONGODB_TEST_URI = process.env.MONGODB_TEST_URI;
export const FERRETDB_HOW_TO =
  'start FerretDB with `bash scripts/dev/ferretdb.sh` and export the line it prints';

/** A database name no other test uses. */
export function freshDatabase(): string {
  return `pa_test_${randomBytes(6).toString('hex')}`;
}

/** Runs `use` with a client of its own, closed before this resolves. */
export async function withDb<T>(url: string, database: string, use: (db: Db) => Promise<T>): Promise<T> {
  const client = new MongoClient(url, { serverSelectionTimeoutMS: 5_000, maxPoolSize: 2 });
  try {
    return await use(client.db(database));
  } finally {
    await client.close();
  }
}

export async function dropDatabase(url: string, database: string): Promise<void> {
  await withDb(url, database, (db) => db.dropDatabase());
}

/** The seed's manual wake-up, verbatim: `db.agent_control.updateOne({_id:"global_control"}, {$inc:{version:1}})`. */
/** Sets the control version by hand (a huge one, say), as an operator with mongosh could. */
export async function setVersion(url: string, database: string, version: number): Promise<void> {
  await withDb(url, database, async (db) => {
    await db
      .collection<{ _id: string }>('agent_control')
      .updateOne({ _id: 'global_control' }, { $set: { version } });
  });
}

export async function manualBump(url: string, database: string): Promise<void> {
  await withDb(url, database, async (db) => {
    await db
      .collection<{ _id: string }>('agent_control')
      .updateOne({ _id: 'global_control' }, { $inc: { version: 1 } });
  });
}

/** The conformance suite's hand edits of the fleet policy, in the MongoDB layout (src/stores/mongodb/policy.ts). */
export function policyRawWrites(url: string, database: string) {
  /** The model's map by queue name as the document keeps it: an array of entries naming their queue. */
  const asList = (map: unknown) =>
    Object.entries((map ?? {}) as Record<string, object>).map(([queue, rule]) => ({ queue, ...rule }));
  return {
    async setRawPolicy(version: number, body: Record<string, unknown>): Promise<void> {
      await withDb(url, database, async (db) => {
        await db.collection<{ _id: string }>('agent_control').updateOne(
          { _id: 'fleet_policy' },
          {
            $set: {
              ...body,
              version,
              paused_queues: asList(body.paused_queues),
              queue_rates: asList(body.queue_rates),
            },
            $currentDate: { timestamp: true },
          },
          { upsert: true },
        );
      });
    },
    async addRawPolicyHistory(entry: Record<string, unknown>): Promise<void> {
      await withDb(url, database, async (db) => {
        await db
          .collection<{ _id: string }>('agent_policy_history')
          .insertOne({ _id: `policy:${String(entry.version)}`, ...entry });
      });
    },
  };
}
