// One agent process whose clock is two minutes ahead, moved honestly by libfaketime (LD_PRELOAD:
// Date.now, SQLite's own `now` and every other clock read of that process; the kernel's file
// timestamps stay true), sharing a SQLite file with one whose clock is right. Issue 13's target:
// no document runs twice, no agent is ever shown lost, and the registry shows the offset.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { afterEach, beforeEach, describe, it } from 'node:test';

import type { Store } from '../../src/stores/types.js';
import { Fleet } from '../helpers/processes.js';
import { sqliteTarget, type TargetDatabase } from '../helpers/targets.js';
import { waitFor } from '../helpers/wait.js';

const LIBFAKETIME = [
  '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1',
  '/usr/lib/faketime/libfaketime.so.1',
].find((p) => existsSync(p));
const OFFSET_S = 120;

interface AgentsBody {
  agents: { agent_id: string; state: string; clock_offset_ms?: number }[];
}

describe('one agent process with its clock 2 minutes ahead (sqlite, libfaketime)', () => {
  let db: TargetDatabase;
  let store: Store;
  let fleet: Fleet;

  beforeEach(async () => {
    db = await sqliteTarget.create();
    store = await db.open();
    fleet = new Fleet(db.env);
  });

  afterEach(async () => {
    try {
      await fleet.stopAll();
    } finally {
      await store.close();
      await db.cleanup();
    }
  });

  it('runs every document once, never shows an agent lost, and reports the offset', async () => {
    assert.ok(LIBFAKETIME, 'libfaketime is needed to move one process clock: apt-get install -y faketime');
    // A lease well under the offset: read by the wrong clock, every lease would look expired.
    const common = { LEASE_TIMEOUT: '20', HANDLER_DELAY_MS: '150', CONCURRENCY: '4' };
    const right = await fleet.start(common, 'right');
    const ahead = await fleet.start(
      {
        ...common,
        LD_PRELOAD: LIBFAKETIME,
        FAKETIME: `+${OFFSET_S}s`,
        FAKETIME_DONT_FAKE_MONOTONIC: '1',
      },
      'ahead',
    );
    // The shim moved that process's clock: it says so itself.
    await waitFor(
      () => /\[Clock\] This agent's clock is 1(19|20|21)\.\ds ahead of the store's/.test(ahead.output()),
      {
        what: "the ahead agent's [Clock] warning",
      },
    );
    assert.doesNotMatch(right.output(), /\[Clock\]/);

    const states: string[] = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        for (const agent of [right, ahead]) {
          const { body } = await agent
            .get<AgentsBody>('/api/cluster/agents')
            .catch(() => ({ body: { agents: [] } }));
          for (const a of body.agents) states.push(`${a.agent_id}:${a.state}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();

    const response = await fetch(`${right.url}/api/documents`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(Array.from({ length: 40 }, (_, n) => ({ n }))),
    });
    assert.equal(response.status, 201);
    await waitFor(async () => (await store.countDocuments()).processed === 40, {
      what: '40 documents processed',
      timeoutMs: 60_000,
    });
    watching = false;
    await watcher;

    const records = await fleet.processedRecords();
    assert.equal(records.length, 40, 'each document ran once: no re-runs');
    assert.equal(new Set(records.map((r) => r.id)).size, 40);
    assert.ok(new Set(records.map((r) => r.agent)).size === 2, 'both agents took part');
    const page = await store.listDocuments({ status: 'processed', limit: 100 });
    assert.ok(
      page.documents.every((d) => d.attempts === 0),
      'no attempt counted as a crash',
    );
    assert.ok(states.length > 0, 'the registry was read while the documents ran');
    assert.ok(
      !states.some((s) => s.endsWith(':lost')),
      `no agent shown lost: ${[...new Set(states)].join(', ')}`,
    );

    const { body } = await right.get<AgentsBody>('/api/cluster/agents');
    const offsets = new Map(body.agents.map((a) => [a.agent_id, a.clock_offset_ms]));
    const aheadMs = offsets.get('ahead');
    assert.ok(
      typeof aheadMs === 'number' && Math.abs(aheadMs - OFFSET_S * 1000) < 2_000,
      `ahead: ${aheadMs}`,
    );
    const rightMs = offsets.get('right');
    assert.ok(typeof rightMs === 'number' && Math.abs(rightMs) < 1_000, `right: ${rightMs}`);
  });
});
