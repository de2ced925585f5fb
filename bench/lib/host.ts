// Runs one task in a forked fleet host (bench/fleet-host.ts) and resolves with its result; the
// host is killed if it does not answer in time, so that a stuck fleet never hangs the run.

import { fork } from 'node:child_process';
import { join } from 'node:path';

import type { FleetResult, FleetTask } from '../fleet-host.js';
import { ROOT } from './servers.js';

const HOST = join(ROOT, 'dist/bench/fleet-host.js');

export function runFleetHost(
  task: FleetTask,
  timeoutMs: number,
  note: (text: string) => void,
): Promise<FleetResult> {
  return new Promise((resolve, reject) => {
    const child = fork(HOST, [], {
      execArgv: ['--expose-gc'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let settled = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish(new Error(`fleet host did not finish within ${Math.round(timeoutMs / 1000)} s`));
    }, timeoutMs);
    function finish(error: Error | null, result?: FleetResult): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) reject(error);
      else resolve(result as FleetResult);
    }
    child.on(
      'message',
      (message: { type: string; text?: string; result?: FleetResult; message?: string }) => {
        if (message.type === 'progress' && message.text) note(message.text);
        if (message.type === 'result') finish(null, message.result);
        if (message.type === 'error') finish(new Error(message.message));
      },
    );
    child.on('exit', (code) => finish(new Error(`fleet host exited with ${code} before answering`)));
    child.send(task);
  });
}
