// Migration 2: who a command was written on behalf of (with authentication, the actor is the
// token's name), and pauses that expire by themselves.

import type { Names } from '../names.js';

export default function commandDetails(n: Names): string {
  return `
    ALTER TABLE ${n.control} ADD COLUMN on_behalf_of text, ADD COLUMN expires_at timestamptz;
    ALTER TABLE ${n.history} ADD COLUMN on_behalf_of text, ADD COLUMN expires_at timestamptz;
  `;
}
