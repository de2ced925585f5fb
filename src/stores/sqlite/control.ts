// The control row and its history. A command is one IMMEDIATE transaction: the file's write lock
// serialises commands across processes, and the history entry is written under the same lock.

import { VersionConflictError, VersionExhaustedError } from '../../errors.js';
import {
  CONTROL_ID,
  parseControlState,
  parseControlVersion,
  tryParseControlState,
} from '../../model/control.js';
import type { CommandInput, ControlState } from '../types.js';
import { type Handle, NOW_ISO } from './connection.js';

const FIELDS = 'command, version, timestamp, reason, updated_by, on_behalf_of, expires_at';

function readControlRow(h: Handle): unknown {
  return h.statement(`SELECT ${FIELDS} FROM agent_control WHERE id = ?`).get(CONTROL_ID);
}

export function hasControlRow(h: Handle): boolean {
  return h.statement('SELECT 1 FROM agent_control WHERE id = ?').get(CONTROL_ID) !== undefined;
}

export function readControlVersion(h: Handle): number {
  return parseControlVersion(h.statement('SELECT version FROM agent_control WHERE id = ?').get(CONTROL_ID));
}

export function readControl(h: Handle): ControlState {
  return parseControlState(readControlRow(h));
}

export function writeCommand(h: Handle, input: CommandInput): ControlState {
  return h.db
    .transaction((): ControlState => {
      if (input.expectedVersion !== undefined) {
        const current = parseControlVersion(readControlRow(h));
        if (input.expectedVersion !== current) throw new VersionConflictError(input.expectedVersion, current);
      }
      // One above both the stored version and the newest history entry, so that a command
      // also repairs a control row broken by hand (a text version, an unknown command).
      const base = h
        .statement(
          `SELECT MAX(
             CASE WHEN typeof(version) = 'integer' AND version >= 0 THEN version ELSE 0 END,
             COALESCE((SELECT MAX(version) FROM agent_control_history), 0)) AS base
           FROM agent_control WHERE id = ?`,
        )
        .safeIntegers(true)
        .get(CONTROL_ID) as { base: bigint } | undefined;
      if (base && base.base >= BigInt(Number.MAX_SAFE_INTEGER)) throw new VersionExhaustedError(base.base);
      const row = h
        .statement(
          `UPDATE agent_control SET command = ?, timestamp = ${NOW_ISO}, reason = ?, updated_by = ?,
             on_behalf_of = ?, expires_at = ?,
             version = MAX(
               CASE WHEN typeof(version) = 'integer' AND version >= 0 THEN version ELSE 0 END,
               COALESCE((SELECT MAX(version) FROM agent_control_history), 0)) + 1
           WHERE id = ? RETURNING ${FIELDS}`,
        )
        .get(
          input.command,
          input.reason,
          input.updated_by,
          input.on_behalf_of ?? null,
          input.expires_at?.toISOString() ?? null,
          CONTROL_ID,
        );
      const state = parseControlState(row);
      h.statement(`INSERT INTO agent_control_history (${FIELDS}) VALUES (?, ?, ?, ?, ?, ?, ?)`).run(
        state.command,
        state.version,
        state.timestamp.toISOString(),
        state.reason,
        state.updated_by,
        state.on_behalf_of,
        state.expires_at?.toISOString() ?? null,
      );
      return state;
    })
    .immediate();
}

export function listHistory(h: Handle, limit: number): ControlState[] {
  const rows = h
    .statement(`SELECT ${FIELDS} FROM agent_control_history ORDER BY version DESC LIMIT ?`)
    .all(limit);
  return rows.map(tryParseControlState).filter((s): s is ControlState => s !== null);
}
