// agentctl's only way to the fleet: an agent's HTTP API (docs/api.md), through Node's own fetch.
// Every failure becomes a CliError whose message names the cause (connection refused at the URL,
// the server's own error code and message, an answer that is not JSON, a timeout).

import { isIP } from 'node:net';
import { connect as connectTls } from 'node:tls';

import { SOFTWARE_VERSION } from '../../version.js';
import { CliError, EXIT } from './errors.js';
import type { ErrorAnswer } from './types.js';

export interface ClientOptions {
  /** The agent's base URL, e.g. http://localhost:8000 (a path prefix behind a proxy is kept). */
  url: string;
  /** Sent as `Authorization: Bearer <token>` when set. */
  token?: string | undefined;
  /** How long one request may take, headers and body. */
  timeoutMs: number;
}

export type Query = Record<string, string | number | boolean | undefined>;

export interface CallOptions {
  query?: Query;
  /** A JSON body (already serialised). */
  json?: string;
  /** Overrides the client's timeout (a --wait request lasts as long as the wait). */
  timeoutMs?: number;
  /** Error statuses the caller handles itself (e.g. 504 for a wait that timed out). */
  acceptStatus?: (status: number, body: unknown) => boolean;
}

export interface Answer<T> {
  status: number;
  body: T;
  /** The body exactly as received, for --json. */
  text: string;
}

export function isErrorAnswer(body: unknown): body is ErrorAnswer {
  const b = body as Partial<ErrorAnswer> | null;
  return typeof b === 'object' && b !== null && b.status === 'error' && typeof b.error === 'string';
}

export class AgentClient {
  readonly base: string;

  constructor(private readonly options: ClientOptions) {
    this.base = options.url.replace(/\/+$/, '');
  }

  /** One request whose answer must be JSON; an error status throws unless acceptStatus takes it. */
  async call<T>(
    method: 'GET' | 'POST' | 'DELETE',
    path: string,
    options: CallOptions = {},
  ): Promise<Answer<T>> {
    const url = this.#url(path, options.query);
    const timeoutMs = options.timeoutMs ?? this.options.timeoutMs;
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, {
        method,
        headers: this.#headers(options.json === undefined ? {} : { 'content-type': 'application/json' }),
        ...(options.json === undefined ? {} : { body: options.json }),
        signal: AbortSignal.timeout(timeoutMs),
      });
      text = await response.text();
    } catch (error) {
      throw await this.#transportError(error, timeoutMs);
    }
    const body = parseJson(text);
    if (body === undefined) {
      const type = response.headers.get('content-type') ?? 'no content type';
      const snippet = text.trim().slice(0, 120).replace(/\s+/g, ' ');
      throw new CliError(
        `${method} ${url} answered HTTP ${response.status} with something that is not JSON (${type})` +
          (snippet ? `: ${snippet}` : ': an empty body') +
          ' — is this URL a pulling agent?',
      );
    }
    if (!response.ok && !options.acceptStatus?.(response.status, body)) {
      throw httpError(method, url, response.status, body, text);
    }
    return { status: response.status, body: body as T, text };
  }

  /** Opens a streaming GET (server-sent events); the caller reads response.body until it ends. */
  async stream(path: string, signal: AbortSignal): Promise<Response> {
    const url = this.#url(path);
    const connect = AbortSignal.timeout(this.options.timeoutMs);
    let response: Response;
    try {
      response = await fetch(url, {
        headers: this.#headers({ accept: 'text/event-stream' }),
        signal: AbortSignal.any([signal, connect]),
      });
    } catch (error) {
      throw await this.#transportError(error, this.options.timeoutMs);
    }
    if (!response.ok) {
      const text = await response.text().catch(() => '');
      const body = parseJson(text);
      throw httpError('GET', url, response.status, body ?? text, body === undefined ? undefined : text);
    }
    const type = response.headers.get('content-type') ?? '';
    if (!type.startsWith('text/event-stream')) {
      await response.body?.cancel();
      throw new CliError(`GET ${url} answered ${type || 'no content type'}, not an event stream`);
    }
    return response;
  }

  #url(path: string, query: Query = {}): string {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) if (value !== undefined) params.set(key, String(value));
    const search = params.toString();
    return `${this.base}${path}${search ? `?${search}` : ''}`;
  }

  #headers(extra: Record<string, string>): Record<string, string> {
    return {
      'user-agent': `agentctl/${SOFTWARE_VERSION}`,
      ...(this.options.token ? { authorization: `Bearer ${this.options.token}` } : {}),
      ...extra,
    };
  }

  /** fetch() failed before an answer: say which, in words an operator can act on. */
  async #transportError(error: unknown, timeoutMs: number): Promise<CliError> {
    if (error instanceof Error && error.name === 'TimeoutError') {
      return new CliError(`no answer from ${this.base} within ${timeoutMs} ms (raise --timeout-ms)`);
    }
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const code = cause?.code;
    if (this.base.startsWith('https:') && isPlainHttpAnswer(code, cause?.message)) {
      const plain = `http:${this.base.slice('https:'.length)}`;
      return new CliError(
        `cannot connect to ${this.base}: this agent speaks HTTP, not HTTPS: use ${plain} (--url or AGENT_URL)`,
      );
    }
    // A TLS server that gets a plain-HTTP request just closes the connection: ask it for TLS.
    if (
      this.base.startsWith('http:') &&
      (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET') &&
      (await speaksTls(this.base))
    ) {
      const tls = `https:${this.base.slice('http:'.length)}`;
      return new CliError(
        `cannot connect to ${this.base}: this agent speaks HTTPS, not HTTP: use ${tls} (--url or AGENT_URL)`,
      );
    }
    const why =
      code === 'ECONNREFUSED'
        ? 'connection refused'
        : code === 'ENOTFOUND' || code === 'EAI_AGAIN'
          ? 'host not found'
          : code === 'ECONNRESET' || code === 'UND_ERR_SOCKET'
            ? 'connection closed by the server'
            : code === 'ETIMEDOUT' || code === 'UND_ERR_CONNECT_TIMEOUT'
              ? 'connection timed out'
              : code === 'EHOSTUNREACH' || code === 'ENETUNREACH'
                ? 'host unreachable'
                : (cause?.message ?? (error instanceof Error ? error.message : String(error)));
    const hint =
      code === 'ECONNREFUSED' || code === 'ENOTFOUND' ? ' — is an agent running? set --url or AGENT_URL' : '';
    return new CliError(`cannot connect to ${this.base} (${why})${hint}`);
  }
}

/**
 * The TLS handshake read a plain-HTTP answer: OpenSSL's "wrong version number" (or, from older
 * OpenSSL, "packet length too long"), reported by Node as ERR_SSL_WRONG_VERSION_NUMBER or EPROTO.
 */
function isPlainHttpAnswer(code: string | undefined, message: string | undefined): boolean {
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG') return true;
  return (
    (code === 'EPROTO' || code === undefined) &&
    /wrong version number|packet length too long/i.test(message ?? '')
  );
}

/** Whether the server at `base` completes a TLS handshake (its certificate is not checked). */
function speaksTls(base: string): Promise<boolean> {
  const { hostname, port } = new URL(base);
  const host = hostname.replace(/^\[(.*)\]$/, '$1');
  return new Promise((resolve) => {
    const socket = connectTls({
      host,
      port: Number(port || 80),
      rejectUnauthorized: false,
      ...(isIP(host) ? {} : { servername: host }),
    });
    const done = (answer: boolean) => {
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(2_000, () => done(false));
    socket.once('secureConnect', () => done(true));
    socket.once('error', () => done(false));
  });
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** An error status, told with the server's own code and message when it sent the usual error body. */
export function httpError(
  method: string,
  url: string,
  status: number,
  body: unknown,
  text?: string,
): CliError {
  if (!isErrorAnswer(body)) {
    const shown = typeof body === 'string' ? body : JSON.stringify(body);
    return new CliError(`${status} from ${method} ${url}: ${shown.slice(0, 200)}`, EXIT.ERROR, text);
  }
  if (body.error === 'PA_VERSION_CONFLICT') {
    const expected = body.expected_version;
    const current = body.current_version;
    return new CliError(
      `version conflict: expected ${String(expected)}, the current version is ${String(current)}` +
        ' (nothing was written; check with agentctl status, then retry with --expected-version ' +
        `${String(current)})`,
      EXIT.ERROR,
      text,
    );
  }
  const hint =
    status === 401
      ? ' (set --token or AGENT_TOKEN)'
      : status === 404 && body.error === 'PA_NOT_FOUND' && !url.includes('/api/documents/')
        ? ` (${method} ${new URL(url).pathname} is unknown to this agent: an older version?)`
        : '';
  return new CliError(`${status} ${body.error}: ${body.message}${hint}`, EXIT.ERROR, text);
}
