import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { pino } from 'pino';

import { type App, buildApp } from '../../src/http/app.js';
import { type Sandbox, sandbox } from '../helpers/agents.js';
import { waitFor } from '../helpers/wait.js';

interface Received {
  event: string;
  data: Record<string, unknown>;
}

/** Reads a server-sent events stream into an array as events arrive. */
async function subscribe(url: string, signal: AbortSignal): Promise<Received[]> {
  const response = await fetch(url, { headers: { accept: 'text/event-stream' }, signal });
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /text\/event-stream/);
  const events: Received[] = [];
  const decoder = new TextDecoder();
  let buffer = '';
  void (async () => {
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (event && data) events.push({ event, data: JSON.parse(data) as Record<string, unknown> });
        }
      }
    } catch {
      // aborted at the end of the test
    }
  })();
  return events;
}

describe('events stream', () => {
  let box: Sandbox;
  let app: App;
  let base: string;

  before(async () => {
    box = await sandbox();
    const agent = box.agent();
    await agent.start();
    app = await buildApp({ agent, logger: pino({ level: 'silent' }), publicConfig: {} });
    base = await app.listen({ port: 0, host: '127.0.0.1' });
  });
  after(async () => {
    await app.close();
    await box.cleanup();
  });

  it('sends the current control state and agents, then every change', async () => {
    const controller = new AbortController();
    try {
      const events = await subscribe(`${base}/api/cluster/events`, controller.signal);
      await waitFor(
        () => events.some((e) => e.event === 'control') && events.some((e) => e.event === 'agents'),
        {
          what: 'the first control and agents events',
        },
      );
      assert.equal(events.find((e) => e.event === 'control')?.data.version, 0);

      await fetch(`${base}/api/cluster/pause?reason=watching&updated_by=test`, { method: 'POST' });
      const control = await waitFor(() => events.find((e) => e.event === 'control' && e.data.version === 1), {
        what: 'a control event for version 1',
      });
      assert.equal(control.data.command, 'pause');
      assert.equal(control.data.reason, 'watching');
      await waitFor(
        () =>
          events.some(
            (e) =>
              e.event === 'agents' &&
              (e.data.agents as { state: string; applied_version: number }[]).some(
                (a) => a.state === 'paused' && a.applied_version === 1,
              ),
          ),
        { what: 'an agents event showing the agent paused on version 1' },
      );
    } finally {
      controller.abort();
    }
  });

  it('refuses a client that only accepts JSON', async () => {
    const response = await fetch(`${base}/api/cluster/events`, { headers: { accept: 'application/json' } });
    assert.equal(response.status, 406);
    assert.equal(((await response.json()) as { error: string }).error, 'PA_NOT_ACCEPTABLE');
  });
});

describe('events stream and shutdown', () => {
  it('does not keep the server from closing while a client listens', async () => {
    const box = await sandbox();
    const agent = box.agent();
    await agent.start();
    const app = await buildApp({ agent, logger: pino({ level: 'silent' }), publicConfig: {} });
    const base = await app.listen({ port: 0, host: '127.0.0.1' });
    const controller = new AbortController();
    try {
      const events = await subscribe(`${base}/api/cluster/events`, controller.signal);
      await waitFor(() => events.length >= 2, { what: 'the first events' });
      const closed = await Promise.race([
        app.close().then(() => true),
        new Promise<false>((resolve) => setTimeout(() => resolve(false), 10_000).unref()),
      ]);
      assert.equal(closed, true, 'app.close() returned while a client was listening');
    } finally {
      controller.abort();
      await app.close();
      await box.cleanup();
    }
  });
});
