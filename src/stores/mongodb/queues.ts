// Queues on MongoDB are a field of the user's document, named by QUEUE_FIELD (default `queue`),
// because a user's collection may already use `type` or `queue` for something of its own. A
// document without the field, or whose field is not a valid queue name (a number, "Emails"), is in
// `default`: claimed, counted and listed as such, its field left as it is (docs/stores.md). These
// helpers turn a reduced claim filter or a list's queue into a query on that field.

import type { Document } from 'mongodb';

import { ConfigError } from '../../errors.js';
import { DEFAULT_QUEUE, isQueueName, QUEUE_NAME_PATTERN } from '../../model/policy.js';
import type { ReducedFilter } from '../queues.js';

export const DEFAULT_QUEUE_FIELD = 'queue';
/** A plain top-level field: no `.`, no `$`, nothing a query would read as a path or an operator. */
export const QUEUE_FIELD_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** Throws ConfigError unless `field` is a safe top-level name the agents do not keep themselves. */
export function checkQueueField(field: string, reserved: readonly string[]): void {
  if (!QUEUE_FIELD_PATTERN.test(field)) {
    throw new ConfigError([
      `QUEUE_FIELD=${JSON.stringify(field)} is not a plain top-level field name (letters, digits and _, at most 64, not starting with a digit)`,
    ]);
  }
  if (reserved.includes(field)) {
    throw new ConfigError([
      `QUEUE_FIELD=${JSON.stringify(field)} is a field the agents keep on each document`,
    ]);
  }
}

/** A stored document's queue: its field when that is a valid queue name, else DEFAULT_QUEUE. */
export function queueOfDocument(doc: Document, field: string): string {
  const value: unknown = doc[field];
  return isQueueName(value) ? value : DEFAULT_QUEUE;
}

/**
 * The documents of these queues. `default` takes in what has no valid name: `$not` with the
 * name's pattern matches a missing field, null, a non-string and a string that is not a name.
 */
function inQueues(field: string, queues: readonly string[]): Document {
  const named = { [field]: { $in: [...queues] } };
  if (!queues.includes(DEFAULT_QUEUE)) return named;
  return { $or: [named, { [field]: { $not: QUEUE_NAME_PATTERN } }] };
}

/** Every document but those of these queues. */
function notInQueues(field: string, queues: readonly string[]): Document {
  // Without `default` among them, $nin keeps the documents without a valid name (they are default).
  if (!queues.includes(DEFAULT_QUEUE)) return { [field]: { $nin: [...queues] } };
  return { [field]: { $regex: QUEUE_NAME_PATTERN, $nin: [...queues] } };
}

/** The condition a claim adds for a reduced filter (neither null nor 'none'). */
export function claimCondition(field: string, reduced: Exclude<ReducedFilter, null | 'none'>): Document {
  return reduced.only !== null ? inQueues(field, reduced.only) : notInQueues(field, reduced.exclude);
}

/** The condition of one queue's documents, for lists. */
export function queueCondition(field: string, queue: string): Document {
  return inQueues(field, [queue]);
}
