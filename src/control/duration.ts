// Durations as operators write them: `90` (seconds), `90s`, `30m`, `2h`, `1d`, `1h30m`, `250ms`.
// The one grammar: parseDuration, the server's schema pattern (DURATION_PATTERN) and agentctl's
// check all come from here. Units are case-insensitive (`2H` is `2h`) everywhere.

const UNITS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `ms` before `m` and `s`, so that `250ms` is read as milliseconds. */
const UNIT_NAMES = Object.keys(UNITS).sort((a, b) => b.length - a.length);
/** At most 9 digits and 3 decimals per amount, at most 5 parts: bounded, so no caller runs long. */
const AMOUNT = '\\d{1,9}(?:\\.\\d{1,3})?';
const MAX_PARTS = 5;

/** Each letter either case, since JSON Schema patterns take no flags (Ajv compiles them with `u`). */
const anyCase = (unit: string) => [...unit].map((c) => `[${c}${c.toUpperCase()}]`).join('');

/** The JSON Schema pattern of a duration, for request schemas and the OpenAPI document. */
export const DURATION_PATTERN = `^(?:${AMOUNT}|(?:${AMOUNT}(?:${UNIT_NAMES.map(anyCase).join('|')})){1,${MAX_PARTS}})$`;

const WHOLE = new RegExp(DURATION_PATTERN, 'u');
const PART = new RegExp(`(${AMOUNT})(${UNIT_NAMES.join('|')})`, 'g');

/** Milliseconds, or null when the text is not a duration. Surrounding blanks are ignored. */
export function parseDuration(text: string): number | null {
  const trimmed = text.trim();
  if (!WHOLE.test(trimmed)) return null;
  const lower = trimmed.toLowerCase();
  if (/^[\d.]+$/.test(lower)) return Math.round(Number(lower) * 1000);
  let total = 0;
  for (const [, amount, unit] of lower.matchAll(PART)) {
    total += Number(amount) * UNITS[unit as keyof typeof UNITS];
  }
  return Math.round(total);
}

/** How long a pause may be given to end by itself (`expires_in`, `agentctl pause --expires-in`). */
export const EXPIRY_MIN_MS = 1_000;
export const EXPIRY_MAX_MS = 30 * UNITS.d;

/** Said after the name of the field: `expires_in must be a duration such as …`. */
export const EXPIRY_RULE = 'must be a duration such as 30s, 15m, 2h or 1d (1 s to 30 d)';

/** Milliseconds of a valid expiry, or null when the text is no duration or out of range. */
export function parseExpiry(text: string): number | null {
  const ms = parseDuration(text);
  return ms !== null && ms >= EXPIRY_MIN_MS && ms <= EXPIRY_MAX_MS ? ms : null;
}

/** `2h`, `1h30m`, `45s`: the reverse, for messages. */
export function formatDuration(ms: number): string {
  let rest = Math.round(ms / 1000);
  const parts: string[] = [];
  for (const [unit, size] of [
    ['d', 86_400],
    ['h', 3_600],
    ['m', 60],
  ] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  if (rest > 0 || parts.length === 0) parts.push(`${rest}s`);
  return parts.join('');
}
