// What happened to every document, from the two witnesses that do not lie for each other: the
// record handler's file (one line per handler run that finished) and the store's counts. Lost
// means stored but never handled to the end; processed twice means more than one finished run.

import { closeSync, openSync, readSync } from 'node:fs';

import type { Store } from '../src/stores/types.js';
import { waitFor } from '../test/helpers/wait.js';

export interface Ledger {
  stored: number;
  /** Stored documents with no finished handler run, or still pending/processing at the end. */
  lost: string[];
  /** Document id → the agents whose runs finished, in order, for documents run more than once. */
  twice: Map<string, string[]>;
  /** Finished runs of documents the harness never stored (must be none). */
  strangers: number;
}

export function readLedger(ids: string[], records: { agent: string; id: string }[]): Ledger {
  const runs = new Map<string, string[]>();
  for (const { agent, id } of records) {
    const list = runs.get(id);
    if (list) list.push(agent);
    else runs.set(id, [agent]);
  }
  const stored = new Set(ids);
  const twice = new Map<string, string[]>();
  let strangers = 0;
  for (const [id, agents] of runs) {
    if (!stored.has(id)) strangers++;
    else if (agents.length > 1) twice.set(id, agents);
  }
  return { stored: ids.length, lost: ids.filter((id) => !runs.has(id)), twice, strangers };
}

/** Stores `total` small documents in chunks; resolves with their ids in order. */
export async function storeDocuments(store: Store, total: number, chunk = 2_000): Promise<string[]> {
  const ids: string[] = [];
  for (let start = 0; start < total; start += chunk) {
    const n = Math.min(chunk, total - start);
    ids.push(...(await store.insertDocuments(Array.from({ length: n }, (_, i) => ({ n: start + i })))));
  }
  return ids;
}

/**
 * Waits until nothing is pending, scheduled or processing (a crashed agent's documents come back
 * scheduled, spread over up to a lease); false when the deadline passed first.
 */
export async function drained(store: Store, timeoutMs: number, intervalMs = 500): Promise<boolean> {
  try {
    await waitFor(
      async () => {
        const c = await store.countDocuments();
        return c.pending === 0 && c.scheduled === 0 && c.processing === 0;
      },
      { what: 'every document handled', timeoutMs, intervalMs },
    );
    return true;
  } catch {
    return false;
  }
}

/** Counts the record file's lines as they are written, reading only what is new each time. */
export class RecordCounter {
  #offset = 0;
  #lines = 0;

  constructor(private readonly path: string) {}

  count(): number {
    let fd: number;
    try {
      fd = openSync(this.path, 'r');
    } catch {
      return this.#lines;
    }
    try {
      const buffer = Buffer.alloc(1 << 16);
      for (let i = 0; i < 10_000; i++) {
        const read = readSync(fd, buffer, 0, buffer.length, this.#offset);
        if (read === 0) break;
        this.#offset += read;
        for (let j = 0; j < read; j++) if (buffer[j] === 10) this.#lines++;
      }
    } finally {
      closeSync(fd);
    }
    return this.#lines;
  }
}

/** How the store sees a few lost documents, for the report: "id pending (attempts 0)". */
export async function describeLost(
  { store, inspector }: { store: Store; inspector: { diagnose(ids: string[]): Promise<string> } },
  lost: string[],
  max = 5,
): Promise<string> {
  const shown = await Promise.all(
    lost.slice(0, max).map(async (id) => {
      const doc = await store.getDocument(id).catch(() => null);
      if (!doc) return `${id} unreadable`;
      return `${id} ${doc.status}${doc.claimed_by ? ` by ${doc.claimed_by}` : ''} (attempts ${doc.attempts})`;
    }),
  );
  const diagnosis = await inspector.diagnose(lost).catch(() => '');
  return (
    shown.join('; ') +
    (lost.length > max ? `; … ${lost.length - max} more` : '') +
    (diagnosis ? `; ${diagnosis}` : '')
  );
}
