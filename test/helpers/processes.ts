// Real agent processes (node dist/src/cli/pulling-agent.js), as in production: each gets its own
// port (PORT=0, read back from its log), its own control file, and the target's store. A Fleet
// stops every process it started; a process still running at the end of a test fails it.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { waitFor } from './wait.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const CLI = join(ROOT, 'dist/src/cli/pulling-agent.js');
export const RECORD_HANDLER = join(ROOT, 'test/fixtures/record-handler.mjs');

export interface AgentProcess {
  id: string;
  url: string;
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
  get<T = Record<string, unknown>>(path: string): Promise<{ status: number; body: T }>;
  post<T = Record<string, unknown>>(path: string): Promise<{ status: number; body: T }>;
  state(): Promise<string>;
}

export class Fleet {
  readonly dir = mkdtempSync(join(tmpdir(), 'pa-fleet-'));
  readonly recordFile = join(this.dir, 'processed.log');
  readonly processes: AgentProcess[] = [];
  #count = 0;

  constructor(private readonly baseEnv: Record<string, string>) {}

  async start(env: Record<string, string> = {}, id = `agent-${++this.#count}`): Promise<AgentProcess> {
    const child = spawn(process.execPath, [CLI], {
      env: {
        PATH: process.env.PATH ?? '',
        HOST: '127.0.0.1',
        PORT: '0',
        AGENT_ID: id,
        CONTROL_FILE: join(this.dir, `${id}.control`),
        HANDLER: RECORD_HANDLER,
        RECORD_FILE: this.recordFile,
        POLL_INTERVAL: '0.2',
        HEARTBEAT_INTERVAL: '0.5',
        LOG_LEVEL: 'info',
        ...this.baseEnv,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const port = await Promise.race([
      waitFor(() => /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(output)?.[1], {
        what: `${id} to listen`,
        timeoutMs: 30_000,
      }),
      exited.then((code) => {
        throw new Error(`${id} exited with ${code} before listening:\n${output}`);
      }),
    ]);
    const url = `http://127.0.0.1:${port}`;
    const call = async <T>(method: string, path: string) => {
      const response = await fetch(url + path, { method });
      return { status: response.status, body: (await response.json()) as T };
    };
    const agent: AgentProcess = {
      id,
      url,
      child,
      output: () => output,
      exited,
      get: (path) => call('GET', path),
      post: (path) => call('POST', path),
      state: async () => (await call<{ state: string }>('GET', '/api/agent/state')).body.state,
    };
    this.processes.push(agent);
    return agent;
  }

  /** Starts n agents and waits until each has adopted the cluster state. */
  async startMany(n: number, env: Record<string, string> = {}): Promise<AgentProcess[]> {
    const agents = await Promise.all(Array.from({ length: n }, () => this.start(env)));
    await Promise.all(
      agents.map((a) => waitFor(() => /Agent \S+ started/.test(a.output()), { what: `${a.id} started` })),
    );
    return agents;
  }

  /** Lines "<agent> <document id>" written by the record handler. */
  async processedRecords(): Promise<{ agent: string; id: string }[]> {
    const { readFile } = await import('node:fs/promises');
    const text = await readFile(this.recordFile, 'utf8').catch(() => '');
    return text
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [agent = '', id = ''] = line.split(' ');
        return { agent, id };
      });
  }

  /** SIGTERMs what still runs (SIGKILL after 20 s); throws if anything had to be killed hard. */
  async stopAll(): Promise<void> {
    const hard: string[] = [];
    await Promise.all(
      this.processes.map(async (p) => {
        if (p.child.exitCode !== null || p.child.signalCode !== null) return;
        p.child.kill('SIGTERM');
        const timer = setTimeout(() => {
          hard.push(p.id);
          p.child.kill('SIGKILL');
        }, 20_000);
        await p.exited;
        clearTimeout(timer);
      }),
    );
    rmSync(this.dir, { recursive: true, force: true });
    if (hard.length > 0) throw new Error(`agents that ignored SIGTERM: ${hard.join(', ')}`);
  }
}
