// One process's wall clock moved honestly: libfaketime (Debian's `faketime` package) preloaded into
// that process alone, with its monotonic clock left alone (as with a host whose NTP is wrong).
// The offset is verified by running node itself under the same environment.

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const CANDIDATES = [
  '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1',
  '/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1',
  '/usr/lib/faketime/libfaketime.so.1',
];

export const FAKETIME_HOW_TO = 'install it with `apt-get install -y faketime` (Debian/Ubuntu)';

/** The environment that moves a process's wall clock by `offsetSeconds`; throws without libfaketime. */
export function faketimeEnv(offsetSeconds: number): Record<string, string> {
  const lib = process.env.PA_FAKETIME_LIB ?? CANDIDATES.find((path) => existsSync(path));
  if (!lib || !existsSync(lib))
    throw new Error(`libfaketime not found (${CANDIDATES.join(', ')}): ${FAKETIME_HOW_TO}`);
  return {
    LD_PRELOAD: lib,
    FAKETIME: `${offsetSeconds >= 0 ? '+' : ''}${offsetSeconds}s`,
    FAKETIME_DONT_FAKE_MONOTONIC: '1',
  };
}

/** Date.now() of a node process under `env` minus ours, in ms (the offset it really runs with). */
export function measuredOffsetMs(env: Record<string, string>): number {
  const before = Date.now();
  const theirs = Number(
    execFileSync(process.execPath, ['-e', 'process.stdout.write(String(Date.now()))'], {
      env: { PATH: process.env.PATH ?? '', ...env },
      encoding: 'utf8',
      timeout: 30_000,
    }),
  );
  const after = Date.now();
  return theirs - (before + after) / 2;
}
