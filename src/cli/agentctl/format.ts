// Human output: aligned tables and one-line summaries of the API's answers. Colour only on a TTY,
// never when NO_COLOR is set; --json output never passes through here.

import type {
  AgentRow,
  AgentsView,
  Command,
  ControlState,
  DocumentAnswer,
  DocumentListAnswer,
  DocumentRow,
  FleetSummary,
  PolicyView,
  QueueListAnswer,
} from './types.js';

export interface Style {
  colour: boolean;
}

/** Colour for a stream: a TTY, without NO_COLOR (https://no-color.org) or TERM=dumb. */
export function styleFor(stream: NodeJS.WriteStream): Style {
  const noColour = (process.env.NO_COLOR ?? '') !== '' || process.env.TERM === 'dumb';
  return { colour: stream.isTTY === true && !noColour };
}

const CODES = { red: 31, green: 32, yellow: 33, dim: 2, bold: 1 } as const;
type Paint = keyof typeof CODES;

export function paint(style: Style, colour: Paint | undefined, text: string): string {
  return style.colour && colour ? `\x1b[${CODES[colour]}m${text}\x1b[0m` : text;
}

const STATE_COLOUR: Record<string, Paint> = {
  running: 'green',
  paused: 'yellow',
  pause: 'yellow',
  stopping: 'yellow',
  stopped: 'red',
  shutdown: 'red',
  lost: 'red',
  failed: 'red',
  scheduled: 'dim',
  processing: 'yellow',
};

interface Cell {
  text: string;
  colour?: Paint | undefined;
}

/** Columns padded to the widest cell (colour codes added after padding, so they never misalign). */
export function table(style: Style, headers: string[], rows: (string | Cell)[][]): string {
  const cells = rows.map((row) => row.map((c) => (typeof c === 'string' ? { text: c } : c)));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((row) => row[i]?.text.length ?? 0)));
  const line = (row: Cell[]) =>
    row
      .map((cell, i) =>
        paint(style, cell.colour, i === row.length - 1 ? cell.text : cell.text.padEnd(widths[i]!)),
      )
      .join('  ');
  return [line(headers.map((text) => ({ text, colour: 'bold' as const }))), ...cells.map(line)].join('\n');
}

/** "12 s", "3 min 4 s", "2 h 5 min", "3 d 4 h": how long, for a human. */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ''}`;
  if (s < 86_400)
    return `${Math.floor(s / 3600)} h${s % 3600 >= 60 ? ` ${Math.floor((s % 3600) / 60)} min` : ''}`;
  return `${Math.floor(s / 86_400)} d${s % 86_400 >= 3600 ? ` ${Math.floor((s % 86_400) / 3600)} h` : ''}`;
}

/** "2026-01-11 10:30:00 UTC (12 s ago)" or "(in 2 h)". */
export function when(iso: string, now = Date.now()): string {
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return iso;
  const shown = `${at.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
  const delta = (now - at.getTime()) / 1000;
  return `${shown} (${delta >= 0 ? `${duration(delta)} ago` : `in ${duration(-delta)}`})`;
}

/** Who wrote a command: the token's name with authentication, and for whom when that differs. */
export function who(state: Pick<ControlState, 'updated_by' | 'on_behalf_of'>): string {
  return state.on_behalf_of ? `${state.updated_by} (for ${state.on_behalf_of})` : state.updated_by;
}

/** The command as an operator says it: resume writes `running`. */
export function commandWord(command: Command): string {
  return command === 'running' ? 'running (resumed)' : command;
}

/** More than this off the store's clock, an agent's offset is shown as a warning (src/agent/clock-offset.ts). */
const CLOCK_WARN_MS = 5_000;

/** The agent's clock against the store's: `+0.0 s`, `+120.0 s (off)` in yellow past 5 s; `-` unmeasured. */
export function clockCell(row: Pick<AgentRow, 'clock_offset_ms'>): Cell {
  const ms = row.clock_offset_ms;
  if (typeof ms !== 'number') return { text: '-' };
  const text = `${ms >= 0 ? '+' : '-'}${(Math.abs(ms) / 1000).toFixed(1)} s`;
  return Math.abs(ms) > CLOCK_WARN_MS ? { text: `${text} (off)`, colour: 'yellow' } : { text };
}

function batchCell(row: AgentRow, desired: Command): Cell {
  if (!row.batch_in_flight) return { text: '-' };
  return desired === 'running' ? { text: 'in flight' } : { text: 'draining', colour: 'yellow' };
}

/** The agents table: id, state, applied version, heartbeat age, batch, clock offset, watch mode, host. */
export function agentsTable(
  style: Style,
  view: Pick<AgentsView, 'agents' | 'desired'>,
  ageOffsetSeconds = 0,
): string {
  // Two processes under one agent_id are told apart by the short form of their instance ids.
  const seen = new Map<string, number>();
  for (const row of view.agents) seen.set(row.agent_id, (seen.get(row.agent_id) ?? 0) + 1);
  const name = (row: AgentRow) =>
    (seen.get(row.agent_id) ?? 0) > 1 && row.instance_id
      ? `${row.agent_id}@${row.instance_id.slice(0, 8)}`
      : row.agent_id;
  const rows = [...view.agents]
    .sort(
      (a, b) =>
        a.agent_id.localeCompare(b.agent_id) || (a.instance_id ?? '').localeCompare(b.instance_id ?? ''),
    )
    .map((row) => {
      const behind = row.state !== 'lost' && row.applied_version < view.desired.version;
      return [
        name(row),
        { text: row.state, colour: STATE_COLOUR[row.state] },
        behind
          ? { text: `${row.applied_version} (behind)`, colour: 'yellow' as const }
          : String(row.applied_version),
        `${(row.heartbeat_age_seconds + ageOffsetSeconds).toFixed(1)} s`,
        batchCell(row, view.desired.command),
        clockCell(row),
        row.watch_mode,
        row.host,
      ];
    });
  if (rows.length === 0) return paint(style, 'dim', '(no agent in the registry)');
  return table(style, ['AGENT', 'STATE', 'APPLIED', 'HEARTBEAT', 'BATCH', 'CLOCK', 'WATCH', 'HOST'], rows);
}

/** "3 agents (3 live, 0 lost): 3/3 applied version 8 (pause), 3/3 drained; stragglers: none". */
export function summaryLine(desired: AgentsView['desired'], summary: FleetSummary): string {
  const stragglers = summary.stragglers.length > 0 ? summary.stragglers.join(', ') : 'none';
  return (
    `${summary.total} agent${summary.total === 1 ? '' : 's'} (${summary.live} live, ${summary.lost} lost): ` +
    `${summary.applied}/${summary.live} applied version ${desired.version} (${desired.command}), ` +
    `${summary.drained}/${summary.live} drained; stragglers: ${stragglers}`
  );
}

/** Every live agent is on the desired version and, for pause and shutdown, has no batch in flight. */
export function converged(view: Pick<AgentsView, 'desired' | 'summary'>): boolean {
  const { summary, desired } = view;
  const applied = summary.stragglers.length === 0 && summary.applied >= summary.live;
  return applied && (desired.command === 'running' || summary.drained >= summary.live);
}

const COUNT_ORDER = ['pending', 'scheduled', 'processing', 'processed', 'failed'] as const;

/** "3 pending, 1 scheduled, 0 processing, 120 processed, 2 failed" (a status an older agent lacks is left out). */
export function countsLine(style: Style, counts: DocumentListAnswer['counts']): string {
  return COUNT_ORDER.filter((status) => typeof counts[status] === 'number')
    .map((status) => {
      const n = counts[status]!;
      const text = `${n} ${status}`;
      return status === 'failed' && n > 0 ? paint(style, 'red', text) : text;
    })
    .join(', ');
}

/** `agentctl status`: the control document, then the fleet, then the documents. */
export function statusText(
  style: Style,
  control: ControlState,
  agents: AgentsView,
  documents?: { counts: DocumentListAnswer['counts'] } | { error: string },
): string {
  const rows: [string, string][] = [
    [
      'Command',
      `${paint(style, STATE_COLOUR[control.command], commandWord(control.command))}, version ${control.version}`,
    ],
    ['Written', `${when(control.timestamp)} by ${who(control)}`],
    ['Reason', control.reason ?? '(none given)'],
  ];
  if (control.expires_at)
    rows.push(['Expires', `${when(control.expires_at)}: the fleet then resumes by itself`]);
  if (control.watch_mode) rows.push(['Watch mode', `${control.watch_mode} (of the agent answering)`]);
  const policy = policySummary(style, control.policy);
  if (policy !== null) rows.push(['Policy', policy]);
  const { summary } = agents;
  const lost = summary.lost > 0 ? paint(style, 'red', `, ${summary.lost} lost`) : '';
  rows.push(
    [
      'Agents',
      `${summary.live} live${lost}; ${summary.applied}/${summary.live} applied version ${agents.desired.version}, ${summary.drained}/${summary.live} drained`,
    ],
    [
      'Stragglers',
      summary.stragglers.length > 0 ? paint(style, 'yellow', summary.stragglers.join(', ')) : 'none',
    ],
  );
  if (documents) {
    rows.push([
      'Documents',
      'counts' in documents ? countsLine(style, documents.counts) : `(unavailable: ${documents.error})`,
    ]);
  }
  const width = Math.max(...rows.map(([label]) => label.length)) + 1;
  return rows.map(([label, value]) => `${`${label}:`.padEnd(width)} ${value}`).join('\n');
}

/** `agentctl history`: newest first, as the API gives it. */
export function historyTable(style: Style, history: ControlState[]): string {
  if (history.length === 0) return paint(style, 'dim', '(no command in the history)');
  const withExpiry = history.some((h) => h.expires_at);
  const headers = ['VERSION', 'COMMAND', 'WHEN', 'BY', ...(withExpiry ? ['EXPIRES'] : []), 'REASON'];
  const rows = history.map((h) => [
    String(h.version),
    { text: h.command, colour: STATE_COLOUR[h.command] },
    when(h.timestamp),
    who(h),
    ...(withExpiry ? [h.expires_at ? when(h.expires_at) : '-'] : []),
    h.reason ?? '-',
  ]);
  return table(style, headers, rows);
}

/** The first line of a text, at most `max` characters (an ellipsis when cut). */
export function truncate(text: string, max: number): string {
  const line = text.split(/\r?\n/, 1)[0] ?? '';
  const cut = line.length > max || line.length < text.length;
  return cut ? `${line.slice(0, Math.max(0, max - 1))}…` : line;
}

/** `agentctl documents list`: id, status, attempts, updated, the error truncated. */
export function documentsTable(style: Style, documents: DocumentRow[], now = Date.now()): string {
  if (documents.length === 0) return paint(style, 'dim', '(no document)');
  const rows = documents.map((d) => [
    d.id,
    { text: d.status, colour: STATE_COLOUR[d.status] },
    d.queue ?? 'default',
    String(d.attempts),
    d.updated_at ? when(d.updated_at, now) : when(d.created_at, now),
    d.error ? truncate(d.error, 60) : '-',
  ]);
  return table(style, ['ID', 'STATUS', 'QUEUE', 'ATTEMPTS', 'UPDATED', 'ERROR'], rows);
}

/** `agentctl queues`: one row per queue with its counts. */
export function queuesTable(style: Style, queues: QueueListAnswer['queues']): string {
  if (queues.length === 0) return paint(style, 'dim', '(no queue: no document stored yet)');
  const statuses = ['pending', 'scheduled', 'processing', 'processed', 'failed'] as const;
  const rows = queues.map((q) => [q.queue, ...statuses.map((s) => String(q.counts[s] ?? 0))]);
  return table(style, ['QUEUE', ...statuses.map((s) => s.toUpperCase())], rows);
}

/** `agentctl documents show`: every field, then the payload as indented JSON. */
export function documentText(style: Style, doc: DocumentAnswer, now = Date.now()): string {
  const at = (iso: string | null | undefined) => (iso ? when(iso, now) : '-');
  const rows: [string, string][] = [
    ['Id', doc.id],
    ['Status', paint(style, STATE_COLOUR[doc.status], doc.status)],
    ['Queue', doc.queue ?? 'default'],
    ['Attempts', String(doc.attempts)],
    ['Error', doc.error ?? '-'],
    ['Due', doc.run_at ? at(doc.run_at) : '-'],
    ['Key', doc.key ?? '-'],
    ['Claimed by', doc.claimed_by ?? '-'],
    ['Created', at(doc.created_at)],
    ['Updated', at(doc.updated_at)],
    ['Processed', at(doc.processed_at)],
  ];
  const width = Math.max(...rows.map(([label]) => label.length)) + 1;
  const payload = JSON.stringify(doc.payload, null, 2) ?? '(none)';
  return [
    // A multi-line error keeps its lines under the value column.
    ...rows.map(
      ([label, value]) =>
        `${`${label}:`.padEnd(width)} ${value.replace(/\n/g, `\n${' '.repeat(width + 1)}`)}`,
    ),
    'Payload:',
    payload.replace(/^/gm, '  '),
  ].join('\n');
}

/** What the policy holds, one line each: paused queues, the fleet throttle, queue rates. */
export function policyLines(style: Style, policy: PolicyView | undefined): string[] {
  if (!policy) return [];
  const lines: string[] = [];
  const until = (expires: string | null) => (expires ? `, until ${when(expires)}` : '');
  const why = (reason: string | null) => (reason ? ` ("${reason}")` : '');
  for (const [queue, rule] of Object.entries(policy.paused_queues)) {
    lines.push(
      `${paint(style, 'yellow', `queue ${queue} paused`)} by ${rule.updated_by}${why(rule.reason)}${until(rule.expires_at)}`,
    );
  }
  const t = policy.throttle;
  if (t) {
    const parts = [
      t.rate !== null ? `${t.rate} documents/s for the fleet` : null,
      t.concurrency !== null ? `at most ${t.concurrency} slots per agent` : null,
    ];
    lines.push(
      `${paint(style, 'yellow', 'throttled')}: ${parts.filter(Boolean).join(', ')} by ${t.updated_by}${why(t.reason)}${until(t.expires_at)}`,
    );
  }
  for (const [queue, rule] of Object.entries(policy.queue_rates)) {
    lines.push(
      `${paint(style, 'yellow', `queue ${queue} throttled`)} to ${rule.rate} documents/s by ${rule.updated_by}${why(rule.reason)}${until(rule.expires_at)}`,
    );
  }
  if (policy.policy_error) lines.push(paint(style, 'red', `policy unreadable: ${policy.policy_error}`));
  return lines;
}

/** The `Policy:` value of `agentctl status`. */
export function policySummary(style: Style, policy: PolicyView | undefined): string | null {
  if (!policy) return null;
  const lines = policyLines(style, policy);
  return lines.length === 0
    ? `version ${policy.version}: no queue paused, no throttle`
    : `version ${policy.version}: ${lines.join('; ')}`;
}
