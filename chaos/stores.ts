// The stores a chaos run covers and a fresh database on each: SQLite always, PostgreSQL when
// PA_TEST_POSTGRES_URL is set, MongoDB (FerretDB) when PA_TEST_MONGODB_URL is set; under CI=true a
// missing URL is a failure (the tests' unavailable()). Each database comes with the harness's own
// store connection and an inspector that reads what the Store interface does not say: which
// documents an agent holds right now.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import Database from 'better-sqlite3';
import { MongoClient, ObjectId } from 'mongodb';
import pg from 'pg';

import { loadConfig } from '../src/config.js';
import { openStore } from '../src/stores/index.js';
import { CLAIMS_COLLECTION, idToString } from '../src/stores/mongodb/documents.js';
import type { Store } from '../src/stores/types.js';
import { dropDatabase, FERRETDB_HOW_TO, freshDatabase } from '../test/helpers/mongodb.js';
import { dropSchema, freshSchema, POSTGRES_HOW_TO } from '../test/helpers/postgres.js';
import { unavailable } from '../test/helpers/targets.js';

export type StoreKind = 'sqlite' | 'postgres' | 'mongodb';

/** Reads the documents table directly, for what the harness must know at the moment of a kill. */
export interface Inspector {
  /** Ids of the documents `agentId` holds now (processing, claimed by it). */
  heldBy(agentId: string): Promise<string[]>;
  /** How many of `ids` are still held by `agentId`. */
  stillHeld(agentId: string, ids: string[]): Promise<number>;
  /** What the store says about documents that were never handled, beyond their status. */
  diagnose(ids: string[]): Promise<string>;
  close(): Promise<void>;
}

export interface ChaosDatabase {
  /** Environment that points an agent process at this database. */
  env: Record<string, string>;
  /** The harness's own connection (initialised). */
  store: Store;
  inspector: Inspector;
  /** Frees the harness's connections and drops the database. */
  cleanup(): Promise<void>;
}

export interface ChaosStore {
  kind: StoreKind;
  /** For tables: `sqlite`, `postgres`, `mongodb (FerretDB)`. */
  label: string;
  /** The URL of the server that other suites share (never stopped); '' for SQLite. */
  sharedUrl: string;
}

/** The stores to cover, in table order. Throws under CI=true when a server's URL is missing. */
export function configuredStores(): { stores: ChaosStore[]; skipped: string[] } {
  const stores: ChaosStore[] = [{ kind: 'sqlite', label: 'sqlite', sharedUrl: '' }];
  const skipped: string[] = [];
  const pgUrl = process.env.PA_TEST_POSTGRES_URL;
  if (pgUrl) stores.push({ kind: 'postgres', label: 'postgres', sharedUrl: pgUrl });
  else skipped.push(unavailable('PostgreSQL', 'PA_TEST_POSTGRES_URL', POSTGRES_HOW_TO));
  const mongoUrl = process.env.PA_TEST_MONGODB_URL;
  if (mongoUrl) stores.push({ kind: 'mongodb', label: 'mongodb (FerretDB)', sharedUrl: mongoUrl });
  else skipped.push(unavailable('MongoDB (FerretDB)', 'PA_TEST_MONGODB_URL', FERRETDB_HOW_TO));
  return { stores, skipped };
}

async function openFromEnv(env: Record<string, string>): Promise<Store> {
  const store = await openStore(loadConfig(env).store);
  await store.init();
  return store;
}

/** A fresh, empty database of `kind` on the server at `url` (ignored for SQLite). */
export async function createDatabase(kind: StoreKind, url: string): Promise<ChaosDatabase> {
  if (kind === 'sqlite') return createSqlite();
  if (kind === 'postgres') return createPostgres(url);
  return createMongo(url);
}

async function createSqlite(): Promise<ChaosDatabase> {
  const dir = mkdtempSync(join(tmpdir(), 'pa-chaos-db-'));
  const path = join(dir, 'store.db');
  const env = { STORE_URL: `sqlite:${path}` };
  const store = await openFromEnv(env);
  const db = new Database(path);
  db.pragma('busy_timeout = 2000');
  const held = db.prepare<[string], { id: number }>(
    `SELECT id FROM documents WHERE status = 'processing' AND claimed_by = ?`,
  );
  const inspector: Inspector = {
    heldBy: async (agentId) => held.all(agentId).map((r) => String(r.id)),
    async stillHeld(agentId, ids) {
      const wanted = new Set(ids);
      return held.all(agentId).filter((r) => wanted.has(String(r.id))).length;
    },
    diagnose: async () => '',
    close: async () => void db.close(),
  };
  return {
    env,
    store,
    inspector,
    async cleanup() {
      await inspector.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function createPostgres(url: string): Promise<ChaosDatabase> {
  const schema = freshSchema();
  const env = { STORE_URL: url, PG_SCHEMA: schema };
  const store = await openFromEnv(env);
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  // An idle connection that dies with a stopped server must not take the harness down.
  pool.on('error', () => undefined);
  const table = `"${schema}".documents`;
  const inspector: Inspector = {
    async heldBy(agentId) {
      const { rows } = await pool.query<{ id: string }>(
        `SELECT id::text AS id FROM ${table} WHERE status = 'processing' AND claimed_by = $1`,
        [agentId],
      );
      return rows.map((r) => r.id);
    },
    async stillHeld(agentId, ids) {
      const { rows } = await pool.query<{ n: string }>(
        `SELECT count(*) AS n FROM ${table} WHERE status = 'processing' AND claimed_by = $1 AND id = ANY($2::bigint[])`,
        [agentId, ids],
      );
      return Number(rows[0]?.n ?? 0);
    },
    diagnose: async () => '',
    close: () => pool.end(),
  };
  return {
    env,
    store,
    inspector,
    async cleanup() {
      await inspector.close().catch(() => undefined);
      await store.close();
      await dropSchema(url, schema);
    },
  };
}

async function createMongo(url: string): Promise<ChaosDatabase> {
  const database = freshDatabase();
  const env = { MONGODB_URI: url, MONGODB_DATABASE: database };
  const store = await openFromEnv(env);
  const client = new MongoClient(url, { serverSelectionTimeoutMS: 5_000, maxPoolSize: 2 });
  const documents = client.db(database).collection('documents');
  const held = async (agentId: string) =>
    (
      await documents
        .find({ status: 'processing', claimed_by: agentId }, { projection: { _id: 1 } })
        .toArray()
    ).flatMap((d) => idToString(d._id) ?? []);
  const inspector: Inspector = {
    heldBy: held,
    // A claim marker for the next claim_seq with no claim behind it blocks the document (see
    // test/stores/mongodb-abandoned-claim.test.ts).
    async diagnose(ids) {
      const docs = await documents
        .find({ _id: { $in: ids.map((id) => ObjectId.createFromHexString(id)) } })
        .project({ _id: 1, claim_seq: 1, status: 1 })
        .toArray();
      const markers = client
        .db(database)
        .collection<{ _id: string; agent: string; at: Date }>(CLAIMS_COLLECTION);
      const blocked: string[] = [];
      for (const d of docs) {
        const next = `documents|o:${idToString(d._id)}|${(Number(d.claim_seq) || 0) + 1}`;
        const marker = d.status === 'pending' ? await markers.findOne({ _id: next }) : null;
        if (marker)
          blocked.push(`${marker.agent} ${Math.round((Date.now() - marker.at.getTime()) / 1000)} s ago`);
      }
      // A fresh marker may be a claim still on its way; an old one is a claim that never finished.
      return blocked.length === 0
        ? ''
        : `${blocked.length} of them pending behind a claim marker whose update never came (placed by ${blocked.slice(0, 3).join(', ')})`;
    },
    async stillHeld(agentId, ids) {
      const wanted = new Set(ids);
      return (await held(agentId)).filter((id) => wanted.has(id)).length;
    },
    close: () => client.close(),
  };
  return {
    env,
    store,
    inspector,
    async cleanup() {
      await inspector.close().catch(() => undefined);
      await store.close();
      await dropDatabase(url, database);
    },
  };
}
