import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { drawLatencies, idealPerSecond, LATENCY_PLAN } from '../../bench/lib/latencies.js';

describe('bench: real-world latencies', () => {
  it('draws the same latencies every time, a prefix of a longer run', () => {
    const a = drawLatencies(1_000);
    const b = drawLatencies(5_000);
    assert.deepEqual(
      a.payloads.map((p) => p.ms),
      b.payloads.slice(0, 1_000).map((p) => p.ms),
    );
    assert.deepEqual(drawLatencies(1_000).payloads, a.payloads);
  });

  it('has a median near 5 ms, a p99 at least 20× it, and about 1 % failures in the first half', () => {
    const set = drawLatencies(50_000);
    assert.ok(Math.abs(set.summary.median - LATENCY_PLAN.medianMs) < 0.3, `median ${set.summary.median}`);
    assert.ok(set.summary.p99 >= 20 * set.summary.median, `p99 ${set.summary.p99}`);
    const rate = set.failures / set.payloads.length;
    assert.ok(rate > 0.008 && rate < 0.012, `failure rate ${rate}`);
    assert.ok(set.payloads.every((p) => !p.fail || p.n < 25_000));
  });

  it('computes the ideal as slots ÷ mean latency', () => {
    const set = drawLatencies(10_000);
    assert.ok(Math.abs(idealPerSecond(20, set) - (20 * 1000) / set.summary.mean) < 1e-6);
  });
});
