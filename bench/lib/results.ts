// The shape of bench/results/<timestamp>.json: every figure of a run, with how it was measured.

import type { PickupRun, RealWorldRun } from '../scenarios/latency.js';
import type { QueuePauseRun, ThrottleOverhead, ThrottleRun } from '../scenarios/throttle.js';
import type { ThroughputRun } from '../scenarios/throughput.js';
import type { LatencyPlan } from './latencies.js';
import type { Machine } from './machine.js';
import type { Summary } from './stats.js';

export interface PropagationFigure {
  mode: string;
  store: string;
  watch_mode: string;
  agents: number;
  how: 'processes' | 'in-process';
  commands: number;
  /** ms from the POST's 200 to each agent's apply; negative = applied before the 200 arrived. */
  from_ack_ms: Summary;
  /** ms from sending the POST to each agent's apply. */
  from_send_ms: Summary;
  /** How long the POST itself took (write, the commander applies, lists agents, answers). */
  post_ms: Summary;
  missing: number;
  start_seconds: number;
  heap_per_agent_kib?: number;
  rss_per_agent_kib?: number;
  connections?: number | null;
  /** In-process: how late the fleet host's one event loop ran while the commands propagated. */
  host_event_loop_delay_ms?: { p50: number; p99: number; max: number };
  samples_from_ack_ms: number[];
  /** Why a larger fleet was not measured (it failed on this store), when it was not. */
  limit?: string;
}

export interface LoadFigure {
  mode: string;
  watch_mode: string;
  agents: number;
  window_seconds: number;
  polling_interval_seconds: number;
  /** Control reads (version + document) per agent per second, counted at the store interface. */
  control_reads: number;
  /** The seed's formula per agent: 1 ÷ interval when polling, 0 when event-driven. */
  formula: number;
  heartbeats: number;
  claims: number;
  /** Store calls per agent per second by class. */
  store_calls: Record<string, number>;
  /** Statements / commands on the wire per agent per second (PostgreSQL, MongoDB). */
  wire: Record<string, number>;
  /** pg_stat_statements calls per agent per second (own PostgreSQL only). */
  server: Record<string, number> | null;
}

export interface DrainFigure {
  mode: string;
  agents: number;
  handler_ms: number;
  rounds: number;
  barrier_ms: Summary;
  longest_remaining_ms: Summary;
  overhead_ms: Summary;
  after_last_handler_ms: Summary;
  started_after_send: number;
}

export type ThroughputFigure = ThroughputRun & {
  vs_graphile_worker: number | null;
  vs_bullmq: number | null;
};

/** A row of the real-world latencies scenario. */
export type RealWorldFigure = RealWorldRun & {
  /** The drawn latencies of this row's documents (ms), and the planned first-attempt failures. */
  latency_ms: { median: number; p90: number; p99: number; max: number; mean: number };
  planned_failures: number;
  /** Slots (workers × concurrency) ÷ mean latency: every slot busy all the time. */
  ideal_per_second: number;
  fraction_of_ideal: number;
  /** The faster of graphile-worker and BullMQ at the same workers × concurrency. */
  better_peer: string | null;
  vs_better_peer: number | null;
};

export interface RealWorldSettings extends LatencyPlan {
  idealSeconds: number;
  workers: number[];
  concurrency: number[];
  capMs: number;
}

export type PickupFigure = Omit<PickupRun, 'delaysMs' | 'enqueueMs'> & {
  delay_ms: { n: number; p50: number; p90: number; p99: number; max: number; mean: number };
  enqueue_ms: { p50: number; p99: number };
  gap_ms: [number, number];
  samples_ms: number[];
};

export interface MemoryFigure {
  store: string;
  start_to_ready_ms: Summary;
  rss_mib: Summary;
  /** The same with NODE_OPTIONS=--max-semi-space-size=1 (a smaller young generation). */
  rss_mib_small_semi_space: Summary | null;
  idle_seconds: number;
  heap_per_agent_kib_at_500: number | null;
  rss_per_agent_kib_at_500: number | null;
}

export interface TargetCheck {
  target: string;
  figure: string;
  value: number | null;
  limit: number | null;
  met: boolean | null;
  note: string;
}

export interface Results {
  quick: boolean;
  started_at: string;
  finished_at: string;
  duration_seconds: number;
  machine: Machine;
  servers: string[];
  settings: Record<string, unknown>;
  propagation: PropagationFigure[];
  load: LoadFigure[];
  drain: DrainFigure[];
  throughput: ThroughputFigure[];
  memory: MemoryFigure[];
  realworld?: RealWorldFigure[];
  realworld_settings?: RealWorldSettings | null;
  pickup?: PickupFigure[];
  /** The fleet throttle (bench/scenarios/throttle.ts): accuracy, joins and leaves, propagation. */
  throttle?: ThrottleRun[];
  /** A queue's pause with wait=true while another queue flows. */
  queue_pause?: QueuePauseRun[];
  /** The real-world latencies with queues and the policy built in but unused, against before them. */
  throttle_overhead?: ThrottleOverhead[];
  targets: TargetCheck[];
  errors: { scenario: string; message: string }[];
}
