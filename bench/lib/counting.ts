// Exact counts of what an idle fleet asks of its store, at two levels: every call an agent makes on
// its Store (a Proxy per agent: semantic, the same for every store), and every statement or command
// that reaches the wire (node-postgres' Client.query wrapped; the MongoDB driver's command
// monitoring and server-monitoring events). Classified into control reads, heartbeats, the watch's
// own traffic and document claims, so that each can be reported separately.

import { type CommandStartedEvent, MongoClient } from 'mongodb';
import pg from 'pg';

import type { Store } from '../../src/stores/types.js';

export class Counter {
  readonly counts = new Map<string, number>();
  add(kind: string, n = 1): void {
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + n);
  }
  reset(): void {
    this.counts.clear();
  }
  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.counts.entries()].sort(([a], [b]) => a.localeCompare(b)));
  }
}

/** Which store methods count as what. */
export const STORE_CLASSES: Record<string, string> = {
  readControlVersion: 'control: version read',
  readControl: 'control: document read',
  watchControl: 'control: watch (re)opened',
  upsertAgent: 'heartbeat: upsert',
  pruneAgents: 'heartbeat: prune',
  claimBatch: 'documents: claim',
};

/** The store, with every method call counted under its class (or its name). */
export function countingStore(store: Store, counter: Counter): Store {
  return new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== 'function' || typeof property !== 'string') return value;
      const kind = STORE_CLASSES[property] ?? `other: ${property}`;
      return (...args: unknown[]) => {
        counter.add(kind);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

export function classifySql(text: string): string {
  const sql = text.replace(/\s+/g, ' ').trim();
  // Table names are schema-qualified and quoted: "pa_bench_…"."agent_control".
  if (/^SELECT version FROM \S*\bagent_control"? /i.test(sql)) return 'control: version read';
  if (/^SELECT command, version.* FROM \S*\bagent_control"? /i.test(sql)) return 'control: document read';
  if (/^INSERT INTO \S*\bagents"? /i.test(sql)) return 'heartbeat: upsert';
  if (/^DELETE FROM \S*\bagents"? WHERE heartbeat_at/i.test(sql)) return 'heartbeat: prune';
  if (/^UPDATE \S*\bdocuments"? SET status = 'processing'/i.test(sql)) return 'documents: claim';
  if (/^SELECT (1|\$1)$/i.test(sql)) return 'watch: keep-alive (SELECT 1)';
  if (/^LISTEN /i.test(sql)) return 'watch: LISTEN';
  if (/pg_notify/i.test(sql)) return 'watch: probe notification';
  return `other: ${sql.slice(0, 60)}`;
}

let pgCounter: Counter | null = null;

/** Counts every statement any node-postgres client in this process sends (installed once). */
export function countPostgresQueries(counter: Counter): void {
  if (pgCounter) {
    pgCounter = counter;
    return;
  }
  pgCounter = counter;
  const prototype = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
  const original = prototype.query;
  prototype.query = function (this: unknown, ...args: unknown[]) {
    const first = args[0] as string | { text?: string } | undefined;
    const text = typeof first === 'string' ? first : (first?.text ?? '');
    pgCounter?.add(classifySql(text));
    return original.apply(this, args);
  };
}

export function classifyMongo(event: CommandStartedEvent): string {
  const name = event.commandName;
  const collection = String((event.command as Record<string, unknown>)[name] ?? '');
  if (collection === 'agent_control' && name === 'find') {
    const projection = (event.command as { projection?: Record<string, unknown> }).projection;
    return projection && 'version' in projection && Object.keys(projection).length <= 2
      ? 'control: version read'
      : 'control: document read';
  }
  if (collection === 'agent_registry' && name === 'update') return 'heartbeat: upsert';
  if (collection === 'agent_registry' && name === 'delete') return 'heartbeat: prune';
  if (name === 'hello' || name === 'isMaster' || name === 'ismaster') return 'clock: hello';
  if (collection === 'documents' || collection === 'agent_claims') return 'documents: claim';
  return `other: ${name} ${collection}`.trim();
}

let mongoCounter: Counter | null = null;
const mongoConnections = { open: 0 };

/**
 * Counts every command of MongoClients created with monitorCommands: true, the driver's own
 * server-monitoring `hello`s (not commands, so not in command monitoring), and open pool
 * connections. Installed once, by hooking MongoClient.prototype.connect.
 */
export function countMongoCommands(counter: Counter): { open: number } {
  if (mongoCounter) {
    mongoCounter = counter;
    return mongoConnections;
  }
  mongoCounter = counter;
  const prototype = MongoClient.prototype as unknown as { connect: (...args: unknown[]) => unknown };
  const original = prototype.connect;
  const hooked = new WeakSet<object>();
  prototype.connect = function (this: MongoClient, ...args: unknown[]) {
    if (!hooked.has(this)) {
      hooked.add(this);
      this.on('commandStarted', (event) => mongoCounter?.add(classifyMongo(event)));
      this.on('serverHeartbeatStarted', () => mongoCounter?.add('driver: server-monitoring hello'));
      this.on('connectionCreated', () => mongoConnections.open++);
      this.on('connectionClosed', () => mongoConnections.open--);
    }
    return original.apply(this, args);
  };
  return mongoConnections;
}

/** pg_stat_statements' calls per statement (own server only), for a server-side cross-check. */
export async function statStatements(admin: pg.ClientConfig, schema: string): Promise<Map<string, number>> {
  const client = new pg.Client(admin);
  await client.connect();
  try {
    const { rows } = await client.query<{ query: string; calls: string }>(
      `SELECT query, calls FROM pg_stat_statements WHERE query LIKE $1 OR query ~* '^select \\$1$'`,
      [`%${schema}%`],
    );
    const result = new Map<string, number>();
    for (const row of rows) result.set(row.query, (result.get(row.query) ?? 0) + Number(row.calls));
    return result;
  } finally {
    await client.end();
  }
}

/** The difference of two pg_stat_statements snapshots, classified. */
export function diffStatements(
  before: Map<string, number>,
  after: Map<string, number>,
): Record<string, number> {
  const counter = new Counter();
  for (const [query, calls] of after) {
    const delta = calls - (before.get(query) ?? 0);
    if (delta > 0) counter.add(classifySql(query), delta);
  }
  return counter.snapshot();
}
