// Pulling from the user's collection (MONGODB_COLLECTION): documents with `status: "pending"`.
//
// A claim is race-free on every server, including FerretDB 1.x whose SQLite backend applies an
// update as read, modify, write without checking that the document still matches (two agents'
// updateMany can both "match" one document). So exclusivity comes from unique inserts, which
// every server enforces atomically: each document carries `claim_seq` (how often it was claimed),
// and an agent owns claim number n+1 of a document only if it inserted the marker
// `<collection>|<id>|<n+1>` into agent_claims. It then sets the document to processing
// (conditionally, still pending or with an expired lease) and reads back what carries its claim
// token. Markers are only needed while claimers race; those older than an hour are deleted.
//
// ids are the `_id` as a string: ObjectId hex for documents we insert; user documents whose _id is
// an ObjectId, a string or an integer work too.

import { randomUUID } from 'node:crypto';

import { type Collection, type Document, type Filter, MongoBulkWriteError, ObjectId } from 'mongodb';

import { PullingAgentError } from '../../errors.js';
import {
  type ClaimedDocument,
  DOCUMENT_STATUSES,
  type DocumentCounts,
  type DocumentRecord,
  type DocumentStatus,
} from '../types.js';
import type { ServerClock } from './clock.js';
import type { DocId, LooseDocument } from './connection.js';
import { ensureIndexes } from './indexes.js';

export const CLAIMS_COLLECTION = 'agent_claims';
/** Rounds of pick-and-claim one claimBatch makes while other agents take the same candidates. */
const MAX_CLAIM_ROUNDS = 10;
const MARKER_TTL_MS = 60 * 60_000;
const MARKER_CLEANUP_EVERY_MS = 10 * 60_000;
/** Fields the agents keep on a user's document; the rest of it is the payload. */
const BOOKKEEPING = [
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
];
/** _id types an id string can name; documents with another _id type are never claimed. */
const ADDRESSABLE_ID: Document = { $type: ['objectId', 'string', 'int', 'long', 'double'] };

export interface DocumentCollections {
  documents: Collection<LooseDocument>;
  claims: Collection<LooseDocument>;
  clock: ServerClock;
}

export async function ensureDocuments({ documents, claims }: DocumentCollections): Promise<void> {
  await ensureIndexes(documents, [
    { key: { status: 1, _id: 1 }, name: 'pa_status_id' },
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

function anyOf(ids: string[]): { $in: DocId[] } {
  return { $in: ids.flatMap(idCandidates) };
}

/** A marker key that tells `ObjectId(x)`, `"x"` and `5` apart. */
function markerId(collection: string, id: DocId, seq: number): string {
  const key =
    id instanceof ObjectId ? `o:${id.toHexString()}` : typeof id === 'number' ? `n:${id}` : `s:${id}`;
  return `${collection}|${key}|${seq}`;
}

function claimable(now: Date): Document {
  return { $or: [{ status: 'pending' }, { status: 'processing', lease_until: { $lt: now } }] };
}

function payloadOf(doc: Document): unknown {
  if ('payload' in doc) return doc.payload;
  return Object.fromEntries(Object.entries(doc).filter(([key]) => !BOOKKEEPING.includes(key)));
}

function attemptsOf(doc: Document): number {
  const attempts = Number(doc.attempts ?? 0);
  return Number.isFinite(attempts) ? attempts : 0;
}

/** BSON and the servers refuse these field names; nesting deeper than this is refused too. */
const MAX_DEPTH = 90;

/**
 * Throws PA_BAD_REQUEST naming the field when MongoDB (or FerretDB) could not store a payload: a
 * field name with a NUL byte, starting with `$` or containing `.`, or nesting over MAX_DEPTH.
 */
function assertStorable(value: unknown, path: string, depth: number): void {
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
  { documents, clock }: DocumentCollections,
  payloads: unknown[],
): Promise<string[]> {
  if (payloads.length === 0) return [];
  // Checked before anything is written, so that a bad document in a batch stores none of them.
  payloads.forEach((payload, index) => assertStorable(payload, `document ${index}`, 0));
  const now = await clock.now();
  const docs = payloads.map((payload) => ({
    _id: new ObjectId(),
    status: 'pending',
    payload: payload === undefined ? null : payload,
    attempts: 0,
    claim_seq: 0,
    created_at: now,
    updated_at: now,
  }));
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
  return docs.map((d) => d._id.toHexString());
}

/** Inserts one marker per candidate; resolves with the candidates whose marker this call inserted. */
async function placeMarkers(
  claims: Collection<LooseDocument>,
  collection: string,
  candidates: { _id: DocId; seq: number }[],
  agentId: string,
  at: Date,
): Promise<{ _id: DocId; seq: number }[]> {
  const markers = candidates.map((c) => ({ _id: markerId(collection, c._id, c.seq), agent: agentId, at }));
  try {
    await claims.insertMany(markers, { ordered: false });
    return candidates;
  } catch (error) {
    if (!(error instanceof MongoBulkWriteError)) throw error;
    const writeErrors = Array.isArray(error.writeErrors) ? error.writeErrors : [error.writeErrors];
    if (writeErrors.length === 0 || writeErrors.some((w) => w.code !== 11000)) throw error;
    const lost = new Set(writeErrors.map((w) => w.index));
    return candidates.filter((_, index) => !lost.has(index));
  }
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
  { documents, claims, clock }: DocumentCollections,
  agentId: string,
  limit: number,
  leaseMs: number,
): Promise<ClaimedDocument[]> {
  if (limit <= 0) return [];
  const token = randomUUID();
  let wanted = Math.floor(limit);
  for (let round = 0; round < MAX_CLAIM_ROUNDS && wanted > 0; round++) {
    const now = await clock.now();
    const requested = wanted;
    const candidates = await documents
      .find({ ...claimable(now), _id: ADDRESSABLE_ID } as Filter<LooseDocument>, {
        projection: { _id: 1, claim_seq: 1 },
        sort: { _id: 1 },
        limit: wanted,
      })
      .toArray();
    if (candidates.length === 0) break;
    const won = await placeMarkers(
      claims,
      documents.collectionName,
      candidates.map((c) => ({ _id: c._id as DocId, seq: (Number(c.claim_seq) || 0) + 1 })),
      agentId,
      now,
    );
    if (won.length > 0) {
      // Only the holder of marker n+1 moves claim_seq from n, so `$inc` lands on exactly n+1; the
      // status condition keeps a document that was completed in the meantime out.
      await documents.updateMany(
        { _id: { $in: won.map((w) => w._id) }, ...claimable(now) },
        {
          $set: {
            status: 'processing',
            claimed_by: agentId,
            claim_token: token,
            lease_until: new Date(now.getTime() + leaseMs),
          },
          $inc: { claim_seq: 1 },
          $currentDate: { updated_at: true },
        },
      );
    }
    wanted -= won.length;
    // Nobody else took any of them and there were fewer than asked for: nothing is left.
    if (won.length === candidates.length && candidates.length < requested) break;
  }
  const claimed = await documents.find({ claim_token: token }, { sort: { _id: 1 } }).toArray();
  await cleanupMarkers(claims, await clock.now());
  return claimed.flatMap((doc): ClaimedDocument[] => {
    const id = idToString(doc._id);
    return id === null ? [] : [{ id, payload: payloadOf(doc), attempts: attemptsOf(doc) }];
  });
}

/** The filter for documents this agent holds. */
function held(agentId: string, ids: string[]): Document {
  return { _id: anyOf(ids), status: 'processing', claimed_by: agentId };
}

export async function extendLeases(
  { documents, clock }: DocumentCollections,
  agentId: string,
  ids: string[],
  leaseMs: number,
): Promise<void> {
  if (ids.length === 0) return;
  const leaseUntil = new Date((await clock.now()).getTime() + leaseMs);
  await documents.updateMany(held(agentId, ids), { $set: { lease_until: leaseUntil } });
}

export async function completeDocuments(
  { documents }: DocumentCollections,
  agentId: string,
  ids: string[],
): Promise<number> {
  if (ids.length === 0) return 0;
  const result = await documents.updateMany(held(agentId, ids), {
    $set: { status: 'processed', error: null },
    $unset: { lease_until: '', claim_token: '' },
    $currentDate: { processed_at: true, updated_at: true },
  });
  return result.modifiedCount;
}

export async function failDocument(
  { documents }: DocumentCollections,
  agentId: string,
  id: string,
  error: string,
  maxRetries: number,
): Promise<DocumentStatus | null> {
  // attempts + 1 > maxRetries, i.e. attempts >= maxRetries, fails it for good; a missing attempts
  // field counts as 0. Two conditional updates instead of one with a pipeline, which FerretDB lacks.
  const retryable = [{ attempts: { $lt: maxRetries } }, ...(maxRetries > 0 ? [{ attempts: null }] : [])];
  const retry = await documents.updateOne(
    { ...held(agentId, [id]), $or: retryable },
    {
      $set: { status: 'pending', error },
      $inc: { attempts: 1 },
      $unset: { claimed_by: '', lease_until: '', claim_token: '', processed_at: '' },
      $currentDate: { updated_at: true },
    },
  );
  if (retry.matchedCount > 0) return 'pending';
  const final = await documents.updateOne(held(agentId, [id]), {
    $set: { status: 'failed', error },
    $inc: { attempts: 1 },
    $unset: { lease_until: '', claim_token: '' },
    $currentDate: { processed_at: true, updated_at: true },
  });
  return final.matchedCount > 0 ? 'failed' : null;
}

export async function releaseDocuments(
  { documents }: DocumentCollections,
  agentId: string,
  ids: string[],
): Promise<number> {
  if (ids.length === 0) return 0;
  const result = await documents.updateMany(held(agentId, ids), {
    $set: { status: 'pending' },
    $unset: { claimed_by: '', lease_until: '', claim_token: '' },
    $currentDate: { updated_at: true },
  });
  return result.modifiedCount;
}

function toDateOrNull(value: unknown): Date | null {
  return value instanceof Date ? value : null;
}

export async function getDocument(
  { documents }: DocumentCollections,
  id: string,
): Promise<DocumentRecord | null> {
  const doc = await documents.findOne({ _id: anyOf([id]) });
  if (doc === null) return null;
  const created =
    toDateOrNull(doc.created_at) ?? (doc._id instanceof ObjectId ? doc._id.getTimestamp() : new Date(0));
  return {
    id: idToString(doc._id) ?? id,
    status: doc.status as DocumentStatus,
    payload: payloadOf(doc),
    attempts: attemptsOf(doc),
    claimed_by: typeof doc.claimed_by === 'string' ? doc.claimed_by : null,
    error: typeof doc.error === 'string' ? doc.error : null,
    created_at: created,
    processed_at: toDateOrNull(doc.processed_at),
  };
}

export async function countDocuments({ documents }: DocumentCollections): Promise<DocumentCounts> {
  const counts: DocumentCounts = { pending: 0, processing: 0, processed: 0, failed: 0 };
  const groups = await documents
    .aggregate<{ _id: string; n: number }>([
      { $match: { status: { $in: [...DOCUMENT_STATUSES] } } },
      { $group: { _id: '$status', n: { $sum: 1 } } },
    ])
    .toArray();
  for (const { _id, n } of groups) {
    if (_id in counts) counts[_id as DocumentStatus] = Number(n);
  }
  return counts;
}
