// Migration 3: claims owned by token (claim_token, drawn per claimBatch call), the registry keyed
// by process instance (instance_id), and the documents trigger announcing how many rows an INSERT
// stored, read from its transition table, so that idle agents do not all race for one document.

import type { Names } from '../names.js';

export default function claimTokens(n: Names): string {
  const s = `"${n.schema}"`;
  return `
    ALTER TABLE ${n.documents} ADD COLUMN claim_token text;

    -- The registry's rows are deleted rather than given an invented instance id: every live
    -- agent's next heartbeat (within seconds) writes its row again, under its own instance id.
    DELETE FROM ${n.agents};
    ALTER TABLE ${n.agents} DROP CONSTRAINT agents_pkey;
    ALTER TABLE ${n.agents} ADD COLUMN instance_id text NOT NULL;
    ALTER TABLE ${n.agents} ADD PRIMARY KEY (instance_id);
    CREATE INDEX agents_by_agent_id_idx ON ${n.agents} (agent_id, instance_id);

    DROP TRIGGER documents_notify ON ${n.documents};
    CREATE OR REPLACE FUNCTION ${s}.notify_documents() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      stored bigint;
    BEGIN
      SELECT count(*) INTO stored FROM inserted;
      IF stored > 0 THEN
        PERFORM pg_notify('${n.documentsChannel}', stored::text);
      END IF;
      RETURN NULL;
    END $$;
    CREATE TRIGGER documents_notify AFTER INSERT ON ${n.documents}
      REFERENCING NEW TABLE AS inserted
      FOR EACH STATEMENT EXECUTE FUNCTION ${s}.notify_documents();
  `;
}
