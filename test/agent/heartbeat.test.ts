// The heartbeat against a store whose registry write hangs (a connection that died silently): a
// write that misses its deadline is written again at once rather than an interval later, never
// more than two writes are in flight, and a hung prune never holds a beat up. The interval is a
// minute throughout, so that any write a test sees within its (shorter) wait came from the
// heartbeat's own retry, never from its timer.

import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';

import pino from 'pino';

import { Heartbeat, heartbeatDeadlineMs } from '../../src/agent/heartbeat.js';
import { StoreUnavailableError } from '../../src/errors.js';
import type { AgentHeartbeat, CallOptions } from '../../src/stores/types.js';
import { createMemoryStore, type MemoryStore } from '../helpers/memory-store.js';
import { waitFor } from '../helpers/wait.js';

const INTERVAL_MS = 60_000;
const STORE_TIMEOUT_MS = 100;

function snapshot(state = 'running'): AgentHeartbeat {
  return {
    agent_id: 'agent-1',
    instance_id: 'agent-1/1',
    host: 'test',
    software_version: '0.0.0',
    state,
    applied_version: 0,
    applied_at: null,
    batch_in_flight: false,
    watch_mode: 'polling',
    started_at: new Date(0),
    counters: {},
  };
}

/** A store whose upsertAgent records the options it is given and waits on `gates` in call order. */
function hangingStore() {
  const store: MemoryStore = createMemoryStore();
  const options: (CallOptions | undefined)[] = [];
  const gates: { release(): void; fail(error: Error): void }[] = [];
  /** How many writes hang; the ones after answer. */
  let hanging = 0;
  const inner = store.upsertAgent.bind(store);
  store.upsertAgent = async (heartbeat, call) => {
    options.push(call);
    if (gates.length < hanging) {
      await new Promise<void>((resolve, reject) => gates.push({ release: resolve, fail: reject }));
    }
    await inner(heartbeat);
  };
  return {
    store,
    options,
    gates,
    hang(n: number) {
      hanging = n;
    },
  };
}

const heartbeats: Heartbeat[] = [];
const releases: (() => void)[] = [];
afterEach(async () => {
  for (const release of releases.splice(0)) release();
  await Promise.all(heartbeats.splice(0).map((h) => h.stop(null)));
});

function startHeartbeat(store: MemoryStore, errors: { n: number } = { n: 0 }): Heartbeat {
  const heartbeat = new Heartbeat({
    store,
    intervalMs: INTERVAL_MS,
    retentionMs: 3_600_000,
    snapshot: () => snapshot(),
    logger: pino({ level: 'silent' }),
    onError: () => errors.n++,
    timeoutMs: STORE_TIMEOUT_MS,
  });
  heartbeats.push(heartbeat);
  return heartbeat;
}

describe('heartbeat deadlines', () => {
  it('a write has half an interval, never more than STORE_TIMEOUT', () => {
    assert.equal(heartbeatDeadlineMs(5_000, 10_000), 2_500);
    assert.equal(heartbeatDeadlineMs(60_000, 10_000), 10_000);
    assert.equal(heartbeatDeadlineMs(1_000, 300), 300);
  });

  it('a write that misses its deadline is written again at once, with the same deadline, not an interval later', async () => {
    const h = hangingStore();
    h.hang(1);
    const errors = { n: 0 };
    const heartbeat = startHeartbeat(h.store, errors);
    heartbeat.start();
    releases.push(() => h.gates.forEach((g) => g.release()));

    const written = await waitFor(() => heartbeat.lastAt, { what: 'the heartbeat written after its retry' });
    assert.ok(written instanceof Date);
    assert.equal(h.options.length, 2, 'the hung write and the one written again at once');
    assert.deepEqual(h.options, [{ timeoutMs: STORE_TIMEOUT_MS }, { timeoutMs: STORE_TIMEOUT_MS }]);
    // The abandoned write is still unsettled: it counts against the two in flight.
    assert.equal(heartbeat.writesInFlight, 1);
    assert.equal(errors.n, 1, 'the missed deadline counts as a store error');
    assert.equal((await h.store.listAgents()).length, 1);
  });

  it('never has more than two writes in flight: beats are skipped while both hang, and one is written as soon as either settles', async () => {
    const h = hangingStore();
    h.hang(2);
    const heartbeat = startHeartbeat(h.store);
    heartbeat.start();
    releases.push(() => h.gates.forEach((g) => g.release()));
    await waitFor(() => heartbeat.writesInFlight === 2 && h.options.length === 2, {
      what: 'the first write and its retry both hung',
    });
    // Both miss their deadline and the beat fails; beats asked for now (state changes) start nothing.
    for (let i = 0; i < 5; i++) await heartbeat.beat();
    assert.equal(h.options.length, 2, 'no third write while two are unsettled');
    assert.equal(heartbeat.lastAt, null);

    // The first one answers at last (its connection came back): the owed beat is written at once.
    h.gates[0]?.release();
    await waitFor(() => heartbeat.lastAt, { what: 'the owed beat written once a hung write settled' });
    assert.equal(h.options.length, 3);
    assert.ok(heartbeat.writesInFlight <= 2);
  });

  it('a write that fails fast (the store is down) is not retried at once: the next try is the next beat', async () => {
    const store = createMemoryStore();
    let calls = 0;
    store.before.upsertAgent = () => {
      calls++;
      throw new StoreUnavailableError('writing a heartbeat', new Error('connection refused'));
    };
    const errors = { n: 0 };
    const heartbeat = startHeartbeat(store, errors);
    heartbeat.start();
    await waitFor(() => errors.n === 1, { what: 'the failed beat counted' });
    await heartbeat.beat();
    assert.equal(calls, 2, 'one write per beat, no immediate retry');
    assert.equal(errors.n, 2);
    assert.equal(heartbeat.lastAt, null);
  });

  it('a hung prune never holds the next beat up', async () => {
    const store = createMemoryStore();
    let prunes = 0;
    store.pruneAgents = () => {
      prunes++;
      return new Promise<number>(() => undefined);
    };
    let writes = 0;
    store.before.upsertAgent = () => void writes++;
    const heartbeat = startHeartbeat(store);
    heartbeat.start();
    // Every twelfth beat prunes; each beat here is asked for, one after the other.
    for (let i = 0; i < 25; i++) await heartbeat.beat();
    await waitFor(() => writes >= 26, { what: 'every beat written' });
    assert.ok(prunes >= 1, 'a prune was started');
    assert.ok(prunes <= 2, `a prune is started only every twelfth beat (${prunes})`);
    assert.ok(heartbeat.lastAt !== null);
  });

  it('says once that a write missed its deadline, and once that the beat failed', async () => {
    const h = hangingStore();
    h.hang(Number.POSITIVE_INFINITY);
    const logger = pino({ level: 'silent' });
    const warnings: string[] = [];
    logger.warn = ((message: string) => void warnings.push(message)) as typeof logger.warn;
    const heartbeat = new Heartbeat({
      store: h.store,
      intervalMs: INTERVAL_MS,
      retentionMs: 3_600_000,
      snapshot: () => snapshot(),
      logger,
      onError: () => undefined,
      timeoutMs: STORE_TIMEOUT_MS,
    });
    heartbeats.push(heartbeat);
    releases.push(() => h.gates.forEach((g) => g.release()));
    await heartbeat.beat();
    assert.equal(heartbeat.lastAt, null);
    assert.match(warnings[0] ?? '', /Heartbeat missed its deadline \(0\.1s\).*writing it again at once/);
    assert.match(warnings[1] ?? '', /Heartbeat failed: .*no answer within 100 ms/);
    assert.equal(warnings.length, 2);
  });
});
