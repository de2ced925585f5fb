// The shapes of the HTTP API's answers that agentctl reads (docs/api.md). Only what the CLI shows
// is typed; everything else passes through untouched to --json.

export type Command = 'running' | 'pause' | 'shutdown';

export interface ControlState {
  command: Command;
  version: number;
  timestamp: string;
  reason: string | null;
  updated_by: string;
  /** With authentication, the updated_by the caller gave when it differs from the token's name. */
  on_behalf_of?: string | null;
  expires_at?: string | null;
  watch_mode?: string;
}

export interface AgentRow {
  agent_id: string;
  /** The process's own id; optional, as agents before it do not send one. */
  instance_id?: string;
  host: string;
  state: string;
  reported_state?: string;
  applied_version: number;
  batch_in_flight: boolean;
  watch_mode: string;
  heartbeat_age_seconds: number;
}

export interface FleetSummary {
  total: number;
  live: number;
  lost: number;
  applied: number;
  drained: number;
  stragglers: string[];
  /** agent_ids held by more than one live process (absent from agents before it). */
  duplicate_agent_ids?: string[];
}

/** GET /api/cluster/agents, and the data of the `agents` event. */
export interface AgentsView {
  desired: { command: Command; version: number };
  summary: FleetSummary;
  agents: AgentRow[];
}

export interface HistoryView {
  history: ControlState[];
  count: number;
}

/** The drain barrier of a command sent with wait=true. */
export interface Barrier {
  complete: boolean;
  timed_out: boolean;
  waited_ms: number;
  summary: FleetSummary;
  agents: AgentRow[];
}

/** POST /api/cluster/pause|resume|shutdown, and the body of its 504 PA_WAIT_TIMEOUT. */
export interface CommandAnswer extends ControlState {
  status: 'success' | 'error';
  message?: string;
  propagation?: { watch_mode: string; expected_delay_seconds: number; agents_registered: number };
  barrier?: Barrier;
}

export interface EnqueueAnswer {
  status: 'success';
  count: number;
  ids: string[];
}

/** The body of every error answer (docs/errors.md). */
export interface ErrorAnswer {
  status: 'error';
  error: string;
  message: string;
  [field: string]: unknown;
}
