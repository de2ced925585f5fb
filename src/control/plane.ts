// The control plane: the one owner of cluster commands. It decides who the actor is, writes the
// command through the store (compare-and-set, expiry), hands the written state straight to this
// agent's version gate (no re-read), and owns the fleet view and the drain barrier. HTTP routes,
// pause expiry, the dashboard's buttons and the library all issue commands through it.

import type { Logger } from 'pino';

import { InvalidControlStateError, InvalidPolicyError, VersionConflictError } from '../errors.js';
import type { ControlCommand, ControlState } from '../model/control.js';
import { emptyPolicy, type FleetPolicy, type PolicyHistoryEntry } from '../model/policy.js';
import type { Store } from '../stores/types.js';
import {
  type BarrierResult,
  describeFleet,
  type FleetView,
  heartbeatAgeMs,
  LOST_AFTER_HEARTBEATS,
  type PolicyBarrierTarget,
  waitForBarrier,
  waitForPolicyBarrier,
} from './fleet.js';
import { applyPolicyRequest, type PolicyRequest } from './policy.js';

export interface CommandRequest {
  command: ControlCommand;
  reason: string | null;
  /** The authenticated caller (a token's name); null when the API is open. */
  actor: string | null;
  /** The name the caller gave (`updated_by`); with an actor, kept as "on behalf of". */
  requestedBy?: string | undefined;
  /** Compare-and-set: refuse unless the current version is this one. */
  expectedVersion?: number | undefined;
  /** A pause that ends by itself at this time. */
  expiresAt?: Date | null;
}

export interface IssuedCommand {
  state: ControlState;
  /** Live agents registered when the command was written (read before, so none had left for it). */
  agentsRegistered: number;
  /** How long the slowest live agent may take to see it, by its watch mode. */
  expectedDelaySeconds: number;
  /** The watch mode that bounds the delay (the slowest live agent's). */
  slowestWatchMode: string;
  appliedHere: boolean;
}

export interface ControlPlaneOptions {
  store: () => Store;
  logger: Logger;
  heartbeatIntervalMs: number;
  /** LEASE_TIMEOUT, for agents lost while holding documents. */
  leaseMs?: number;
  controlPollingIntervalMs: number;
  /** Applies a state this agent wrote itself through its version gate (no re-read). */
  accept(state: ControlState): Promise<boolean>;
  /** This agent's own watch mode. */
  watchMode(): string;
  /** The last state this agent applied, for reads while the stored document is malformed. */
  applied?(): ControlState | null;
  /** Applies a policy this agent wrote itself (no re-read). */
  acceptPolicy?(policy: FleetPolicy): void;
  /** The last policy this agent applied, for reads while the stored one is malformed. */
  appliedPolicy?(): FleetPolicy | null;
}

export interface PolicyCommandRequest {
  request: PolicyRequest;
  reason: string | null;
  actor: string | null;
  requestedBy?: string | undefined;
  /** Compare-and-set on the policy version (not the control version). */
  expectedVersion?: number | undefined;
  expiresAt?: Date | null;
}

export interface IssuedPolicy {
  policy: FleetPolicy;
  agentsRegistered: number;
  expectedDelaySeconds: number;
  slowestWatchMode: string;
}

/** The stored policy, or the last applied one with the problem while the stored one is malformed. */
export interface ReadablePolicy {
  policy: FleetPolicy;
  policy_error: string | null;
}

/** Compare-and-set attempts of a policy command that gave no expected version (others write too). */
const POLICY_WRITE_ATTEMPTS = 8;

/** The stored control state, or the last applied one with the problem while the stored one is malformed. */
export interface ReadableControl {
  state: ControlState;
  /** Why the stored document could not be used (it is malformed); null when it could. */
  control_error: string | null;
}

export class ControlPlane {
  readonly #o: ControlPlaneOptions;

  constructor(options: ControlPlaneOptions) {
    this.#o = options;
  }

  /** Writes a command for the whole fleet and applies it here at once. */
  async issue(request: CommandRequest): Promise<IssuedCommand> {
    const store = this.#o.store();
    // Counted before the write, so that agents leaving because of it (a shutdown) still count.
    const before = await store.listAgents().catch(() => []);
    const { actor, requestedBy } = request;
    const state = await store.writeCommand({
      command: request.command,
      reason: request.reason,
      // With authentication the actor is the token's name, never what the caller claims; a
      // different name it gives is kept as "on behalf of".
      updated_by: actor ?? requestedBy ?? 'api',
      on_behalf_of: actor && requestedBy !== undefined && requestedBy !== actor ? requestedBy : null,
      expires_at: request.expiresAt ?? null,
      ...(request.expectedVersion !== undefined ? { expectedVersion: request.expectedVersion } : {}),
    });
    this.#o.logger.info(
      { command: state.command, version: state.version, updated_by: state.updated_by, reason: state.reason },
      `[Distributed Control] Cluster ${verbOf(state.command)} written (version ${state.version})`,
    );
    const appliedHere = await this.#o.accept(state);
    const live = this.#live(before);
    const slowest = live.some((a) => a.watch_mode === 'polling') || this.#o.watchMode() === 'polling';
    return {
      state,
      agentsRegistered: live.length,
      slowestWatchMode: slowest ? 'polling' : this.#o.watchMode(),
      expectedDelaySeconds: slowest
        ? Number(((this.#o.controlPollingIntervalMs * 1.1) / 1000).toFixed(3))
        : 1,
      appliedHere,
    };
  }

  /**
   * Writes a policy command (a queue's pause or resume, a throttle): reads the policy, computes the
   * new body above the stores, writes it by compare-and-set on the policy version, and applies it
   * here at once. Without an expected version a conflict (another command in between) is retried
   * on the newer policy; with one, it is the caller's 409.
   */
  async issuePolicy(command: PolicyCommandRequest): Promise<IssuedPolicy> {
    const store = this.#o.store();
    const before = await store.listAgents().catch(() => []);
    const { actor, requestedBy } = command;
    const author = {
      reason: command.reason,
      updated_by: actor ?? requestedBy ?? 'api',
      on_behalf_of: actor && requestedBy !== undefined && requestedBy !== actor ? requestedBy : null,
      expires_at: command.expiresAt ?? null,
    };
    let policy: FleetPolicy | null = null;
    for (let attempt = 1; policy === null; attempt++) {
      const current = await this.#policyToChange(store, command.expectedVersion);
      if (command.expectedVersion !== undefined && command.expectedVersion !== current.version) {
        throw new VersionConflictError(command.expectedVersion, current.version, 'policy');
      }
      const { body, entry } = applyPolicyRequest(current, command.request, author, current.version + 1);
      try {
        policy = await store.writePolicy({ expectedVersion: current.version, body, entry });
      } catch (error) {
        if (!(error instanceof VersionConflictError) || command.expectedVersion !== undefined) throw error;
        if (attempt >= POLICY_WRITE_ATTEMPTS) throw error;
      }
    }
    const r = command.request;
    this.#o.logger.info(
      {
        policy_version: policy.version,
        command: r.command,
        queue: r.queue,
        updated_by: author.updated_by,
        reason: author.reason,
      },
      `[Distributed Control] ${describePolicyRequest(r)} written (policy version ${policy.version})`,
    );
    this.#o.acceptPolicy?.(policy);
    const live = this.#live(before);
    const slowest = live.some((a) => a.watch_mode === 'polling') || this.#o.watchMode() === 'polling';
    return {
      policy,
      agentsRegistered: live.length,
      slowestWatchMode: slowest ? 'polling' : this.#o.watchMode(),
      expectedDelaySeconds: slowest
        ? Number(((this.#o.controlPollingIntervalMs * 1.1) / 1000).toFixed(3))
        : 1,
    };
  }

  /**
   * The policy a command changes: the stored one; while that is malformed (edited by hand), the one
   * this agent still applies, at the version the caller names, so that a command with
   * expected_version equal to the stored version repairs it (the store checks only the version).
   * Without expected_version a malformed policy is refused (InvalidPolicyError): the caller could
   * not know what it writes over.
   */
  async #policyToChange(store: Store, expectedVersion: number | undefined): Promise<FleetPolicy> {
    try {
      return await store.readPolicy();
    } catch (error) {
      if (!(error instanceof InvalidPolicyError) || expectedVersion === undefined) throw error;
      this.#o.logger.warn(
        `[Distributed Control] ${error.message}; writing over it at version ${expectedVersion}, on the policy this agent applies`,
      );
      return { ...(this.#o.appliedPolicy?.() ?? emptyPolicy()), version: expectedVersion };
    }
  }

  /** The policy barrier: every live agent applies `target.version` (and holds none of a paused queue). */
  async waitForPolicy(target: PolicyBarrierTarget, timeoutMs: number): Promise<BarrierResult> {
    const control = await this.readControl();
    return waitForPolicyBarrier({
      store: this.#o.store(),
      control: control.state,
      target,
      timeoutMs,
      heartbeatIntervalMs: this.#o.heartbeatIntervalMs,
      ...(this.#o.leaseMs !== undefined && { leaseMs: this.#o.leaseMs }),
    });
  }

  /** Policy history entries, newest first. */
  policyHistory(limit: number): Promise<PolicyHistoryEntry[]> {
    return this.#o.store().listPolicyHistory(limit);
  }

  /** The stored policy; while it is malformed, the last one applied here with the problem beside it. */
  async readPolicy(): Promise<ReadablePolicy> {
    try {
      return { policy: await this.#o.store().readPolicy(), policy_error: null };
    } catch (error) {
      if (!(error instanceof InvalidPolicyError)) throw error;
      return { policy: this.#o.appliedPolicy?.() ?? emptyPolicy(), policy_error: error.message };
    }
  }

  /** The drain barrier: waits until every live agent applied `state` (and drained, unless a resume). */
  waitFor(state: Pick<ControlState, 'command' | 'version'>, timeoutMs: number): Promise<BarrierResult> {
    return waitForBarrier({
      store: this.#o.store(),
      state,
      timeoutMs,
      heartbeatIntervalMs: this.#o.heartbeatIntervalMs,
      ...(this.#o.leaseMs !== undefined && { leaseMs: this.#o.leaseMs }),
    });
  }

  /** The fleet as the registry shows it, against the stored command. */
  async fleet(): Promise<FleetView & { control_error?: string }> {
    const store = this.#o.store();
    const [control, records] = await Promise.all([this.readControl(), store.listAgents()]);
    const view = describeFleet(control.state, records, this.#o.heartbeatIntervalMs, {
      ...(this.#o.leaseMs !== undefined && { leaseMs: this.#o.leaseMs }),
    });
    return control.control_error === null ? view : { ...view, control_error: control.control_error };
  }

  /**
   * The stored control state. While the stored document is malformed (edited by hand), the last
   * state this agent applied, which is what the fleet still follows, with the problem beside it:
   * exactly when operators need to read the cluster, it must not answer 500.
   */
  async readControl(): Promise<ReadableControl> {
    try {
      return { state: await this.#o.store().readControl(), control_error: null };
    } catch (error) {
      const applied = this.#o.applied?.() ?? null;
      if (!(error instanceof InvalidControlStateError) || applied === null) throw error;
      return { state: applied, control_error: error.message };
    }
  }

  #live<T extends { heartbeat_at: Date; heartbeat_age_ms?: number }>(records: T[]): T[] {
    const lostAfterMs = this.#o.heartbeatIntervalMs * LOST_AFTER_HEARTBEATS;
    return records.filter((r) => heartbeatAgeMs(r) <= lostAfterMs);
  }
}

/** `Pause of queue emails`, `Throttle of the fleet to 30/s`, for logs. */
export function describePolicyRequest(r: PolicyRequest): string {
  if (r.command !== 'throttle') return `${r.command === 'pause' ? 'Pause' : 'Resume'} of queue ${r.queue}`;
  const parts: string[] = [];
  if (r.rate !== undefined) parts.push(r.rate === null ? 'rate off' : `${r.rate}/s`);
  if (r.concurrency !== undefined)
    parts.push(r.concurrency === null ? 'concurrency off' : `concurrency ${r.concurrency}`);
  return `Throttle of ${r.queue === null ? 'the fleet' : `queue ${r.queue}`} (${parts.join(', ')})`;
}

export function verbOf(command: ControlCommand): string {
  return command === 'running' ? 'resume' : command;
}
