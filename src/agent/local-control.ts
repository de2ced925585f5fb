// Local control kept from the original system: a control file (a mounted ConfigMap, watched by
// polling its stat every ~2 s, which also sees the symlink swap Kubernetes uses) and Unix
// signals. Both act on this agent only.

import { readFile, type Stats, unwatchFile, watchFile } from 'node:fs';

import type { Logger } from 'pino';

import type { ControlCommand } from '../model/control.js';

export const CONTROL_FILE_POLL_MS = 2_000;

/** Maps what a control file may contain to a command; null for anything else. */
export function parseControlFileContent(content: string): ControlCommand | null {
  const word = content.trim().toLowerCase();
  if (word === 'pause' || word === 'paused') return 'pause';
  if (word === 'resume' || word === 'running' || word === 'run') return 'running';
  if (word === 'shutdown' || word === 'stop') return 'shutdown';
  return null;
}

export interface ControlFileWatch {
  close(): void;
}

/**
 * Applies the file's command when its content changes (and once at start when it exists). An
 * unreadable or unknown content is logged once and changes nothing.
 */
export function watchControlFile(
  path: string,
  onCommand: (command: ControlCommand, initial: boolean) => void,
  logger: Logger,
  intervalMs = CONTROL_FILE_POLL_MS,
): ControlFileWatch {
  let last: string | null = null;
  let closed = false;
  let initial = true;
  const read = () => {
    readFile(path, 'utf8', (error, content) => {
      const atStart = initial;
      initial = false;
      if (closed) return;
      if (error) {
        last = null; // removed: a later file with the same content applies again
        return;
      }
      if (content === last) return;
      last = content;
      const command = parseControlFileContent(content);
      if (command === null) {
        logger.warn(
          `Control file ${path} contains ${JSON.stringify(content.trim().slice(0, 40))}; expected pause, resume, running or shutdown. Ignored.`,
        );
        return;
      }
      logger.info(`Control file ${path}: ${command}${atStart ? ' (found at start)' : ''}`);
      onCommand(command, atStart);
    });
  };
  const listener = (current: Stats, previous: Stats) => {
    if (
      current.mtimeMs !== previous.mtimeMs ||
      current.ino !== previous.ino ||
      current.size !== previous.size
    )
      read();
  };
  watchFile(path, { interval: intervalMs, persistent: false }, listener);
  read();
  return {
    close() {
      closed = true;
      unwatchFile(path, listener);
    },
  };
}

export interface SignalTarget {
  pause(source: string): void;
  resume(source: string): void;
  shutdown(source: string): void;
  /** A second SIGTERM/SIGINT while stopping: stop waiting for handlers. */
  forceShutdown(source: string): void;
  readonly state: string;
}

/** SIGTERM/SIGINT = graceful shutdown (twice = abort handlers), SIGUSR1 = pause, SIGUSR2 = resume. */
export function installSignalHandlers(target: SignalTarget): () => void {
  const handlers: [NodeJS.Signals, () => void][] = [
    [
      'SIGTERM',
      () => (target.state === 'stopping' ? target.forceShutdown('SIGTERM') : target.shutdown('SIGTERM')),
    ],
    [
      'SIGINT',
      () => (target.state === 'stopping' ? target.forceShutdown('SIGINT') : target.shutdown('SIGINT')),
    ],
    ['SIGUSR1', () => target.pause('SIGUSR1')],
    ['SIGUSR2', () => target.resume('SIGUSR2')],
  ];
  for (const [signal, handler] of handlers) process.on(signal, handler);
  return () => {
    for (const [signal, handler] of handlers) process.off(signal, handler);
  };
}
