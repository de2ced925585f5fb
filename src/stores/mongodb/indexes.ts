// Index creation at start-up, idempotent: createIndexes is a no-op for an index that exists with
// the same name and key, and an equivalent index the user made under another name is good enough.

import { type Collection, type IndexDescription, MongoServerError } from 'mongodb';

import type { LooseDocument } from './connection.js';

const EQUIVALENT_EXISTS = new Set([
  85, // IndexOptionsConflict: the same key exists under another name (or with other options)
  86, // IndexKeySpecsConflict: the name exists with another key
]);

export async function ensureIndexes(
  collection: Collection<LooseDocument>,
  indexes: IndexDescription[],
): Promise<void> {
  for (const index of indexes) {
    try {
      await collection.createIndexes([index]);
    } catch (error) {
      if (!(error instanceof MongoServerError && EQUIVALENT_EXISTS.has(Number(error.code)))) throw error;
    }
  }
}
