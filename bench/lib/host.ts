// The benchmark's side of a forked fleet host (bench/fleet-host.ts): one request at a time, each
// answered or failed within its own time limit; the host is killed if it hangs or on close().

import { type ChildProcess, fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { FleetLoad, FleetReady, FleetTask, HostReply, HostRequest } from '../fleet-host.js';
import { onAbort } from './cleanup.js';
import { ROOT } from './servers.js';

const HOST = join(ROOT, 'dist/bench/fleet-host.js');

export class FleetHost {
  readonly #child: ChildProcess;
  #waiting: { resolve(reply: HostReply): void; reject(error: Error): void } | null = null;
  #exited = false;
  readonly #unregister: () => void;
  readonly #dir = mkdtempSync(join(tmpdir(), 'pa-bench-host-'));

  constructor(note: (text: string) => void) {
    this.#child = fork(HOST, [], {
      execArgv: ['--expose-gc'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, PA_BENCH_HOST_DIR: this.#dir },
    });
    this.#unregister = onAbort(() => {
      this.#child.kill('SIGKILL');
      rmSync(this.#dir, { recursive: true, force: true });
    });
    this.#child.on('message', (reply: HostReply) => {
      if (reply.type === 'progress') return note(reply.text);
      const waiting = this.#waiting;
      this.#waiting = null;
      if (reply.type === 'error') waiting?.reject(new Error(reply.message));
      else waiting?.resolve(reply);
    });
    this.#child.on('exit', (code) => {
      this.#exited = true;
      this.#waiting?.reject(new Error(`fleet host exited with ${code}`));
      this.#waiting = null;
    });
  }

  #request<T extends HostReply['type']>(
    request: HostRequest,
    expect: T,
    timeoutMs: number,
  ): Promise<Extract<HostReply, { type: T }>> {
    return new Promise((resolve, reject) => {
      if (this.#exited) return reject(new Error('fleet host is not running'));
      const timer = setTimeout(() => {
        this.#waiting = null;
        reject(
          new Error(`fleet host did not answer ${request.type} within ${Math.round(timeoutMs / 1000)} s`),
        );
      }, timeoutMs);
      this.#waiting = {
        resolve: (reply) => {
          clearTimeout(timer);
          if (reply.type === expect) resolve(reply as Extract<HostReply, { type: T }>);
          else reject(new Error(`fleet host answered ${reply.type} to ${request.type}`));
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      this.#child.send(request);
    });
  }

  async start(task: FleetTask): Promise<FleetReady> {
    return (await this.#request({ type: 'start', task }, 'ready', 15 * 60_000)).ready;
  }

  async collect(version: number, waitMs: number): Promise<number[]> {
    return (await this.#request({ type: 'collect', version, waitMs }, 'applied', waitMs + 30_000)).times;
  }

  async loopDelay(): Promise<{ p50: number; p99: number; max: number }> {
    return (await this.#request({ type: 'loop' }, 'loop', 30_000)).delay;
  }

  async load(windowMs: number): Promise<FleetLoad> {
    return (await this.#request({ type: 'load', windowMs }, 'load', windowMs + 60_000)).load;
  }

  /** Stops the agents (gracefully, within 5 minutes), then makes sure the process is gone. */
  async close(): Promise<void> {
    this.#unregister();
    try {
      if (this.#exited) return;
      const exited = new Promise((resolve) => this.#child.once('exit', resolve));
      await this.#request({ type: 'stop' }, 'stopped', 120_000).catch(() => undefined);
      const timer = setTimeout(() => this.#child.kill('SIGKILL'), 5_000);
      if (!this.#exited) await exited;
      clearTimeout(timer);
    } finally {
      rmSync(this.#dir, { recursive: true, force: true });
    }
  }
}
