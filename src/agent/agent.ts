// One agent: adopts the cluster's control state before pulling anything, then runs documents
// through its pipeline while running, follows every command (cluster or local) through the
// lifecycle state machine, and drains before it stops. Everything it starts in the background
// (control watcher, heartbeat, control file, the pipeline's claims and renewals) is stopped by stop().

import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';

import { type Logger, pino } from 'pino';

import { loadConfig } from '../config.js';
import { PauseExpiry } from '../control/expiry.js';
import { heartbeatAgeMs, LOST_AFTER_HEARTBEATS } from '../control/fleet.js';
import { ControlPlane } from '../control/plane.js';
import { ControlWatcher, type ControlWatcherStatus } from '../control/watcher.js';
import { ConfigError, describeError, PullingAgentError } from '../errors.js';
import type { ControlCommand, ControlState } from '../model/control.js';
import type { FleetPolicy } from '../model/policy.js';
import { queueNameProblem } from '../model/policy.js';
import type { WatchMode } from '../model/watch.js';
import { openStore } from '../stores/index.js';
import type { AgentHeartbeat, Store } from '../stores/types.js';
import { SOFTWARE_VERSION } from '../version.js';
import { BacklogReader } from './backlog.js';
import { ClockOffset } from './clock-offset.js';
import { Heartbeat } from './heartbeat.js';
import { type AgentState, isReady, nextState } from './lifecycle.js';
import { type ControlFileWatch, watchControlFile } from './local-control.js';
import { type DocumentHandler, Pipeline } from './pipeline.js';
import { PolicyFollower } from './policy.js';
import { countStoreTimeouts } from './store-timeouts.js';
import { ClaimGovernor } from './throttle.js';
import { MinuteCounts } from './throughput.js';
import type { AgentEvents, AgentParts, AgentSettings, AgentStats, AgentView } from './view.js';

export type { AgentEvents, AgentSettings, AgentStats, AgentView } from './view.js';

export interface AgentOptions extends Partial<AgentSettings> {
  /** The document handler. Default: one that only logs. */
  handler?: DocumentHandler;
  /** An opened store; default: the one `store` (or STORE_URL's default) names. Closed by stop(). */
  storeInstance?: Store;
  /** A pino logger; the library default is silent. */
  logger?: Logger;
}

/** The built-in handler: it only logs what it got. */
export const logOnlyHandler: DocumentHandler = (doc, { logger }) => {
  logger.info({ document: doc.id }, 'Processed document (built-in handler: logs only)');
};

export class Agent extends EventEmitter<AgentEvents> implements AgentParts {
  readonly settings: Readonly<AgentSettings>;
  readonly logger: Logger;
  readonly host = hostname();
  /** This process's own id in the registry; `agent_id` is the human name, which two may share. */
  readonly instanceId = randomUUID();
  #store: Store | null;
  #handler: DocumentHandler;
  #state: AgentState = 'paused';
  #adopted = false;
  #watcher: ControlWatcher | null = null;
  #heartbeat: Heartbeat | null = null;
  /** This process's clock against the store's (registry field clock_offset_ms). */
  readonly clock: ClockOffset;
  #controlFile: ControlFileWatch | null = null;
  #pipeline: Pipeline | null = null;
  #shutdownTimer: NodeJS.Timeout | null = null;
  #resolveDone!: () => void;
  #stopping: Promise<void> | null = null;
  readonly #stats: AgentStats;
  readonly #expiry: PauseExpiry;
  /** What claims may take under the fleet policy (QUEUES, paused queues, throttles). */
  readonly #governor: ClaimGovernor;
  /** Follows the fleet policy document. */
  readonly #policy: PolicyFollower;
  /** Issues cluster commands and reads the fleet: the one way commands are written. */
  readonly plane: ControlPlane;
  /** Documents by status and the oldest waiting one, read at most every 5 s. */
  readonly backlog = new BacklogReader(() => this.store);
  /** Processed and failed per minute over the last hour, sent with every heartbeat. */
  readonly #minutes = new MinuteCounts();
  /** Resolves once the agent has stopped for good (after a shutdown or stop()). */
  readonly done: Promise<void>;
  /** What HTTP and metrics see of this agent (buildApp() takes it with the plane). */
  readonly view: AgentView;

  constructor(options: AgentOptions = {}) {
    super();
    const { handler, storeInstance, logger, ...overrides } = options;
    const {
      port: _port,
      host: _host,
      logLevel: _logLevel,
      logFormat: _logFormat,
      handler: _handler,
      apiTokens: _apiTokens,
      metricsAuth: _metricsAuth,
      rateLimitCommands: _rateLimitCommands,
      rateLimitDocuments: _rateLimitDocuments,
      ...defaults
    } = loadConfig({});
    this.settings = Object.freeze({ ...defaults, ...overrides });
    // QUEUES is checked by loadConfig; a library caller's list is checked here, as clearly.
    const badQueue = this.settings.queues?.map(queueNameProblem).find((p) => p !== null);
    if (badQueue) throw new ConfigError([`queues: ${badQueue}`]);
    this.logger = (logger ?? pino({ level: 'silent' })).child({ agent: this.settings.agentId });
    this.#store = storeInstance ?? null;
    this.#handler = handler ?? logOnlyHandler;
    this.#stats = {
      batches: 0,
      claims: 0,
      documentsProcessed: 0,
      documentsFailed: 0,
      documentsRetried: 0,
      handlerErrors: 0,
      storeErrors: 0,
      leasesLapsed: 0,
      leasesRecovered: 0,
      startedAt: new Date(),
      lastBatchAt: null,
      lastHeartbeatAt: null,
      storeTimeouts: 0,
      appliedVersion: -1,
      appliedAt: null,
    };
    this.plane = new ControlPlane({
      store: () => this.store,
      logger: this.logger,
      heartbeatIntervalMs: this.settings.heartbeatIntervalMs,
      leaseMs: this.settings.leaseTimeoutMs,
      controlPollingIntervalMs: this.settings.controlPollingIntervalMs,
      accept: async (state) => (this.#watcher ? this.#watcher.accept(state) : false),
      watchMode: () => this.#watcher?.status.watchMode ?? 'polling',
      applied: () => this.#watcher?.current ?? null,
      acceptPolicy: (policy) => void this.#policy.accept(policy),
      appliedPolicy: () => this.#policy.current,
    });
    this.#governor = new ClaimGovernor(this.settings.queues ?? null);
    this.#policy = new PolicyFollower({
      store: () => this.store,
      plane: () => this.plane,
      governor: this.#governor,
      logger: this.logger,
      instanceId: this.instanceId,
      eventDriven: () => (this.#watcher?.status.watchMode ?? 'polling') !== 'polling',
      pollMs: this.settings.controlPollingIntervalMs,
      reconcileMs: this.settings.controlReconcileIntervalMs,
      heartbeatIntervalMs: this.settings.heartbeatIntervalMs,
      timeoutMs: this.settings.storeTimeoutMs,
      onApplied: (policy, previous) => this.#applyPolicy(policy, previous),
      now: () => this.clock.storeNow(),
    });
    this.clock = new ClockOffset(
      () => this.store,
      this.logger,
      Math.min(this.settings.storeTimeoutMs, this.settings.heartbeatIntervalMs),
    );
    this.#expiry = new PauseExpiry(
      () => this.plane,
      this.logger,
      () => this.clock.storeNow(),
    );
    this.view = viewOf(this);
    this.done = new Promise<void>((resolve) => {
      this.#resolveDone = resolve;
    });
  }

  get state(): AgentState {
    return this.#state;
  }
  /**
   * Readiness: running, or also paused with READINESS_WHEN_PAUSED=ready, and the heartbeat written
   * within the last LOST_AFTER_HEARTBEATS intervals (else the fleet already counts it lost).
   */
  get ready(): boolean {
    return this.readiness.ready;
  }
  /** Readiness with, when not ready, why. */
  get readiness(): { ready: boolean; reason: string | null } {
    if (!this.#adopted) return { ready: false, reason: 'the cluster control state is not adopted yet' };
    const stateReady =
      isReady(this.#state) || (this.#state === 'paused' && this.settings.readinessWhenPaused === 'ready');
    if (!stateReady) return { ready: false, reason: `the agent is ${this.#state}` };
    const stale = this.#heartbeat?.staleMs ?? 0;
    const limit = this.settings.heartbeatIntervalMs * LOST_AFTER_HEARTBEATS;
    if (stale > limit) {
      return {
        ready: false,
        reason: `the heartbeat could not be written for ${Math.round(stale / 100) / 10}s (more than ${LOST_AFTER_HEARTBEATS} heartbeat intervals): the fleet counts this agent lost`,
      };
    }
    return { ready: true, reason: null };
  }
  /** True once the cluster state (or, without distributed control, the initial state) is adopted. */
  get adopted(): boolean {
    return this.#adopted;
  }
  get store(): Store {
    if (!this.#store)
      throw new PullingAgentError('PA_STORE_UNAVAILABLE', 'the agent has not opened its store yet');
    return this.#store;
  }
  /** Documents claimed and not yet recorded or given back (or a claim on its way). */
  get batchInFlight(): boolean {
    return (this.#pipeline?.inFlight ?? 0) > 0;
  }
  /** What the pipeline holds: running handlers, buffered documents, slots. */
  get runtime(): { running: number; buffered: number; in_flight: number; concurrency: number } {
    const p = this.#pipeline;
    return {
      running: p?.running ?? 0,
      buffered: p?.buffered ?? 0,
      in_flight: p?.inFlight ?? 0,
      concurrency: p?.concurrency ?? this.settings.concurrency,
    };
  }
  /** The watch mode to report: `starting` until the cluster state is adopted and the watch is up. */
  get watchModeShown(): WatchMode | 'starting' {
    if (!this.#adopted) return 'starting';
    return this.#watcher?.status.watchMode ?? 'polling';
  }
  get controlStatus(): ControlWatcherStatus | null {
    return this.#watcher?.status ?? null;
  }
  get controlState(): ControlState | null {
    return this.#watcher?.current ?? null;
  }
  /** The fleet policy applied here (null before start), why the stored one is unusable, and this agent's share. */
  get policy(): {
    policy: FleetPolicy | null;
    policy_error: string | null;
    share: number;
    live_agents: number;
    concurrency: number;
  } {
    return {
      policy: this.#policy.current,
      policy_error: this.#policy.error,
      share: this.#governor.share,
      live_agents: this.#policy.liveAgents,
      concurrency: this.#effectiveConcurrency(),
    };
  }
  get stats(): Readonly<AgentStats> {
    return {
      ...this.#stats,
      // The version gate is the one record of what was applied; without distributed control the
      // agent follows no cluster version.
      appliedVersion: this.#watcher?.status.appliedVersion ?? -1,
      lastHeartbeatAt: this.#heartbeat?.lastAt ?? null,
    };
  }

  /**
   * Opens and initialises the store (retrying while it is unreachable), adopts the cluster state,
   * then starts pulling. Resolves once the state is adopted; the pull loop runs in the background.
   */
  async start(): Promise<void> {
    const s = this.settings;
    if (!this.#store) {
      const opened = await openStore(s.store, { timeoutMs: s.storeTimeoutMs });
      this.#store = countStoreTimeouts(opened, {
        logger: this.logger,
        timeoutMs: s.storeTimeoutMs,
        onTimeout: () => this.#stats.storeTimeouts++,
      });
    }
    await this.#retry('initialising the store', () => this.store.init());
    if (this.#exiting) return;

    if (s.distributedControl) {
      this.#watcher = new ControlWatcher({
        store: this.store,
        logger: this.logger,
        eventDriven: s.eventDriven,
        pollingIntervalMs: s.controlPollingIntervalMs,
        reconcileIntervalMs: s.controlReconcileIntervalMs,
        readTimeoutMs: s.storeTimeoutMs,
        onState: (state) => this.#applyCluster(state),
        onDocuments: (announced) => this.notifyDocuments(announced),
        onPolicy: (announced) => void this.#policy.refresh(announced),
      });
      await this.#watcher.start();
      // Adopted before anything is claimed: a new agent never runs a paused queue or ignores a
      // throttle, so a store that cannot answer for the policy holds the start, as for init.
      await this.#retry('reading the fleet policy', () => this.#policy.start());
    } else {
      this.logger.info(
        '[Distributed Control] Disabled (ENABLE_DISTRIBUTED_CONTROL=false): local control only',
      );
      this.#transition({ type: 'command', command: 'running', source: 'local' }, 'start');
    }
    if (this.#exiting) return;
    this.#adopted = true;
    this.#controlFile = watchControlFile(
      s.controlFile,
      (command, atStart) => {
        // A file that says running at start must not undo a cluster pause (a ConfigMap left at
        // "running" would resume every new pod of a paused rollout); pause and shutdown apply.
        if (atStart && command === 'running') return;
        this.command(command, 'control file');
      },
      this.logger,
    );
    this.#heartbeat = new Heartbeat({
      store: this.store,
      intervalMs: s.heartbeatIntervalMs,
      retentionMs: s.agentRetentionMs,
      snapshot: () => this.snapshot(),
      logger: this.logger,
      onError: () => this.#stats.storeErrors++,
      // Each write has half an interval (heartbeat.ts), so that a hung one is written again in time.
      timeoutMs: s.storeTimeoutMs,
      // Measured after each beat, carried by the next: a beat never waits for it.
      onWritten: () => void this.clock.measure(),
    });
    this.#pipeline = new Pipeline({
      store: this.store,
      owner: { agentId: s.agentId, instanceId: this.instanceId },
      handler: this.#handler,
      concurrency: this.#effectiveConcurrency(),
      batchSize: s.batchSize,
      prefetch: s.prefetch,
      maxRetries: s.maxRetries,
      backoff: s.retryBackoff,
      leaseMs: s.leaseTimeoutMs,
      pollIntervalMs: s.pollIntervalMs,
      logger: this.logger,
      stats: this.#stats,
      onClaimed: (count, seconds) => this.emit('claimed', count, seconds),
      onHandled: (outcome, seconds) => {
        this.#minutes.record(outcome);
        this.emit('handled', outcome, seconds);
      },
      // A drain barrier may be waiting for this agent: report at once that nothing is held.
      onDrained: () => void this.#heartbeat?.beat(),
      governor: this.#governor,
      // A queue barrier may be waiting for this agent: report at once that it holds none of a paused queue.
      onReleased: (queue) => {
        if (!this.#governor.serves(queue) && !this.#pipeline?.queuesInFlight().includes(queue)) {
          void this.#heartbeat?.beat();
        }
      },
    });
    // The first measurement (and its warning, if any) before the first heartbeat carries it.
    await this.clock.measure();
    if (this.#exiting) return;
    this.#heartbeat.start();
    void this.#warnIfNameShared();
    if (this.#state === 'running') this.#pipeline.start();
    this.logger.info({ state: this.#state }, `Agent ${s.agentId} started`);
  }

  /** A local command for this agent only (HTTP /api/agent/*, signals, control file). */
  command(command: ControlCommand, source: string): void {
    this.#transition({ type: 'command', command, source: 'local' }, source);
  }
  pause(source = 'api'): void {
    this.command('pause', source);
  }
  resume(source = 'api'): void {
    this.command('running', source);
  }
  shutdown(source = 'api'): void {
    this.command('shutdown', source);
  }
  /** Stop waiting for running handlers: abort them and release their documents. */
  forceShutdown(source: string): void {
    this.logger.warn(`${source} again: aborting running handlers`);
    this.shutdown(source);
    void this.#pipeline?.abort(`forced shutdown (${source})`);
  }

  /** New documents were stored: an idle agent claims now instead of at its next poll. */
  notifyDocuments(announced?: { count: number }): void {
    if (this.#state === 'running') this.#pipeline?.wake(announced);
  }

  /** Shuts this agent down (drain, then stop everything); resolves when stopped. */
  stop(): Promise<void> {
    if (this.#stopping) return this.#stopping;
    if (this.#state !== 'stopping') this.shutdown('stop()');
    return this.#finish();
  }

  /** True once the agent has begun to stop for good. */
  get #exiting(): boolean {
    return this.#stopping !== null;
  }

  #finish(): Promise<void> {
    this.#stopping ??= this.#drainAndClose();
    return this.#stopping;
  }

  snapshot(): AgentHeartbeat {
    return {
      agent_id: this.settings.agentId,
      instance_id: this.instanceId,
      host: this.host,
      software_version: SOFTWARE_VERSION,
      state: this.#state,
      applied_version: this.stats.appliedVersion,
      applied_at: this.#stats.appliedAt,
      batch_in_flight: this.batchInFlight,
      watch_mode: this.#watcher?.status.watchMode ?? 'polling',
      started_at: this.#stats.startedAt,
      counters: {
        batches: this.#stats.batches,
        documents_processed: this.#stats.documentsProcessed,
        documents_failed: this.#stats.documentsFailed,
        errors: this.#stats.handlerErrors + this.#stats.storeErrors,
      },
      recent: this.#minutes.recent(),
      ...(this.#policy.current && { applied_policy_version: this.#policy.current.version }),
      queues_in_flight: this.#pipeline?.queuesInFlight() ?? [],
      ...(this.clock.offsetMs === undefined ? {} : { clock_offset_ms: this.clock.offsetMs }),
    };
  }

  /** CONCURRENCY, or the fleet throttle's lower cap. */
  #effectiveConcurrency(): number {
    const cap = this.#governor.concurrencyCap;
    return cap === null ? this.settings.concurrency : Math.min(cap, this.settings.concurrency);
  }

  #applyPolicy(policy: FleetPolicy, previous: FleetPolicy | null): void {
    // Own keys only: a queue may be named like an Object.prototype key (`constructor`).
    const paused = Object.keys(policy.paused_queues).filter(
      (q) => !Object.hasOwn(previous?.paused_queues ?? {}, q),
    );
    this.#pipeline?.releaseQueues(paused);
    this.#pipeline?.setConcurrency(this.#effectiveConcurrency());
    this.#pipeline?.nudge();
    // The fleet view (and a policy barrier) learns the applied version at once.
    void this.#heartbeat?.beat();
  }

  async #applyCluster(state: ControlState): Promise<void> {
    const initial = this.#stats.appliedAt === null;
    this.#stats.appliedAt = new Date();
    this.logger.info(
      { command: state.command, version: state.version, updated_by: state.updated_by, reason: state.reason },
      `[Distributed Control] Applying command ${state.command} (version ${state.version})`,
    );
    const before = this.#state;
    this.#transition({ type: 'command', command: state.command, source: 'cluster', initial }, 'cluster');
    this.#expiry.follow(state);
    this.emit('applied', state, initial);
    // The fleet view learns the applied version at once; a transition has already beaten for it.
    if (this.#state === before) void this.#heartbeat?.beat();
  }

  #transition(event: Parameters<typeof nextState>[1], source: string): void {
    // A finished agent takes no more commands.
    if (this.#stopping && event.type === 'command') return;
    const previous = this.#state;
    const { state } = nextState(previous, event);
    if (state === previous) return;
    this.#state = state;
    this.logger.info({ from: previous, to: state, source }, `Agent state: ${state}`);
    this.emit('state', state, previous, source);
    if (state === 'running') this.#pipeline?.start();
    else this.#pipeline?.stop();
    if (state === 'stopping') this.#beginShutdown();
    void this.#heartbeat?.beat();
  }

  #beginShutdown(): void {
    const timeout = this.settings.shutdownTimeoutMs;
    this.#shutdownTimer = setTimeout(() => {
      if (this.batchInFlight) {
        this.logger.warn(`Shutdown timeout (${timeout / 1000}s) reached: aborting running handlers`);
        void this.#pipeline?.abort('shutdown timeout');
      }
    }, timeout);
    void this.#finish();
  }

  /** Two live processes with one AGENT_ID work, but read as one name everywhere: say so once. */
  async #warnIfNameShared(): Promise<void> {
    try {
      const lostAfterMs = this.settings.heartbeatIntervalMs * LOST_AFTER_HEARTBEATS;
      const others = (await this.store.listAgents()).filter(
        (a) =>
          a.agent_id === this.settings.agentId &&
          a.instance_id !== this.instanceId &&
          heartbeatAgeMs(a) <= lostAfterMs,
      );
      if (others.length === 0) return;
      this.logger.warn(
        { instances: others.map((a) => ({ instance_id: a.instance_id, host: a.host })) },
        `Another live agent process already uses AGENT_ID=${this.settings.agentId} (on ${others.map((a) => a.host).join(', ')}): both work and both count, but they share one name in the registry; give each its own AGENT_ID`,
      );
    } catch {
      // Only a warning: the registry will show it.
    }
  }

  async #retry(what: string, operation: () => Promise<void>): Promise<void> {
    let delay = 250;
    for (let attempt = 1; !this.#exiting; attempt++) {
      try {
        await operation();
        return;
      } catch (error) {
        if ((error as { code?: string }).code === 'PA_SCHEMA_TOO_NEW') throw error;
        this.#stats.storeErrors++;
        this.logger.warn(
          `Store unavailable while ${what} (attempt ${attempt}), retrying: ${describeError(error)}`,
        );
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, 10_000);
      }
    }
  }

  async #drainAndClose(): Promise<void> {
    this.#pipeline?.stop();
    await this.#pipeline?.drained();
    await this.#pipeline?.close();
    if (this.#shutdownTimer) clearTimeout(this.#shutdownTimer);
    if (this.#state === 'stopping') this.#transition({ type: 'drained' }, 'drained');
    this.#controlFile?.close();
    this.#expiry.stop();
    this.#policy.stop();
    await this.#watcher?.stop();
    await this.#heartbeat?.stop({ instanceId: this.instanceId });
    await this.#store?.close().catch(() => undefined);
    this.logger.info(`Agent ${this.settings.agentId} stopped`);
    this.#resolveDone();
  }
}

/**
 * A view that reads the agent when asked and forwards its two actions; it holds no state of its
 * own, and nothing reached through it leads back to the Agent object.
 */
function viewOf(agent: Agent): AgentView {
  return Object.freeze({
    settings: agent.settings,
    instanceId: agent.instanceId,
    backlog: Object.freeze({ readWithin: (ms: number) => agent.backlog.readWithin(ms) }),
    get state() {
      return agent.state;
    },
    get ready() {
      return agent.ready;
    },
    get readiness() {
      return agent.readiness;
    },
    get batchInFlight() {
      return agent.batchInFlight;
    },
    get runtime() {
      return agent.runtime;
    },
    get watchModeShown() {
      return agent.watchModeShown;
    },
    get policy() {
      return agent.policy;
    },
    get controlStatus() {
      return agent.controlStatus;
    },
    get stats() {
      return agent.stats;
    },
    get store() {
      return agent.store;
    },
    command: (command: ControlCommand, source: string) => agent.command(command, source),
    notifyDocuments: () => agent.notifyDocuments(),
    storeNow: () => agent.clock.storeNow(),
    on: <E extends keyof AgentEvents>(event: E, listener: (...args: AgentEvents[E]) => void) => {
      agent.on(event, listener as never);
    },
  });
}

/** Creates an agent from code; `agent.start()` runs it, `agent.stop()` drains and stops it. */
export function createAgent(options: AgentOptions = {}): Agent {
  return new Agent(options);
}
