// The control document and its history, laid out as the seed's mongosh recipes expect: collection
// agent_control holds the current state `{_id: "global_control", command, version, timestamp,
// reason, updated_by}` and one history document per command, `{_id: "history:<version>", kind:
// "history", version, …}`, so `db.agent_control.find().sort({version:-1})` reads the audit trail.
//
// A command is written log first: inserting `history:<version+1>` claims that version (the _id is
// unique, and a unique insert is atomic on every server that speaks the protocol, FerretDB's
// SQLite backend included, whose updates are read-modify-write without a compare), then the state
// document moves from `version` to `version+1` with a conditional update only that writer makes.
// So two concurrent commands get two distinct versions and neither is lost, on MongoDB and on
// FerretDB alike; a writer that loses the race simply reads again and takes the next version.

import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

import type { Collection, Document } from 'mongodb';

import { StoreUnavailableError, VersionConflictError, VersionExhaustedError } from '../../errors.js';
import {
  CONTROL_ID,
  parseControlState,
  parseControlVersion,
  tryParseControlState,
} from '../../model/control.js';
import type { CommandInput, ControlState } from '../types.js';
import type { ServerClock } from './clock.js';
import { isDuplicateKey, type LooseDocument } from './connection.js';
import { ensureIndexes } from './indexes.js';

export const CONTROL_COLLECTION = 'agent_control';
const HISTORY_KIND = 'history';
/** How long contention may delay one command before the write gives up. */
const WRITE_BUDGET_MS = 30_000;
/** After how long a history entry whose writer never moved the state counts as abandoned. */
const ABANDONED_AFTER_MS = 30_000;
/** How long the same version may stay taken before we look for an abandoned entry. */
const SUSPECT_AFTER_MS = 2_000;
/** Matches nothing and copies nothing into an upserted document: an upsert that only inserts. */
const NEVER = { $in: [] };

export function historyId(version: number): string {
  return `history:${version}`;
}

export async function ensureControl(control: Collection<LooseDocument>): Promise<void> {
  await ensureIndexes(control, [{ key: { kind: 1, version: -1 }, name: 'pa_history_by_version' }]);
  await seedControl(control);
}

/**
 * Creates the control document when it is missing, never touching an existing one. Its version
 * continues after the newest history entry (0 in a new database), so that a control document
 * deleted by hand does not make versions go backwards.
 */
export async function seedControl(control: Collection<LooseDocument>): Promise<void> {
  if (await control.findOne({ _id: CONTROL_ID }, { projection: { _id: 1 } })) return;
  const [newest] = await control
    .find({ kind: HISTORY_KIND }, { projection: { version: 1 }, sort: { version: -1 }, limit: 1 })
    .toArray();
  const version = tryVersion(newest) ?? 0;
  try {
    // `$set` rather than `$setOnInsert`: FerretDB drops a null reason from `$setOnInsert`.
    await control.updateOne(
      { _id: CONTROL_ID, version: NEVER },
      {
        $set: { command: 'running', version, reason: null, updated_by: 'system' },
        $currentDate: { timestamp: true },
      },
      { upsert: true },
    );
  } catch (error) {
    if (!isDuplicateKey(error)) throw error; // another agent seeded it first
  }
}

function tryVersion(raw: unknown): number | undefined {
  if (raw === undefined || raw === null) return undefined;
  try {
    return parseControlVersion(raw);
  } catch {
    return undefined;
  }
}

/** `maxTimeMS`: the server gives up on the read after this (STORE_TIMEOUT); absent = no limit. */
export async function readControlVersion(
  control: Collection<LooseDocument>,
  maxTimeMS?: number,
): Promise<number> {
  return parseControlVersion(
    await control.findOne(
      { _id: CONTROL_ID },
      { projection: { version: 1, _id: 0 }, ...(maxTimeMS !== undefined && { maxTimeMS }) },
    ),
  );
}

export async function readControl(
  control: Collection<LooseDocument>,
  maxTimeMS?: number,
): Promise<ControlState> {
  return parseControlState(
    await control.findOne({ _id: CONTROL_ID }, maxTimeMS !== undefined ? { maxTimeMS } : {}),
  );
}

export async function listHistory(
  control: Collection<LooseDocument>,
  limit: number,
): Promise<ControlState[]> {
  if (limit <= 0) return []; // limit(0) means "no limit" to MongoDB
  const entries = await control
    .find({ kind: HISTORY_KIND }, { sort: { version: -1 }, limit: Math.floor(limit) })
    .toArray();
  return entries.map(tryParseControlState).filter((s): s is ControlState => s !== null);
}

/** Inserts history:<version> for this writer; null when another writer holds that version. */
async function claimVersion(
  control: Collection<LooseDocument>,
  version: number,
  input: CommandInput,
  token: string,
): Promise<Document | null> {
  try {
    return await control.findOneAndUpdate(
      { _id: historyId(version), version: NEVER },
      {
        $set: {
          kind: HISTORY_KIND,
          version,
          command: input.command,
          reason: input.reason,
          updated_by: input.updated_by,
          on_behalf_of: input.on_behalf_of ?? null,
          expires_at: input.expires_at ?? null,
          write_token: token,
        },
        $currentDate: { timestamp: true },
      },
      { upsert: true, returnDocument: 'after' },
    );
  } catch (error) {
    if (isDuplicateKey(error)) return null;
    throw error;
  }
}

/**
 * Removes history:<version> when its writer died between its two steps: the entry is old and the
 * state document still sits at the version before it. The command it carries was never applied
 * and never confirmed, so it is withdrawn rather than applied late.
 */
async function withdrawAbandoned(
  control: Collection<LooseDocument>,
  clock: ServerClock,
  version: number,
): Promise<void> {
  const entry = await control.findOne({ _id: historyId(version) });
  if (!(entry?.timestamp instanceof Date)) return;
  const age = (await clock.now()).getTime() - entry.timestamp.getTime();
  if (age < ABANDONED_AFTER_MS) return;
  if ((await readControlVersion(control)) !== version - 1) return;
  await control.deleteOne({ _id: historyId(version), write_token: entry.write_token });
}

export async function writeCommand(
  control: Collection<LooseDocument>,
  clock: ServerClock,
  input: CommandInput,
): Promise<ControlState> {
  const token = randomUUID();
  const deadline = performance.now() + WRITE_BUDGET_MS;
  let backoffMs = 2;
  let contendedVersion = -1; // the version other writers held at our last try, and since when
  let contendedSince = 0;
  for (;;) {
    const raw = await control.findOne({ _id: CONTROL_ID }, { projection: { version: 1 } });
    if (raw === null) {
      await seedControl(control); // deleted by hand: recreate it, then write
      continue;
    }
    const current = parseControlVersion(raw);
    if (input.expectedVersion !== undefined && input.expectedVersion !== current) {
      throw new VersionConflictError(input.expectedVersion, current);
    }
    if (current >= Number.MAX_SAFE_INTEGER) throw new VersionExhaustedError(current);
    const next = current + 1;
    const entry = await claimVersion(control, next, input, token);
    if (entry !== null) {
      const state: ControlState = {
        command: input.command,
        version: next,
        timestamp: entry.timestamp as Date,
        reason: input.reason,
        updated_by: input.updated_by,
        on_behalf_of: input.on_behalf_of ?? null,
        expires_at: input.expires_at ?? null,
      };
      const moved = await control.updateOne({ _id: CONTROL_ID, version: current }, { $set: { ...state } });
      if (moved.matchedCount === 1) return state;
      // The state moved under us without a history entry (the seed's manual version bump):
      // withdraw ours and write on top of the new version.
      await control.deleteOne({ _id: historyId(next), write_token: token });
      if (input.expectedVersion !== undefined) {
        throw new VersionConflictError(input.expectedVersion, await readControlVersion(control));
      }
    } else {
      if (input.expectedVersion !== undefined) throw new VersionConflictError(input.expectedVersion, next);
      const now = performance.now();
      if (contendedVersion !== next) {
        contendedVersion = next;
        contendedSince = now;
      } else if (now - contendedSince > SUSPECT_AFTER_MS) {
        await withdrawAbandoned(control, clock, next);
      }
    }
    if (performance.now() > deadline) {
      throw new StoreUnavailableError(
        'writing a command',
        new Error(`concurrent control writes kept taking the next version for ${WRITE_BUDGET_MS / 1000} s`),
      );
    }
    await sleep(backoffMs * (0.5 + Math.random()));
    backoffMs = Math.min(backoffMs * 2, 100);
  }
}
