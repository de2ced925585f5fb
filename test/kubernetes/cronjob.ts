// Runs a CronJob container's command line as its pod would: with curl when the machine has it
// (Debian does), else with an equivalent fetch that sends the same method, URL and headers and
// exits as curl does. Only the options the shipped CronJobs use are understood.

import { spawn, spawnSync } from 'node:child_process';

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
  via: 'curl' | 'fetch';
}

export const HAS_CURL = spawnSync('curl', ['--version']).status === 0;

async function runCurl(argv: string[]): Promise<CommandResult> {
  const [program = '', ...args] = argv;
  const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  return { code, stdout, stderr, via: 'curl' };
}

/** curl's behaviour for the options the CronJobs use; anything else is refused, not ignored. */
async function fetchLikeCurl(argv: string[]): Promise<CommandResult> {
  let method = 'GET';
  let url: string | undefined;
  let failWithBody = false;
  let maxTimeMs = 0;
  const headers = new Headers();
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '-X' || arg === '--request') method = argv[++i] ?? '';
    else if (arg === '-H' || arg === '--header') {
      const header = argv[++i] ?? '';
      const colon = header.indexOf(':');
      headers.set(header.slice(0, colon).trim(), header.slice(colon + 1).trim());
    } else if (arg === '--max-time' || arg === '-m') maxTimeMs = Number(argv[++i]) * 1000;
    else if (arg === '--fail-with-body' || arg === '-f' || arg === '--fail') failWithBody = true;
    else if (['-s', '--silent', '-S', '--show-error', '-sS'].includes(arg)) continue;
    else if (/^https?:\/\//.test(arg)) url = arg;
    else throw new Error(`the fetch stand-in for curl does not know ${arg}`);
  }
  if (!url) throw new Error('no URL in the command');
  const response = await fetch(url, {
    method,
    headers,
    ...(maxTimeMs > 0 ? { signal: AbortSignal.timeout(maxTimeMs) } : {}),
  });
  const stdout = await response.text();
  // curl exits 22 for an HTTP error with --fail/--fail-with-body.
  const code = failWithBody && response.status >= 400 ? 22 : 0;
  return {
    code,
    stdout,
    stderr: code ? `curl: (22) The requested URL returned error: ${response.status}` : '',
    via: 'fetch',
  };
}

export function runCommand(argv: string[]): Promise<CommandResult> {
  if (argv[0] !== 'curl') throw new Error(`only curl commands are run, not ${argv[0]}`);
  return HAS_CURL ? runCurl(argv) : fetchLikeCurl(argv);
}
