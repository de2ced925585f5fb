// What the layers above an agent (HTTP, metrics) may see of it: its settings, state and counters,
// the store for document operations, and two narrow actions (a local command, a wake-up), never
// the Agent object itself. Agent produces one (`agent.view`); buildApp() takes it beside the
// control plane, so that no route reaches into the agent (test/unit/http-layers.test.ts).

import type { Config } from '../config.js';
import type { ControlPlane } from '../control/plane.js';
import type { ControlWatcherStatus } from '../control/watcher.js';
import type { ControlCommand, ControlState } from '../model/control.js';
import type { FleetPolicy } from '../model/policy.js';
import type { WatchMode } from '../model/watch.js';
import type { Store } from '../stores/types.js';
import type { Backlog } from './backlog.js';
import type { AgentState } from './lifecycle.js';
import type { DocumentOutcome, RuntimeStats } from './pipeline.js';

/** The settings that concern the agent itself (the HTTP server's are the CLI's business). */
export type AgentSettings = Omit<
  Config,
  | 'port'
  | 'host'
  | 'logLevel'
  | 'logFormat'
  | 'handler'
  | 'apiTokens'
  | 'metricsAuth'
  | 'rateLimitCommands'
  | 'rateLimitDocuments'
>;

export interface AgentStats extends RuntimeStats {
  startedAt: Date;
  lastHeartbeatAt: Date | null;
  /** Store calls that missed their deadline (STORE_TIMEOUT). */
  storeTimeouts: number;
  appliedVersion: number;
  appliedAt: Date | null;
}

export interface AgentEvents {
  state: [state: AgentState, previous: AgentState, source: string];
  /** `initial` for the state adopted at start (it may be days old). */
  applied: [state: ControlState, initial: boolean];
  /** A claim returned `count` documents after `seconds`. */
  claimed: [count: number, seconds: number];
  /** A handler finished: processed, retried (back to pending) or failed for good. */
  handled: [outcome: DocumentOutcome, seconds: number];
}

/** One agent as HTTP and metrics see it: read when asked, so always current. */
export interface AgentView {
  readonly settings: Readonly<AgentSettings>;
  /** This process's own id in the registry; `settings.agentId` is the human name. */
  readonly instanceId: string;
  readonly state: AgentState;
  readonly ready: boolean;
  /** Readiness with, when not ready, why. */
  readonly readiness: { ready: boolean; reason: string | null };
  /** Documents claimed and not yet recorded or given back (or a claim on its way). */
  readonly batchInFlight: boolean;
  /** What the pipeline holds: running handlers, buffered documents, slots. */
  readonly runtime: { running: number; buffered: number; in_flight: number; concurrency: number };
  /** The fleet policy this agent applies (null before start), why the stored one is unusable, its share. */
  readonly policy: {
    policy: FleetPolicy | null;
    policy_error: string | null;
    share: number;
    live_agents: number;
    concurrency: number;
  };
  /** The watch mode to report: `starting` until the cluster state is adopted and the watch is up. */
  readonly watchModeShown: WatchMode | 'starting';
  /** The control watcher's status; null without distributed control (or before start). */
  readonly controlStatus: ControlWatcherStatus | null;
  readonly stats: Readonly<AgentStats>;
  /** The store, for document operations and reads (throws PA_STORE_UNAVAILABLE before start). */
  readonly store: Store;
  /** Documents by status and the oldest waiting one, cached (one store read per 5 s at most). */
  readonly backlog: { readWithin(ms: number): Promise<Backlog | null> };
  /** Now by the store's clock, as this agent last measured its offset (Date.now() until it has). */
  storeNow(): number;
  /** A local command for this agent only (not persisted): /api/agent/*. */
  command(command: ControlCommand, source: string): void;
  /** New documents were stored: an idle agent claims now instead of at its next poll. */
  notifyDocuments(): void;
  /** Follows what the agent does (for metrics); nothing can be emitted through the view. */
  on<E extends keyof AgentEvents>(event: E, listener: (...args: AgentEvents[E]) => void): void;
}

/** What buildApp() needs from an agent: its control plane and its view. An Agent is one. */
export interface AgentParts {
  readonly plane: ControlPlane;
  readonly view: AgentView;
}
