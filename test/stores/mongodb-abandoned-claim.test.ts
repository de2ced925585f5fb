// FINDING of the chaos suite (chaos/scenarios/outage.ts on FerretDB, `npm run chaos`): a MongoDB
// claim interrupted between its two writes strands its documents for an hour. claimBatch first
// inserts the marker `<collection>|<id>|<claim_seq + 1>` into agent_claims, then sets the document
// to processing with `$inc: {claim_seq: 1}`. When the second write never happens (the server went
// away, the process was killed), the marker stays while claim_seq does not move: every later claim
// computes the same marker id, gets a duplicate key and takes the document for someone else's, so
// nobody holds it and nobody can claim it until cleanupMarkers() deletes markers older than
// MARKER_TTL_MS (1 h). This test leaves exactly that state (the marker of a claim that stopped
// there, older than any lease) and expects the document to be claimable again: claimBatch now takes
// over a marker whose claim can no longer complete (docs/stores.md, "Claims on MongoDB").

import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';

import { CLAIMS_COLLECTION } from '../../src/stores/mongodb/index.js';
import type { Store } from '../../src/stores/types.js';
import { owner } from '../helpers/claims.js';
import { withDb } from '../helpers/mongodb.js';
import { type TargetDatabase, TARGETS } from '../helpers/targets.js';

for (const target of TARGETS.filter((t) => t.name.startsWith('mongodb'))) {
  describe(`an interrupted claim on ${target.name}`, { skip: target.skip ?? false }, () => {
    let db: TargetDatabase;
    let store: Store;

    beforeEach(async () => {
      db = await target.create();
      store = await db.open();
    });

    afterEach(async () => {
      await store.close();
      await db.cleanup();
    });

    it('leaves its documents claimable once the lease it would have had is over', async () => {
      const [id] = await store.insertDocuments([{ order: 1 }]);
      // What placeMarkers() wrote for the dead claimer ten minutes ago; its update never ran.
      await withDb(db.env.MONGODB_URI!, db.env.MONGODB_DATABASE!, (d) =>
        d.collection<{ _id: string; agent: string; at: Date }>(CLAIMS_COLLECTION).insertOne({
          _id: `documents|o:${id}|1`,
          agent: 'killed-agent',
          at: new Date(Date.now() - 600_000),
        }),
      );
      assert.equal((await store.getDocument(id!))?.status, 'pending', 'nobody holds it');
      const claimed = await store.claimBatch(owner('live-agent'), 10, 60_000);
      assert.deepEqual(
        claimed.map((d) => d.id),
        [id],
        'a pending document nobody holds must be claimable (the marker is older than any lease)',
      );
    });

    it('leaves a claim that may still complete alone, and claims the documents behind it', async () => {
      const ids = await store.insertDocuments(Array.from({ length: 12 }, (_, order) => ({ order })));
      const now = Date.now();
      // A live claimer has just won the markers of the first ten and is about to update them.
      await withDb(db.env.MONGODB_URI!, db.env.MONGODB_DATABASE!, (d) =>
        d.collection<{ _id: string; agent: string; at: Date; until: Date }>(CLAIMS_COLLECTION).insertMany(
          ids.slice(0, 10).map((id) => ({
            _id: `documents|o:${id}|1`,
            agent: 'live-claimer',
            at: new Date(now),
            until: new Date(now + 60_000),
          })),
        ),
      );
      const claimed = await store.claimBatch(owner('other-agent'), 10, 60_000);
      assert.deepEqual(
        claimed.map((d) => d.id),
        ids.slice(10),
        'only the two documents no marker holds are claimed, although ten held ones come first',
      );
      for (const id of ids.slice(0, 10)) {
        assert.equal((await store.getDocument(id))?.status, 'pending', `${id} is left to its claimer`);
      }
    });
  });
}
