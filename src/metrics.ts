// Prometheus metrics of one agent (prom-client, on a registry of its own, never the global one).
// Gauges and counters are read from the agent when scraped; histograms are observed as things
// happen. Every name starts with `pulling_agent_`.

import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

import { AGENT_STATES } from './agent/lifecycle.js';
import type { AgentView } from './agent/view.js';
import { WATCH_MODES } from './model/watch.js';

const PREFIX = 'pulling_agent_';

/** A counter that follows a monotonic number kept elsewhere (the agent's stats). */
function mirroredCounter(registry: Registry, name: string, help: string, read: () => number): void {
  let last = 0;
  new Counter({
    name: PREFIX + name,
    help,
    registers: [registry],
    collect() {
      const now = read();
      if (now > last) this.inc(now - last);
      last = now;
    },
  });
}

export function createMetrics(agent: AgentView): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ agent_id: agent.settings.agentId });
  collectDefaultMetrics({ register: registry, prefix: PREFIX });

  new Gauge({
    name: `${PREFIX}state`,
    help: 'The agent state: 1 for the current one of running, paused, stopping, stopped.',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      for (const state of AGENT_STATES) this.set({ state }, agent.state === state ? 1 : 0);
    },
  });
  new Gauge({
    name: `${PREFIX}ready`,
    help: '1 while the agent passes readiness (running), else 0.',
    registers: [registry],
    collect() {
      this.set(agent.ready ? 1 : 0);
    },
  });
  new Gauge({
    name: `${PREFIX}control_version_applied`,
    help: 'The control version this agent has applied (-1 before the first).',
    registers: [registry],
    collect() {
      this.set(agent.controlStatus?.appliedVersion ?? -1);
    },
  });
  new Gauge({
    name: `${PREFIX}watch_mode`,
    help: 'How the agent watches the control document: 1 for the mode in use.',
    labelNames: ['mode'],
    registers: [registry],
    collect() {
      const mode = agent.controlStatus?.watchMode;
      for (const m of WATCH_MODES) this.set({ mode: m }, mode === m ? 1 : 0);
    },
  });
  new Gauge({
    name: `${PREFIX}control_error`,
    help: '1 while the control document cannot be read or is malformed (see /api/cluster/stats), else 0.',
    registers: [registry],
    collect() {
      this.set(agent.controlStatus?.lastError ? 1 : 0);
    },
  });
  new Gauge({
    name: `${PREFIX}batch_in_flight`,
    help: '1 while the agent holds claimed documents (buffered, running or being recorded), else 0.',
    registers: [registry],
    collect() {
      this.set(agent.batchInFlight ? 1 : 0);
    },
  });
  new Gauge({
    name: `${PREFIX}handlers_running`,
    help: 'Handlers running now, out of pulling_agent_slots.',
    registers: [registry],
    collect() {
      this.set(agent.runtime.running);
    },
  });
  new Gauge({
    name: `${PREFIX}slots`,
    help: 'Handler slots (CONCURRENCY).',
    registers: [registry],
    collect() {
      this.set(agent.runtime.concurrency);
    },
  });
  new Gauge({
    name: `${PREFIX}policy_version_applied`,
    help: 'The fleet policy version (queue pauses, throttle) this agent applies; -1 before it read one.',
    registers: [registry],
    collect() {
      this.set(agent.policy.policy?.version ?? -1);
    },
  });
  new Gauge({
    name: `${PREFIX}queue_paused`,
    help: 'Queues paused across the fleet (1 each), by the policy this agent applies.',
    labelNames: ['queue'],
    registers: [registry],
    collect() {
      this.reset();
      for (const queue of Object.keys(agent.policy.policy?.paused_queues ?? {})) this.set({ queue }, 1);
    },
  });
  new Gauge({
    name: `${PREFIX}throttle_rate`,
    help: 'Documents per second the fleet throttle allows the whole fleet (queue="" for every queue), by the policy this agent applies.',
    labelNames: ['queue'],
    registers: [registry],
    collect() {
      this.reset();
      const policy = agent.policy.policy;
      if (policy?.throttle?.rate != null) this.set({ queue: '' }, policy.throttle.rate);
      for (const [queue, rule] of Object.entries(policy?.queue_rates ?? {})) this.set({ queue }, rule.rate);
    },
  });
  new Gauge({
    name: `${PREFIX}throttle_share`,
    help: "This agent's part of each fleet rate: 1 / the live agents sharing it.",
    registers: [registry],
    collect() {
      this.set(agent.policy.share);
    },
  });
  new Gauge({
    name: `${PREFIX}documents_buffered`,
    help: 'Documents claimed and waiting for a free slot (the prefetch).',
    registers: [registry],
    collect() {
      this.set(agent.runtime.buffered);
    },
  });
  new Gauge({
    name: `${PREFIX}heartbeat_age_seconds`,
    help: 'Seconds since this agent last wrote its registry heartbeat (-1 before the first).',
    registers: [registry],
    collect() {
      const last = agent.stats.lastHeartbeatAt;
      this.set(last ? (Date.now() - last.getTime()) / 1000 : -1);
    },
  });

  // Read from the store (shared by the fleet), at most every 5 s whatever the scrape interval: for
  // autoscaling on the backlog (KEDA's Prometheus scaler, an HPA on an external metric).
  new Gauge({
    name: `${PREFIX}documents`,
    help: 'Documents in the store by status (pending = due now, scheduled = not yet due); read at most every 5 s.',
    labelNames: ['status'],
    registers: [registry],
    async collect() {
      const backlog = await agent.backlog.readWithin(2_000);
      if (!backlog) return;
      for (const [status, n] of Object.entries(backlog.counts)) this.set({ status }, n);
    },
  });
  // Beside the gauge above, whose labels stay as they were: the same counts per queue.
  new Gauge({
    name: `${PREFIX}queue_documents`,
    help: 'Documents in the store by queue and status (as pulling_agent_documents); read at most every 5 s.',
    labelNames: ['queue', 'status'],
    registers: [registry],
    async collect() {
      const backlog = await agent.backlog.readWithin(2_000);
      if (!backlog) return;
      // A queue whose documents are all gone leaves the gauge rather than stay at its last count.
      this.reset();
      for (const { queue, counts } of backlog.queues) {
        for (const [status, n] of Object.entries(counts)) this.set({ queue, status }, n);
      }
    },
  });
  new Gauge({
    name: `${PREFIX}oldest_pending_age_seconds`,
    help: 'Seconds since the oldest due pending document was stored (0 when none waits); read at most every 5 s.',
    registers: [registry],
    async collect() {
      const backlog = await agent.backlog.readWithin(2_000);
      if (backlog) this.set(backlog.oldest_pending_age_seconds);
    },
  });

  mirroredCounter(registry, 'batches_total', 'Claims that returned documents.', () => agent.stats.batches);
  mirroredCounter(
    registry,
    'documents_processed_total',
    'Documents marked processed.',
    () => agent.stats.documentsProcessed,
  );
  mirroredCounter(
    registry,
    'documents_failed_total',
    'Documents marked failed after their retries.',
    () => agent.stats.documentsFailed,
  );
  mirroredCounter(
    registry,
    'documents_retried_total',
    'Handler failures sent back to pending for a retry.',
    () => agent.stats.documentsRetried,
  );
  mirroredCounter(
    registry,
    'handler_errors_total',
    'Handler calls that threw.',
    () => agent.stats.handlerErrors,
  );
  mirroredCounter(
    registry,
    'store_errors_total',
    'Store operations that failed (each is retried).',
    () => agent.stats.storeErrors,
  );
  mirroredCounter(
    registry,
    'store_timeouts_total',
    'Store calls that missed their deadline (STORE_TIMEOUT): failed as unavailable, their connection discarded.',
    () => agent.stats.storeTimeouts,
  );
  mirroredCounter(
    registry,
    'leases_lapsed_total',
    'Documents given up because their lease could have run out without a renewal (a running handler is aborted).',
    () => agent.stats.leasesLapsed,
  );

  mirroredCounter(
    registry,
    'leases_recovered_total',
    'Documents a dead agent left processing, whose expired lease this agent counted as a failed attempt.',
    () => agent.stats.leasesRecovered,
  );

  const applyLatency = new Histogram({
    name: `${PREFIX}control_apply_latency_seconds`,
    help: "From the store's timestamp of a command to the moment this agent applied it (includes clock skew with the store).",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  const claimDuration = new Histogram({
    name: `${PREFIX}claim_duration_seconds`,
    help: 'Duration of one claim.',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const handlerDuration = new Histogram({
    name: `${PREFIX}handler_duration_seconds`,
    help: 'Duration of one handler call, by outcome (processed, retried, failed).',
    labelNames: ['outcome'],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300],
    registers: [registry],
  });

  agent.on('applied', (state, initial) => {
    // The version adopted at start may be days old: it says nothing about propagation.
    if (!initial) applyLatency.observe(Math.max(0, (Date.now() - state.timestamp.getTime()) / 1000));
  });
  agent.on('claimed', (_count, seconds) => claimDuration.observe(seconds));
  agent.on('handled', (outcome, seconds) => handlerDuration.observe({ outcome }, seconds));
  return registry;
}
