// One agent's lifecycle as a pure state machine, so that every rule is unit-tested apart from
// timers and stores. Cluster commands and local commands (signals, control file, /api/agent/*)
// are the same events; the last one wins, except that nothing undoes a shutdown once it drains.

import type { ControlCommand } from '../model/control.js';

export const AGENT_STATES = ['running', 'paused', 'stopping', 'stopped'] as const;
export type AgentState = (typeof AGENT_STATES)[number];

export type CommandSource = 'cluster' | 'local';

export type LifecycleEvent =
  | {
      type: 'command';
      command: ControlCommand;
      source: CommandSource;
      /** The cluster state adopted at start, before anything was pulled. */
      initial?: boolean;
    }
  /** A stopping agent finished draining (or gave up on its handlers). */
  | { type: 'drained' };

export interface Transition {
  state: AgentState;
}

export function nextState(current: AgentState, event: LifecycleEvent): Transition {
  if (event.type === 'drained') {
    return current === 'stopping' ? { state: 'stopped' } : { state: current };
  }
  // Once draining for a shutdown, no command brings the agent back: it exits, and a restarted
  // agent reads the cluster state afresh.
  if (current === 'stopping') return { state: 'stopping' };
  switch (event.command) {
    case 'running':
      return { state: 'running' };
    case 'pause':
      return { state: 'paused' };
    case 'shutdown':
      // A cluster that is already shut down must not make new or restarted agents exit again
      // (that would be a crash loop under Kubernetes): they stay up, stopped, until a resume.
      if (event.source === 'cluster' && (event.initial === true || current === 'stopped')) {
        return { state: 'stopped' };
      }
      return { state: 'stopping' };
  }
}

/** Readiness: 200 only while running. */
export function isReady(state: AgentState): boolean {
  return state === 'running';
}
