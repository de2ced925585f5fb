// The "real-world" handler latencies: a log-normal distribution drawn with a fixed seed, the same
// sequence for every system, and a small share of documents that fail once. Document i's latency
// is the i-th draw, carried in its payload ({ n: i, ms, fail }), so that every system sleeps the
// same total whatever order it runs the documents in.

import { percentile } from './stats.js';

export interface LatencyPlan {
  /** Median of the log-normal, ms (e^mu). */
  medianMs: number;
  /** Standard deviation of ln(latency). p99 = median × e^(2.326 σ). */
  sigma: number;
  /** Share of documents that throw once, on their first attempt, then succeed. */
  failureRate: number;
  /**
   * Failures are drawn only among the first `failureSpan` of the documents (by index), so that a
   * retry, which graphile-worker delays by e^1 ≈ 2.7 s, comes back while the run is still going
   * and the figure does not end up measuring a peer's retry back-off.
   */
  failureSpan: number;
  seed: number;
}

export const LATENCY_PLAN: LatencyPlan = {
  medianMs: 5,
  // e^(2.326 × 1.37) ≈ 24: p99 ≈ 121 ms for a median of 5 ms; mean = 5 × e^(σ²/2) ≈ 12.8 ms.
  sigma: 1.37,
  failureRate: 0.01,
  failureSpan: 0.5,
  seed: 20261128,
};

export interface LatencyPayload {
  n: number;
  ms: number;
  fail: boolean;
}

export interface LatencySet {
  payloads: LatencyPayload[];
  /** Sum of the latencies, ms (failed first attempts throw at once and add nothing). */
  totalMs: number;
  summary: { n: number; median: number; p90: number; p99: number; max: number; mean: number };
  failures: number;
}

/** mulberry32: a small, fast, seedable PRNG (uniform in [0, 1)). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The first `count` documents of the plan's sequence (a prefix of a longer run's). */
export function drawLatencies(count: number, plan: LatencyPlan = LATENCY_PLAN): LatencySet {
  const random = mulberry32(plan.seed);
  const failing = new Set<number>();
  const payloads: LatencyPayload[] = [];
  for (let n = 0; n < count; n++) {
    // Box–Muller; 1 - u keeps the logarithm's argument in (0, 1].
    const u1 = 1 - random();
    const u2 = random();
    const z = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
    const ms = Math.round(plan.medianMs * Math.exp(plan.sigma * z) * 100) / 100;
    const fail = random() < plan.failureRate / plan.failureSpan && n < count * plan.failureSpan;
    if (fail) failing.add(n);
    payloads.push({ n, ms, fail });
  }
  const sorted = payloads.map((p) => p.ms).sort((a, b) => a - b);
  const totalMs = sorted.reduce((s, v) => s + v, 0);
  return {
    payloads,
    totalMs,
    summary: {
      n: count,
      median: percentile(sorted, 50),
      p90: percentile(sorted, 90),
      p99: percentile(sorted, 99),
      max: sorted[sorted.length - 1] ?? Number.NaN,
      mean: count ? totalMs / count : Number.NaN,
    },
    failures: failing.size,
  };
}

/**
 * Documents per second if every slot were busy all the time: slots ÷ mean latency. What a perfect
 * queue with zero overhead would reach; the fraction of it is the scheduler's efficiency.
 */
export function idealPerSecond(slots: number, set: LatencySet): number {
  return set.totalMs > 0 ? (slots * set.payloads.length * 1000) / set.totalMs : Number.NaN;
}
