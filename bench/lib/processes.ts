// Real agent processes (node dist/src/cli/pulling-agent.js), as in production, logging JSON
// (LOG_FORMAT=json) so that every line carries pino's `time`: the benchmark reads when each agent
// applied a command, or when a handler started and ended, from the agents' own clocks (this
// machine's, in milliseconds). A ProcessFleet stops everything it started, SIGKILL as a last resort.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { onAbort } from './cleanup.js';
import { ROOT } from './servers.js';
import { sleep, until } from './stats.js';

export const CLI = join(ROOT, 'dist/src/cli/pulling-agent.js');

export interface LogLine {
  time: number;
  msg: string;
  [field: string]: unknown;
}

export interface AgentProcess {
  id: string;
  child: ChildProcess;
  url: string;
  lines: LogLine[];
  exited: Promise<number | null>;
  /** Called for every log line from now on. */
  onLine(listener: (line: LogLine) => void): void;
}

export class ProcessFleet {
  readonly dir = mkdtempSync(join(tmpdir(), 'pa-bench-fleet-'));
  readonly agents: AgentProcess[] = [];
  readonly #unregister = onAbort(() => {
    for (const a of this.agents) if (a.child.exitCode === null) a.child.kill('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  });

  constructor(private readonly baseEnv: Record<string, string>) {}

  async start(id: string, env: Record<string, string> = {}): Promise<AgentProcess> {
    const child = spawn(process.execPath, [CLI], {
      env: {
        PATH: process.env.PATH ?? '',
        HOST: '127.0.0.1',
        PORT: '0',
        AGENT_ID: id,
        CONTROL_FILE: join(this.dir, `${id}.control`),
        LOG_FORMAT: 'json',
        LOG_LEVEL: 'info',
        RATE_LIMIT_COMMANDS: '1000000',
        RATE_LIMIT_DOCUMENTS: '1000000',
        ...this.baseEnv,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: LogLine[] = [];
    const listeners: ((line: LogLine) => void)[] = [];
    let errors = '';
    createInterface({ input: child.stdout! }).on('line', (text) => {
      try {
        const line = JSON.parse(text) as LogLine;
        lines.push(line);
        for (const listener of listeners) listener(line);
      } catch {
        // not a log line
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => (errors += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const agent: AgentProcess = { id, child, url: '', lines, exited, onLine: (l) => listeners.push(l) };
    this.agents.push(agent);
    let port: string | undefined;
    const listening = await until(
      () => {
        for (const line of lines) {
          port ??= /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(line.msg)?.[1];
        }
        return port !== undefined || child.exitCode !== null;
      },
      60_000,
      10,
    );
    if (!listening || !port) throw new Error(`agent ${id} did not listen: ${errors.slice(-2000)}`);
    agent.url = `http://127.0.0.1:${port}`;
    return agent;
  }

  /** Starts agents a few at a time and waits until each has adopted the cluster state. */
  async startMany(ids: string[], env: Record<string, string> = {}, parallel = 4): Promise<AgentProcess[]> {
    const started: AgentProcess[] = [];
    for (let i = 0; i < ids.length; i += parallel) {
      started.push(...(await Promise.all(ids.slice(i, i + parallel).map((id) => this.start(id, env)))));
    }
    const ok = await until(
      () => started.every((a) => a.lines.some((l) => /^Agent \S+ started/.test(l.msg))),
      60_000,
      20,
    );
    if (!ok) throw new Error('agents did not start within 60 s');
    return started;
  }

  /** SIGTERM to all (a graceful shutdown), SIGKILL after 20 s; then removes the folder. */
  async stopAll(): Promise<void> {
    await Promise.all(
      this.agents.map(async (a) => {
        if (a.child.exitCode !== null || a.child.signalCode !== null) return;
        a.child.kill('SIGTERM');
        const timer = setTimeout(() => a.child.kill('SIGKILL'), 20_000);
        await a.exited;
        clearTimeout(timer);
      }),
    );
    rmSync(this.dir, { recursive: true, force: true });
    this.#unregister();
  }
}

/** Milliseconds since the epoch with sub-millisecond resolution (the same clock in every process). */
export const epochNow = () => performance.timeOrigin + performance.now();

export async function post<T = Record<string, unknown>>(
  url: string,
): Promise<{ status: number; body: T; sentAt: number; ackAt: number }> {
  const sentAt = epochNow();
  // Bounded: a store that stops answering fails the scenario instead of hanging the run.
  const response = await fetch(url, { method: 'POST', signal: AbortSignal.timeout(60_000) });
  const ackAt = epochNow();
  const body = (await response.json()) as T;
  return { status: response.status, body, sentAt, ackAt };
}

export async function getJson<T = Record<string, unknown>>(url: string): Promise<T> {
  const response = await fetch(url, { signal: AbortSignal.timeout(15_000) });
  return (await response.json()) as T;
}

/** Waits until every agent reports the watch mode expected (GET /api/cluster/stats). */
export async function expectWatchMode(agents: AgentProcess[], mode: string): Promise<void> {
  const ok = await until(
    async () => {
      const modes = await Promise.all(
        agents.map(
          async (a) => (await getJson<{ watch_mode: string }>(`${a.url}/api/cluster/stats`)).watch_mode,
        ),
      );
      return modes.every((m) => m === mode);
    },
    15_000,
    100,
  );
  if (!ok) throw new Error(`agents did not all reach watch mode ${mode}`);
  await sleep(0);
}
