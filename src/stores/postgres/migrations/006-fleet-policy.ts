// Migration 6: the fleet policy beside the control row, never inside it (the seed's agent_control
// keeps its exact layout): one row in fleet_policy, its body as jsonb (policyBodyToJson), and its
// own history. Its trigger notifies on the control channel with `policy:<version>`: an agent of
// this version calls onPolicy, and an older one, which reads the payload as a number, finds none
// and only wakes (one extra read of the control version, nothing misapplied). The registry gains
// the columns the policy barrier reads. No row is seeded: none reads as version 0 and empty.

import type { Names } from '../names.js';

export default function fleetPolicy(n: Names): string {
  const s = `"${n.schema}"`;
  return `
    CREATE TABLE ${n.policy} (
      id text PRIMARY KEY,
      version bigint NOT NULL CHECK (version >= 0),
      timestamp timestamptz NOT NULL DEFAULT clock_timestamp(),
      body jsonb NOT NULL DEFAULT '{}'
    );

    -- Append-only: one row per policy command, written in the command's statement.
    CREATE TABLE ${n.policyHistory} (
      version bigint PRIMARY KEY,
      timestamp timestamptz NOT NULL,
      command text NOT NULL,
      queue text,
      rate float8,
      concurrency integer,
      reason text,
      updated_by text NOT NULL,
      on_behalf_of text,
      expires_at timestamptz
    );

    CREATE FUNCTION ${s}.notify_policy() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_notify('${n.controlChannel}', 'policy:' || NEW.version::text);
      RETURN NULL;
    END $$;
    CREATE TRIGGER fleet_policy_notify AFTER INSERT OR UPDATE ON ${n.policy}
      FOR EACH ROW EXECUTE FUNCTION ${s}.notify_policy();

    ALTER TABLE ${n.agents}
      ADD COLUMN applied_policy_version bigint,
      ADD COLUMN queues_in_flight text[],
      ADD COLUMN clock_offset_ms float8;
  `;
}
