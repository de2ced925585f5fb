// Queues as every store sees them: the queue of each new document, checked before anything is
// stored, and a claim filter reduced once to what a statement needs, so that each store only
// translates the reduced form. Written once here rather than per store, so that the same bad name
// reads the same on SQLite, PostgreSQL and MongoDB.

import { PullingAgentError } from '../errors.js';
import { DEFAULT_QUEUE, queueNameProblem } from '../model/policy.js';
import type { ClaimFilter, DocumentCounts, NewDocument, QueueCounts } from './types.js';

/**
 * Each document's queue, DEFAULT_QUEUE when absent; throws PA_BAD_REQUEST naming the first bad one
 * (and its place in the request when there are several), so that a store can check before it
 * writes and a bad request stores nothing.
 */
export function queuesOf(documents: readonly NewDocument[]): string[] {
  return documents.map((d, i) => {
    if (d.queue === undefined) return DEFAULT_QUEUE;
    const problem = queueNameProblem(d.queue);
    if (problem !== null) {
      const where = documents.length > 1 ? `document ${i}: ` : '';
      throw new PullingAgentError('PA_BAD_REQUEST', `${where}${problem}`, { queue: d.queue });
    }
    return d.queue;
  });
}

/**
 * What a claim filter asks, reduced: `null` for no restriction (the claim statement of old, as fast
 * as before), `'none'` when it can claim nothing (`only: []`, or every listed queue excluded), or
 * the queues to take from / to leave, each sorted and without duplicates. `exclude` wins over `only`.
 */
export type ReducedFilter =
  null | 'none' | { only: string[]; exclude: null } | { only: null; exclude: string[] };

export function reduceFilter(filter: ClaimFilter | undefined): ReducedFilter {
  if (filter === undefined) return null;
  const exclude = new Set(filter.exclude ?? []);
  if (filter.only !== undefined && filter.only !== null) {
    const only = [...new Set(filter.only)].filter((q) => !exclude.has(q)).sort();
    return only.length === 0 ? 'none' : { only, exclude: null };
  }
  return exclude.size === 0 ? null : { only: null, exclude: [...exclude].sort() };
}

/** Whether a document of this queue passes a reduced filter. */
export function passes(filter: ReducedFilter, queue: string): boolean {
  if (filter === null) return true;
  if (filter === 'none') return false;
  return filter.only !== null ? filter.only.includes(queue) : !filter.exclude.includes(queue);
}

export function emptyCounts(): DocumentCounts {
  return { pending: 0, scheduled: 0, processing: 0, processed: 0, failed: 0 };
}

/** Grouped rows of (queue, shown status, n) as countQueues answers: one entry per queue, by name. */
export function groupQueueCounts(
  rows: Iterable<{ queue: string; status: string; n: number }>,
): QueueCounts[] {
  const byQueue = new Map<string, DocumentCounts>();
  for (const { queue, status, n } of rows) {
    let counts = byQueue.get(queue);
    if (counts === undefined) byQueue.set(queue, (counts = emptyCounts()));
    if (status in counts) counts[status as keyof DocumentCounts] += n;
  }
  return [...byQueue.keys()]
    .sort((x, y) => (x < y ? -1 : x > y ? 1 : 0))
    .map((queue) => ({ queue, counts: byQueue.get(queue)! }));
}
