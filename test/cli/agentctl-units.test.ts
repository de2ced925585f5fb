// agentctl's pure parts: the server-sent events parser (chunk boundaries anywhere), the reading of
// documents to enqueue, the convergence rule and the table layout.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { parseDocuments } from '../../src/cli/agentctl/commands.js';
import { CliError } from '../../src/cli/agentctl/errors.js';
import { converged, duration, table } from '../../src/cli/agentctl/format.js';
import { parseEventStream, type ServerSentEvent } from '../../src/cli/agentctl/sse.js';

function streamOf(chunks: string[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
      controller.close();
    },
  });
}

async function collect(chunks: string[], hooks = {}): Promise<ServerSentEvent[]> {
  const events: ServerSentEvent[] = [];
  for await (const event of parseEventStream(streamOf(chunks), hooks)) events.push(event);
  return events;
}

describe('server-sent events parser', () => {
  const complete =
    ': keep-alive\r\n\r\nid: 1\r\nevent: control\r\ndata: {"a":\r\ndata: 1}\r\n\r\n' +
    'event: agents\ndata:{"b":2}\n\nretry: 250\rdata: plain\r\r';
  const text = `${complete}event: cut\ndata: never dispatched`;

  it('reads events, comments, multi-line data, CRLF, LF and CR line ends, and retry', async () => {
    let retry: number | undefined;
    const events = await collect([text], { onRetry: (ms: number) => (retry = ms) });
    assert.deepEqual(events, [
      { event: 'control', data: '{"a":\n1}', id: '1' },
      { event: 'agents', data: '{"b":2}', id: '1' },
      { event: 'message', data: 'plain', id: '1' },
    ]);
    assert.equal(retry, 250);
  });

  it('gives the same events however the bytes are split, a CRLF or a UTF-8 character included', async () => {
    const withAccent = `${complete}event: note\ndata: café ✓\n\n`;
    const whole = await collect([withAccent]);
    const bytes = new TextEncoder().encode(withAccent);
    for (let cut = 1; cut < bytes.length; cut++) {
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(bytes.slice(0, cut));
          controller.enqueue(new Uint8Array(0));
          controller.enqueue(bytes.slice(cut));
          controller.close();
        },
      });
      const events: ServerSentEvent[] = [];
      for await (const event of parseEventStream(stream)) events.push(event);
      assert.deepEqual(events, whole, `split at byte ${cut}`);
    }
    assert.equal(whole.at(-1)!.data, 'café ✓');
  });
});

describe('documents to enqueue', () => {
  it('takes an array, a single value, or JSON lines', () => {
    assert.deepEqual(parseDocuments('[{"a":1},2]', 'x'), [{ a: 1 }, 2]);
    assert.deepEqual(parseDocuments(' {"a":1}\n', 'x'), [{ a: 1 }]);
    assert.deepEqual(parseDocuments('{"a":1}\r\n\r\n[1,2]\n"s"\n', 'x'), [{ a: 1 }, [1, 2], 's']);
  });

  it('refuses empty input and bad lines with a usage error naming the place', () => {
    const usage = (text: string, message: RegExp) =>
      assert.throws(
        () => parseDocuments(text, 'in.json'),
        (error: unknown) => error instanceof CliError && error.exitCode === 2 && message.test(error.message),
      );
    usage('  \n', /^in\.json is empty/);
    usage('[]', /^in\.json is an empty array/);
    usage('{"a":1}\n{"b":\n', /^in\.json line 2 is not JSON/);
    usage('{oops', /^in\.json is neither JSON nor JSON lines/);
  });
});

describe('convergence and layout', () => {
  const view = (
    command: 'pause' | 'running',
    applied: number,
    drained: number,
    stragglers: string[] = [],
  ) => ({
    desired: { command, version: 3 },
    summary: { total: 3, live: 3, lost: 0, applied, drained, stragglers },
  });

  it('converged: every live agent applied, and drained unless the command is running', () => {
    assert.equal(converged(view('pause', 3, 3)), true);
    assert.equal(converged(view('pause', 3, 2, ['b'])), false);
    assert.equal(converged(view('pause', 3, 2)), false);
    assert.equal(converged(view('running', 3, 1)), true);
    assert.equal(converged(view('running', 2, 3, ['c'])), false);
    assert.equal(
      converged({ ...view('pause', 0, 0), summary: { ...view('pause', 0, 0).summary, live: 0 } }),
      true,
    );
  });

  it('tables align columns; colour codes do not move them', () => {
    const rows = [
      ['a', { text: 'paused', colour: 'yellow' as const }, 'x'],
      ['long-id', { text: 'running', colour: 'green' as const }, 'y'],
    ];
    const plain = table({ colour: false }, ['ID', 'STATE', 'Z'], rows);
    assert.equal(plain, 'ID       STATE    Z\na        paused   x\nlong-id  running  y');
    // eslint-disable-next-line no-control-regex
    const stripped = table({ colour: true }, ['ID', 'STATE', 'Z'], rows).replace(/\x1b\[\d+m/g, '');
    assert.equal(stripped, plain);
  });

  it('durations read as a human says them', () => {
    assert.deepEqual([0.4, 59, 61, 3600, 3720, 90_000].map(duration), [
      '0 s',
      '59 s',
      '1 min 1 s',
      '1 h',
      '1 h 2 min',
      '1 d 1 h',
    ]);
  });
});
