// The agent's CLI, started as a real process, refuses a setting it cannot use with one line that
// names the variable, and exits non-zero without a stack trace.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { CLI } from '../helpers/processes.js';

interface Exit {
  code: number | null;
  stderr: string;
}

let dir: string;

/** Runs the CLI in `dir` with `env` until it exits (a process still running after 30 s fails). */
function runAgent(env: Record<string, string>): Promise<Exit> {
  const child = spawn(process.execPath, [CLI], {
    cwd: dir,
    env: {
      PATH: process.env.PATH ?? '',
      HOST: '127.0.0.1',
      PORT: '0',
      STORE_URL: `sqlite:${join(dir, 'store.db')}`,
      CONTROL_FILE: join(dir, 'control'),
      LOG_LEVEL: 'error',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the agent did not exit within 30 s; stderr:\n${stderr}`));
    }, 30_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

/** The one line about the failure (the authentication warning may come before it). */
function failureLine(exit: Exit): string {
  assert.doesNotMatch(exit.stderr, /^\s+at /m, `a stack trace was printed:\n${exit.stderr}`);
  const lines = exit.stderr.split('\n').filter((line) => line.startsWith('pulling-agent: '));
  assert.equal(lines.length, 1, `expected one pulling-agent: line, got:\n${exit.stderr}`);
  return lines[0] as string;
}

describe('pulling-agent start-up errors name their cause', () => {
  let occupied: Server;
  let busyPort: number;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pa-cli-errors-'));
    occupied = createServer();
    await new Promise<void>((resolve) => occupied.listen(0, '127.0.0.1', resolve));
    busyPort = (occupied.address() as { port: number }).port;
  });
  after(async () => {
    await new Promise((resolve) => occupied.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  it('a PORT in use names PORT and how to pick a free one', async () => {
    const exit = await runAgent({ PORT: String(busyPort) });
    assert.equal(
      failureLine(exit),
      `pulling-agent: PORT=${busyPort} is already in use by another process; set PORT to a free port (0 picks one)`,
    );
    assert.equal(exit.code, 1);
  });

  it('a HOST that is not an address of this machine names HOST', async () => {
    // 192.0.2.1 is TEST-NET-1 (RFC 5737): never assigned to a host.
    const exit = await runAgent({ HOST: '192.0.2.1' });
    assert.match(
      failureLine(exit),
      /^pulling-agent: HOST=192\.0\.2\.1 is not an address of this machine; set HOST/,
    );
    assert.equal(exit.code, 1);
  });

  it('a HOST that does not resolve names HOST', async () => {
    // .invalid never resolves (RFC 2606); without DNS the lookup fails as EAI_AGAIN instead.
    const exit = await runAgent({ HOST: 'no-such-host.invalid' });
    assert.match(
      failureLine(exit),
      /^pulling-agent: HOST=no-such-host\.invalid does not resolve to an address \((ENOTFOUND|EAI_AGAIN|EAI_NONAME)\); set HOST/,
    );
    assert.equal(exit.code, 1);
  });

  it('a HANDLER that does not exist names HANDLER and the path it looked at', async () => {
    const exit = await runAgent({ HANDLER: './missing-handler.mjs' });
    assert.equal(
      failureLine(exit),
      `pulling-agent: HANDLER=./missing-handler.mjs: ${join(dir, 'missing-handler.mjs')} does not exist ` +
        `(a relative HANDLER is resolved from the working directory, ${dir})`,
    );
    assert.equal(exit.code, 2);
  });

  it('a HANDLER that throws on import names HANDLER, the path and the error, on one line', async () => {
    writeFileSync(join(dir, 'throws.mjs'), "throw new TypeError('no API key in the environment');\n");
    const exit = await runAgent({ HANDLER: './throws.mjs' });
    assert.equal(
      failureLine(exit),
      `pulling-agent: HANDLER=./throws.mjs: importing ${join(dir, 'throws.mjs')} failed: ` +
        'TypeError: no API key in the environment',
    );
    assert.equal(exit.code, 1);
  });

  it('a HANDLER that does not parse says so on one line', async () => {
    writeFileSync(join(dir, 'broken.mjs'), 'export default (\n');
    const exit = await runAgent({ HANDLER: './broken.mjs' });
    assert.match(
      failureLine(exit),
      new RegExp(
        `^pulling-agent: HANDLER=\\./broken\\.mjs: importing ${join(dir, 'broken.mjs')} failed: SyntaxError: `,
      ),
    );
    assert.equal(exit.code, 1);
  });
});
