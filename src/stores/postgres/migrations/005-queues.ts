// Migration 5: a queue on every document; the rows of before are `default` (a constant default,
// so adding the column rewrites nothing). A filtered claim reads each queue's due rows by due time
// from its own partial index, and lists by queue read (queue, id).

import type { Names } from '../names.js';

export default function queues(n: Names): string {
  return `
    ALTER TABLE ${n.documents} ADD COLUMN queue text NOT NULL DEFAULT 'default';
    CREATE INDEX documents_queue_due_idx ON ${n.documents} (queue, run_at, id) WHERE status = 'pending';
    CREATE INDEX documents_queue_idx ON ${n.documents} (queue, id);
  `;
}
