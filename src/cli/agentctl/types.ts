// The shapes of the HTTP API's answers that agentctl reads, derived from the server's own response
// schemas (src/http/responses.ts, src/http/schemas.ts, src/errors.ts) so that the two cannot drift.
// Type-only imports: agentctl loads none of the server's code. Fields a newer agent added are
// optional here, since agentctl also talks to older agents; fields it does not know pass through
// untouched to --json.

import type { Static } from 'typebox';

import type { ErrorBody } from '../../errors.js';
import type {
  DiscardedBody,
  DocumentBody,
  DocumentListBody,
  DocumentSummaryJson,
  EnqueuedBody,
  FleetAgentJson,
  FleetBody,
  FleetSummaryJson,
  PolicyJson,
  QueueListBody,
  RetriedAllBody,
  RetriedBody,
} from '../../http/responses.js';
import type { ControlCommandSchema, ControlStateJson, WatchModeSchema } from '../../http/schemas.js';

/** `Newer` may be missing: an agent older than the field leaves it out. */
type Tolerant<T, Newer extends keyof T> = Omit<T, Newer> & Partial<Pick<T, Newer>>;

export type Command = Static<typeof ControlCommandSchema>;

/** GET /api/cluster/control-state (with watch_mode), a history entry, the data of `control` events. */
export type ControlState = Tolerant<Static<typeof ControlStateJson>, 'on_behalf_of' | 'expires_at'> & {
  watch_mode?: Static<typeof WatchModeSchema>;
  /** The fleet policy beside the command (control-state only; absent from an agent older than queues). */
  policy?: PolicyView;
};

export type AgentRow = Tolerant<Static<typeof FleetAgentJson>, 'reported_state' | 'instance_id'>;

export type FleetSummary = Tolerant<Static<typeof FleetSummaryJson>, 'duplicate_agent_ids' | 'unconfirmed'>;

/** GET /api/cluster/agents, and the data of the `agents` event. */
export type AgentsView = Omit<Static<typeof FleetBody>, 'agents' | 'summary'> & {
  agents: AgentRow[];
  summary: FleetSummary;
};

/** GET /api/cluster/history (its entries as tolerant as the control state). */
export interface HistoryView {
  history: ControlState[];
  count: number;
}

/** The drain barrier of a command sent with wait=true (src/control/fleet.ts). */
export interface Barrier {
  complete: boolean;
  timed_out: boolean;
  waited_ms: number;
  summary: FleetSummary;
  agents: AgentRow[];
}

/** POST /api/cluster/pause|resume|shutdown, and the body of its 504 PA_WAIT_TIMEOUT. */
export type CommandAnswer = ControlState & {
  status: 'success' | 'error';
  message?: string;
  propagation?: { watch_mode: string; expected_delay_seconds: number; agents_registered: number };
  barrier?: Barrier;
};

export type EnqueueAnswer = Tolerant<Static<typeof EnqueuedBody>, 'duplicates'>;

type DocumentNewer = 'updated_at' | 'run_at' | 'key' | 'queue';

/** A row of GET /api/documents. */
export type DocumentRow = Tolerant<Static<typeof DocumentSummaryJson>, DocumentNewer>;

/** GET /api/documents: an older agent answers only the counts (without `scheduled`). */
export type DocumentListAnswer = Partial<Omit<Static<typeof DocumentListBody>, 'documents'>> & {
  counts: Partial<Static<typeof DocumentListBody>['counts']>;
  documents?: DocumentRow[];
};

/** GET /api/documents/{id}. */
export type DocumentAnswer = Tolerant<Static<typeof DocumentBody>, DocumentNewer>;

/** GET /api/queues (an agent older than queues answers 404). */
export type QueueListAnswer = Static<typeof QueueListBody>;

export type RetryAnswer = Static<typeof RetriedBody>;
export type RetryAllAnswer = Static<typeof RetriedAllBody>;
export type DiscardAnswer = Static<typeof DiscardedBody>;

/** The body of every error answer (docs/errors.md), with its details beside the code. */
export type ErrorAnswer = Static<typeof ErrorBody> & { [field: string]: unknown };

/** GET /api/cluster/policy, and control-state's `policy` (absent from an agent older than queues). */
export type PolicyView = Static<typeof PolicyJson> & {
  applied_version?: number;
  this_agent?: { live_agents: number; share: number; concurrency: number };
  policy_error?: string;
};

/** POST /api/cluster/throttle, and pause/resume with --queue. */
export interface PolicyAnswer {
  status: string;
  message: string;
  command: 'pause' | 'resume' | 'throttle';
  queue: string | null;
  policy_version: number;
  policy: PolicyView;
  propagation?: { watch_mode: string; expected_delay_seconds: number; agents_registered: number };
  barrier?: CommandAnswer['barrier'];
}
