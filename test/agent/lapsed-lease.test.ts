// FINDING of the chaos suite (`npm run chaos` on FerretDB with LEASE_TIMEOUT=2: 41 of 400
// documents processed twice with no agent killed; none with a 10 s lease). An agent whose lease
// renewals fail or come late (a slow store, or one agent cut off from it while the others are
// not) is never told that its claims lapsed: extendLeases() reports nothing, and BatchRun keeps
// running the documents' handlers while another agent, seeing the expired lease, claims and runs
// them too. The holder's own completion is then ignored (it no longer holds the documents), but
// the work was done twice, by two live agents at once. The usual discipline of a lease holder is
// to stop working once its lease may have run out without a renewal; the handler's AbortSignal
// is the way to say so. This test cuts one agent's renewals off and expects its handler to be
// aborted before another agent starts the same document.
// Fixed in src/agent/batch.ts (BatchRun, "store writes one at a time" and "lease lapsed").

import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';

import { StoreUnavailableError } from '../../src/errors.js';
import { createSqliteStore } from '../../src/stores/sqlite/index.js';
import type { Store } from '../../src/stores/types.js';
import { type Sandbox, sandbox } from '../helpers/agents.js';
import { waitFor } from '../helpers/wait.js';

describe('an agent whose lease renewals fail', () => {
  let box: Sandbox;
  beforeEach(async () => {
    box = await sandbox();
  });
  afterEach(async () => {
    await box.cleanup();
  });

  it('stops its handler before another agent takes the document', async () => {
    const cutOff: Store = Object.create(createSqliteStore({ path: box.dbPath })) as Store;
    cutOff.extendLeases = async () => {
      throw new StoreUnavailableError('extending leases', new Error('connection timed out'));
    };
    const first: AbortSignal[] = [];
    const holder = box.agent({
      storeInstance: cutOff,
      leaseTimeoutMs: 1_500,
      handler: (_doc, { signal }) => {
        first.push(signal);
        return new Promise((resolve) => setTimeout(resolve, 4_000));
      },
    });
    await box.store.insertDocuments([{ n: 1 }]);
    await holder.start();
    await waitFor(() => first.length === 1, { what: 'the holder to start the document' });

    let holderStoppedFirst: boolean | null = null;
    const other = box.agent({
      leaseTimeoutMs: 1_500,
      handler: () => {
        holderStoppedFirst = first[0]!.aborted;
      },
    });
    await other.start();
    await waitFor(() => holderStoppedFirst !== null, {
      what: 'the other agent to take the document',
      timeoutMs: 10_000,
    });
    assert.equal(holderStoppedFirst, true, 'both agents were running the document at the same time');
  });
});
