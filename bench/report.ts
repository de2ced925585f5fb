// What a run prints and writes: the terminal tables, the Markdown summary (bench/results/latest.md
// for a full run), the target checks, and the two SVG charts (propagation by mode and agent count;
// throughput against the peers).

import type { Results, TargetCheck } from './lib/results.js';
import type { Summary } from './lib/stats.js';
import { COLORS, Svg, ticks } from './lib/svg.js';

type Row = (string | number)[];

function table(header: string[], rows: Row[]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [
    line(header),
    `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`,
    ...cells.slice(1).map(line),
  ].join('\n');
}

const ms = (v: number) => (Number.isFinite(v) ? `${v}` : '–');
const fmt = (v: number | null | undefined, digits = 2) =>
  v === null || v === undefined || !Number.isFinite(v) ? '–' : Number(v.toFixed(digits)).toString();

function propagationRows(r: Results): Row[] {
  return r.propagation.map((p) => [
    p.mode,
    `${p.agents} ${p.how === 'processes' ? 'processes' : 'in-process'}`,
    ms(p.from_ack_ms.p50),
    ms(p.from_ack_ms.p99),
    ms(p.from_ack_ms.max),
    ms(p.from_send_ms.p99),
    ms(p.post_ms.p50),
    p.host_event_loop_delay_ms ? ms(p.host_event_loop_delay_ms.p99) : '–',
    p.connections ?? '–',
    `${p.commands}${p.missing ? ` (${p.missing} missing)` : ''}${p.limit ? ` — ${p.limit}` : ''}`,
  ]);
}
const PROPAGATION_HEADER = [
  'Mode',
  'Agents',
  'p50 ms',
  'p99 ms',
  'max ms',
  'p99 from send',
  'POST ms',
  'Host loop delay p99 ms',
  'Connections',
  'Commands',
];

function loadRows(r: Results): Row[] {
  return r.load.map((l) => [
    l.mode,
    l.agents,
    fmt(l.control_reads, 3),
    fmt(l.formula, 3),
    fmt(l.heartbeats, 3),
    fmt(l.claims, 3),
    Object.keys(l.wire).length
      ? fmt(
          sumWhere(l.wire, (k) => k.startsWith('control:')),
          3,
        )
      : 'n/a (embedded)',
    Object.keys(l.wire).length
      ? fmt(
          sumWhere(
            l.wire,
            (k) => k.startsWith('watch:') || k.startsWith('driver:') || k.startsWith('clock:'),
          ),
          3,
        )
      : '–',
    l.server
      ? fmt(
          sumWhere(l.server, (k) => k.startsWith('control:')),
          3,
        )
      : '–',
  ]);
}
const LOAD_HEADER = [
  'Mode',
  'Agents',
  'Control reads/s/agent',
  'Formula (1/interval)',
  'Heartbeat writes/s/agent',
  'Empty claims/s/agent',
  'Wire: control/s/agent',
  'Wire: watch+driver/s/agent',
  'Server (pg_stat_statements): control/s/agent',
];

function sumWhere(counts: Record<string, number>, keep: (k: string) => boolean): number {
  return Object.entries(counts)
    .filter(([k]) => keep(k))
    .reduce((n, [, v]) => n + v, 0);
}

function drainRows(r: Results): Row[] {
  return r.drain.map((d) => [
    d.mode,
    d.agents,
    d.handler_ms,
    d.rounds,
    ms(d.barrier_ms.p50),
    ms(d.longest_remaining_ms.p50),
    ms(d.overhead_ms.p50),
    ms(d.overhead_ms.max),
    ms(d.after_last_handler_ms.p50),
    ms(d.after_last_handler_ms.max),
  ]);
}
const DRAIN_HEADER = [
  'Mode',
  'Agents',
  'Handler ms',
  'Rounds',
  'Barrier p50 ms',
  'Longest in-flight p50 ms',
  'Overhead p50 ms',
  'Overhead max ms',
  'After last handler p50 ms',
  'After last handler max ms',
];

function throughputRows(r: Results): Row[] {
  return r.throughput.map((t) => [
    t.system,
    t.store,
    t.workers,
    t.batchSize ?? '1 (no batching)',
    `${t.processed}${t.capped ? ' (capped)' : ''}`,
    Math.round(t.perSecond),
    fmt(t.vs_graphile_worker),
    fmt(t.vs_bullmq),
    fmt(t.enqueueSeconds),
  ]);
}
const THROUGHPUT_HEADER = [
  'System',
  'Store',
  'Workers',
  'Batch',
  'Documents',
  'Docs/s',
  '÷ graphile-worker',
  '÷ BullMQ',
  'Enqueue s',
];

export const REALWORLD_TARGET = { fractionOfIdeal: 0.85, vsBetterPeer: 1 };
export const PICKUP_TARGET_P50_MS = 10;

const metOrMissed = (ok: boolean | null) => (ok === null ? '–' : ok ? 'met' : 'MISSED');

function realWorldRows(r: Results): Row[] {
  return (r.realworld ?? []).map((t) => {
    const pa = t.system === 'pulling-agent';
    const ofIdeal = pa ? t.fraction_of_ideal >= REALWORLD_TARGET.fractionOfIdeal : null;
    const vsPeer = pa && t.vs_better_peer !== null ? t.vs_better_peer >= REALWORLD_TARGET.vsBetterPeer : null;
    return [
      t.system,
      t.store,
      t.workers,
      t.concurrency,
      t.batchSize ?? '–',
      `${t.processed}${t.capped ? ` of ${t.documents} (capped)` : ''}`,
      Math.round(t.perSecond),
      Math.round(t.ideal_per_second),
      fmt(t.fraction_of_ideal),
      t.vs_better_peer === null ? '–' : `${fmt(t.vs_better_peer)} (${t.better_peer})`,
      pa ? `≥ 0.85 ideal: ${metOrMissed(ofIdeal)}; ≥ peer: ${metOrMissed(vsPeer)}` : '–',
      `${t.failures}/${t.planned_failures}`,
      fmt(t.seconds, 1),
    ];
  });
}
const REALWORLD_HEADER = [
  'System',
  'Store',
  'Processes',
  'Concurrency',
  'Batch',
  'Documents',
  'Docs/s',
  'Ideal docs/s',
  'Of ideal',
  '÷ better peer',
  'Targets',
  'Failures seen/planned',
  'Seconds',
];

function pickupRows(r: Results): Row[] {
  return (r.pickup ?? []).map((p) => [
    p.system,
    p.store,
    p.via,
    `${p.delay_ms.n}${p.missing ? ` (${p.missing} missing)` : ''}`,
    ms(p.delay_ms.p50),
    ms(p.delay_ms.p90),
    ms(p.delay_ms.p99),
    ms(p.delay_ms.max),
    ms(p.enqueue_ms.p50),
    p.shareOfA === null ? '–' : fmt(p.shareOfA),
    p.system === 'pulling-agent'
      ? `p50 ≤ 10 ms: ${metOrMissed(p.delay_ms.p50 <= PICKUP_TARGET_P50_MS)}`
      : '–',
  ]);
}
const PICKUP_HEADER = [
  'System',
  'Store',
  'Enqueued by',
  'Documents',
  'p50 ms',
  'p90 ms',
  'p99 ms',
  'max ms',
  'Enqueue call p50 ms',
  'Started by A',
  'Target',
];

function realWorldMethod(r: Results): string {
  const w = r.realworld_settings;
  if (!w) return '';
  // One set of documents per number of slots (rows with the same slots share it).
  const sets = new Map<number, NonNullable<Results['realworld']>[number]>();
  for (const row of r.realworld ?? []) if (!sets.has(row.documents)) sets.set(row.documents, row);
  const drawn = [...sets.values()]
    .map(
      (t) =>
        `${t.documents} documents (${t.workers} × ${t.concurrency}): median ${t.latency_ms.median}, p90 ${t.latency_ms.p90}, p99 ${t.latency_ms.p99}, max ${t.latency_ms.max}, mean ${t.latency_ms.mean} ms, ${t.planned_failures} planned failures (${((t.planned_failures / t.documents) * 100).toFixed(2)} %)`,
    )
    .join('; ');
  return `Every document sleeps a latency drawn from a log-normal distribution (median ${w.medianMs} ms, σ = ${w.sigma}, so p99 ≈ ${Math.round(w.medianMs * Math.exp(2.326 * w.sigma))} ms and mean ≈ ${(w.medianMs * Math.exp(w.sigma ** 2 / 2)).toFixed(1)} ms; seed ${w.seed}); document *i* gets the *i*-th draw, carried in its payload, so every system sleeps exactly the same total. ${w.failureRate * 100} % of the documents (drawn among the first ${w.failureSpan * 100} %, so that a retry comes back before the run ends) throw at once on their first attempt and succeed on the retry. ${drawn ? `Drawn: ${drawn}. ` : ''}Each row has about ${w.idealSeconds} s of ideal work (processes × concurrency × ${w.idealSeconds} s ÷ mean), capped at ${w.capMs / 1000} s. Everything runs \`bench/fixtures/latency-handler.mjs\`: pulling-agent processes load it as \`HANDLER\` (\`CONCURRENCY\` = the column, \`BATCH_SIZE\` its default, \`POLL_INTERVAL=1\`), BullMQ \`Worker\`s (\`concurrency\`, jobs with \`attempts: 2\`, no back-off) and graphile-worker \`run()\` (\`concurrency\`, default \`max_attempts\`, its own retry delay of e¹ ≈ 2.7 s) import it. Enqueued first, the workers started, then released together; docs/s counts the successful documents from the first handler start to the last handler end (the handlers' own clocks). Ideal = processes × concurrency ÷ mean latency (every slot busy all the time, no overhead). "÷ better peer" is against the faster of graphile-worker and BullMQ with the same processes and concurrency. Targets: ≥ ${REALWORLD_TARGET.fractionOfIdeal} of ideal and ≥ the better peer.`;
}

function pickupMethod(r: Results): string {
  const p = r.pickup?.[0];
  const gap = p ? `${p.gap_ms[0]}–${p.gap_ms[1]}` : '50–100';
  return `An idle fleet of two worker processes; one document at a time, each sent ${gap} ms (uniformly random) after the previous call answered. pulling-agent: \`POST /api/documents\` with one document to agent A (agents at their defaults: \`POLL_INTERVAL\` 5 s, \`BATCH_SIZE\` 100, \`CONCURRENCY\` 1); graphile-worker: \`SELECT add_job('latency', …)\` from the benchmark's own connection (two \`run()\` processes, concurrency 1); BullMQ: \`queue.add\` (two \`Worker\` processes, concurrency 1). The delay is from just before the call is sent (the benchmark's clock) to the start of the handler (\`performance.timeOrigin + performance.now()\` in the worker process, the same machine clock), so it includes the enqueue call itself ("Enqueue call p50"). "Started by A": the share of documents the agent that received the POST ran itself. Target: p50 ≤ ${PICKUP_TARGET_P50_MS} ms for pulling-agent.`;
}

function memoryRows(r: Results): Row[] {
  return r.memory.map((m) => [
    m.store,
    ms(m.start_to_ready_ms.p50),
    ms(m.start_to_ready_ms.max),
    ms(m.rss_mib.p50),
    ms(m.rss_mib.max),
    m.rss_mib_small_semi_space ? ms(m.rss_mib_small_semi_space.p50) : '–',
    fmt(m.heap_per_agent_kib_at_500, 0),
    fmt(m.rss_per_agent_kib_at_500, 0),
  ]);
}
const MEMORY_HEADER = [
  'Store',
  'Start → ready p50 ms',
  'max ms',
  'Idle RSS p50 MiB',
  'max MiB',
  'RSS p50 MiB with --max-semi-space-size=1',
  'Heap per in-process agent KiB (largest fleet)',
  'RSS per in-process agent KiB',
];

// --- the fleet throttle (bench/scenarios/throttle.ts) ---

export const THROTTLE_TARGET = { tolerance: 0.1, heartbeats: 2, queueRatio: 0.9, overheadDrop: 0.05 };

const band = (rate: number) => [
  rate * (1 - THROTTLE_TARGET.tolerance),
  rate * (1 + THROTTLE_TARGET.tolerance),
];
const inBand = (v: number, rate: number) => {
  const [lo, hi] = band(rate);
  return v >= (lo as number) - 1e-9 && v <= (hi as number) + 1e-9;
};
const secs = (v: number | null) => (v === null ? 'not back' : `${v} s`);

function throttleRows(r: Results): Row[] {
  return (r.throttle ?? []).map((t) => {
    const a = t.accuracy;
    const [lo, hi] = band(t.rate);
    return [
      `${t.store} (${t.watch_mode})`,
      `${t.agents} × ${t.concurrency}`,
      t.rate,
      `${a.overall_per_second} (${a.started} in ${a.seconds} s)`,
      `${a.windows.min} / ${fmt(a.windows.mean)} / ${a.windows.max}`,
      `${lo}–${hi}: overall ${metOrMissed(inBand(a.overall_per_second, t.rate))}, every window ${metOrMissed(a.windows.n > 0 && inBand(a.windows.min, t.rate) && inBand(a.windows.max, t.rate))}`,
      t.heartbeat_seconds,
    ];
  });
}
const THROTTLE_HEADER = [
  'Store',
  'Agents × concurrency',
  'Rate',
  'Started/s overall',
  'Per 5 s window min / mean / max',
  'Target',
  'Heartbeat s',
];

function recoveryRows(r: Results): Row[] {
  return (r.throttle ?? []).flatMap((t) =>
    [t.resume, t.join, t.leave, t.kill].map((e) => [
      t.store,
      e.event,
      `${e.agents_before} → ${e.agents_after}`,
      secs(e.recovery_seconds),
      `${e.min_per_second} – ${e.max_per_second}`,
      `${e.expected_seconds} s`,
      `≤ ${THROTTLE_TARGET.heartbeats} heartbeats (${THROTTLE_TARGET.heartbeats * t.heartbeat_seconds} s): ${metOrMissed(e.recovery_seconds !== null && e.recovery_seconds <= THROTTLE_TARGET.heartbeats * t.heartbeat_seconds)}`,
      e.observed_seconds,
    ]),
  );
}
const RECOVERY_HEADER = [
  'Store',
  'Event',
  'Agents',
  'Back within ±10 % after',
  'Rate seen from the event, /s',
  'Expected by design',
  'Target',
  'Observed s',
];

function policyPropagationRows(r: Results): Row[] {
  return (r.throttle ?? []).flatMap((t) =>
    (
      [
        ['throttle (rate=…)', t.propagation.throttle],
        ['pause / resume', t.propagation.pause],
      ] as const
    ).map(([what, p]) => [
      `${t.store} (${t.watch_mode})`,
      what,
      `${p.commands}${p.missing ? ` (${p.missing} missing)` : ''}`,
      `${ms(p.apply_from_ack_ms.p50)} / ${ms(p.apply_from_ack_ms.max)}`,
      `${ms(p.all_reported_from_ack_ms.p50)} / ${ms(p.all_reported_from_ack_ms.max)}`,
      ms(p.post_ms.p50),
    ]),
  );
}
const POLICY_PROPAGATION_HEADER = [
  'Store',
  'Command',
  'Commands',
  'Each agent applies, p50 / max ms',
  'Every agent reports it in /api/cluster/agents, p50 / max ms',
  'POST ms p50',
];

function queuePauseRows(r: Results): Row[] {
  return (r.queue_pause ?? []).map((q) => [
    q.store,
    `${q.agents} × ${q.concurrency}`,
    `${q.rounds} × ${q.seconds} s`,
    `${ms(q.barrier_ms.p50)} / ${ms(q.barrier_ms.max)}`,
    `${q.a_started_after_answer} (${q.a_started_during_barrier} while it waited)`,
    `${q.b_before_per_second} (a ${q.a_before_per_second})`,
    q.b_after_per_second,
    fmt(q.b_ratio),
    `0 of a: ${metOrMissed(q.a_started_after_answer === 0)}; b ≥ ${THROTTLE_TARGET.queueRatio}×: ${metOrMissed(q.b_ratio >= THROTTLE_TARGET.queueRatio)}`,
  ]);
}
const QUEUE_PAUSE_HEADER = [
  'Store',
  'Agents × concurrency',
  'Rounds',
  'pause?queue=a&wait=true p50 / max ms',
  'Documents of a started after the answer',
  'b/s before (a/s)',
  'b/s after',
  'After ÷ before',
  'Targets',
];

function overheadRows(r: Results): Row[] {
  return (r.throttle_overhead ?? []).map((o) => [
    o.store,
    `${o.workers} × ${o.concurrency}`,
    `${o.documents} (${o.source})`,
    `${Math.round(o.per_second)} (${fmt(o.fraction_of_ideal)} of ideal), load ${o.load_average.join(' ')}`,
    o.reference
      ? `${Math.round(o.reference.per_second)} (${fmt(o.reference.fraction_of_ideal)} of ideal, ${o.reference.documents} documents), load ${o.reference.load_average.join(' ')}, ${o.reference.file.split('/').pop()}`
      : '–',
    o.drop === null ? '–' : `${fmt(o.drop * 100, 1)} %`,
    o.drop === null
      ? '–'
      : `≤ ${THROTTLE_TARGET.overheadDrop * 100} %: ${metOrMissed(o.drop <= THROTTLE_TARGET.overheadDrop)}`,
  ]);
}
const OVERHEAD_HEADER = [
  'Store',
  'Processes × concurrency',
  'Documents',
  'Now (policy built in, unused)',
  'Before the policy (committed)',
  'Drop (of ideal)',
  'Target',
];

function throttleMethod(r: Results): string {
  const t = r.throttle?.[0];
  const q = r.queue_pause?.[0];
  const parts: string[] = [];
  if (t) {
    parts.push(
      `Real agent processes (\`CONCURRENCY=${t.concurrency}\`, \`HEARTBEAT_INTERVAL=${t.heartbeat_seconds}\` s, so each agent recounts the live agents every ${t.heartbeat_seconds} s: min(\`CONTROL_POLLING_INTERVAL\`, heartbeat)) running \`bench/fixtures/latency-handler.mjs\` (log-normal latencies, median 5 ms, p99 ≈ 120 ms, no planned failures), which appends the time of every handler start to a file (synchronously, so that a killed agent keeps its starts); every rate here is counted from those starts. Propagation first, on the idle fleet: ${t.propagation.throttle.commands} throttles (rate alternating ${t.rate + 1} and ${t.rate}) and ${t.propagation.pause.commands} pauses and resumes, each sent to agent-1 and waited for: "each agent applies" is the \`time\` of the other agents' \`Applying fleet policy version N\` / \`Applying command … (version N)\` log lines from the POST's answer; "every agent reports it" is the first \`GET /api/cluster/agents\` (polled every 10 ms) in which every live agent shows \`applied_policy_version\` (\`applied_version\` for a pause) at that version. Then a backlog is enqueued while the fleet runs under \`rate=${t.rate}\`: starts per second over ${t.accuracy.seconds} s from the end of the enqueue, per ${t.accuracy.window_seconds} s window and overall. Then a global pause of two ticks (every agent recounts the live agents while paused) and a resume, a ${t.agents + 1}th agent joins (from its \`Agent … started\` line), it stops with SIGTERM, and one of the first agents is killed with SIGKILL. "Back within ±10 %" is the time from the event after which the rate, counted over a ${t.rate_window_seconds} s window centred on each moment (every 100 ms), stays within ±10 % of the rate until the end of the observation (0: it never left; "not back": not within the observation). "Expected by design" is the bound of docs/operations.md: a resume, one tick (paused agents are not counted, so each resumes with a share of its own until its next tick); a join, one tick plus one heartbeat; a graceful leave, one tick; a kill, three heartbeats until the agent is lost plus one tick.`,
    );
  }
  if (q) {
    parts.push(
      `Per-queue pause: queues a and b, ${q.agents} unthrottled agent processes, the same handler, both queues with a backlog enqueued interleaved (so that every claim takes from both). b's starts per second over ${q.seconds} s, then \`POST /api/cluster/pause?queue=a&wait=true\`, then b's starts per second over ${q.seconds} s from its answer, and every start of a from the answer until a is resumed (\`resume?queue=a&wait=true\`); ${q.rounds} round(s). a's slots go to b once a is paused, so b may rise; the target is that it does not drop by more than 10 %.`,
    );
  }
  if (r.throttle_overhead?.length) {
    parts.push(
      'Overhead: one row of the real-world latencies scenario (2 processes × concurrency 10, no queue given, no policy written), as a fraction of its ideal, against the committed row of the same store, processes and concurrency of nearest length from before the fleet policy existed (bench/results/runtime-2026-12-01/). The load averages are printed beside both: this machine is shared, and a difference in load moves the figure more than 5 %.',
    );
  }
  return parts.join('\n\n');
}

function targetRows(r: Results): Row[] {
  return r.targets.map((t) => [
    t.target,
    t.figure,
    fmt(t.value),
    fmt(t.limit),
    t.met === null ? '–' : t.met ? 'met' : 'MISSED',
    t.note,
  ]);
}

export function terminalTables(r: Results): string {
  const parts: string[] = [];
  const add = (title: string, header: string[], rows: Row[]) => {
    if (rows.length) parts.push(`\n${title}\n${table(header, rows)}`);
  };
  add(
    'Propagation (ms from the POST’s 200 to each agent applying the command)',
    PROPAGATION_HEADER,
    propagationRows(r),
  );
  add('Database load of the idle fleet (per agent per second)', LOAD_HEADER, loadRows(r));
  add('Drain barrier (pause?wait=true with handlers in flight)', DRAIN_HEADER, drainRows(r));
  add('Throughput (no-op handler)', THROUGHPUT_HEADER, throughputRows(r));
  add('Start-up and memory', MEMORY_HEADER, memoryRows(r));
  add('Real-world latencies (log-normal handler, 1 % fail once)', REALWORLD_HEADER, realWorldRows(r));
  add('Enqueue → start on an idle fleet (ms)', PICKUP_HEADER, pickupRows(r));
  add('Fleet throttle: documents started per second', THROTTLE_HEADER, throttleRows(r));
  add(
    'Fleet throttle: back within ±10 % after a resume, a join or a leave',
    RECOVERY_HEADER,
    recoveryRows(r),
  );
  add(
    'Throttle propagation beside a pause’s (ms from the POST’s answer)',
    POLICY_PROPAGATION_HEADER,
    policyPropagationRows(r),
  );
  add('Per-queue pause (pause?queue=a&wait=true while b flows)', QUEUE_PAUSE_HEADER, queuePauseRows(r));
  add('Overhead of queues and the policy, unused (real-world latencies)', OVERHEAD_HEADER, overheadRows(r));
  add('Targets', ['Target', 'Figure', 'Value', 'Limit', 'Result', 'Note'], targetRows(r));
  parts.push(`\nMachine: ${describe(r)}; ${r.duration_seconds} s in all`);
  return parts.join('\n');
}

function describe(r: Results): string {
  const m = r.machine;
  return `${m.cpu_model}, ${m.cores} cores, ${m.memory_gib} GiB, Node ${m.node}, ${m.os}; load average ${m.load_average_at_start.join(' ')} at the start, ${(m.load_average_at_end ?? []).join(' ')} at the end`;
}

const round1 = (v: number) => Math.round(v * 10) / 10;
const s = (x: Summary) => `${x.p50} / ${x.p99} / ${x.max}`;

export function checkTargets(r: Results): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const interval = Number(r.settings.pollingIntervalMs) / 1000;
  const mid = r.propagation.filter((p) => p.how === 'in-process');
  const hundred = Math.min(...mid.map((p) => p.agents).filter((n) => n >= 100), Number.POSITIVE_INFINITY);
  for (const p of r.propagation) {
    if (p.watch_mode !== 'polling' && p.agents === hundred) {
      checks.push({
        target: 'Event-driven propagation p99 ≤ 50 ms at 100 agents',
        figure: `${p.mode}, ${p.agents} ${p.how}`,
        value: p.from_ack_ms.p99,
        limit: 50,
        met: p.from_ack_ms.p99 <= 50,
        note: `p50/p99/max ${s(p.from_ack_ms)} ms`,
      });
    }
    if (p.watch_mode === 'polling') {
      const limit = interval * 1000 * 1.1;
      checks.push({
        target: `Polling propagation within interval + 10 % (${limit} ms)`,
        figure: `${p.mode}, ${p.agents} ${p.how}`,
        value: p.from_ack_ms.max,
        limit,
        met: p.from_ack_ms.max <= limit,
        note: `max from the 200; mean ${p.from_ack_ms.mean} ms (expected ≈ ${(interval * 500).toFixed(0)})`,
      });
    }
  }
  for (const d of r.drain) {
    checks.push({
      target: 'Drain barrier overhead ≤ 50 ms',
      figure: d.mode,
      value: d.overhead_ms.p50,
      limit: 50,
      met: d.overhead_ms.p50 <= 50,
      note: `p50 (max ${d.overhead_ms.max}); after the last handler p50 ${d.after_last_handler_ms.p50} ms`,
    });
  }
  for (const t of r.throughput.filter((x) => x.system === 'pulling-agent' && x.batchSize !== 1)) {
    for (const [peer, ratio] of [
      ['graphile-worker', t.vs_graphile_worker],
      ['BullMQ', t.vs_bullmq],
    ] as const) {
      if (ratio === null) continue;
      checks.push({
        target: `Throughput ≥ ${peer}`,
        figure: `${t.store}, ${t.workers} worker(s)`,
        value: ratio,
        limit: 1,
        met: ratio >= 1,
        note: `${Math.round(t.perSecond)} docs/s, ratio to ${peer}`,
      });
    }
  }
  for (const t of (r.realworld ?? []).filter((x) => x.system === 'pulling-agent')) {
    const figure = `${t.store}, ${t.workers} processes × concurrency ${t.concurrency}`;
    checks.push({
      target: `Real-world latencies ≥ ${REALWORLD_TARGET.fractionOfIdeal} of ideal`,
      figure,
      value: t.fraction_of_ideal,
      limit: REALWORLD_TARGET.fractionOfIdeal,
      met: t.fraction_of_ideal >= REALWORLD_TARGET.fractionOfIdeal,
      note: `${Math.round(t.perSecond)} of ${Math.round(t.ideal_per_second)} docs/s ideal`,
    });
    if (t.vs_better_peer !== null) {
      checks.push({
        target: 'Real-world latencies ≥ the better peer',
        figure,
        value: t.vs_better_peer,
        limit: REALWORLD_TARGET.vsBetterPeer,
        met: t.vs_better_peer >= REALWORLD_TARGET.vsBetterPeer,
        note: `ratio to ${t.better_peer}`,
      });
    }
  }
  for (const p of (r.pickup ?? []).filter((x) => x.system === 'pulling-agent')) {
    checks.push({
      target: `Enqueue → start p50 ≤ ${PICKUP_TARGET_P50_MS} ms, idle fleet`,
      figure: `${p.store}, 2 agents`,
      value: p.delay_ms.p50,
      limit: PICKUP_TARGET_P50_MS,
      met: p.delay_ms.p50 <= PICKUP_TARGET_P50_MS,
      note: `p90 ${p.delay_ms.p90}, p99 ${p.delay_ms.p99} ms of ${p.delay_ms.n}`,
    });
  }
  for (const t of r.throttle ?? []) {
    const [lo, hi] = band(t.rate);
    const a = t.accuracy;
    checks.push({
      target: `Throttle rate=${t.rate}: ${lo}–${hi} started/s overall`,
      figure: `${t.store}, ${t.agents} agents, ${a.seconds} s`,
      value: a.overall_per_second,
      limit: hi as number,
      met: inBand(a.overall_per_second, t.rate),
      note: `${a.started} started`,
    });
    const worst = a.windows_per_second.reduce(
      (w, v) => (Math.abs(v - t.rate) > Math.abs(w - t.rate) ? v : w),
      t.rate,
    );
    checks.push({
      target: `Throttle rate=${t.rate}: every ${a.window_seconds} s window ${lo}–${hi}/s`,
      figure: `${t.store}, ${a.windows.n} windows`,
      value: worst,
      limit: hi as number,
      met: a.windows.n > 0 && a.windows_per_second.every((v) => inBand(v, t.rate)),
      note: `the window farthest from ${t.rate}; min / max ${a.windows.min} / ${a.windows.max}`,
    });
    for (const e of [t.resume, t.join, t.leave, t.kill]) {
      const limit = THROTTLE_TARGET.heartbeats * t.heartbeat_seconds;
      checks.push({
        target: `Throttle back within ±10 % in ≤ ${THROTTLE_TARGET.heartbeats} heartbeats`,
        figure: `${t.store}, ${e.event}`,
        value: e.recovery_seconds,
        limit,
        met: e.recovery_seconds !== null && e.recovery_seconds <= limit,
        note: `${e.recovery_seconds === null ? `not back within ${e.observed_seconds} s` : `${e.recovery_seconds} s`}; heartbeat ${t.heartbeat_seconds} s; by design ≤ ${e.expected_seconds} s; rate seen ${e.min_per_second}–${e.max_per_second}/s`,
      });
    }
    const th = t.propagation.throttle.all_reported_from_ack_ms;
    const pa = t.propagation.pause.all_reported_from_ack_ms;
    const limit = Math.max(pa.p50 * 1.1, pa.p50 + 5);
    checks.push({
      target: 'A throttle reaches the fleet as fast as a pause',
      figure: `${t.store}, every agent reports it (p50 ms)`,
      value: th.p50,
      limit: round1(limit),
      met: th.p50 <= limit,
      note: `throttle p50/max ${th.p50}/${th.max} ms, pause ${pa.p50}/${pa.max} ms (limit: the pause's p50 + 10 % or + 5 ms)`,
    });
  }
  for (const q of r.queue_pause ?? []) {
    checks.push({
      target: 'No document of a paused queue starts after wait=true answers',
      figure: `${q.store}, ${q.rounds} pause(s)`,
      value: q.a_started_after_answer,
      limit: 0,
      met: q.a_started_after_answer === 0,
      note: `${q.a_started_during_barrier} started while the barrier waited`,
    });
    checks.push({
      target: `The other queue keeps ≥ ${THROTTLE_TARGET.queueRatio} of its throughput`,
      figure: `${q.store}, b after ÷ before`,
      value: q.b_ratio,
      limit: THROTTLE_TARGET.queueRatio,
      met: q.b_ratio >= THROTTLE_TARGET.queueRatio,
      note: `${q.b_before_per_second} → ${q.b_after_per_second} b/s (a's slots go to b)`,
    });
  }
  for (const o of r.throttle_overhead ?? []) {
    if (o.drop === null || o.reference === null) continue;
    checks.push({
      target: `Queues and policy unused cost ≤ ${THROTTLE_TARGET.overheadDrop * 100} % (real-world latencies)`,
      figure: `${o.store}, ${o.workers} × ${o.concurrency}`,
      value: o.drop,
      limit: THROTTLE_TARGET.overheadDrop,
      met: o.drop <= THROTTLE_TARGET.overheadDrop,
      note: `${fmt(o.fraction_of_ideal)} of ideal now (load ${o.load_average[0]}) vs ${fmt(o.reference.fraction_of_ideal)} committed (load ${o.reference.load_average[0]})`,
    });
  }
  for (const m of r.memory) {
    checks.push({
      target: 'Idle agent ≤ 80 MB RSS',
      figure: m.store,
      value: m.rss_mib.max,
      limit: 80,
      met: m.rss_mib.max <= 80,
      note: `max of ${m.rss_mib.n} after ${m.idle_seconds} s idle (MiB); ${m.rss_mib_small_semi_space?.max ?? '–'} with NODE_OPTIONS=--max-semi-space-size=1`,
    });
  }
  return checks;
}

export function markdown(r: Results, jsonName: string, prefix: string): string {
  const interval = Number(r.settings.pollingIntervalMs) / 1000;
  const lines: string[] = [];
  lines.push(`# Benchmark results${r.quick ? ' (quick form: tiny sizes, figures not meaningful)' : ''}`);
  lines.push('');
  lines.push(
    `Run ${r.started_at} → ${r.finished_at} (${r.duration_seconds} s) with \`npm run bench${r.quick ? ' -- --quick' : ''}\`. Every figure, with raw samples: [${jsonName}](${jsonName}). Method: [docs/benchmarks.md](../../docs/benchmarks.md).`,
  );
  lines.push('');
  lines.push(`**Machine:** ${describe(r)}.`);
  lines.push('');
  lines.push(`**Stores:** ${Object.values(r.machine.stores).join('; ')}. ${r.servers.join('; ')}.`);
  lines.push('');
  if (r.errors.length) {
    lines.push('**Failed scenarios:**');
    for (const e of r.errors) lines.push(`- ${e.scenario}: ${e.message.split('\n')[0]}`);
    lines.push('');
  }
  if (r.propagation.length) {
    lines.push('## Propagation');
    lines.push('');
    lines.push(`![propagation](${prefix}propagation.svg)`);
    lines.push('');
    lines.push(
      `Milliseconds from the moment the client receives the 200 of \`POST /api/cluster/pause|resume\` to the moment each agent applied it; ${r.settings.commands} commands, alternately pause and resume, each waited for. The POST goes to one more agent, the commander, a separate agent process that is not counted (it applies the command itself before answering). Agent processes: the \`time\` of each agent's \`[Distributed Control] Applying command … (version N)\` log line (LOG_FORMAT=json, 1 ms resolution; nothing added by the measuring). In-process agents (\`createAgent\`, each with its own store instance, all in one Node process): the \`applied\` event, stamped on the same clock as the POST (\`performance.timeOrigin + performance.now()\` in both processes). Negative values: the agent applied the command before the 200 reached the client (the commander writes, applies, lists the agents, then answers — "POST ms"). Polling modes use \`CONTROL_POLLING_INTERVAL=${interval}\` s (±10 % jitter), so the expected mean is ≈ ${interval / 2} s and the maximum ${interval * 1.1} s.`,
    );
    lines.push('');
    lines.push(
      '"Host loop delay": how late the fleet host\'s single event loop ran while the commands propagated (`monitorEventLoopDelay`), i.e. what sharing one process adds to the in-process figures. "Connections": PostgreSQL backends of the agents (`pg_stat_activity`), or MongoDB pool plus monitoring connections.',
    );
    lines.push('');
    lines.push(table(PROPAGATION_HEADER, propagationRows(r)));
    lines.push('');
  }
  if (r.load.length) {
    lines.push('## Database load of an idle fleet');
    lines.push('');
    lines.push(
      `Counted exactly over ${r.load[0]?.window_seconds} s with the in-process fleet running and idle (no documents), per agent per second (the in-process agents; the commander is a separate process, not counted, except by pg_stat_statements, whose figure is divided by the agents + 1). "Control reads" are calls of \`readControlVersion\`/\`readControl\` on each agent's store (a counting proxy); the formula is the seed's agents ÷ interval, per agent (1/${interval} s when polling, 0 when event-driven). Heartbeats (every 5 s, a prune every 12th) and empty claims (\`POLL_INTERVAL\` 5 s) are not control traffic and are shown apart. "Wire" counts every statement node-postgres sends (its \`Client.query\` wrapped) or every command the MongoDB driver sends (command monitoring), classified by text; "watch+driver" is the LISTEN connection's keep-alive, the MongoDB driver's own server-monitoring \`hello\`s and the server-clock \`hello\`. "Server" is pg_stat_statements on a PostgreSQL started by the benchmark.`,
    );
    lines.push('');
    lines.push(table(LOAD_HEADER, loadRows(r)));
    lines.push('');
    lines.push('Every class, per agent per second:');
    lines.push('');
    for (const l of r.load) {
      lines.push(
        `- ${l.mode}: store ${JSON.stringify(l.store_calls)}${Object.keys(l.wire).length ? `; wire ${JSON.stringify(l.wire)}` : ''}${l.server ? `; server ${JSON.stringify(l.server)}` : ''}`,
      );
    }
    lines.push('');
  }
  if (r.drain.length) {
    lines.push('## Drain barrier');
    lines.push('');
    lines.push(
      `\`POST /api/cluster/pause?wait=true\` to one of the agent processes while every agent has a handler of ${r.drain[0]?.handler_ms} ms in flight (\`BATCH_SIZE=10\`, \`CONCURRENCY=1\`; the pause is sent 0.6–1.6 handler durations after a resume). Barrier = sent → 200. Longest in-flight = the longest remaining time, at the moment the pause was sent, of a handler then running (from the handlers' own start/end log lines). Overhead = barrier − longest in-flight: what the barrier adds (propagation, the drained agents' registry writes, the barrier's 25 ms registry polling). In polling modes the overhead includes the propagation itself and the handlers that agents started before they learned of the pause. "After last handler" = from the end of the last handler the barrier waited for to the 200.`,
    );
    lines.push('');
    lines.push(table(DRAIN_HEADER, drainRows(r)));
    lines.push('');
  }
  if (r.throughput.length) {
    lines.push('## Throughput');
    lines.push('');
    lines.push(`![throughput](${prefix}throughput.svg)`);
    lines.push('');
    lines.push(
      'Documents (jobs) per second with a no-op handler, each worker a process of concurrency 1 (pulling-agent: `CONCURRENCY=1` agent processes; BullMQ: `Worker` with `concurrency: 1`; graphile-worker 0.16: `run()` with `concurrency: 1`). Everything is enqueued first (timed separately: "Enqueue s"), the workers started and connected, then released together; the rate counts from the first job started to the last one finished, from the workers\' own timestamps. Neither peer fetches in batches (BullMQ\'s batches are a Pro feature; graphile-worker 0.16 fetches one job at a time), so pulling-agent is shown with its default `BATCH_SIZE=100` and also with `BATCH_SIZE=1`, like for like. Ratios compare with the peer at the same number of workers.',
    );
    lines.push('');
    lines.push(table(THROUGHPUT_HEADER, throughputRows(r)));
    lines.push('');
  }
  if (r.memory.length) {
    lines.push('## Start-up and memory');
    lines.push('');
    lines.push(
      'Start → ready: from `spawn()` of `node dist/src/cli/pulling-agent.js` to the first 200 of `/readiness` (polled every 5 ms on a port chosen beforehand). Idle RSS: VmRSS of that process after it idled with no documents; the next column is the same with `NODE_OPTIONS=--max-semi-space-size=1` (a young generation of 1 MiB instead of up to 16 MiB per semi-space). Heap per in-process agent: the heap used after a forced GC with the largest in-process fleet started and idle, minus before, divided by the agents.',
    );
    lines.push('');
    lines.push(table(MEMORY_HEADER, memoryRows(r)));
    lines.push('');
  }
  if (r.realworld?.length) {
    lines.push('## Real-world latencies');
    lines.push('');
    lines.push(`![real-world latencies](${prefix}realworld.svg)`);
    lines.push('');
    lines.push(realWorldMethod(r));
    lines.push('');
    lines.push(table(REALWORLD_HEADER, realWorldRows(r)));
    lines.push('');
  }
  if (r.pickup?.length) {
    lines.push('## Enqueue → start on an idle fleet');
    lines.push('');
    lines.push(pickupMethod(r));
    lines.push('');
    lines.push(table(PICKUP_HEADER, pickupRows(r)));
    lines.push('');
  }
  if (r.throttle?.length || r.queue_pause?.length || r.throttle_overhead?.length) {
    lines.push('## Fleet throttle and per-queue pause');
    lines.push('');
    lines.push(throttleMethod(r));
    lines.push('');
    for (const [header, rows] of [
      [THROTTLE_HEADER, throttleRows(r)],
      [RECOVERY_HEADER, recoveryRows(r)],
      [POLICY_PROPAGATION_HEADER, policyPropagationRows(r)],
      [QUEUE_PAUSE_HEADER, queuePauseRows(r)],
      [OVERHEAD_HEADER, overheadRows(r)],
    ] as const) {
      if (rows.length === 0) continue;
      lines.push(table(header, rows));
      lines.push('');
    }
  }
  if (r.targets.length) {
    lines.push('## Targets');
    lines.push('');
    lines.push(table(['Target', 'Figure', 'Value', 'Limit', 'Result', 'Note'], targetRows(r)));
    lines.push('');
  }
  return `${lines.join('\n')}\n`;
}

// --- charts ---

const MODE_ORDER = [
  'SQLite file_events',
  'PostgreSQL listen_notify',
  'SQLite polling',
  'PostgreSQL polling',
  'MongoDB (FerretDB) polling',
];

/** Two panels (event-driven, polling), each grouping by mode: a bar to p50, a whisker to p99, a dot at max. */
export function propagationSvg(r: Results): string {
  const interval = Number(r.settings.pollingIntervalMs);
  const sizes = [...new Set(r.propagation.map((p) => `${p.agents} ${p.how}`))];
  const sizeKey = (p: Results['propagation'][number]) => `${p.agents} ${p.how}`;
  const panels = [
    {
      title:
        'Event-driven (log scale; values at or below 1 ms, including agents that applied before the 200, drawn at 1 ms)',
      modes: MODE_ORDER.filter((m) => r.propagation.some((p) => p.mode === m && p.watch_mode !== 'polling')),
    },
    {
      title: `Polling (CONTROL_POLLING_INTERVAL ${interval / 1000} s)`,
      modes: MODE_ORDER.filter((m) => r.propagation.some((p) => p.mode === m && p.watch_mode === 'polling')),
    },
  ].filter((panel) => panel.modes.length > 0);
  const width = 980;
  const panelHeight = 300;
  const svg = new Svg(width, 90 + panels.length * (panelHeight + 70));
  svg.text(20, 28, 'Propagation: ms from the POST’s 200 to each agent applying the command', {
    size: 16,
    weight: 'bold',
  });
  svg.text(
    20,
    48,
    'bar = p50, whisker = p99, dot = max; ' + r.machine.cpu_model + `, ${r.machine.cores} cores`,
    { size: 11, fill: '#555' },
  );
  svg.legend(
    20,
    66,
    sizes.map((label, i) => ({
      label: label.replace(' processes', ' processes').replace(' in-process', ' in-process'),
      color: COLORS[i % COLORS.length] as string,
    })),
  );
  panels.forEach((panel, pi) => {
    const top = 100 + pi * (panelHeight + 70);
    const left = 70;
    const plotW = width - left - 30;
    const plotH = panelHeight - 40;
    const runs = r.propagation.filter(
      (p) =>
        panel.modes.includes(p.mode) && (pi === 0 ? p.watch_mode !== 'polling' : p.watch_mode === 'polling'),
    );
    const polling = panel.title.startsWith('Polling');
    const values = runs.flatMap((p) => [p.from_ack_ms.p50, p.from_ack_ms.p99, p.from_ack_ms.max, 0]);
    if (polling) values.push(interval * 1.1);
    // Event-driven figures span 0.01 ms to a second: a log axis from 1 ms (anything below, including
    // agents that applied before the 200, is drawn at 1 ms; the labels give the real p99).
    let y: (v: number) => number;
    let axis: number[];
    if (polling) {
      axis = ticks(0, Math.max(...values));
      const hi = axis[axis.length - 1] as number;
      y = (v: number) => top + plotH - (Math.max(0, v) / hi) * plotH;
    } else {
      const decades = Math.max(1, Math.ceil(Math.log10(Math.max(...values, 10))));
      axis = Array.from({ length: decades + 1 }, (_, i) => 10 ** i);
      y = (v: number) => top + plotH - (Math.log10(Math.max(1, v)) / decades) * plotH;
    }
    svg.text(left, top - 8, panel.title, { size: 13, weight: 'bold' });
    for (const t of axis) {
      svg.line(left, y(t), left + plotW, y(t), t === 0 ? '#888' : '#e5e5e5');
      svg.text(left - 6, y(t) + 4, `${t}`, { size: 11, anchor: 'end', fill: '#555' });
    }
    svg.text(18, top + plotH / 2, 'ms', { size: 11, rotate: -90, anchor: 'middle', fill: '#555' });
    if (polling) {
      svg.line(left, y(interval), left + plotW, y(interval), '#999', 1, '4 3');
      svg.text(left + plotW, y(interval) - 4, 'interval', { size: 10, anchor: 'end', fill: '#777' });
      svg.line(left, y(interval * 1.1), left + plotW, y(interval * 1.1), '#d62728', 1, '4 3');
      svg.text(left + plotW, y(interval * 1.1) - 4, 'interval + 10 %', {
        size: 10,
        anchor: 'end',
        fill: '#d62728',
      });
    }
    const groupW = plotW / panel.modes.length;
    panel.modes.forEach((mode, mi) => {
      const x0 = left + mi * groupW;
      svg.text(x0 + groupW / 2, top + plotH + 18, mode, { size: 12, anchor: 'middle' });
      const barW = Math.min(40, (groupW - 30) / sizes.length);
      sizes.forEach((size, si) => {
        const p = runs.find((run) => run.mode === mode && sizeKey(run) === size);
        if (!p) return;
        const color = COLORS[si % COLORS.length] as string;
        const bx = x0 + (groupW - barW * sizes.length) / 2 + si * barW;
        const a = p.from_ack_ms;
        svg.rect(
          bx + 2,
          Math.min(y(a.p50), y(polling ? 0 : 1)),
          barW - 4,
          Math.abs(y(a.p50) - y(polling ? 0 : 1)),
          color,
          `${mode}, ${size}: p50 ${a.p50} ms, p99 ${a.p99} ms, max ${a.max} ms`,
        );
        const cx = bx + barW / 2;
        svg.line(cx, y(a.p50), cx, y(a.p99), '#222', 1.5);
        svg.line(cx - 5, y(a.p99), cx + 5, y(a.p99), '#222', 1.5);
        svg.circle(cx, y(a.max), 3, '#222');
        svg.text(cx, y(Math.max(a.p99, a.max)) - 6, `${a.p99}`, { size: 9, anchor: 'middle', fill: '#333' });
      });
    });
  });
  return svg.toString();
}

/** Horizontal bars of documents per second, grouped by number of workers. */
export function throughputSvg(r: Results): string {
  const systems = [...new Set(r.throughput.map((t) => label(t)))];
  const workers = [...new Set(r.throughput.map((t) => t.workers))].sort((a, b) => a - b);
  const barH = 16;
  const groupH = systems.length * barH + 24;
  const left = 330;
  const width = 980;
  const plotW = width - left - 90;
  const svg = new Svg(width, 90 + workers.length * groupH + 30);
  svg.text(20, 28, 'Throughput: documents (jobs) per second, no-op handler, workers of concurrency 1', {
    size: 16,
    weight: 'bold',
  });
  svg.text(
    20,
    48,
    `${r.machine.cpu_model}, ${r.machine.cores} cores; the same machine and run for every system`,
    { size: 11, fill: '#555' },
  );
  const max = Math.max(...r.throughput.map((t) => t.perSecond), 1);
  const axis = ticks(0, max);
  const hi = axis[axis.length - 1] as number;
  const x = (v: number) => left + (v / hi) * plotW;
  const bottom = 70 + workers.length * groupH;
  for (const t of axis) {
    svg.line(x(t), 62, x(t), bottom, '#e5e5e5');
    svg.text(x(t), bottom + 16, t >= 1000 ? `${t / 1000}k` : `${t}`, {
      size: 11,
      anchor: 'middle',
      fill: '#555',
    });
  }
  workers.forEach((k, gi) => {
    const top = 70 + gi * groupH;
    svg.text(20, top + 12, `${k} worker${k > 1 ? 's' : ''}`, { size: 13, weight: 'bold' });
    systems.forEach((system, si) => {
      const run = r.throughput.find((t) => t.workers === k && label(t) === system);
      const y = top + 18 + si * barH;
      svg.text(left - 8, y + 12, system, { size: 11, anchor: 'end' });
      if (!run) return;
      const color =
        run.system === 'BullMQ'
          ? '#d62728'
          : run.system === 'graphile-worker'
            ? '#9467bd'
            : (COLORS[Math.min(si, 2)] as string);
      svg.rect(
        left,
        y + 2,
        x(run.perSecond) - left,
        barH - 4,
        color,
        `${system}, ${k} workers: ${Math.round(run.perSecond)}/s`,
      );
      svg.text(x(run.perSecond) + 4, y + 12, `${Math.round(run.perSecond)}${run.capped ? ' (capped)' : ''}`, {
        size: 10,
        fill: '#333',
      });
    });
  });
  return svg.toString();
}

function label(t: Results['throughput'][number]): string {
  if (t.system !== 'pulling-agent') return `${t.system} (${t.store.replace(/ \(.*\)$/, '')})`;
  return `pulling-agent ${t.store}, BATCH_SIZE=${t.batchSize}`;
}

/** Horizontal bars of documents per second for each processes × concurrency, with the ideal marked. */
export function realWorldSvg(r: Results): string {
  const rows = r.realworld ?? [];
  const groups = [...new Set(rows.map((t) => `${t.workers}×${t.concurrency}`))];
  const systems = [...new Set(rows.map((t) => realWorldLabel(t)))];
  const barH = 16;
  const groupH = systems.length * barH + 24;
  const left = 300;
  const width = 980;
  const plotW = width - left - 140;
  const svg = new Svg(width, 90 + groups.length * groupH + 30);
  const w = r.realworld_settings;
  svg.text(
    20,
    28,
    `Real-world latencies: documents per second, log-normal handler (median ${w?.medianMs ?? '?'} ms, σ ${w?.sigma ?? '?'}), ${(w?.failureRate ?? 0) * 100} % fail once`,
    { size: 15, weight: 'bold' },
  );
  svg.text(
    20,
    48,
    `dashed line = ideal (processes × concurrency ÷ mean latency); ${r.machine.cpu_model}, ${r.machine.cores} cores; the same machine and run for every system`,
    { size: 11, fill: '#555' },
  );
  const max = Math.max(...rows.map((t) => Math.max(t.perSecond, t.ideal_per_second)), 1);
  const axis = ticks(0, max);
  const hi = axis[axis.length - 1] as number;
  const x = (v: number) => left + (v / hi) * plotW;
  const bottom = 70 + groups.length * groupH;
  for (const t of axis) {
    svg.line(x(t), 62, x(t), bottom, '#e5e5e5');
    svg.text(x(t), bottom + 16, t >= 1000 ? `${t / 1000}k` : `${t}`, {
      size: 11,
      anchor: 'middle',
      fill: '#555',
    });
  }
  groups.forEach((g, gi) => {
    const top = 70 + gi * groupH;
    const [k, c] = g.split('×');
    svg.text(20, top + 12, `${k} processes × concurrency ${c}`, { size: 13, weight: 'bold' });
    const inGroup = rows.filter((t) => `${t.workers}×${t.concurrency}` === g);
    const ideal = inGroup[0]?.ideal_per_second;
    systems.forEach((system, si) => {
      const run = inGroup.find((t) => realWorldLabel(t) === system);
      const y = top + 18 + si * barH;
      svg.text(left - 8, y + 12, system, { size: 11, anchor: 'end' });
      if (!run) return;
      const color =
        run.system === 'BullMQ'
          ? '#d62728'
          : run.system === 'graphile-worker'
            ? '#9467bd'
            : (COLORS[si % 3] as string);
      svg.rect(
        left,
        y + 2,
        x(run.perSecond) - left,
        barH - 4,
        color,
        `${system}, ${g}: ${Math.round(run.perSecond)}/s, ${fmt(run.fraction_of_ideal)} of ideal`,
      );
      svg.text(
        x(run.perSecond) + 4,
        y + 12,
        `${Math.round(run.perSecond)} (${fmt(run.fraction_of_ideal)} of ideal)${run.capped ? ' capped' : ''}`,
        { size: 10, fill: '#333' },
      );
    });
    if (ideal) {
      svg.line(x(ideal), top + 16, x(ideal), top + 18 + systems.length * barH, '#222', 1, '4 3');
      svg.text(x(ideal) + 3, top + 12, `ideal ${Math.round(ideal)}`, { size: 10, fill: '#222' });
    }
  });
  return svg.toString();
}

function realWorldLabel(t: NonNullable<Results['realworld']>[number]): string {
  if (t.system !== 'pulling-agent') return `${t.system} (${t.store.replace(/ \(.*\)$/, '')})`;
  return `pulling-agent ${t.store}`;
}
