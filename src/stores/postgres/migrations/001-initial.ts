// Migration 1: the control row and its history, the agent registry and the documents queue, with
// the triggers that NOTIFY. The triggers (not the store's statements) notify, so that the seed's
// manual `UPDATE … SET version = version + 1` and a producer's own INSERT wake the agents too.

import type { Names } from '../names.js';

export default function initial(n: Names): string {
  const s = `"${n.schema}"`;
  return `
    CREATE TABLE ${n.control} (
      id text PRIMARY KEY,
      command text NOT NULL CHECK (command IN ('running', 'pause', 'shutdown')),
      version bigint NOT NULL CHECK (version >= 0),
      timestamp timestamptz NOT NULL DEFAULT clock_timestamp(),
      reason text,
      updated_by text NOT NULL
    );

    -- Append-only: one row per command, written in the command's statement.
    CREATE TABLE ${n.history} (
      version bigint PRIMARY KEY,
      command text NOT NULL,
      timestamp timestamptz NOT NULL,
      reason text,
      updated_by text NOT NULL
    );

    CREATE TABLE ${n.agents} (
      agent_id text PRIMARY KEY,
      host text NOT NULL,
      software_version text NOT NULL,
      state text NOT NULL,
      applied_version bigint NOT NULL,
      applied_at timestamptz,
      batch_in_flight boolean NOT NULL,
      watch_mode text NOT NULL,
      started_at timestamptz NOT NULL,
      counters jsonb NOT NULL DEFAULT '{}',
      heartbeat_at timestamptz NOT NULL DEFAULT clock_timestamp()
    );

    CREATE TABLE ${n.documents} (
      id bigserial PRIMARY KEY,
      status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'processing', 'processed', 'failed')),
      payload jsonb NOT NULL,
      attempts integer NOT NULL DEFAULT 0,
      claimed_by text,
      lease_until timestamptz,
      error text,
      created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
      updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
      processed_at timestamptz
    );
    -- What claimBatch scans, in id order: the pending documents and the few in flight (whose
    -- lease it checks), never the processed history. One index for both, because the claim's
    -- "pending OR expired" condition cannot use a pending-only index in id order.
    CREATE INDEX documents_claimable_idx ON ${n.documents} (id) WHERE status IN ('pending', 'processing');

    CREATE FUNCTION ${s}.notify_control() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_notify('${n.controlChannel}', NEW.version::text);
      RETURN NULL;
    END $$;
    CREATE TRIGGER agent_control_notify AFTER INSERT OR UPDATE ON ${n.control}
      FOR EACH ROW EXECUTE FUNCTION ${s}.notify_control();

    CREATE FUNCTION ${s}.notify_documents() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_notify('${n.documentsChannel}', '');
      RETURN NULL;
    END $$;
    CREATE TRIGGER documents_notify AFTER INSERT ON ${n.documents}
      FOR EACH STATEMENT EXECUTE FUNCTION ${s}.notify_documents();
  `;
}
