// A server-sent events parser over a fetch body, after the WHATWG HTML "event stream
// interpretation" rules: lines end with CRLF, LF or CR; `:` starts a comment (the keep-alives);
// `data` lines accumulate; a blank line dispatches the event. Small enough not to need a dependency.

export interface ServerSentEvent {
  /** The `event` field, `message` when absent. */
  event: string;
  data: string;
  id: string | undefined;
}

export interface ParseHooks {
  /** Called for every chunk of bytes, comments included: proof that the stream is alive. */
  onActivity?: () => void;
  /** The `retry` field: the server's reconnection delay in ms. */
  onRetry?: (ms: number) => void;
}

export async function* parseEventStream(
  body: ReadableStream<Uint8Array>,
  hooks: ParseHooks = {},
): AsyncGenerator<ServerSentEvent> {
  const decoder = new TextDecoder();
  let buffer = '';
  let event = '';
  let data: string[] = [];
  let id: string | undefined;
  // A CR at the very end of a chunk may be the first half of a CRLF split across chunks.
  let pendingCr = false;

  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    hooks.onActivity?.();
    let text = decoder.decode(chunk, { stream: true });
    if (pendingCr && text !== '') {
      if (text.startsWith('\n')) text = text.slice(1);
      pendingCr = false;
    }
    buffer += text;
    for (;;) {
      const end = buffer.search(/[\r\n]/);
      if (end === -1) break;
      if (buffer[end] === '\r' && end === buffer.length - 1) pendingCr = true;
      const line = buffer.slice(0, end);
      buffer = buffer.slice(buffer.startsWith('\r\n', end) ? end + 2 : end + 1);

      if (line === '') {
        if (data.length > 0) yield { event: event || 'message', data: data.join('\n'), id };
        event = '';
        data = [];
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id' && !value.includes('\0')) id = value;
      else if (field === 'retry' && /^\d+$/.test(value)) hooks.onRetry?.(Number(value));
    }
  }
  // An event not terminated by a blank line when the stream ends is discarded, as the spec says.
}
