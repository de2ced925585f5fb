// Reading and administering documents: one document, the counts, pages in _id order, manual
// retries of failed documents and deletion. `scheduled` is not stored: it is a pending document
// whose run_at is later than the server's clock. A page's cursor names the last _id with its BSON
// type (`o:<hex>`, `s:<string>`, `n:<integer>`), as a user's _ids may be of any of the three.

import { type Document, type Filter, ObjectId } from 'mongodb';

import { PullingAgentError } from '../../errors.js';
import { isQueueName } from '../../model/policy.js';
import { emptyCounts, groupQueueCounts } from '../queues.js';
import type {
  DocumentCounts,
  DocumentPage,
  DocumentQuery,
  DocumentRecord,
  DocumentStatus,
  QueueCounts,
} from '../types.js';
import type { DocId, LooseDocument } from './connection.js';
import {
  ADDRESSABLE_ID,
  anyOf,
  attemptsOf,
  claimable,
  type DocumentCollections,
  dueAt,
  idToString,
  payloadOf,
} from './documents.js';
import { queueCondition, queueOfDocument } from './queues.js';

const STORED_STATUSES = ['pending', 'processing', 'processed', 'failed'];

function toDateOrNull(value: unknown): Date | null {
  return value instanceof Date ? value : null;
}

function toRecord(doc: Document, now: Date, queueField: string, fallbackId = ''): DocumentRecord {
  const created =
    toDateOrNull(doc.created_at) ?? (doc._id instanceof ObjectId ? doc._id.getTimestamp() : new Date(0));
  const runAt = toDateOrNull(doc.run_at);
  const pending = doc.status === 'pending';
  return {
    id: idToString(doc._id) ?? fallbackId,
    status: pending && runAt !== null && runAt > now ? 'scheduled' : (doc.status as DocumentStatus),
    queue: queueOfDocument(doc, queueField),
    payload: payloadOf(doc),
    attempts: attemptsOf(doc),
    claimed_by: typeof doc.claimed_by === 'string' ? doc.claimed_by : null,
    error: typeof doc.error === 'string' ? doc.error : null,
    created_at: created,
    updated_at: toDateOrNull(doc.updated_at) ?? created,
    processed_at: toDateOrNull(doc.processed_at),
    // A user's pending document without run_at has been due since it was created.
    run_at: pending ? (runAt ?? created) : null,
    key: typeof doc.dedup_key === 'string' ? doc.dedup_key : null,
  };
}

export async function getDocument(
  { documents, clock, queueField }: DocumentCollections,
  id: string,
): Promise<DocumentRecord | null> {
  const doc = await documents.findOne({ _id: anyOf([id]) });
  return doc === null ? null : toRecord(doc, await clock.now(), queueField, id);
}

export async function countDocuments({ documents, clock }: DocumentCollections): Promise<DocumentCounts> {
  const counts: DocumentCounts = emptyCounts();
  const now = await clock.now();
  const [groups, scheduled] = await Promise.all([
    documents
      .aggregate<{ _id: string; n: number }>([
        { $match: { status: { $in: STORED_STATUSES } } },
        { $group: { _id: '$status', n: { $sum: 1 } } },
      ])
      .toArray(),
    documents.countDocuments({ status: 'pending', run_at: { $gt: now } }),
  ]);
  for (const { _id, n } of groups) {
    if (_id in counts) counts[_id as DocumentStatus] = Number(n);
  }
  counts.scheduled = scheduled;
  counts.pending -= scheduled;
  return counts;
}

/**
 * Grouped by (queue field, status) in one aggregation, with the scheduled ones (pending and due
 * later) grouped by queue beside it, as countDocuments does: FerretDB's $group takes field paths,
 * not the comparison a `scheduled` key would need. Values that are not queue names count as
 * `default`, as they are claimed.
 */
export async function countQueues({
  documents,
  clock,
  queueField,
}: DocumentCollections): Promise<QueueCounts[]> {
  const now = await clock.now();
  const field = `$${queueField}`;
  const [groups, scheduled] = await Promise.all([
    documents
      .aggregate<{ _id: { queue?: unknown; status?: unknown }; n: number }>([
        { $match: { status: { $in: STORED_STATUSES } } },
        { $group: { _id: { queue: field, status: '$status' }, n: { $sum: 1 } } },
      ])
      .toArray(),
    documents
      .aggregate<{ _id: unknown; n: number }>([
        { $match: { status: 'pending', run_at: { $gt: now } } },
        { $group: { _id: field, n: { $sum: 1 } } },
      ])
      .toArray(),
  ]);
  const queueOf = (value: unknown) => (isQueueName(value) ? value : 'default');
  return groupQueueCounts([
    ...groups.map((g) => ({ queue: queueOf(g._id.queue), status: String(g._id.status), n: Number(g.n) })),
    // Moved from pending to scheduled.
    ...scheduled.flatMap((g) => [
      { queue: queueOf(g._id), status: 'scheduled', n: Number(g.n) },
      { queue: queueOf(g._id), status: 'pending', n: -Number(g.n) },
    ]),
  ]);
}

function cursorOf(id: unknown): string | null {
  if (id instanceof ObjectId) return `o:${id.toHexString()}`;
  if (typeof id === 'string') return `s:${id}`;
  if (typeof id === 'number' && Number.isSafeInteger(id)) return `n:${id}`;
  return null;
}

/** What comes after the cursor in _id order: BSON sorts numbers, then strings, then ObjectIds. */
function afterCursor(cursor: string): Document {
  const bad = () =>
    new PullingAgentError(
      'PA_BAD_REQUEST',
      `the cursor ${JSON.stringify(cursor)} is not one this store gave`,
    );
  const value = cursor.slice(2);
  switch (cursor.slice(0, 2)) {
    case 'o:':
      if (!/^[0-9a-f]{24}$/.test(value)) throw bad();
      return { _id: { $gt: ObjectId.createFromHexString(value) } };
    case 's:':
      return { $or: [{ _id: { $gt: value, $type: 'string' } }, { _id: { $type: 'objectId' } }] };
    case 'n:':
      if (!/^-?\d{1,15}$/.test(value)) throw bad();
      return {
        $or: [{ _id: { $gt: Number(value), $type: 'number' } }, { _id: { $type: ['string', 'objectId'] } }],
      };
    default:
      throw bad();
  }
}

function statusFilter(status: DocumentStatus | undefined, now: Date): Document {
  if (status === undefined) return { status: { $in: STORED_STATUSES } };
  if (status === 'pending') return claimable(now);
  if (status === 'scheduled') return { status: 'pending', run_at: { $gt: now } };
  return { status };
}

export async function listDocuments(
  { documents, clock, queueField }: DocumentCollections,
  query: DocumentQuery,
): Promise<DocumentPage> {
  const limit = Math.max(0, Math.floor(query.limit));
  const now = await clock.now();
  const conditions = [statusFilter(query.status, now), { _id: ADDRESSABLE_ID }];
  if (query.queue !== undefined) conditions.push(queueCondition(queueField, query.queue));
  if (query.after != null) conditions.push(afterCursor(query.after));
  const docs = await documents
    .find({ $and: conditions } as Filter<LooseDocument>, { sort: { _id: 1 }, limit: limit + 1 })
    .toArray();
  const page = docs.slice(0, limit);
  const last = page.at(-1);
  return {
    documents: page.map((doc) => toRecord(doc, now, queueField)),
    next: docs.length > limit && last ? cursorOf(last._id) : null,
  };
}

/**
 * Failed → pending, due now, with a fresh retry budget (attempt_base = attempts). Setting one field
 * from another needs a pipeline update, which FerretDB lacks, so the failed documents are read and
 * updated in groups of equal attempts. Keys as on the SQL stores: a failed document whose key an
 * unfinished one holds stays failed, as do all but the newest of several retried together.
 */
export async function retryDocuments(
  { documents, clock }: DocumentCollections,
  target: { ids: string[] } | { status: 'failed' },
): Promise<number> {
  const scope: Document = { status: 'failed' };
  if ('ids' in target) {
    if (target.ids.length === 0) return 0;
    scope._id = anyOf(target.ids);
  }
  const failed = await documents
    .find(scope, { projection: { _id: 1, attempts: 1, dedup_key: 1 }, sort: { _id: 1 } })
    .toArray();
  const keys = [...new Set(failed.flatMap((d) => (typeof d.dedup_key === 'string' ? [d.dedup_key] : [])))];
  const held = new Set<string>();
  if (keys.length > 0) {
    const unfinished = await documents
      .find(
        { dedup_key: { $in: keys }, status: { $in: ['pending', 'processing'] } },
        { projection: { dedup_key: 1 } },
      )
      .toArray();
    for (const doc of unfinished) held.add(String(doc.dedup_key));
  }
  // Newest first, so that of several failed documents with one key only the newest goes back.
  const groups = new Map<number, DocId[]>();
  for (const doc of failed.reverse()) {
    if (typeof doc.dedup_key === 'string') {
      if (held.has(doc.dedup_key)) continue;
      held.add(doc.dedup_key);
    }
    const attempts = attemptsOf(doc);
    const group = groups.get(attempts);
    if (group) group.push(doc._id as DocId);
    else groups.set(attempts, [doc._id as DocId]);
  }
  const now = await clock.now();
  let retried = 0;
  for (const [attempts, ids] of groups) {
    const result = await documents.updateMany(
      { _id: { $in: ids }, status: 'failed' },
      {
        $set: { status: 'pending', run_at: dueAt(now, 0), attempt_base: attempts, attempts },
        $unset: { claimed_by: '', processed_at: '' },
        $currentDate: { updated_at: true },
      },
    );
    retried += result.modifiedCount;
  }
  return retried;
}

export async function deleteDocument(
  { documents }: DocumentCollections,
  id: string,
): Promise<'deleted' | 'not_found' | 'processing'> {
  const doc = await documents.findOne({ _id: anyOf([id]) }, { projection: { _id: 1, status: 1 } });
  if (doc === null) return 'not_found';
  if (doc.status === 'processing') return 'processing';
  const result = await documents.deleteOne({ _id: doc._id, status: { $ne: 'processing' } });
  if (result.deletedCount > 0) return 'deleted';
  // Claimed in between, or deleted by someone else.
  return (await documents.findOne({ _id: doc._id })) === null ? 'not_found' : 'processing';
}
