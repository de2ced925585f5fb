// The machine a run was measured on: CPU, cores, memory, Node, and the load average at the start
// and end (other engineers share this machine; a high load is noted beside the figures).

import { readFileSync } from 'node:fs';
import { cpus, freemem, loadavg, release, totalmem } from 'node:os';

export interface Machine {
  cpu_model: string;
  cores: number;
  memory_gib: number;
  free_memory_gib_at_start: number;
  node: string;
  os: string;
  load_average_at_start: number[];
  load_average_at_end?: number[];
  stores: Record<string, string>;
}

function osName(): string {
  try {
    const text = readFileSync('/etc/os-release', 'utf8');
    return /^PRETTY_NAME="?([^"\n]*)"?/m.exec(text)?.[1] ?? `Linux ${release()}`;
  } catch {
    return `${process.platform} ${release()}`;
  }
}

export function describeMachine(): Machine {
  const gib = (bytes: number) => Math.round((bytes / 2 ** 30) * 10) / 10;
  return {
    cpu_model: cpus()[0]?.model.trim() ?? 'unknown',
    cores: cpus().length,
    memory_gib: gib(totalmem()),
    free_memory_gib_at_start: gib(freemem()),
    node: process.version,
    os: `${osName()} (kernel ${release()})`,
    load_average_at_start: loadavg().map((l) => Math.round(l * 100) / 100),
    stores: {},
  };
}

export function loadNow(): number[] {
  return loadavg().map((l) => Math.round(l * 100) / 100);
}
