// API tokens: who may command the fleet. Parsed once at start from API_TOKENS and API_TOKENS_FILE
// (`name:role:token`), checked in constant time on every request. A token never appears in a
// message, a log line or a response; only its name does.

import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';

export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export interface ApiToken {
  name: string;
  role: Role;
  /** sha256 of the token: what is kept in memory and compared. */
  digest: Buffer;
}

export const MIN_TOKEN_LENGTH = 16;

export const AUTH_OFF_WARNING =
  'Authentication is OFF: anyone who can reach this port can pause, resume or shut down the whole fleet. Set API_TOKENS or API_TOKENS_FILE (see docs/security.md).';

const digest = (token: string) => createHash('sha256').update(token, 'utf8').digest();

/** Parses `name:role:token` entries; problems name the source and the entry, never the token. */
export function parseApiTokens(entries: { text: string; where: string }[]): {
  tokens: ApiToken[];
  problems: string[];
} {
  const tokens: ApiToken[] = [];
  const problems: string[] = [];
  const names = new Set<string>();
  const digests = new Set<string>();
  for (const { text, where } of entries) {
    const first = text.indexOf(':');
    const second = text.indexOf(':', first + 1);
    if (first <= 0 || second <= first + 1) {
      problems.push(`${where}: expected name:role:token`);
      continue;
    }
    const name = text.slice(0, first).trim();
    const role = text.slice(first + 1, second).trim();
    const token = text.slice(second + 1).trim();
    if (!/^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/.test(name)) {
      problems.push(`${where}: name ${JSON.stringify(name)} must be letters, digits, . _ @ - (at most 64)`);
      continue;
    }
    if (!(ROLES as readonly string[]).includes(role)) {
      problems.push(`${where} (${name}): role ${JSON.stringify(role)} must be viewer, operator or admin`);
      continue;
    }
    if (token.length < MIN_TOKEN_LENGTH || /\s/.test(token)) {
      problems.push(
        `${where} (${name}): the token must be at least ${MIN_TOKEN_LENGTH} characters without spaces`,
      );
      continue;
    }
    const hash = digest(token);
    if (names.has(name)) problems.push(`${where}: the name ${name} is used twice`);
    if (digests.has(hash.toString('hex'))) problems.push(`${where} (${name}): the same token is given twice`);
    names.add(name);
    digests.add(hash.toString('hex'));
    tokens.push({ name, role: role as Role, digest: hash });
  }
  return { tokens, problems };
}

/** Reads API_TOKENS (comma-separated) and API_TOKENS_FILE (one entry a line, # comments). */
export function loadApiTokens(
  inline: string | undefined,
  file: string | undefined,
): { tokens: ApiToken[]; problems: string[] } {
  const entries: { text: string; where: string }[] = [];
  (inline ?? '')
    .split(',')
    .map((e) => e.trim())
    .forEach((text, i) => {
      if (text) entries.push({ text, where: `API_TOKENS entry ${i + 1}` });
    });
  if (file) {
    let content: string;
    try {
      content = readFileSync(file, 'utf8');
    } catch (error) {
      return {
        tokens: [],
        problems: [
          `API_TOKENS_FILE=${file}: cannot read it (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
        ],
      };
    }
    content.split('\n').forEach((line, i) => {
      const text = line.trim();
      if (text && !text.startsWith('#')) entries.push({ text, where: `API_TOKENS_FILE line ${i + 1}` });
    });
    if (entries.length === 0) return { tokens: [], problems: [`API_TOKENS_FILE=${file}: no token in it`] };
  }
  return parseApiTokens(entries);
}

/** The token's entry, compared in constant time against every configured token. */
export function findToken(tokens: readonly ApiToken[], presented: string): ApiToken | null {
  const hash = digest(presented);
  let found: ApiToken | null = null;
  for (const token of tokens) {
    // No early exit: the time taken does not depend on which token matched.
    if (timingSafeEqual(token.digest, hash)) found = token;
  }
  return found;
}

export function roleAtLeast(role: Role, needed: Role): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(needed);
}
