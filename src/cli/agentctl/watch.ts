// `agentctl watch`: follows GET /api/cluster/events (server-sent events: `control` and `agents`,
// each sent on connect and on every change) and shows the fleet converging. A TTY gets a table
// redrawn in place; a pipe gets one line per event (JSON lines with --json). A dropped stream is
// reopened with backoff; --until-converged ends it once every live agent applied and drained.

import type { Context } from './commands.js';
import { CliError, EXIT, type ExitCode } from './errors.js';
import { agentsTable, commandWord, converged, duration, summaryLine, when, who } from './format.js';
import { parseEventStream } from './sse.js';
import type { AgentsView, ControlState } from './types.js';

export interface WatchOptions {
  untilConverged: boolean;
  /** Give up (exit 3) after this many seconds without convergence. */
  timeout?: number | undefined;
}

/** The server sends `: keep-alive` every 15 s: three missed means the connection is dead. */
const IDLE_LIMIT_MS = 45_000;
const MAX_BACKOFF_MS = 30_000;

/** What the screen shows: the latest of each event, and the connection's state. */
class FleetView {
  control: ControlState | undefined;
  agents: AgentsView | undefined;
  agentsAt = 0;
  connection = 'connecting';
  readonly #lastLine: Record<string, string> = {};
  #drawn = false;

  constructor(
    private readonly ctx: Context,
    readonly live: boolean,
  ) {}

  get converged(): boolean {
    return this.agents !== undefined && converged(this.agents);
  }

  /** One event in: a line (pipe, --json) or a redraw (TTY). */
  receive(event: string, data: unknown): void {
    if (event === 'control') this.control = data as ControlState;
    else {
      this.agents = data as AgentsView;
      this.agentsAt = Date.now();
    }
    if (this.ctx.json) this.ctx.out(JSON.stringify({ event, data }));
    else if (this.live) this.draw();
    else {
      // The server resends the agents table every heartbeat (ages move): print only what changed.
      const line = this.#line(event);
      if (line !== this.#lastLine[event]) this.ctx.out(`${new Date().toISOString()} ${line}`);
      this.#lastLine[event] = line;
    }
  }

  /** A note about the connection: on a TTY part of the screen, elsewhere a line on stderr. */
  note(connection: string, toStderr: string | undefined): void {
    this.connection = connection;
    if (this.live && !this.ctx.json) this.draw();
    else if (toStderr) this.ctx.err(`agentctl: ${toStderr}`);
  }

  #line(event: string): string {
    if (event === 'control' && this.control) {
      const c = this.control;
      const expiry = c.expires_at ? `, expires ${c.expires_at}` : '';
      return `control ${c.command} version ${c.version} by ${who(c)}${c.reason ? ` (reason: ${c.reason})` : ''}${expiry}`;
    }
    const a = this.agents!;
    const state = converged(a) ? `; converged on version ${a.desired.version}` : '';
    return `agents ${summaryLine(a.desired, a.summary)}${state}`;
  }

  /** Clears the terminal and draws the whole view; heartbeat ages advance between events. */
  draw(): void {
    const lines = [
      `agentctl watch ${this.ctx.client.base}  ${this.connection}  ${new Date().toTimeString().slice(0, 8)}`,
      '',
    ];
    const c = this.control;
    if (c) {
      const age = duration((Date.now() - new Date(c.timestamp).getTime()) / 1000);
      const reason = c.reason ? `, reason "${c.reason}"` : '';
      lines.push(
        `Command: ${commandWord(c.command)}, version ${c.version}, ${age} ago by ${who(c)}${reason}`,
      );
      if (c.expires_at) lines.push(`Expires: ${when(c.expires_at)}, then the fleet resumes by itself`);
      lines.push('');
    }
    if (this.agents) {
      const a = this.agents;
      lines.push(
        agentsTable(this.ctx.style, a, (Date.now() - this.agentsAt) / 1000),
        '',
        summaryLine(a.desired, a.summary),
      );
      const drained = a.desired.command === 'running' ? '' : ' and drained';
      lines.push(
        converged(a)
          ? `Converged: every live agent applied version ${a.desired.version}${drained}.`
          : `Converging to version ${a.desired.version} (${a.desired.command})…`,
      );
    }
    // Home, each line cleared to its end, then the rest of the screen: no flicker of a full clear.
    const clear = this.#drawn ? '' : '\x1b[2J';
    this.#drawn = true;
    this.ctx.out(
      `${clear}\x1b[H${lines
        .join('\n')
        .split('\n')
        .map((line) => `${line}\x1b[K`)
        .join('\n')}\x1b[J`,
    );
  }
}

function backoffMs(attempt: number, baseMs: number): number {
  const ms = Math.min(MAX_BACKOFF_MS, baseMs * 2 ** attempt);
  return Math.round(ms * (0.75 + Math.random() * 0.5));
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

export async function watch(ctx: Context, options: WatchOptions): Promise<ExitCode> {
  const stop = new AbortController();
  let ending: 'converged' | 'timeout' | 'interrupted' | undefined;
  const end = (why: NonNullable<typeof ending>) => {
    ending ??= why;
    stop.abort();
  };
  const onSignal = () => end('interrupted');
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const deadline =
    options.timeout === undefined ? undefined : setTimeout(() => end('timeout'), options.timeout * 1000);
  const view = new FleetView(ctx, process.stdout.isTTY === true && !ctx.json);
  // On a TTY the heartbeat ages keep moving between events.
  const redraw = view.live ? setInterval(() => view.draw(), 1000) : undefined;
  let baseDelayMs = 1000;
  let attempt = 0;
  let connectedOnce = false;

  try {
    while (!stop.signal.aborted) {
      const idle = new AbortController();
      let idleTimer: NodeJS.Timeout | undefined;
      const touch = () => {
        clearTimeout(idleTimer);
        idleTimer = setTimeout(() => idle.abort(), IDLE_LIMIT_MS);
      };
      try {
        const response = await ctx.client.stream(
          '/api/cluster/events',
          AbortSignal.any([stop.signal, idle.signal]),
        );
        touch();
        if (connectedOnce) view.note('connected', 'event stream reopened');
        else view.note('connected', undefined);
        connectedOnce = true;
        attempt = 0;
        const events = parseEventStream(response.body!, {
          onActivity: touch,
          onRetry: (ms) => (baseDelayMs = ms),
        });
        for await (const { event, data } of events) {
          if (event !== 'control' && event !== 'agents') continue;
          let parsed: unknown;
          try {
            parsed = JSON.parse(data);
          } catch {
            ctx.err(`agentctl: ignored a ${event} event whose data is not JSON: ${data.slice(0, 80)}`);
            continue;
          }
          view.receive(event, parsed);
          if (options.untilConverged && view.converged) {
            end('converged');
            break;
          }
        }
        if (stop.signal.aborted) break;
        throw new CliError(
          idle.signal.aborted ? `no data for ${IDLE_LIMIT_MS / 1000} s` : 'the server closed the stream',
        );
      } catch (error) {
        if (stop.signal.aborted) break;
        // The first connection must work (a wrong URL or token should fail at once); later drops are retried.
        const retryable = connectedOnce && !(error instanceof CliError && /^4\d\d /.test(error.message));
        if (!retryable) throw error;
        const why = idle.signal.aborted ? `no data for ${IDLE_LIMIT_MS / 1000} s` : (error as Error).message;
        const delay = backoffMs(attempt++, baseDelayMs);
        const seconds = (delay / 1000).toFixed(1);
        view.note(
          `disconnected (${why}); retrying in ${seconds} s`,
          `event stream lost (${why}); reconnecting in ${seconds} s`,
        );
        await sleep(delay, stop.signal);
      } finally {
        clearTimeout(idleTimer);
      }
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    clearTimeout(deadline);
    clearInterval(redraw);
  }

  if (ending === 'timeout') {
    const a = view.agents;
    const where = a ? `: ${summaryLine(a.desired, a.summary)}` : ' (no agents event received)';
    ctx.err(`agentctl: not converged after ${options.timeout} s${where}`);
    return EXIT.WAIT_TIMEOUT;
  }
  return ending === 'converged' ? EXIT.OK : EXIT.INTERRUPTED;
}
