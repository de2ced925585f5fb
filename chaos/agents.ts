// Real agent processes for the chaos suite (node dist/src/cli/pulling-agent.js, the same binary
// and handler as the cluster tests). Unlike the tests' Fleet, it keeps every incarnation of an
// agent across kills and restarts, knows which exits it caused (a SIGKILL, a shutdown it asked
// for) and counts every other exit as a crash, and keeps only the tail of each process's output.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { CLI, RECORD_HANDLER } from '../test/helpers/processes.js';
import { waitFor } from '../test/helpers/wait.js';

const OUTPUT_TAIL = 64 * 1024;
const HTTP_TIMEOUT_MS = 5_000;

export interface AgentStateBody {
  state: string;
  agent_id: string;
  ready: boolean;
  applied_version: number;
  batch_in_flight: boolean;
}

export interface HttpAnswer<T> {
  status: number;
  body: T;
  ms: number;
}

/** Why a process ended, when the harness caused it; anything else is a crash. */
type ExpectedExit = 'kill' | 'shutdown' | null;

export interface Crash {
  agent: string;
  code: number | null;
  signal: string | null;
  tail: string;
}

export class ChaosAgent {
  readonly startedAt = Date.now();
  exitedAt: number | null = null;
  exitCode: number | null = null;
  exitSignal: string | null = null;
  expected: ExpectedExit = null;
  readonly exited: Promise<void>;
  #tail = '';
  #listening: ((port: string) => void) | null = null;
  url = '';

  constructor(
    readonly id: string,
    readonly child: ChildProcess,
    onExit: (agent: ChaosAgent) => void,
  ) {
    const take = (chunk: Buffer) => {
      this.#tail = (this.#tail + chunk.toString()).slice(-OUTPUT_TAIL);
      const port = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(this.#tail)?.[1];
      if (port && this.#listening) {
        this.#listening(port);
        this.#listening = null;
      }
    };
    child.stdout?.on('data', take);
    child.stderr?.on('data', take);
    this.exited = new Promise<void>((resolve) =>
      child.once('exit', (code, signal) => {
        this.exitedAt = Date.now();
        this.exitCode = code;
        this.exitSignal = signal;
        onExit(this);
        resolve();
      }),
    );
  }

  get alive(): boolean {
    return this.exitedAt === null;
  }

  output(): string {
    return this.#tail;
  }

  /** Resolves with the URL once the HTTP server listens; rejects if the process ends first. */
  async listening(timeoutMs = 30_000): Promise<string> {
    const port = await new Promise<string>((resolve, reject) => {
      const existing = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(this.#tail)?.[1];
      if (existing) return resolve(existing);
      const timer = setTimeout(
        () => reject(new Error(`${this.id} did not listen within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.#listening = (p) => {
        clearTimeout(timer);
        resolve(p);
      };
      void this.exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`${this.id} exited (${this.exitCode ?? this.exitSignal}) before listening`));
      });
    });
    this.url = `http://127.0.0.1:${port}`;
    return this.url;
  }

  async call<T = Record<string, unknown>>(
    method: 'GET' | 'POST',
    path: string,
    timeoutMs = HTTP_TIMEOUT_MS,
  ): Promise<HttpAnswer<T>> {
    const started = performance.now();
    const response = await fetch(this.url + path, { method, signal: AbortSignal.timeout(timeoutMs) });
    const text = await response.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = { raw: text };
    }
    return { status: response.status, body: body as T, ms: performance.now() - started };
  }

  async state(timeoutMs = HTTP_TIMEOUT_MS): Promise<AgentStateBody> {
    const answer = await this.call<AgentStateBody>('GET', '/api/agent/state', timeoutMs);
    if (answer.status !== 200) throw new Error(`${this.id}: /api/agent/state answered ${answer.status}`);
    return answer.body;
  }

  /** SIGKILL, marked as the harness's doing; resolves once the process is gone. */
  async kill(): Promise<void> {
    if (!this.alive) return;
    this.expected = 'kill';
    this.child.kill('SIGKILL');
    await this.exited;
  }
}

export class ChaosFleet {
  readonly dir = mkdtempSync(join(tmpdir(), 'pa-chaos-'));
  readonly recordFile = join(this.dir, 'processed.log');
  readonly agents: ChaosAgent[] = [];
  readonly crashes: Crash[] = [];
  #closed = false;

  constructor(private readonly baseEnv: Record<string, string>) {}

  /** Every process ever started whose exit the harness did not cause. */
  #onExit = (agent: ChaosAgent) => {
    if (agent.expected === 'kill' && agent.exitSignal === 'SIGKILL') return;
    if (agent.expected === 'shutdown' && agent.exitCode === 0) return;
    this.crashes.push({
      agent: agent.id,
      code: agent.exitCode,
      signal: agent.exitSignal,
      tail: agent.output().split('\n').slice(-40).join('\n'),
    });
  };

  /** Starts one agent process and waits until it listens. */
  async start(id: string, env: Record<string, string> = {}): Promise<ChaosAgent> {
    if (this.#closed) throw new Error('fleet closed');
    const child = spawn(process.execPath, [CLI], {
      env: {
        PATH: process.env.PATH ?? '',
        HOST: '127.0.0.1',
        PORT: '0',
        AGENT_ID: id,
        CONTROL_FILE: join(this.dir, `${id}.control`),
        HANDLER: RECORD_HANDLER,
        RECORD_FILE: this.recordFile,
        LOG_LEVEL: 'info',
        ...this.baseEnv,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const agent = new ChaosAgent(id, child, this.#onExit);
    this.agents.push(agent);
    await agent.listening();
    return agent;
  }

  /** Starts agents `<prefix>1…n` together and waits until each has adopted the cluster state. */
  async startMany(prefix: string, n: number, env: Record<string, string> = {}): Promise<ChaosAgent[]> {
    const agents = await Promise.all(
      Array.from({ length: n }, (_, i) => this.start(`${prefix}${i + 1}`, env)),
    );
    await Promise.all(agents.map((a) => this.adopted(a)));
    return agents;
  }

  /** Waits until the agent logged that it started (it adopted the cluster state). */
  async adopted(agent: ChaosAgent, timeoutMs = 60_000): Promise<void> {
    await waitFor(
      () => {
        if (!agent.alive) throw new Error(`${agent.id} exited before it started`);
        return /Agent \S+ started/.test(agent.output());
      },
      { what: `${agent.id} to start`, timeoutMs, intervalMs: 50 },
    );
  }

  live(): ChaosAgent[] {
    return this.agents.filter((a) => a.alive);
  }

  /** Lines "<agent> <document id>" written by the record handler, in the order written. */
  records(): { agent: string; id: string }[] {
    let text = '';
    try {
      text = readFileSync(this.recordFile, 'utf8');
    } catch {
      return [];
    }
    return text
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [agent = '', id = ''] = line.split(' ');
        return { agent, id };
      });
  }

  /**
   * SIGTERMs what still runs and waits (SIGKILL after graceMs). A process that needed the SIGKILL
   * or did not exit 0 counts as a crash. Removes the fleet's folder (read records() before).
   */
  async stopAll(graceMs = 20_000): Promise<void> {
    this.#closed = true;
    await Promise.all(
      this.live().map(async (agent) => {
        agent.expected = 'shutdown';
        agent.child.kill('SIGTERM');
        const timer = setTimeout(() => {
          agent.expected = null;
          agent.child.kill('SIGKILL');
        }, graceMs);
        await agent.exited;
        clearTimeout(timer);
      }),
    );
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Last resort from an exit handler: no process may outlive the harness. */
  killAllNow(): void {
    for (const agent of this.live()) agent.child.kill('SIGKILL');
  }
}

/** With CHAOS_DUMP_DIR set, writes each agent's output tail there (<agent>.log), for a post-mortem. */
export function dumpOutputs(fleet: ChaosFleet): void {
  const dir = process.env.CHAOS_DUMP_DIR;
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  for (const agent of fleet.agents) writeFileSync(join(dir, `${agent.id}.log`), agent.output());
}
