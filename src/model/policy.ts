// The fleet policy: what the fleet runs beside the seed's one switch. Paused queues, a fleet-wide
// throttle (a rate and a per-agent concurrency cap) and per-queue rates, in one versioned document
// stored beside the control document (`_id: "fleet_policy"`), never inside it, so the seed's
// layout and its mongosh recipes keep their exact meaning. Like the control document it can be
// edited by hand, so every store parses what it reads through here; a bad document becomes one
// clear InvalidPolicyError. Depends on nothing of ours but the error registry.

import { InvalidPolicyError } from '../errors.js';
import { toDate, toNonNegativeInteger } from './values.js';

/** The `_id` (row id) of the one policy document. */
export const POLICY_ID = 'fleet_policy';

/** Every document's queue unless one is given. */
export const DEFAULT_QUEUE = 'default';
/** 1–64 characters: lowercase letters, digits, `_`, `-`, `.` and `:`, starting with a letter or digit. */
export const QUEUE_NAME_PATTERN = /^[a-z0-9][a-z0-9_.:-]{0,63}$/;
export const QUEUE_NAME_RULE =
  '1-64 characters: lowercase letters, digits, "_", "-", "." and ":", starting with a letter or digit';
/** Documents per second a throttle may allow at most (fleet-wide or per queue). */
export const MAX_RATE = 100_000;
/** The largest per-agent concurrency cap. */
export const MAX_CONCURRENCY_CAP = 10_000;

/** Who set a rule, why, and when it ends by itself. */
export interface PolicyRule {
  reason: string | null;
  updated_by: string;
  on_behalf_of: string | null;
  /** The policy version that set it. */
  since_version: number;
  /** The rule ends by itself at this time (removed by `system`, compare-and-set on the version). */
  expires_at: Date | null;
}

export interface FleetThrottle extends PolicyRule {
  /** Documents per second for the whole fleet; null = no rate cap. */
  rate: number | null;
  /** Slots per agent at most (below CONCURRENCY); null = CONCURRENCY. */
  concurrency: number | null;
  /**
   * The rate and the cap are set by separate commands, so each ends at its own time; `expires_at`
   * (of the rule) is the earlier of the two, the next time part of the throttle ends by itself.
   */
  rate_expires_at: Date | null;
  concurrency_expires_at: Date | null;
}

export interface QueueRate extends PolicyRule {
  /** Documents per second of this queue for the whole fleet. */
  rate: number;
}

/** The policy body: what a command writes. */
export interface PolicyBody {
  /** Paused queues by name. */
  paused_queues: Record<string, PolicyRule>;
  /** The fleet-wide throttle, or null. */
  throttle: FleetThrottle | null;
  /** Rate caps per queue by name. */
  queue_rates: Record<string, QueueRate>;
}

/** The current policy document. */
export interface FleetPolicy extends PolicyBody {
  /** Strictly increasing by one per policy command; 0 for a new store (nothing paused or throttled). */
  version: number;
  /** Taken by the store's clock when it was written. */
  timestamp: Date;
}

export const POLICY_COMMANDS = ['pause', 'resume', 'throttle'] as const;
export type PolicyCommand = (typeof POLICY_COMMANDS)[number];

/** The columns (fields) of a policy history entry, in the order stores select them. */
export const POLICY_HISTORY_FIELDS =
  'version, timestamp, command, queue, rate, concurrency, reason, updated_by, on_behalf_of, expires_at';

/** One policy history entry: the command that made a version. */
export interface PolicyHistoryEntry {
  version: number;
  /** Taken by the store's clock. */
  timestamp: Date;
  command: PolicyCommand;
  /** The queue it acted on; null for the fleet-wide throttle. */
  queue: string | null;
  /** For a throttle: the rate it set, null when it removed the cap (or set only concurrency). */
  rate: number | null;
  /** For a throttle: the concurrency cap it set, null when none. */
  concurrency: number | null;
  reason: string | null;
  updated_by: string;
  on_behalf_of: string | null;
  expires_at: Date | null;
}

export function emptyPolicy(timestamp: Date = new Date(0)): FleetPolicy {
  return { version: 0, timestamp, paused_queues: {}, throttle: null, queue_rates: {} };
}

export function isQueueName(value: unknown): value is string {
  return typeof value === 'string' && QUEUE_NAME_PATTERN.test(value);
}

/** A clear message for a bad queue name, or null when it is good. */
export function queueNameProblem(value: unknown): string | null {
  if (isQueueName(value)) return null;
  return `queue ${JSON.stringify(value)} is not a valid queue name (${QUEUE_NAME_RULE})`;
}

function toRate(value: unknown): number | null {
  const n =
    typeof value === 'object' && value !== null && 'toNumber' in value
      ? (value as { toNumber(): number }).toNumber()
      : value;
  return typeof n === 'number' && Number.isFinite(n) && n > 0 && n <= MAX_RATE ? n : null;
}

function parseRule(raw: unknown, where: string): PolicyRule {
  if (raw === null || typeof raw !== 'object') throw new InvalidPolicyError(`${where} is not an object`);
  const r = raw as Record<string, unknown>;
  if (r.reason !== null && r.reason !== undefined && typeof r.reason !== 'string') {
    throw new InvalidPolicyError(`${where}.reason is not a string`);
  }
  if (typeof r.updated_by !== 'string') throw new InvalidPolicyError(`${where}.updated_by is not a string`);
  if (r.on_behalf_of !== null && r.on_behalf_of !== undefined && typeof r.on_behalf_of !== 'string') {
    throw new InvalidPolicyError(`${where}.on_behalf_of is not a string`);
  }
  const since = toNonNegativeInteger(r.since_version ?? 0);
  if (since === null) throw new InvalidPolicyError(`${where}.since_version is not a non-negative integer`);
  let expiresAt: Date | null = null;
  if (r.expires_at !== null && r.expires_at !== undefined) {
    expiresAt = toDate(r.expires_at);
    if (expiresAt === null) throw new InvalidPolicyError(`${where}.expires_at is not a date`);
  }
  return {
    reason: typeof r.reason === 'string' ? r.reason : null,
    updated_by: r.updated_by,
    on_behalf_of: typeof r.on_behalf_of === 'string' ? r.on_behalf_of : null,
    since_version: since,
    expires_at: expiresAt,
  };
}

function parseQueueMap<T>(
  raw: unknown,
  field: string,
  each: (value: unknown, where: string) => T,
): Record<string, T> {
  if (raw === null || raw === undefined) return {};
  if (typeof raw !== 'object' || Array.isArray(raw))
    throw new InvalidPolicyError(`${field} is not an object`);
  const out: Record<string, T> = {};
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    const problem = queueNameProblem(name);
    if (problem !== null) throw new InvalidPolicyError(`${field}: ${problem}`);
    out[name] = each(value, `${field}.${name}`);
  }
  return out;
}

/** The earlier of two optional times. */
export function earliest(a: Date | null, b: Date | null): Date | null {
  if (a === null) return b;
  if (b === null) return a;
  return a.getTime() <= b.getTime() ? a : b;
}

/**
 * The fleet throttle from its fields, each with its own expiry (null when neither a rate nor a cap
 * is left); the rule's `expires_at` is the earlier of the two.
 */
export function makeThrottle(
  rule: PolicyRule,
  f: {
    rate: number | null;
    concurrency: number | null;
    rateExpires: Date | null;
    concurrencyExpires: Date | null;
  },
): FleetThrottle | null {
  if (f.rate === null && f.concurrency === null) return null;
  return {
    ...rule,
    expires_at: earliest(f.rateExpires, f.concurrencyExpires),
    rate: f.rate,
    concurrency: f.concurrency,
    rate_expires_at: f.rateExpires,
    concurrency_expires_at: f.concurrencyExpires,
  };
}

/** Parses the policy body (the stored `paused_queues`, `throttle`, `queue_rates`), or throws InvalidPolicyError. */
export function parsePolicyBody(raw: unknown): PolicyBody {
  if (raw === null || raw === undefined || typeof raw !== 'object') {
    throw new InvalidPolicyError('the document is not an object');
  }
  const r = raw as Record<string, unknown>;
  const paused_queues = parseQueueMap(r.paused_queues, 'paused_queues', parseRule);
  const queue_rates = parseQueueMap(r.queue_rates, 'queue_rates', (value, where) => {
    const rule = parseRule(value, where);
    const rate = toRate((value as Record<string, unknown>).rate);
    if (rate === null) throw new InvalidPolicyError(`${where}.rate is not a number in (0, ${MAX_RATE}]`);
    return { ...rule, rate };
  });
  let throttle: FleetThrottle | null = null;
  if (r.throttle !== null && r.throttle !== undefined) {
    const rule = parseRule(r.throttle, 'throttle');
    const t = r.throttle as Record<string, unknown>;
    let rate: number | null = null;
    if (t.rate !== null && t.rate !== undefined) {
      rate = toRate(t.rate);
      if (rate === null) throw new InvalidPolicyError(`throttle.rate is not a number in (0, ${MAX_RATE}]`);
    }
    let concurrency: number | null = null;
    if (t.concurrency !== null && t.concurrency !== undefined) {
      concurrency = toNonNegativeInteger(t.concurrency);
      if (concurrency === null || concurrency < 1 || concurrency > MAX_CONCURRENCY_CAP) {
        throw new InvalidPolicyError(`throttle.concurrency is not an integer in [1, ${MAX_CONCURRENCY_CAP}]`);
      }
    }
    const fieldExpiry = (field: 'rate_expires_at' | 'concurrency_expires_at', set: boolean): Date | null => {
      if (!set) return null;
      // A throttle written by hand with only expires_at: it ends as a whole.
      if (t[field] === null || t[field] === undefined) return rule.expires_at;
      const at = toDate(t[field]);
      if (at === null) throw new InvalidPolicyError(`throttle.${field} is not a date`);
      return at;
    };
    const rateExpires = fieldExpiry('rate_expires_at', rate !== null);
    const concurrencyExpires = fieldExpiry('concurrency_expires_at', concurrency !== null);
    throttle = makeThrottle(rule, { rate, concurrency, rateExpires, concurrencyExpires });
  }
  return { paused_queues, throttle, queue_rates };
}

/**
 * The stored document's version alone, or throws InvalidPolicyError: what a compare-and-set write
 * checks, so that a write over a malformed body (with the right version) repairs it.
 */
export function parsePolicyVersion(raw: unknown): number {
  if (raw === null || raw === undefined) throw new InvalidPolicyError('the document is missing');
  const r = raw as Record<string, unknown>;
  const version = toNonNegativeInteger(r.version);
  if (version === null) {
    throw new InvalidPolicyError(
      `version ${JSON.stringify(String(r.version ?? 'missing'))} is not a non-negative integer`,
    );
  }
  return version;
}

/** Parses a whole stored policy document (body, version, timestamp), or throws InvalidPolicyError. */
export function parsePolicy(raw: unknown): FleetPolicy {
  const version = parsePolicyVersion(raw);
  const r = raw as Record<string, unknown>;
  const timestamp = toDate(r.timestamp);
  if (timestamp === null) throw new InvalidPolicyError('timestamp is missing or not a date');
  return { version, timestamp, ...parsePolicyBody(r) };
}

/** Parses a policy history entry, or null when it does not parse (history listings skip it). */
export function tryParsePolicyHistoryEntry(raw: unknown): PolicyHistoryEntry | null {
  if (raw === null || typeof raw !== 'object') return null;
  const r = raw as Record<string, unknown>;
  const version = toNonNegativeInteger(r.version);
  const timestamp = toDate(r.timestamp);
  if (version === null || timestamp === null) return null;
  if (!(POLICY_COMMANDS as readonly unknown[]).includes(r.command)) return null;
  if (r.queue !== null && r.queue !== undefined && !isQueueName(r.queue)) return null;
  if (typeof r.updated_by !== 'string') return null;
  const rate = r.rate === null || r.rate === undefined ? null : toRate(r.rate);
  const concurrency =
    r.concurrency === null || r.concurrency === undefined ? null : toNonNegativeInteger(r.concurrency);
  return {
    version,
    timestamp,
    command: r.command as PolicyCommand,
    queue: typeof r.queue === 'string' ? r.queue : null,
    rate,
    concurrency,
    reason: typeof r.reason === 'string' ? r.reason : null,
    updated_by: r.updated_by,
    on_behalf_of: typeof r.on_behalf_of === 'string' ? r.on_behalf_of : null,
    expires_at: r.expires_at === null || r.expires_at === undefined ? null : toDate(r.expires_at),
  };
}

function ruleToJson(rule: PolicyRule) {
  return {
    reason: rule.reason,
    updated_by: rule.updated_by,
    on_behalf_of: rule.on_behalf_of,
    since_version: rule.since_version,
    expires_at: rule.expires_at?.toISOString() ?? null,
  };
}

/** The JSON form used by the HTTP API, logs, and the stores that keep the body as JSON text. */
export function policyBodyToJson(body: PolicyBody) {
  return {
    paused_queues: Object.fromEntries(Object.entries(body.paused_queues).map(([q, r]) => [q, ruleToJson(r)])),
    throttle:
      body.throttle === null
        ? null
        : {
            ...ruleToJson(body.throttle),
            rate: body.throttle.rate,
            concurrency: body.throttle.concurrency,
            rate_expires_at: body.throttle.rate_expires_at?.toISOString() ?? null,
            concurrency_expires_at: body.throttle.concurrency_expires_at?.toISOString() ?? null,
          },
    queue_rates: Object.fromEntries(
      Object.entries(body.queue_rates).map(([q, r]) => [q, { ...ruleToJson(r), rate: r.rate }]),
    ),
  };
}

export function policyToJson(policy: FleetPolicy) {
  return { version: policy.version, timestamp: policy.timestamp.toISOString(), ...policyBodyToJson(policy) };
}

export function policyHistoryEntryToJson(entry: PolicyHistoryEntry) {
  return {
    version: entry.version,
    timestamp: entry.timestamp.toISOString(),
    command: entry.command,
    queue: entry.queue,
    rate: entry.rate,
    concurrency: entry.concurrency,
    reason: entry.reason,
    updated_by: entry.updated_by,
    on_behalf_of: entry.on_behalf_of,
    expires_at: entry.expires_at?.toISOString() ?? null,
  };
}
