// The drain barrier: `POST /api/cluster/pause?wait=true` while every agent has a handler of known
// duration in flight. The time it takes (sent → 200) minus the longest in-flight handler's remaining
// time at the moment it was sent is the barrier's own overhead: propagation, the agents' registry
// writes once drained, and the barrier's registry polling (every 25 ms). Handler start and end
// times come from the handler's own log lines (pino `time`, 1 ms resolution).

import { join } from 'node:path';

import { openStore } from '../../src/stores/index.js';
import { type LogLine, post, ProcessFleet } from '../lib/processes.js';
import { ROOT, type Servers } from '../lib/servers.js';
import { sleep } from '../lib/stats.js';
import { type BenchMode, freshDatabase } from '../lib/stores.js';
import { agentEnv } from './propagation.js';

export interface DrainRound {
  barrierMs: number;
  /** The longest remaining time of a handler in flight when the pause was sent. */
  longestRemainingMs: number;
  overheadMs: number;
  /** From the end of the last handler the barrier had to wait for to the 200. */
  afterLastHandlerMs: number;
  inFlightAtSend: number;
  /** Handlers that started after the pause was sent (agents that had not applied it yet). */
  startedAfterSend: number;
}

export interface DrainRun {
  mode: string;
  agents: number;
  handlerMs: number;
  rounds: DrainRound[];
}

const SLEEP_HANDLER = join(ROOT, 'bench/fixtures/sleep-handler.mjs');

export async function drainBarrier(
  mode: BenchMode,
  agents: number,
  servers: Servers,
  options: { rounds: number; handlerMs: number; pollingIntervalMs: number },
): Promise<DrainRun> {
  const db = await freshDatabase(mode.store.kind, servers);
  const store = await openStore(db.target);
  const fleet = new ProcessFleet({
    ...db.env,
    ...agentEnv(mode, options.pollingIntervalMs),
    HANDLER: SLEEP_HANDLER,
    BENCH_HANDLER_MS: String(options.handlerMs),
    BATCH_SIZE: '10',
    POLL_INTERVAL: '0.2',
  });
  try {
    await store.init();
    await store.writeCommand({ command: 'pause', reason: 'bench: set-up', updated_by: 'bench' });
    const perRound = Math.ceil(2_000 / options.handlerMs) + 2;
    await store.insertDocuments(
      Array.from({ length: (agents + 1) * (options.rounds + 1) * perRound }, (_, i) => ({ i })),
    );
    const all = await fleet.startMany([
      'commander',
      ...Array.from({ length: agents }, (_, i) => `agent-${i + 1}`),
    ]);
    const commander = all[0]!;
    const rounds: DrainRound[] = [];
    for (let r = 0; r < options.rounds; r++) {
      const resumed = await post(`${commander.url}/api/cluster/resume?wait=true&updated_by=bench`);
      if (resumed.status !== 200) throw new Error(`resume answered ${resumed.status}`);
      await sleep(options.handlerMs * (0.6 + Math.random()));
      const answer = await post<{ barrier?: { complete: boolean } }>(
        `${commander.url}/api/cluster/pause?wait=true&timeout=60&updated_by=bench`,
      );
      if (answer.status !== 200 || !answer.body.barrier?.complete)
        throw new Error(
          `pause?wait=true answered ${answer.status}: ${JSON.stringify(answer.body).slice(0, 300)}`,
        );
      await sleep(200); // the last log lines
      const t0 = answer.sentAt;
      const t1 = answer.ackAt;
      let longest = 0;
      let lastEnd = t0;
      let inFlight = 0;
      let late = 0;
      for (const agent of all) {
        const runs = new Map<string, { start: number; end?: number }>();
        for (const line of agent.lines as LogLine[]) {
          const id = String(line.document ?? '');
          if (line.msg === 'bench handler start') runs.set(id, { start: line.time });
          else if (line.msg === 'bench handler end') {
            const run = runs.get(id);
            if (run) run.end = line.time;
          }
        }
        for (const run of runs.values()) {
          const end = run.end ?? Number.POSITIVE_INFINITY;
          if (run.start <= t0 && end >= t0) {
            inFlight++;
            longest = Math.max(longest, end - t0);
          }
          if (run.start > t0 && run.start <= t1) late++;
          if (run.start <= t1 && end <= t1 + 1) lastEnd = Math.max(lastEnd, end);
        }
      }
      rounds.push({
        barrierMs: t1 - t0,
        longestRemainingMs: longest,
        overheadMs: t1 - t0 - longest,
        afterLastHandlerMs: t1 - lastEnd,
        inFlightAtSend: inFlight,
        startedAfterSend: late,
      });
    }
    return { mode: mode.label, agents, handlerMs: options.handlerMs, rounds };
  } finally {
    await fleet.stopAll();
    await store.close();
    await db.cleanup().catch(() => undefined);
  }
}
