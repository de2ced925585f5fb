// Propagation: from the moment a command is acknowledged (the POST's 200 reaches the client) to the
// moment each agent applied it, alternating pause and resume, each command waited for before the
// next. The command goes to a commander agent process that is not counted. Real processes: the
// applied time is the `time` of each agent's `[Distributed Control] Applying command … (version N)`
// JSON log line (pino, Date.now(), 1 ms resolution), so nothing is added by the measuring itself.
// In-process agents: the `applied` event, stamped in the fleet host (see fleet-host.ts).

import type { FleetLoad } from '../fleet-host.js';
import { FleetHost } from '../lib/host.js';
import { expectWatchMode, type LogLine, post, ProcessFleet } from '../lib/processes.js';
import type { Servers } from '../lib/servers.js';
import { sleep, until } from '../lib/stats.js';
import { type BenchMode, freshDatabase } from '../lib/stores.js';

export interface PropagationRun {
  mode: string;
  store: string;
  watch_mode: string;
  agents: number;
  how: 'processes' | 'in-process';
  commands: number;
  delaysFromAck: number[];
  delaysFromSend: number[];
  ackMs: number[];
  missing: number;
  startSeconds: number;
  heapPerAgentKiB?: number;
  rssPerAgentKiB?: number;
  connections?: number | null;
  /** The fleet host's event-loop delay during the commands (in-process only), ms. */
  hostLoopDelayMs?: { p50: number; p99: number; max: number };
  load?: FleetLoad;
}

export interface PropagationOptions {
  commands: number;
  pollingIntervalMs: number;
  note(text: string): void;
}

export function agentEnv(mode: BenchMode, pollingIntervalMs: number): Record<string, string> {
  return {
    ENABLE_CHANGE_STREAMS: String(mode.eventDriven),
    CONTROL_POLLING_INTERVAL: String(pollingIntervalMs / 1000),
  };
}

/** How long to wait for every agent to apply one command: propagation plus generous slack. */
function waitMs(mode: BenchMode, options: PropagationOptions): number {
  return mode.eventDriven ? 10_000 : options.pollingIntervalMs * 3 + 5_000;
}

/**
 * Sends the run's commands through the commander, alternately pause and resume, each waited for
 * (`appliedAt` resolves with the times at which agents applied a version), and records the delays.
 */
async function sendCommands(
  commanderUrl: string,
  run: PropagationRun,
  agents: number,
  timeoutMs: number,
  appliedAt: (version: number, timeoutMs: number) => Promise<number[]>,
): Promise<void> {
  for (let i = 0; i < run.commands; i++) {
    const command = i % 2 === 0 ? 'pause' : 'resume';
    const answer = await post<{ version?: number }>(
      `${commanderUrl}/api/cluster/${command}?updated_by=bench`,
    );
    const version = answer.body.version;
    if (answer.status !== 200 || typeof version !== 'number')
      throw new Error(`POST ${command} answered ${answer.status}: ${JSON.stringify(answer.body)}`);
    const times = await appliedAt(version, timeoutMs);
    run.missing += agents - times.length;
    for (const t of times) {
      run.delaysFromAck.push(t - answer.ackAt);
      run.delaysFromSend.push(t - answer.sentAt);
    }
    run.ackMs.push(answer.ackAt - answer.sentAt);
    await sleep(50 + Math.random() * 200);
  }
}

export async function propagationProcesses(
  mode: BenchMode,
  agents: number,
  servers: Servers,
  options: PropagationOptions,
): Promise<PropagationRun> {
  const db = await freshDatabase(mode.store.kind, servers);
  const fleet = new ProcessFleet({ ...db.env, ...agentEnv(mode, options.pollingIntervalMs) });
  try {
    const started = performance.now();
    // The commander is the agent the operator calls; it is not counted (it applies the command
    // itself before answering).
    const [commander] = await fleet.startMany(['commander']);
    const members = await fleet.startMany(Array.from({ length: agents }, (_, i) => `agent-${i + 1}`));
    const startSeconds = (performance.now() - started) / 1000;
    await expectWatchMode([commander!, ...members], mode.watchMode);
    await sleep(500);

    const applied = new Map<number, number[]>();
    for (const agent of members) {
      const record = (line: LogLine) => {
        const match = /^\[Distributed Control\] Applying command \S+ \(version (\d+)\)/.exec(line.msg);
        if (!match) return;
        const version = Number(match[1]);
        const list = applied.get(version) ?? [];
        list.push(line.time);
        applied.set(version, list);
      };
      agent.lines.forEach(record);
      agent.onLine(record);
    }
    const run: PropagationRun = {
      mode: mode.label,
      store: mode.store.label,
      watch_mode: mode.watchMode,
      agents,
      how: 'processes',
      commands: options.commands,
      delaysFromAck: [],
      delaysFromSend: [],
      ackMs: [],
      missing: 0,
      startSeconds,
    };
    await sendCommands(commander!.url, run, agents, waitMs(mode, options), async (version, timeoutMs) => {
      await until(() => (applied.get(version)?.length ?? 0) >= agents, timeoutMs, 2);
      return applied.get(version) ?? [];
    });
    return run;
  } finally {
    await fleet.stopAll();
    await db.cleanup().catch(() => undefined);
  }
}

export async function propagationInProcess(
  mode: BenchMode,
  agents: number,
  servers: Servers,
  options: PropagationOptions & { loadWindowMs: number },
): Promise<PropagationRun> {
  const db = await freshDatabase(mode.store.kind, servers);
  const env = { ...db.env, ...agentEnv(mode, options.pollingIntervalMs) };
  const fleet = new ProcessFleet(env);
  const host = new FleetHost(options.note);
  try {
    const [commander] = await fleet.startMany(['commander']);
    const ready = await host.start({
      target: db.target,
      agents,
      eventDriven: mode.eventDriven,
      watchMode: mode.watchMode,
      pollingIntervalMs: options.pollingIntervalMs,
      counting: options.loadWindowMs > 0,
      pgAdmin:
        mode.store.kind === 'postgres'
          ? ((servers.postgres?.admin as Record<string, unknown> | null) ?? null)
          : null,
      startParallel: mode.store.kind === 'sqlite' ? 50 : 10,
    });
    await expectWatchMode([commander!], mode.watchMode);
    const run: PropagationRun = {
      mode: mode.label,
      store: mode.store.label,
      watch_mode: mode.watchMode,
      agents,
      how: 'in-process',
      commands: options.commands,
      delaysFromAck: [],
      delaysFromSend: [],
      ackMs: [],
      missing: 0,
      startSeconds: ready.startSeconds,
      heapPerAgentKiB: ready.heapPerAgentKiB,
      rssPerAgentKiB: ready.rssPerAgentKiB,
      connections: ready.connections,
    };
    await sendCommands(commander!.url, run, agents, waitMs(mode, options), (version, timeoutMs) =>
      host.collect(version, timeoutMs),
    );
    run.hostLoopDelayMs = await host.loopDelay();
    if (options.loadWindowMs > 0) {
      // The last command was a resume: the fleet is running and idle (no documents).
      await sleep(2_000);
      run.load = await host.load(options.loadWindowMs);
    }
    return run;
  } finally {
    await host.close();
    await fleet.stopAll();
    await db.cleanup().catch(() => undefined);
  }
}
