// Documents finished per minute: what each agent keeps of its last hour (processed and failed, by
// epoch minute) and carries in its registry heartbeat, so that the fleet's throughput is the sum
// of the live agents' minutes. An agent that leaves the registry takes its minutes with it.

/** How many minutes an agent keeps, the current one included. */
export const RECENT_MINUTES = 60;

/** One minute's outcomes; minute = Math.floor(epoch milliseconds / 60 000). */
export interface MinuteCount {
  minute: number;
  processed: number;
  failed: number;
}

export const epochMinute = (ms: number): number => Math.floor(ms / 60_000);

const count = (value: unknown): number | null =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : null;

/**
 * The minutes a stored heartbeat carries, oldest first, or undefined when it carries none (an
 * older agent's). Whatever does not read as a minute is dropped, never guessed at.
 */
export function readRecent(value: unknown): MinuteCount[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const minutes: MinuteCount[] = [];
  for (const item of value.slice(-RECENT_MINUTES) as unknown[]) {
    if (typeof item !== 'object' || item === null) continue;
    const { minute, processed, failed } = item as Record<string, unknown>;
    const m = count(minute);
    const p = count(processed);
    const f = count(failed);
    if (m !== null && p !== null && f !== null) minutes.push({ minute: m, processed: p, failed: f });
  }
  return minutes.sort((a, b) => a.minute - b.minute);
}
