// The request-and-answer commands: status, agents, history, pause/resume/shutdown (with the drain
// barrier of --wait), enqueue, the documents commands (list, show, retry, discard) and queues.
// Each returns the exit code; a failure throws a CliError.

import { readFile } from 'node:fs/promises';

import { type AgentClient, type Answer, isErrorAnswer } from './client.js';
import { CliError, EXIT, type ExitCode } from './errors.js';
import {
  agentsTable,
  documentsTable,
  documentText,
  historyTable,
  queuesTable,
  statusText,
  type Style,
  summaryLine,
  when,
  who,
} from './format.js';
import type {
  AgentsView,
  CommandAnswer,
  ControlState,
  DiscardAnswer,
  DocumentAnswer,
  DocumentListAnswer,
  EnqueueAnswer,
  HistoryView,
  QueueListAnswer,
  RetryAllAnswer,
  RetryAnswer,
} from './types.js';

export interface Context {
  client: AgentClient;
  /** Print the API's JSON instead of tables. */
  json: boolean;
  /** The per-request timeout (--timeout-ms). */
  timeoutMs: number;
  style: Style;
  out: (text: string) => void;
  err: (text: string) => void;
}

export async function status(ctx: Context): Promise<ExitCode> {
  const [control, agents, documents] = await Promise.all([
    ctx.client.call<ControlState>('GET', '/api/cluster/control-state'),
    ctx.client.call<AgentsView>('GET', '/api/cluster/agents'),
    // The counts only (limit=1 keeps the page small); a store error does not hide the fleet.
    ctx.client
      .call<DocumentListAnswer>('GET', '/api/documents', { query: { limit: 1 } })
      .catch((error: unknown) => (error instanceof CliError ? error : Promise.reject(error))),
  ]);
  if (ctx.json) {
    const counts = documents instanceof CliError ? 'null' : JSON.stringify({ counts: documents.body.counts });
    ctx.out(`{"control_state":${control.text},"agents":${agents.text},"documents":${counts}}`);
  } else {
    ctx.out(
      statusText(
        ctx.style,
        await withAuditFields(ctx, control.body),
        agents.body,
        documents instanceof CliError ? { error: documents.message } : { counts: documents.body.counts },
      ),
    );
  }
  return EXIT.OK;
}

/**
 * An agent whose control-state answer leaves out `expires_at` and `on_behalf_of` (its response
 * schema predates them) still has them in the history: read the current version's entry there.
 */
async function withAuditFields(ctx: Context, control: ControlState): Promise<ControlState> {
  if ('expires_at' in control) return control;
  const history = await ctx.client
    .call<HistoryView>('GET', '/api/cluster/history', { query: { limit: 1 } })
    .catch(() => undefined);
  const entry = history?.body.history[0];
  if (entry?.version !== control.version) return control;
  return { ...control, expires_at: entry.expires_at ?? null, on_behalf_of: entry.on_behalf_of ?? null };
}

export async function agents(ctx: Context): Promise<ExitCode> {
  const answer = await ctx.client.call<AgentsView>('GET', '/api/cluster/agents');
  if (ctx.json) ctx.out(answer.text);
  else
    ctx.out(
      `${agentsTable(ctx.style, answer.body)}\n\n${summaryLine(answer.body.desired, answer.body.summary)}`,
    );
  return EXIT.OK;
}

export async function history(ctx: Context, limit: number): Promise<ExitCode> {
  const answer = await ctx.client.call<HistoryView>('GET', '/api/cluster/history', { query: { limit } });
  ctx.out(ctx.json ? answer.text : historyTable(ctx.style, answer.body.history));
  return EXIT.OK;
}

export type Verb = 'pause' | 'resume' | 'shutdown';

export interface CommandOptions {
  reason?: string | undefined;
  by: string;
  wait: boolean;
  /** Seconds the server waits for the barrier (with wait). */
  timeout: number;
  expectedVersion?: number | undefined;
  expiresIn?: string | undefined;
}

const DONE: Record<Verb, { past: string; effect: string }> = {
  pause: { past: 'paused', effect: 'agents finish the documents they hold and claim nothing more' },
  resume: { past: 'resumed', effect: 'agents pull documents again' },
  shutdown: { past: 'shut down', effect: 'every agent drains, leaves the registry and exits 0' },
};

/**
 * POST /api/cluster/<path> with the audit fields, compare-and-set and --wait every command takes; a
 * waiting request gets the server's timeout plus a margin, and a 504 PA_WAIT_TIMEOUT is an answer.
 */
export function postCommand<T>(
  ctx: Context,
  path: string,
  options: CommandOptions,
  query: Record<string, string | undefined> = {},
): Promise<Answer<T>> {
  return ctx.client.call<T>('POST', `/api/cluster/${path}`, {
    query: {
      ...query,
      reason: options.reason,
      updated_by: options.by,
      expected_version: options.expectedVersion,
      expires_in: options.expiresIn,
      ...(options.wait ? { wait: true, timeout: options.timeout } : {}),
    },
    // The server holds a waiting request up to `timeout` seconds: give the HTTP request more.
    ...(options.wait ? { timeoutMs: Math.max(ctx.timeoutMs, options.timeout * 1000 + 15_000) } : {}),
    acceptStatus: (status, body) => status === 504 && isErrorAnswer(body) && body.error === 'PA_WAIT_TIMEOUT',
  });
}

/** POST /api/cluster/<verb>; with --wait the answer comes once the fleet converged, or 504. */
export async function sendCommand(ctx: Context, verb: Verb, options: CommandOptions): Promise<ExitCode> {
  const answer = await postCommand<CommandAnswer>(ctx, verb, options);
  const body = answer.body;
  const timedOut = answer.status === 504;
  if (ctx.json) ctx.out(answer.text);
  else {
    const reason = body.reason ? `, reason "${body.reason}"` : '';
    ctx.out(
      `Cluster ${DONE[verb].past}: version ${body.version} written by ${who(body)}${reason}; ${DONE[verb].effect}.`,
    );
    if (body.expires_at) ctx.out(`Expires ${when(body.expires_at)}: the fleet then resumes by itself.`);
  }

  // A server without expiries drops the parameter silently: a pause meant to end would not.
  const expiryIgnored = options.expiresIn !== undefined && !body.expires_at;
  if (expiryIgnored) {
    ctx.err(
      `agentctl: the agent at ${ctx.client.base} ignored --expires-in (an older version?): ` +
        `the pause (version ${body.version}) is written but does not end by itself; resume it with agentctl resume`,
    );
  }

  if (!options.wait) {
    if (!ctx.json) {
      const p = body.propagation;
      const agentsNote = p
        ? `${p.agents_registered} agent${p.agents_registered === 1 ? '' : 's'} registered; they apply it within ${p.expected_delay_seconds} s (${p.watch_mode}). `
        : '';
      ctx.out(`${agentsNote}To wait for them: --wait, or agentctl watch --until-converged`);
    }
    return expiryIgnored ? EXIT.ERROR : EXIT.OK;
  }

  const barrier = body.barrier;
  if (!barrier) {
    throw new CliError(
      `the agent at ${ctx.client.base} does not support --wait (no barrier in its answer, an older version?): ` +
        `version ${body.version} was written but not waited for; follow it with agentctl watch --until-converged`,
    );
  }
  const desired = { command: body.command, version: body.version };
  if (!ctx.json) {
    const { summary } = barrier;
    const drained = verb === 'resume' ? '' : ' and drained';
    const took = duration(barrier.waited_ms);
    ctx.out(
      timedOut
        ? `Not converged after ${took}: ${summary.applied}/${summary.live} live agents applied version ${body.version}, ${summary.drained}/${summary.live} drained.`
        : verb === 'shutdown'
          ? // Agents leave the registry as they exit: the table shows only those still on their way out.
            `Every agent applied version ${body.version} and drained in ${took}; they leave the registry and exit.`
          : `All ${summary.live} live agent${summary.live === 1 ? '' : 's'} applied version ${body.version}${drained} in ${took}.`,
    );
    ctx.out(
      `\n${agentsTable(ctx.style, { agents: barrier.agents, desired })}\n\n${summaryLine(desired, summary)}`,
    );
  }
  if (timedOut) {
    const stragglers = barrier.summary.stragglers;
    const what = verb === 'resume' ? 'applied it' : 'applied it and drained';
    ctx.err(
      `agentctl: wait timed out after ${options.timeout} s: ${stragglers.length} agent(s) had not ${what}: ` +
        `${stragglers.join(', ')} (version ${body.version} stays written and the fleet keeps converging; ` +
        'agentctl watch --until-converged follows it)',
    );
    return EXIT.WAIT_TIMEOUT;
  }
  return expiryIgnored ? EXIT.ERROR : EXIT.OK;
}

function duration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** The API's limits for one POST /api/documents (docs/api.md), with room for the JSON around. */
const MAX_DOCUMENTS_PER_REQUEST = 10_000;
const MAX_BYTES_PER_REQUEST = 9 * 1024 * 1024;

/** A JSON array, a single JSON value (one document) or JSON lines (one document a line). */
export function parseDocuments(text: string, source: string): unknown[] {
  if (text.trim() === '') throw new CliError(`${source} is empty: no document to enqueue`, EXIT.USAGE);
  let whole: unknown;
  let wholeError: unknown;
  try {
    whole = JSON.parse(text);
  } catch (error) {
    wholeError = error;
  }
  if (wholeError === undefined) {
    const documents = Array.isArray(whole) ? whole : [whole];
    if (documents.length === 0)
      throw new CliError(`${source} is an empty array: no document to enqueue`, EXIT.USAGE);
    return documents;
  }
  const documents: unknown[] = [];
  for (const [index, line] of text.split(/\r?\n/).entries()) {
    if (line.trim() === '') continue;
    try {
      documents.push(JSON.parse(line));
    } catch (error) {
      // Nothing parsed yet: the input was most likely meant as one JSON document; say why it is not.
      throw new CliError(
        documents.length === 0
          ? `${source} is neither JSON nor JSON lines: ${(wholeError as Error).message}`
          : `${source} line ${index + 1} is not JSON: ${(error as Error).message}`,
        EXIT.USAGE,
      );
    }
  }
  return documents;
}

async function readInput(file: string | undefined): Promise<{ text: string; source: string }> {
  if (file === undefined || file === '-') {
    if (file === undefined && process.stdin.isTTY) {
      throw new CliError('give a FILE, or pipe JSON into agentctl enqueue -', EXIT.USAGE);
    }
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return { text: Buffer.concat(chunks).toString('utf8'), source: 'standard input' };
  }
  try {
    return { text: await readFile(file, 'utf8'), source: file };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'a directory' : (error as Error).message;
    throw new CliError(`cannot read ${file}: ${why}`);
  }
}

/** Splits into requests the API accepts: at most 10,000 documents and about 9 MiB each. */
function chunk(documents: unknown[]): string[][] {
  const chunks: string[][] = [];
  let current: string[] = [];
  let bytes = 2;
  for (const document of documents) {
    const json = JSON.stringify(document) ?? 'null';
    const size = Buffer.byteLength(json) + 1;
    if (
      current.length > 0 &&
      (current.length >= MAX_DOCUMENTS_PER_REQUEST || bytes + size > MAX_BYTES_PER_REQUEST)
    ) {
      chunks.push(current);
      current = [];
      bytes = 2;
    }
    current.push(json);
    bytes += size;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

/** POST /api/documents from a file or stdin; prints the count and the ids. */
export async function enqueue(ctx: Context, file: string | undefined, queue?: string): Promise<ExitCode> {
  const { text, source } = await readInput(file);
  const documents = parseDocuments(text, source);
  const ids: string[] = [];
  const texts: string[] = [];
  for (const part of chunk(documents)) {
    try {
      const answer = await ctx.client.call<EnqueueAnswer>('POST', '/api/documents', {
        json: `[${part.join(',')}]`,
        query: { queue },
      });
      ids.push(...answer.body.ids);
      texts.push(answer.text);
    } catch (error) {
      if (ids.length > 0 && error instanceof CliError) {
        ctx.err(
          `agentctl: ${ids.length} of ${documents.length} documents were stored before the error (ids ${span(ids)})`,
        );
      }
      throw error;
    }
  }
  if (ctx.json)
    ctx.out(texts.length === 1 ? texts[0]! : JSON.stringify({ status: 'success', count: ids.length, ids }));
  else ctx.out(`Enqueued ${ids.length} document${ids.length === 1 ? '' : 's'}: ids ${span(ids)}`);
  return EXIT.OK;
}

/** Ids for a human: all of them up to 10, else the first and the last. */
function span(ids: string[]): string {
  return ids.length <= 10 ? ids.join(', ') : `${ids[0]} … ${ids[ids.length - 1]}`;
}

export interface ListOptions {
  status?: string | undefined;
  queue?: string | undefined;
  limit?: number | undefined;
  cursor?: string | undefined;
}

/** GET /api/documents: a page of one status (or all), and the command for the next page. */
export async function listDocuments(ctx: Context, options: ListOptions): Promise<ExitCode> {
  const answer = await ctx.client.call<DocumentListAnswer>('GET', '/api/documents', {
    query: { status: options.status, queue: options.queue, limit: options.limit, cursor: options.cursor },
  });
  if (ctx.json) {
    ctx.out(answer.text);
    return EXIT.OK;
  }
  const { documents, next_cursor: next } = answer.body;
  if (!documents) {
    throw new CliError(
      `the agent at ${ctx.client.base} does not list documents (an older version?): it answered only the counts`,
    );
  }
  ctx.out(documentsTable(ctx.style, documents));
  if (next) {
    const again = ['agentctl documents list'];
    if (options.status) again.push(`--status ${options.status}`);
    if (options.queue) again.push(`--queue ${options.queue}`);
    if (options.limit !== undefined) again.push(`--limit ${options.limit}`);
    again.push(`--cursor ${next}`);
    ctx.out(`\nMore: ${again.join(' ')}`);
  }
  return EXIT.OK;
}

/** GET /api/queues: every queue that has documents, with its counts. */
export async function listQueues(ctx: Context): Promise<ExitCode> {
  const answer = await ctx.client.call<QueueListAnswer>('GET', '/api/queues');
  ctx.out(ctx.json ? answer.text : queuesTable(ctx.style, answer.body.queues));
  return EXIT.OK;
}

const documentPath = (id: string) => `/api/documents/${encodeURIComponent(id)}`;

export async function showDocument(ctx: Context, id: string): Promise<ExitCode> {
  const answer = await ctx.client.call<DocumentAnswer>('GET', documentPath(id));
  ctx.out(ctx.json ? answer.text : documentText(ctx.style, answer.body));
  return EXIT.OK;
}

/** POST /api/documents/{id}/retry, or with `all`, POST /api/documents/retry?status=failed. */
export async function retryDocuments(
  ctx: Context,
  target: { id: string } | { allFailed: true },
  by: string,
): Promise<ExitCode> {
  if ('id' in target) {
    const answer = await ctx.client.call<RetryAnswer>('POST', `${documentPath(target.id)}/retry`, {
      query: { updated_by: by },
    });
    const doc = answer.body.document;
    ctx.out(
      ctx.json
        ? answer.text
        : `Document ${doc.id} is ${doc.status} again, due now, with a fresh retry budget (${doc.attempts} earlier attempt${doc.attempts === 1 ? '' : 's'} kept).`,
    );
    return EXIT.OK;
  }
  const answer = await ctx.client.call<RetryAllAnswer>('POST', '/api/documents/retry', {
    query: { status: 'failed', updated_by: by },
  });
  const n = answer.body.count;
  ctx.out(
    ctx.json
      ? answer.text
      : n === 0
        ? 'No failed document: nothing to retry.'
        : `${n} failed document${n === 1 ? '' : 's'} back to pending, due now, with a fresh retry budget.`,
  );
  return EXIT.OK;
}

export async function discardDocument(ctx: Context, id: string, by: string): Promise<ExitCode> {
  const answer = await ctx.client.call<DiscardAnswer>('DELETE', documentPath(id), {
    query: { updated_by: by },
  });
  ctx.out(ctx.json ? answer.text : `Document ${answer.body.id} discarded.`);
  return EXIT.OK;
}
