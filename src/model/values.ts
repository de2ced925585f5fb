// Reading the scalar values of a stored document written by any driver, or by hand: dates as
// Date, ISO text or epoch numbers; non-negative integers as number, bigint, digit strings or a
// driver's Int64/Long. Shared by the control document and the fleet policy. Depends on nothing.

/** A valid Date, or null. */
export function toDate(value: unknown): Date | null {
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value;
  if (typeof value === 'string' || typeof value === 'number') {
    const date = new Date(value);
    return Number.isNaN(date.getTime()) ? null : date;
  }
  return null;
}

/** A safe non-negative integer, or null. MongoDB may hand back Int32, Int64 (bigint or Long) or Double; SQLite and pg give numbers or strings for BIGINT. */
export function toNonNegativeInteger(value: unknown): number | null {
  let n: number;
  if (typeof value === 'number') n = value;
  else if (typeof value === 'bigint') n = Number(value);
  else if (typeof value === 'string' && /^\d+$/.test(value)) n = Number(value);
  else if (value !== null && typeof value === 'object' && 'toNumber' in value) {
    n = (value as { toNumber(): number }).toNumber();
  } else return null;
  return Number.isSafeInteger(n) && n >= 0 ? n : null;
}
