// The numbered migrations, in order. A migration is never edited once released: a change to the
// schema is a new file here, and its number is the schema version recorded in schema_migrations.

import type { Names } from '../names.js';
import initial from './001-initial.js';
import commandDetails from './002-command-details.js';
import claimTokens from './003-claim-tokens.js';
import dueTimes from './004-due-times.js';
import queues from './005-queues.js';
import fleetPolicy from './006-fleet-policy.js';

export interface Migration {
  version: number;
  name: string;
  sql(names: Names): string;
}

export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: 'initial', sql: initial },
  { version: 2, name: 'command details', sql: commandDetails },
  { version: 3, name: 'claim tokens and instance ids', sql: claimTokens },
  { version: 4, name: 'due times, retry baselines and deduplication keys', sql: dueTimes },
  { version: 5, name: 'queues', sql: queues },
  { version: 6, name: 'fleet policy and its history', sql: fleetPolicy },
];
