// The control watcher against a fake store, so each behaviour is driven step by step: its mode
// (an event-driven watch refused → polling → upgraded back; a watch that breaks → polling → back),
// concurrent checks coalesced into one read plus one, each version applied once and in order
// however often and however out of order it is announced, and one log line per distinct problem.

import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';

import type { Logger } from 'pino';

import { ControlWatcher } from '../../src/control/watcher.js';
import { WatchUnavailableError } from '../../src/errors.js';
import type { ControlCommand, ControlState, Store, WatchHandlers } from '../../src/stores/types.js';
import { waitFor } from '../helpers/wait.js';

/** Only what the watcher uses of a store, each call counted. */
class FakeControlStore {
  state: ControlState = {
    command: 'running',
    version: 0,
    timestamp: new Date(),
    reason: null,
    updated_by: 'test',
    on_behalf_of: null,
    expires_at: null,
  };
  versionReads = 0;
  documentReads = 0;
  watchCalls = 0;
  watchesClosed = 0;
  /** How many of the next watchControl calls refuse. */
  refuseWatches = 0;
  /** Set: reads fail with this message. */
  down: string | null = null;
  /** Set: version reads wait for it. */
  hold: Promise<void> | null = null;
  handlers: WatchHandlers | null = null;

  write(command: ControlCommand): number {
    this.state = { ...this.state, command, version: this.state.version + 1, timestamp: new Date() };
    return this.state.version;
  }

  async readControlVersion(): Promise<number> {
    this.versionReads++;
    if (this.hold) await this.hold;
    if (this.down) throw new Error(this.down);
    return this.state.version;
  }

  async readControl(): Promise<ControlState> {
    this.documentReads++;
    if (this.down) throw new Error(this.down);
    return { ...this.state };
  }

  async watchControl(handlers: WatchHandlers) {
    this.watchCalls++;
    if (this.refuseWatches > 0) {
      this.refuseWatches--;
      throw new WatchUnavailableError('fake events', 'refused by the test');
    }
    this.handlers = handlers;
    return {
      mode: 'listen_notify' as const,
      description: 'fake events',
      close: async () => {
        this.watchesClosed++;
        if (this.handlers === handlers) this.handlers = null;
      },
    };
  }

  asStore(): Store {
    return this as unknown as Store;
  }
}

function quietLogger(errors: string[] = []): Logger {
  const nothing = () => undefined;
  return {
    info: nothing,
    warn: nothing,
    debug: nothing,
    error: (message: string) => errors.push(message),
  } as unknown as Logger;
}

describe('control watcher', () => {
  const watchers: ControlWatcher[] = [];
  afterEach(async () => {
    // A watcher left running is a failing test's leftover: every one is stopped.
    await Promise.all(watchers.splice(0).map((w) => w.stop()));
  });

  const watcher = (store: FakeControlStore, options: { eventDriven?: boolean; errors?: string[] } = {}) => {
    const applied: number[] = [];
    const w = new ControlWatcher({
      store: store.asStore(),
      logger: quietLogger(options.errors),
      eventDriven: options.eventDriven ?? true,
      pollingIntervalMs: 20,
      reconcileIntervalMs: 0,
      retryBaseMs: 5,
      retryMaxMs: 5,
      onState: async (state) => {
        applied.push(state.version);
      },
    });
    watchers.push(w);
    return { w, applied };
  };

  it('polls while the event-driven watch is refused, then upgrades back to it', async () => {
    const store = new FakeControlStore();
    store.refuseWatches = 2;
    const { w } = watcher(store);
    await w.start();
    assert.equal(w.status.watchMode, 'polling');
    await waitFor(() => w.status.watchMode === 'listen_notify', { what: 'the upgrade back' });
    assert.equal(store.watchCalls, 3, 'two refusals, then the watch');

    // The watch breaks: polling at once, a command written meanwhile is still applied, then back.
    store.handlers!.onError(new Error('connection lost'));
    assert.equal(w.status.watchMode, 'polling');
    assert.equal(store.watchesClosed, 1);
    store.write('pause');
    await waitFor(() => w.status.appliedVersion === 1, { what: 'the pause applied while polling' });
    await waitFor(() => w.status.watchMode === 'listen_notify', { what: 'the second upgrade' });
    assert.equal(store.watchCalls, 4);

    await w.stop();
    assert.equal(store.handlers, null, 'stop closes the watch');
  });

  it('polls from the start when event-driven watching is off, and never opens a watch', async () => {
    const store = new FakeControlStore();
    const { w, applied } = watcher(store, { eventDriven: false });
    await w.start();
    store.write('pause');
    await waitFor(() => w.status.appliedVersion === 1, { what: 'the pause found by polling' });
    assert.equal(w.status.watchMode, 'polling');
    assert.equal(store.watchCalls, 0);
    assert.deepEqual(applied, [0, 1]);
  });

  it('coalesces concurrent checks into one read plus one for those that asked meanwhile', async () => {
    const store = new FakeControlStore();
    const { w, applied } = watcher(store);
    await w.check();
    assert.deepEqual(applied, [0]);
    const readsBefore = store.versionReads;

    let release!: () => void;
    store.hold = new Promise((resolve) => (release = resolve));
    const checks = [w.check(), w.check(), w.check(), w.check()];
    assert.equal(store.versionReads, readsBefore + 1, 'one read in flight');
    assert.ok(
      checks.every((c) => c === checks[0]),
      'every caller waits for the same read',
    );
    store.hold = null;
    release();
    await Promise.all(checks);
    assert.equal(store.versionReads, readsBefore + 2, 'one more read for the callers that came meanwhile');

    // A version an event names: none read at all when applied already, only the document when newer.
    await w.check(0);
    assert.equal(store.versionReads, readsBefore + 2);
    const documents = store.documentReads;
    await w.check(store.write('pause'));
    assert.equal(store.versionReads, readsBefore + 2);
    assert.equal(store.documentReads, documents + 1);
    assert.deepEqual(applied, [0, 1]);
  });

  it('applies each version once and in order, however it is announced', async () => {
    const store = new FakeControlStore();
    const { w, applied } = watcher(store);
    await w.start();
    await waitFor(() => store.handlers !== null, { what: 'the watch' });
    const wake = (version?: number) =>
      store.handlers!.onWake(version === undefined ? undefined : { version });

    // Step by step: every version is seen, announced twice, with stale and version-less wake-ups.
    for (let i = 0; i < 10; i++) {
      const version = store.write(i % 2 === 0 ? 'pause' : 'running');
      wake(version);
      wake(version);
      wake(Math.max(0, version - 2));
      wake();
      await w.check();
    }
    assert.deepEqual(applied, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);

    // A burst: writes faster than reads; versions may be skipped, never repeated or reordered.
    for (let i = 0; i < 20; i++) {
      const version = store.write('pause');
      wake(version);
      wake(version - 1);
    }
    await waitFor(() => w.status.appliedVersion === 30, { what: 'the last version of the burst' });
    const burst = applied.slice(11);
    assert.ok(
      burst.every((v, i) => v > (i === 0 ? 10 : burst[i - 1]!)),
      `strictly increasing: ${burst.join(', ')}`,
    );
    assert.equal(burst.at(-1), 30);
  });

  it('logs a problem once, however many reads meet it, and again after it was resolved', async () => {
    const store = new FakeControlStore();
    const errors: string[] = [];
    const { w } = watcher(store, { errors });
    await w.check();
    store.down = 'connection refused';
    await w.check();
    await w.check();
    assert.equal(errors.length, 1, errors.join('\n'));
    assert.match(w.status.lastError ?? '', /cannot read the control document: connection refused/);
    store.down = null;
    await w.check();
    assert.equal(w.status.lastError, null);
    store.down = 'connection refused';
    await w.check();
    assert.equal(errors.length, 2);
  });

  it('reads again after a failed read while event-driven, so a version missed while the watch was down arrives', async () => {
    // A silently dead connection: the watch reconnects, but its catch-up read meets a pool
    // connection that still hangs, and the NOTIFY of the pause written meanwhile went nowhere.
    const store = new FakeControlStore();
    const { w, applied } = watcher(store);
    await w.start();
    assert.equal(w.status.watchMode, 'listen_notify');
    store.down = 'no answer within 10000 ms';
    store.write('pause');
    await w.check();
    assert.equal(w.status.appliedVersion, 0);
    store.down = null;
    // No event and no reconcile read (it is off): only the watcher's own retry can read it.
    await waitFor(() => w.status.appliedVersion === 1, { what: 'the pause read again after the failure' });
    assert.deepEqual(applied, [0, 1]);
    assert.equal(w.status.lastError, null);
    assert.equal(w.status.watchMode, 'listen_notify', 'still event-driven: no polling for it');
  });
});
