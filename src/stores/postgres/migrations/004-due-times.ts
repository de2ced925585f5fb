// Migration 4: due times (run_at; existing rows are due since they were created), the attempt
// baseline a manual retry sets (attempt_base), and deduplication keys, unique among unfinished
// documents. The claim now reads pending rows by due time, so the old claimable index (pending or
// processing, in id order) gives way to one on due pending rows and one on the leases in flight.

import type { Names } from '../names.js';

export default function dueTimes(n: Names): string {
  return `
    ALTER TABLE ${n.documents}
      ADD COLUMN run_at timestamptz,
      ADD COLUMN attempt_base integer NOT NULL DEFAULT 0,
      ADD COLUMN key text;
    UPDATE ${n.documents} SET run_at = created_at;
    ALTER TABLE ${n.documents}
      ALTER COLUMN run_at SET DEFAULT clock_timestamp(),
      ALTER COLUMN run_at SET NOT NULL;

    DROP INDEX "${n.schema}".documents_claimable_idx;
    CREATE INDEX documents_due_idx ON ${n.documents} (run_at, id) WHERE status = 'pending';
    CREATE INDEX documents_lease_idx ON ${n.documents} (lease_until) WHERE status = 'processing';
    CREATE INDEX documents_failed_idx ON ${n.documents} (id) WHERE status = 'failed';
    CREATE UNIQUE INDEX documents_key_unfinished_idx ON ${n.documents} (key)
      WHERE key IS NOT NULL AND status IN ('pending', 'processing');
    CREATE INDEX documents_key_idx ON ${n.documents} (key, id) WHERE key IS NOT NULL;
  `;
}
