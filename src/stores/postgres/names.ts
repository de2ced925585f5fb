// The identifiers of one store: every table lives in the configured schema, and the NOTIFY channels
// carry the schema's name so that two fleets on one server (two schemas) never wake each other.

import { createHash } from 'node:crypto';

import { ConfigError } from '../../errors.js';

/** The same rule as PG_SCHEMA in src/config.ts: a lower-case identifier that needs no escaping. */
const SCHEMA_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;
/** PostgreSQL truncates identifiers, and refuses channel names, of NAMEDATALEN (64) bytes or more. */
const MAX_IDENTIFIER = 63;

export interface Names {
  schema: string;
  /** Schema-qualified, quoted table names, ready to paste into SQL. */
  control: string;
  history: string;
  agents: string;
  documents: string;
  migrations: string;
  /** The fleet policy row and its history (migration 6). */
  policy: string;
  policyHistory: string;
  /** The documents' id sequence (bigserial), as a regclass literal's text. */
  documentsIdSequence: string;
  /** Unquoted channel names (pg_notify takes them as text; LISTEN gets them quoted). */
  controlChannel: string;
  documentsChannel: string;
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function channel(schema: string, topic: string): string {
  const plain = `${schema}:${topic}`;
  if (plain.length <= MAX_IDENTIFIER) return plain;
  // A long schema name: a digest keeps the channel unique per schema and short enough.
  const digest = createHash('sha256').update(schema).digest('hex').slice(0, 16);
  return `${schema.slice(0, MAX_IDENTIFIER - topic.length - digest.length - 2)}~${digest}:${topic}`;
}

export function makeNames(schema: string): Names {
  if (!SCHEMA_PATTERN.test(schema)) {
    throw new ConfigError([`PG_SCHEMA=${JSON.stringify(schema)} must match ${SCHEMA_PATTERN.source}`]);
  }
  const table = (name: string) => `${quoteIdent(schema)}.${quoteIdent(name)}`;
  return {
    schema,
    control: table('agent_control'),
    history: table('agent_control_history'),
    agents: table('agents'),
    documents: table('documents'),
    migrations: table('schema_migrations'),
    policy: table('fleet_policy'),
    policyHistory: table('fleet_policy_history'),
    documentsIdSequence: table('documents_id_seq'),
    controlChannel: channel(schema, 'control'),
    documentsChannel: channel(schema, 'documents'),
  };
}
