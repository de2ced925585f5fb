// GET /api/cluster/throughput: documents processed and failed per minute over the last hour, for
// the whole fleet. Each agent keeps its own last hour and sends it with its heartbeat
// (AgentRecord.recent), so this is one registry read, shared by every caller for up to 2 s: the
// sum of the live agents' minutes. An agent that left the registry took its minutes with it.

import type { Static } from 'typebox';

import { LOST_AFTER_HEARTBEATS } from '../../control/fleet.js';
import { epochMinute, RECENT_MINUTES } from '../../model/throughput.js';
import type { AgentRecord } from '../../stores/types.js';
import { ThroughputBody } from '../responses.js';
import type { App, RouteOptions } from '../types.js';

type Throughput = Static<typeof ThroughputBody>;

/** Minutes of the per-agent rate. */
const RATE_MINUTES = 5;
const SHARED_MS = 2_000;

export function summarize(records: AgentRecord[], heartbeatIntervalMs: number, now = Date.now()): Throughput {
  const lostAfterMs = heartbeatIntervalMs * LOST_AFTER_HEARTBEATS;
  const current = epochMinute(now);
  const first = current - RECENT_MINUTES + 1;
  const processed = new Array<number>(RECENT_MINUTES).fill(0);
  const failed = new Array<number>(RECENT_MINUTES).fill(0);
  const agents: Throughput['agents'] = [];
  for (const r of records) {
    if (now - r.heartbeat_at.getTime() > lostAfterMs) continue;
    let hourProcessed = 0;
    let hourFailed = 0;
    let recentProcessed = 0;
    for (const m of r.recent ?? []) {
      const i = m.minute - first;
      if (i < 0 || i >= RECENT_MINUTES) continue;
      processed[i]! += m.processed;
      failed[i]! += m.failed;
      hourProcessed += m.processed;
      hourFailed += m.failed;
      if (m.minute > current - RATE_MINUTES) recentProcessed += m.processed;
    }
    const windowStart = Math.max((current - RATE_MINUTES + 1) * 60_000, r.started_at.getTime());
    const minutes = Math.max(1, (now - windowStart) / 60_000);
    agents.push({
      agent_id: r.agent_id,
      instance_id: r.instance_id,
      processed: r.counters.documents_processed ?? 0,
      failed: r.counters.documents_failed ?? 0,
      processed_last_hour: hourProcessed,
      failed_last_hour: hourFailed,
      processed_per_minute: Math.round((recentProcessed / minutes) * 10) / 10,
    });
  }
  return {
    minutes: processed.map((p, i) => ({
      minute: new Date((first + i) * 60_000).toISOString(),
      processed: p,
      failed: failed[i]!,
    })),
    total: { processed: processed.reduce((a, b) => a + b, 0), failed: failed.reduce((a, b) => a + b, 0) },
    agents,
    read_at: new Date(now).toISOString(),
  };
}

export function throughputRoutes(app: App, { view }: RouteOptions): void {
  let last: { at: number; answer: Promise<Throughput> } | null = null;
  const read = () => {
    if (last && Date.now() - last.at < SHARED_MS) return last.answer;
    const answer = view.store
      .listAgents()
      .then((records) => summarize(records, view.settings.heartbeatIntervalMs));
    last = { at: Date.now(), answer };
    // A failed read is not shared: the next caller asks again.
    answer.catch(() => {
      if (last?.answer === answer) last = null;
    });
    return answer;
  };

  app.get(
    '/api/cluster/throughput',
    {
      config: { role: 'viewer' },
      schema: {
        summary: 'Processed and failed per minute over the last hour, summed over the live agents',
        description:
          'Each agent keeps its own last hour and sends it with its heartbeat: an agent that left the registry takes its minutes with it.',
        response: { 200: ThroughputBody },
      },
    },
    () => read(),
  );
}
