import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { overheadReference, recoveryOf, type Start } from '../../bench/scenarios/throttle.js';

/** Starts evenly spaced at `rate` per second from `from` to `to` (epoch ms). */
function steady(rate: number, from: number, to: number): Start[] {
  const out: Start[] = [];
  for (let t = from; t < to; t += 1000 / rate) out.push({ t, queue: 'default' });
  return out;
}

describe('bench: the throttle scenario', () => {
  const at = 1_000_000;

  it('reads 0 s when the rate never left ±10 %', () => {
    const starts = steady(30, at - 10_000, at + 30_000);
    const r = recoveryOf(starts, { at, until: at + 30_000 }, 30, 5_000);
    assert.equal(r.recovery, 0);
    assert.ok(r.min >= 29 && r.max <= 31, `${r.min}–${r.max}`);
  });

  it('reads a step back to the rate within a fifth of the window of when it happened', () => {
    // 37.5/s (a 4th agent counting itself, the others not yet) for 8 s, then 30/s.
    const starts = [...steady(37.5, at, at + 8_000), ...steady(30, at + 8_000, at + 30_000)];
    const r = recoveryOf(starts, { at, until: at + 30_000 }, 30, 5_000);
    assert.ok(r.recovery !== null && r.recovery >= 8 && r.recovery <= 9, `recovery ${r.recovery}`);
    assert.ok(r.max > 36, `max ${r.max}`);
  });

  it('reads null when the rate is still out of the band at the end', () => {
    const starts = steady(20, at - 5_000, at + 20_000);
    const r = recoveryOf(starts, { at, until: at + 20_000 }, 30, 5_000);
    assert.equal(r.recovery, null);
    assert.ok(r.max <= 21, `max ${r.max}`);
  });

  it('compares with the committed pre-policy row of the nearest length', () => {
    const short = overheadReference('SQLite', 2, 10, 12_000);
    assert.equal(short?.file, 'bench/results/runtime-2026-12-01/sqlite-after-busy-fix.json');
    assert.equal(short?.per_second, 1152);
    const long = overheadReference('SQLite', 2, 10, 31_299);
    assert.equal(long?.file, 'bench/results/runtime-2026-12-01/results.json');
    assert.equal(long?.per_second, 1279);
    assert.equal(overheadReference('PostgreSQL', 2, 10, 12_000)?.per_second, 1536);
    assert.equal(overheadReference('MongoDB (FerretDB)', 2, 10, 12_000), null);
  });
});
