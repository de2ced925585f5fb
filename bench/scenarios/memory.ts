// Start-up and memory of one agent process: from spawn() to the first 200 from /readiness (polled
// every 5 ms on a port chosen beforehand, so nothing waits for a log line), then the resident set
// size (VmRSS in /proc) after it has idled for a while with no documents.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { CLI } from '../lib/processes.js';
import { freePort, type Servers } from '../lib/servers.js';
import { sleep } from '../lib/stats.js';
import { freshDatabase, STORE_LABELS, type StoreKind } from '../lib/stores.js';

export interface MemoryRun {
  store: string;
  startToReadyMs: number[];
  rssMiB: number[];
  idleSeconds: number;
}

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? Number.NaN);
  return kib / 1024;
}

export async function memoryAndStartup(
  kind: StoreKind,
  servers: Servers,
  options: { samples: number; idleMs: number; nodeOptions?: string },
): Promise<MemoryRun> {
  const db = await freshDatabase(kind, servers);
  const dir = mkdtempSync(join(tmpdir(), 'pa-bench-memory-'));
  const run: MemoryRun = {
    store: STORE_LABELS[kind],
    startToReadyMs: [],
    rssMiB: [],
    idleSeconds: options.idleMs / 1000,
  };
  try {
    for (let i = 0; i < options.samples; i++) {
      const port = await freePort();
      const started = performance.now();
      const child = spawn(process.execPath, [CLI], {
        env: {
          PATH: process.env.PATH ?? '',
          HOST: '127.0.0.1',
          PORT: String(port),
          AGENT_ID: `memory-${i + 1}`,
          CONTROL_FILE: join(dir, 'control'),
          LOG_LEVEL: 'warn',
          ...(options.nodeOptions ? { NODE_OPTIONS: options.nodeOptions } : {}),
          ...db.env,
        },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let errors = '';
      child.stderr?.on('data', (chunk: Buffer) => (errors += chunk.toString()));
      const exited = new Promise((resolve) => child.once('exit', resolve));
      try {
        let ready = false;
        while (!ready && performance.now() - started < 60_000) {
          if (child.exitCode !== null) throw new Error(`agent exited at start-up: ${errors}`);
          ready = await fetch(`http://127.0.0.1:${port}/readiness`).then(
            (r) => r.status === 200,
            () => false,
          );
          if (!ready) await sleep(5);
        }
        if (!ready) throw new Error('agent not ready within 60 s');
        run.startToReadyMs.push(performance.now() - started);
        await sleep(options.idleMs);
        run.rssMiB.push(rssMiB(child.pid as number));
      } finally {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
        await exited;
        clearTimeout(timer);
      }
    }
    return run;
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await db.cleanup().catch(() => undefined);
  }
}
