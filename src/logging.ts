// Logging: pino everywhere. LOG_FORMAT=text prints the seed's `[INFO] message` lines (the default,
// so `kubectl logs … | grep "Distributed Control"` reads as documented); json prints pino's objects.
// Secrets are redacted in both.

import { Writable } from 'node:stream';

import { type Logger, pino } from 'pino';

const LABELS: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARNING',
  50: 'ERROR',
  60: 'FATAL',
};
const HIDDEN = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'agent']);

export const REDACT_PATHS = [
  'password',
  '*.password',
  'token',
  '*.token',
  'authorization',
  '*.authorization',
  'req.headers.authorization',
  'headers.authorization',
];

/** Query parameters whose values a request log line shows as [redacted]. */
const SECRET_PARAMETER = /token|password|passwd|secret|key|auth|credential|signature/i;

/**
 * A request URL as it may be logged: the values of query parameters that look like credentials
 * (`?token=…`, `?access_token=…`, `?api_key=…`) are replaced. The API takes none of them, but a
 * client that sends one anyway must not find it in the logs.
 */
export function redactRequestUrl(url: string): string {
  const question = url.indexOf('?');
  if (question < 0) return url;
  const query = url
    .slice(question + 1)
    .split('&')
    .map((pair) => {
      const equals = pair.indexOf('=');
      const name = equals < 0 ? pair : pair.slice(0, equals);
      let decoded = name;
      try {
        decoded = decodeURIComponent(name.replace(/\+/g, ' '));
      } catch {
        // A malformed escape: judged by its raw form.
      }
      return equals >= 0 && SECRET_PARAMETER.test(decoded) ? `${name}=[redacted]` : pair;
    });
  return `${url.slice(0, question)}?${query.join('&')}`;
}

/** Formats one pino JSON line as `[LEVEL] message key=value …`. */
export function formatTextLine(line: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const label = LABELS[record.level as number] ?? String(record.level);
  const extras = Object.entries(record)
    .filter(([key, value]) => !HIDDEN.has(key) && value !== undefined)
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
  const err = record.err as { message?: string; stack?: string } | undefined;
  const text = `[${label}] ${String(record.msg ?? '')}${extras.length && !err ? ` ${extras.join(' ')}` : ''}`;
  return err?.stack ? `${text}\n${err.stack}` : text;
}

function textStream(out: NodeJS.WritableStream): Writable {
  let pending = '';
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      pending += chunk.toString('utf8');
      let newline: number;
      while ((newline = pending.indexOf('\n')) >= 0) {
        out.write(`${formatTextLine(pending.slice(0, newline))}\n`);
        pending = pending.slice(newline + 1);
      }
      callback();
    },
  });
}

export function createLogger(options: { level: string; format: 'json' | 'text' }): Logger {
  const base = { level: options.level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } };
  return options.format === 'json' ? pino(base) : pino(base, textStream(process.stdout));
}
