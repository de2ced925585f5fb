// Runs the compiled agentctl as a child process, as an operator or a script would, and captures its
// stdout, stderr and exit code. Every process started here is tracked so that a test can make sure
// none is left behind (killAll in afterEach).

import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const AGENTCTL = join(ROOT, 'dist/src/cli/agentctl.js');

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface Running {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  done: Promise<Run>;
}

const running = new Set<ChildProcess>();

export interface RunOptions {
  env?: Record<string, string>;
  /** Written to stdin, which is then closed; without it stdin is closed at once. */
  input?: string;
}

/** Starts agentctl; the environment is clean (no AGENT_URL or AGENT_TOKEN from the test's own). */
export function startAgentctl(args: string[], options: RunOptions = {}): Running {
  const started = performance.now();
  const child = spawn(process.execPath, [AGENTCTL, ...args], {
    env: { PATH: process.env.PATH ?? '', NO_COLOR: '1', ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  running.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdin.end(options.input ?? '');
  const done = new Promise<Run>((resolve) =>
    child.once('close', (code) => {
      running.delete(child);
      resolve({ code, stdout, stderr, ms: performance.now() - started });
    }),
  );
  return { child, stdout: () => stdout, stderr: () => stderr, done };
}

export function agentctl(args: string[], options: RunOptions = {}): Promise<Run> {
  return startAgentctl(args, options).done;
}

/** Kills what still runs; returns how many had to be killed (a test that leaves one fails). */
export async function killAll(): Promise<number> {
  const left = [...running];
  for (const child of left) child.kill('SIGKILL');
  await Promise.all(left.map((child) => new Promise((resolve) => child.once('close', resolve))));
  return left.length;
}
