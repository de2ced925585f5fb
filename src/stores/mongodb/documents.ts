// Pulling from the user's collection (MONGODB_COLLECTION): documents with `status: "pending"`.
//
// A claim is race-free on every server, including FerretDB 1.x whose SQLite backend applies an
// update as read, modify, write without checking that the document still matches (two agents'
// updateMany can both "match" one document). So exclusivity comes from unique inserts, which
// every server enforces atomically: each document carries `claim_seq` (how often it was claimed),
// and an agent owns claim number n+1 of a document only if it inserted the marker
// `<collection>|<id>|<n+1>` into agent_claims. It then sets the document to processing
// (conditionally: still at claim_seq n, still pending and due) and reads back
// what carries its claim token.
//
// A claim can stop between its two writes (the process is killed, the server goes away). Its
// marker then stays while claim_seq does not move, and every later claimer would lose the same
// marker race forever. So a marker says until when its claim could still be completed (`until`, one
// lease after it was placed; a claimer that got its markers later than half a lease after it began
// gives them up instead of using them), and a claimer that loses against a marker past its
// `until` moves the document's claim_seq on from n to n+1 without claiming it: the next claim
// races for marker n+2, which nobody holds. Markers are only needed while claimers race; those
// older than an hour are deleted.
//
// ids are the `_id` as a string: ObjectId hex for documents we insert; user documents whose _id is
// an ObjectId, a string or an integer work too.

import { randomUUID } from 'node:crypto';

import { type Collection, type Document, type Filter, MongoBulkWriteError, ObjectId } from 'mongodb';

import { PullingAgentError } from '../../errors.js';
import { queuesOf, reduceFilter } from '../queues.js';
import {
  type ClaimedDocument,
  type ClaimFilter,
  type ClaimOwner,
  type DocumentStatus,
  type EnqueuedDocument,
  type FailedAttempt,
  type HeldDocument,
  LEASE_EXPIRED_ERROR,
  type NewDocument,
} from '../types.js';
import type { ServerClock } from './clock.js';
import type { DocId, LooseDocument } from './connection.js';
import { ensureIndexes } from './indexes.js';
import { claimCondition, queueOfDocument } from './queues.js';

export const CLAIMS_COLLECTION = 'agent_claims';
/**
 * Each agent estimates the server's clock (clock.ts), a few milliseconds apart from the others', so
 * a document due now is written as due this much earlier: due at once for every agent, still in
 * the order written. Documents due later keep their exact time.
 */
const DUE_NOW_SLACK_MS = 1_000;

/** The run_at of a document due `delayMs` from `now` (nothing or a time past = due now). */
export function dueAt(now: Date, delayMs: number): Date {
  return delayMs > 0 ? new Date(now.getTime() + delayMs) : new Date(now.getTime() - DUE_NOW_SLACK_MS);
}
/** Rounds of pick-and-claim one claimBatch makes while other agents take the same candidates. */
const MAX_CLAIM_ROUNDS = 10;
const MARKER_TTL_MS = 60 * 60_000;
const MARKER_CLEANUP_EVERY_MS = 10 * 60_000;
/** Fields the agents keep on a user's document; the rest of it is the payload. */
export const BOOKKEEPING = [
  '_id',
  'status',
  'attempts',
  'claimed_by',
  'claim_token',
  'claim_seq',
  'lease_until',
  'error',
  'created_at',
  'updated_at',
  'processed_at',
  'run_at',
  'attempt_base',
  'dedup_key',
];
/** _id types an id string can name; documents with another _id type are never claimed. */
export const ADDRESSABLE_ID: Document = { $type: ['objectId', 'string', 'int', 'long', 'double'] };

export interface DocumentCollections {
  documents: Collection<LooseDocument>;
  claims: Collection<LooseDocument>;
  clock: ServerClock;
  /** QUEUE_FIELD: the field of each document that names its queue (src/stores/mongodb/queues.ts). */
  queueField: string;
}

export async function ensureDocuments({ documents, claims, queueField }: DocumentCollections): Promise<void> {
  await ensureIndexes(documents, [
    // Named after the field, so that another QUEUE_FIELD gets an index of its own.
    { key: { status: 1, [queueField]: 1, run_at: 1, _id: 1 }, name: `pa_status_${queueField}_due` },
    { key: { [queueField]: 1, _id: 1 }, name: `pa_${queueField}_id` },
    { key: { status: 1, _id: 1 }, name: 'pa_status_id' },
    { key: { status: 1, run_at: 1, _id: 1 }, name: 'pa_status_due' },
    { key: { dedup_key: 1 }, name: 'pa_dedup_key', sparse: true },
    { key: { status: 1, lease_until: 1 }, name: 'pa_status_lease' },
    { key: { claim_token: 1 }, name: 'pa_claim_token', sparse: true },
  ]);
  await ensureIndexes(claims, [{ key: { at: 1 }, name: 'pa_by_time' }]);
}

export function idToString(id: unknown): string | null {
  if (id instanceof ObjectId) return id.toHexString();
  if (typeof id === 'string') return id;
  if (typeof id === 'number' && Number.isSafeInteger(id)) return String(id);
  return null;
}

/** Every _id an id string may stand for: the ObjectId it spells, the string itself, the integer. */
export function idCandidates(id: string): DocId[] {
  const candidates: DocId[] = [id];
  if (/^[0-9a-fA-F]{24}$/.test(id)) candidates.unshift(ObjectId.createFromHexString(id.toLowerCase()));
  if (/^-?\d{1,15}$/.test(id)) candidates.push(Number(id));
  return candidates;
}

export function anyOf(ids: string[]): { $in: DocId[] } {
  return { $in: ids.flatMap(idCandidates) };
}

/** A marker key that tells `ObjectId(x)`, `"x"` and `5` apart. */
function markerId(collection: string, id: DocId, seq: number): string {
  const key =
    id instanceof ObjectId ? `o:${id.toHexString()}` : typeof id === 'number' ? `n:${id}` : `s:${id}`;
  return `${collection}|${key}|${seq}`;
}

/** Pending and due: run_at not after now; a user's document without run_at is due. */
export function claimable(now: Date): Document {
  return { status: 'pending', $or: [{ run_at: { $lte: now } }, { run_at: null }] };
}

export function payloadOf(doc: Document): unknown {
  if ('payload' in doc) return doc.payload;
  return Object.fromEntries(Object.entries(doc).filter(([key]) => !BOOKKEEPING.includes(key)));
}

export function attemptsOf(doc: Document): number {
  const attempts = Number(doc.attempts ?? 0);
  return Number.isFinite(attempts) ? attempts : 0;
}

/** BSON and the servers refuse these field names; nesting deeper than this is refused too. */
const MAX_DEPTH = 90;

/**
 * Throws PA_BAD_REQUEST naming the field when MongoDB (or FerretDB) could not store a payload: a
 * field name with a NUL byte, starting with `$` or containing `.`, or nesting over MAX_DEPTH.
 */
export function assertStorable(value: unknown, path: string, depth: number): void {
  if (value === null || typeof value !== 'object') return;
  if (depth > MAX_DEPTH) {
    throw new PullingAgentError(
      'PA_BAD_REQUEST',
      `MongoDB cannot store ${path}: nested deeper than ${MAX_DEPTH} levels`,
    );
  }
  if (Array.isArray(value)) {
    value.forEach((item, i) => assertStorable(item, `${path}[${i}]`, depth + 1));
    return;
  }
  for (const [key, item] of Object.entries(value)) {
    if (key.includes('\u0000') || key.startsWith('$') || key.includes('.')) {
      throw new PullingAgentError(
        'PA_BAD_REQUEST',
        `MongoDB cannot store ${path}: the field name ${JSON.stringify(key)} contains a NUL byte or a '.', or starts with '$'`,
      );
    }
    assertStorable(item, `${path}.${key}`, depth + 1);
  }
}

export async function insertDocuments(
  collections: DocumentCollections,
  payloads: unknown[],
): Promise<string[]> {
  const stored = await enqueueDocuments(
    collections,
    payloads.map((payload) => ({ payload })),
  );
  return stored.map((d) => d.id);
}

/**
 * Check, then insert: FerretDB 1.24 has no partial indexes (`partialFilterExpression` is "not
 * implemented yet"), so no index can say "unique among unfinished documents". Two concurrent
 * requests with one new key may therefore both store it (docs/stores.md); within one request, and
 * against anything stored before the request's lookup, a key is stored once.
 */
export async function enqueueDocuments(
  { documents, clock, queueField }: DocumentCollections,
  items: NewDocument[],
): Promise<EnqueuedDocument[]> {
  if (items.length === 0) return [];
  // Checked before anything is written, so that a bad document in a batch stores none of them.
  const queues = queuesOf(items);
  items.forEach((item, index) => assertStorable(item.payload, `document ${index}`, 0));
  const keys = [...new Set(items.flatMap((item) => (item.key == null ? [] : [item.key])))];
  const holders = new Map<string, string>();
  if (keys.length > 0) {
    const found = await documents
      .find(
        { dedup_key: { $in: keys }, status: { $in: ['pending', 'processing'] } },
        { projection: { _id: 1, dedup_key: 1 }, sort: { _id: 1 } },
      )
      .toArray();
    for (const doc of found) {
      const id = idToString(doc._id);
      if (id !== null && !holders.has(String(doc.dedup_key))) holders.set(String(doc.dedup_key), id);
    }
  }
  const now = await clock.now();
  const docs: LooseDocument[] = [];
  const answers = items.map((item, index): EnqueuedDocument => {
    const key = item.key ?? null;
    const holder = key === null ? undefined : holders.get(key);
    if (holder !== undefined) return { id: holder, duplicate: true };
    const _id = new ObjectId();
    const runAt = dueAt(now, item.runAt ? item.runAt.getTime() - now.getTime() : 0);
    docs.push({
      _id,
      status: 'pending',
      [queueField]: queues[index],
      payload: item.payload === undefined ? null : item.payload,
      attempts: 0,
      attempt_base: 0,
      claim_seq: 0,
      run_at: runAt,
      created_at: now,
      updated_at: now,
      ...(key === null ? {} : { dedup_key: key }),
    });
    if (key !== null) holders.set(key, _id.toHexString());
    return { id: _id.toHexString(), duplicate: false };
  });
  if (docs.length === 0) return answers;
  try {
    await documents.insertMany(docs, { ordered: true });
  } catch (error) {
    // The server refused a document (FerretDB, for one, has no arrays inside arrays): take back
    // the ones written before it, so that a refused request stores nothing, and say which.
    if (!(error instanceof MongoBulkWriteError) || error.code !== 2) throw error;
    const refused = error.writeErrors;
    const first = Array.isArray(refused) ? refused[0] : refused;
    await documents.deleteMany({ _id: { $in: docs.map((d) => d._id) }, status: 'pending', attempts: 0 });
    throw new PullingAgentError(
      'PA_BAD_REQUEST',
      `the MongoDB server refused document ${first?.index ?? '?'}: ${first?.errmsg ?? error.message}`,
    );
  }
  return answers;
}

interface Candidate {
  _id: DocId;
  /** The claim number this claimer races for: the document's claim_seq + 1. */
  seq: number;
}

function groupBySeq(candidates: Candidate[]): Map<number, DocId[]> {
  const groups = new Map<number, DocId[]>();
  for (const c of candidates) {
    const group = groups.get(c.seq);
    if (group) group.push(c._id);
    else groups.set(c.seq, [c._id]);
  }
  return groups;
}

/** Matches a document whose claim_seq is n; a user's document without one counts as 0. */
function atClaimSeq(n: number): Document {
  return n === 0 ? { claim_seq: { $in: [0, null] } } : { claim_seq: n };
}

/** Inserts one marker per candidate; resolves with the candidates whose marker this call inserted. */
async function placeMarkers(
  claims: Collection<LooseDocument>,
  collection: string,
  candidates: Candidate[],
  agentId: string,
  at: Date,
  leaseMs: number,
): Promise<{ won: Candidate[]; lost: Candidate[] }> {
  const until = new Date(at.getTime() + leaseMs);
  const markers = candidates.map((c) => ({
    _id: markerId(collection, c._id, c.seq),
    agent: agentId,
    at,
    until,
  }));
  try {
    await claims.insertMany(markers, { ordered: false });
    return { won: candidates, lost: [] };
  } catch (error) {
    if (!(error instanceof MongoBulkWriteError)) throw error;
    const writeErrors = Array.isArray(error.writeErrors) ? error.writeErrors : [error.writeErrors];
    if (writeErrors.length === 0 || writeErrors.some((w) => w.code !== 11000)) throw error;
    const lostAt = new Set(writeErrors.map((w) => w.index));
    return {
      won: candidates.filter((_, index) => !lostAt.has(index)),
      lost: candidates.filter((_, index) => lostAt.has(index)),
    };
  }
}

/**
 * For the candidates whose marker race this claimer lost: the markers of claims that stopped before
 * their update and can no longer complete it (past their `until`; a marker without one, from
 * before it existed, gets this claimer's lease) move their document's claim_seq past them.
 * Resolves with the candidates taken over, which are worth racing for again at once.
 */
async function takeOverAbandoned(
  { documents, claims }: DocumentCollections,
  lost: Candidate[],
  now: Date,
  leaseMs: number,
): Promise<Set<Candidate>> {
  const taken = new Set<Candidate>();
  if (lost.length === 0) return taken;
  const byMarker = new Map(lost.map((c) => [markerId(documents.collectionName, c._id, c.seq), c]));
  const markers = await claims.find({ _id: { $in: [...byMarker.keys()] } }).toArray();
  for (const marker of markers) {
    const candidate = byMarker.get(String(marker._id));
    if (!candidate) continue;
    const at = marker.at instanceof Date ? marker.at.getTime() : 0;
    const until = marker.until instanceof Date ? marker.until.getTime() : at + leaseMs;
    if (until >= now.getTime()) continue;
    // Only the claim_seq moves: whoever wins marker seq + 1 then claims it as usual. Two
    // claimers taking the same marker over write the same value. Left open on FerretDB only (its
    // update reads, then writes the whole document): a takeover that read the document before a
    // third agent's claim of seq + 1 and writes after it would put that claim back to pending.
    // The window is milliseconds and opens only after an interrupted claim; MongoDB is atomic.
    await documents.updateOne(
      { _id: candidate._id, ...atClaimSeq(candidate.seq - 1), ...claimable(now) } as Filter<LooseDocument>,
      { $set: { claim_seq: candidate.seq }, $currentDate: { updated_at: true } },
    );
    taken.add(candidate);
  }
  return taken;
}

/** When each claims collection (one per store) was last cleaned up. */
const lastMarkerCleanup = new WeakMap<Collection<LooseDocument>, number>();

async function cleanupMarkers(claims: Collection<LooseDocument>, now: Date): Promise<void> {
  const last = lastMarkerCleanup.get(claims);
  if (last !== undefined && performance.now() - last < MARKER_CLEANUP_EVERY_MS) return;
  lastMarkerCleanup.set(claims, performance.now());
  await claims.deleteMany({ at: { $lt: new Date(now.getTime() - MARKER_TTL_MS) } });
}

export async function claimBatch(
  collections: DocumentCollections,
  owner: ClaimOwner,
  limit: number,
  leaseMs: number,
  filter?: ClaimFilter,
): Promise<ClaimedDocument[]> {
  const { documents, claims, clock, queueField } = collections;
  const reduced = reduceFilter(filter);
  if (limit <= 0 || reduced === 'none') return [];
  // Without a filter, the query of before; with one, the queue condition beside it (the index
  // pa_status_<field>_due serves it).
  const ofQueues = reduced === null ? null : claimCondition(queueField, reduced);
  const { agentId } = owner;
  const token = randomUUID();
  let wanted = Math.floor(limit);
  // Documents another claimer's marker holds: not offered again in this call, so that a few held
  // ones at the front of the collection do not hide the claimable ones behind them.
  const passed: DocId[] = [];
  for (let round = 0; round < MAX_CLAIM_ROUNDS && wanted > 0; round++) {
    const began = performance.now();
    const now = await clock.now();
    const requested = wanted;
    const due: Document = {
      ...claimable(now),
      _id: passed.length > 0 ? { ...ADDRESSABLE_ID, $nin: passed } : ADDRESSABLE_ID,
    };
    const candidates = await documents
      .find((ofQueues === null ? due : { $and: [due, ofQueues] }) as Filter<LooseDocument>, {
        projection: { _id: 1, claim_seq: 1 },
        sort: { run_at: 1, _id: 1 },
        limit: wanted,
      })
      .toArray();
    if (candidates.length === 0) break;
    const { won, lost } = await placeMarkers(
      claims,
      documents.collectionName,
      candidates.map((c) => ({ _id: c._id as DocId, seq: (Number(c.claim_seq) || 0) + 1 })),
      agentId,
      now,
      leaseMs,
    );
    // Markers won this late could be taken over by the time the update lands (see the top):
    // give them up; their documents become claimable once the markers' `until` has passed.
    const usable = performance.now() - began <= leaseMs / 2 ? won : [];
    // Only the holder of marker n+1 moves claim_seq from n, so the update lands on exactly n+1;
    // the status condition keeps a document that was completed in the meantime out. One update
    // per claim number (mostly just one: fresh documents are all at 0), as FerretDB runs each
    // update of a bulk write as a scan of its own.
    for (const [seq, ids] of groupBySeq(usable)) {
      await documents.updateMany(
        { _id: { $in: ids }, ...atClaimSeq(seq - 1), ...claimable(now) } as Filter<LooseDocument>,
        {
          $set: {
            status: 'processing',
            claimed_by: agentId,
            claim_token: token,
            lease_until: new Date(now.getTime() + leaseMs),
            claim_seq: seq,
          },
          $currentDate: { updated_at: true },
        },
      );
    }
    const takenOver = await takeOverAbandoned(collections, lost, now, leaseMs);
    passed.push(...lost.filter((c) => !takenOver.has(c)).map((c) => c._id));
    wanted -= usable.length;
    // Nobody else took any of them and there were fewer than asked for: nothing is left.
    if (lost.length === 0 && candidates.length < requested) break;
  }
  const claimed = await documents.find({ claim_token: token }, { sort: { _id: 1 } }).toArray();
  await cleanupMarkers(claims, await clock.now());
  return claimed.flatMap((doc): ClaimedDocument[] => {
    const id = idToString(doc._id);
    if (id === null) return [];
    return [
      {
        id,
        token,
        payload: payloadOf(doc),
        queue: queueOfDocument(doc, queueField),
        attempts: attemptsOf(doc),
      },
    ];
  });
}

/**
 * The filter for documents these claims still hold: each (id, token) pair, grouped by token (a
 * batch's documents share one), so that a stale holder's token matches nothing.
 */
function heldBy(held: HeldDocument[]): Document {
  const byToken = new Map<string, string[]>();
  for (const h of held) {
    const ids = byToken.get(h.token);
    if (ids) ids.push(h.id);
    else byToken.set(h.token, [h.id]);
  }
  const pairs = [...byToken].map(([token, ids]) => ({ claim_token: token, _id: anyOf(ids) }));
  return { status: 'processing', ...(pairs.length === 1 ? pairs[0] : { $or: pairs }) };
}

export async function extendLeases(
  { documents, clock }: DocumentCollections,
  held: HeldDocument[],
  leaseMs: number,
): Promise<number> {
  if (held.length === 0) return 0;
  const leaseUntil = new Date((await clock.now()).getTime() + leaseMs);
  const result = await documents.updateMany(heldBy(held), { $set: { lease_until: leaseUntil } });
  return result.matchedCount;
}

export async function completeDocuments(
  { documents }: DocumentCollections,
  held: HeldDocument[],
): Promise<number> {
  if (held.length === 0) return 0;
  const result = await documents.updateMany(heldBy(held), {
    $set: { status: 'processed', error: null },
    $unset: { lease_until: '', claim_token: '' },
    $currentDate: { processed_at: true, updated_at: true },
  });
  return result.modifiedCount;
}

/**
 * Read, then write conditionally on the attempts read: whether this failure is final compares two
 * fields (attempts since the baseline a manual retry set), which a filter cannot without $expr or
 * a pipeline update, and FerretDB has neither. The claim token in the filter keeps it this holder's.
 */
async function failDocument(
  { documents, clock }: DocumentCollections,
  failure: FailedAttempt,
  maxRetries: number,
): Promise<DocumentStatus | null> {
  const { error } = failure;
  const filter = heldBy([failure]);
  const doc = await documents.findOne(filter, { projection: { attempts: 1, attempt_base: 1 } });
  if (doc === null) return null;
  const attempts = attemptsOf(doc);
  const final = attempts + 1 - baseOf(doc) > maxRetries;
  const conditional = { $and: [filter, { attempts: doc.attempts ?? null }] };
  if (!final) {
    const runAt = dueAt(await clock.now(), failure.retryInMs);
    const retry = await documents.updateOne(conditional, {
      $set: { status: 'pending', error, attempts: attempts + 1, run_at: runAt },
      $unset: { claimed_by: '', lease_until: '', claim_token: '', processed_at: '' },
      $currentDate: { updated_at: true },
    });
    return retry.matchedCount > 0 ? 'pending' : null;
  }
  const failed = await documents.updateOne(conditional, {
    $set: { status: 'failed', error, attempts: attempts + 1 },
    $unset: { lease_until: '', claim_token: '', run_at: '' },
    $currentDate: { processed_at: true, updated_at: true },
  });
  return failed.matchedCount > 0 ? 'failed' : null;
}

/** The attempts a manual retry started the budget from (0 when there never was one). */
export function baseOf(doc: Document): number {
  const base = Number(doc.attempt_base ?? 0);
  return Number.isFinite(base) ? base : 0;
}

/**
 * The expired leases (found through pa_status_lease, so cheap when there are none), then one
 * conditional updateMany for those that may run again and one for those out of retries. Both
 * filter on the lease still being expired, so a holder that renewed in between, or a document
 * claimed again since, is left alone; the caller runs this in its chain of held-document writes.
 */
export async function recoverExpiredLeases(
  { documents, clock }: DocumentCollections,
  maxRetries: number,
  spreadMs: number,
): Promise<{ retried: number; failed: number }> {
  const now = await clock.now();
  const expiredFilter = { status: 'processing', lease_until: { $lt: now } };
  const expired = await documents
    .find(expiredFilter, { projection: { _id: 1, attempts: 1, attempt_base: 1 } })
    .toArray();
  if (expired.length === 0) return { retried: 0, failed: 0 };
  const isFinal = (doc: Document) => attemptsOf(doc) + 1 - baseOf(doc) > maxRetries;
  const finalIds = expired.filter(isFinal).map((d) => d._id as DocId);
  const retryIds = expired.filter((d) => !isFinal(d)).map((d) => d._id as DocId);
  let retried = 0;
  let failed = 0;
  // One update per document: each gets a due time of its own within the spread (there are few).
  for (const id of retryIds) {
    const result = await documents.updateOne(
      { _id: id, ...expiredFilter },
      {
        $set: {
          status: 'pending',
          error: LEASE_EXPIRED_ERROR,
          run_at: dueAt(now, Math.random() * Math.max(0, spreadMs)),
        },
        $inc: { attempts: 1 },
        $unset: { claimed_by: '', lease_until: '', claim_token: '' },
        $currentDate: { updated_at: true },
      },
    );
    retried += result.modifiedCount;
  }
  if (finalIds.length > 0) {
    const result = await documents.updateMany(
      { _id: { $in: finalIds }, ...expiredFilter },
      {
        $set: { status: 'failed', error: LEASE_EXPIRED_ERROR },
        $inc: { attempts: 1 },
        $unset: { lease_until: '', claim_token: '', run_at: '' },
        $currentDate: { processed_at: true, updated_at: true },
      },
    );
    failed = result.modifiedCount;
  }
  return { retried, failed };
}

/** One document at a time (the caller serialises held-document writes anyway), in input order. */
export async function failDocuments(
  collections: DocumentCollections,
  failures: FailedAttempt[],
  maxRetries: number,
): Promise<(DocumentStatus | null)[]> {
  const statuses: (DocumentStatus | null)[] = [];
  for (const failure of failures) statuses.push(await failDocument(collections, failure, maxRetries));
  return statuses;
}

export async function releaseDocuments(
  { documents }: DocumentCollections,
  held: HeldDocument[],
): Promise<number> {
  if (held.length === 0) return 0;
  const result = await documents.updateMany(heldBy(held), {
    $set: { status: 'pending' },
    $unset: { claimed_by: '', lease_until: '', claim_token: '' },
    $currentDate: { updated_at: true },
  });
  return result.modifiedCount;
}
