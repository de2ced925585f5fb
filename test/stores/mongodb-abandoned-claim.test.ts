// FINDING of the chaos suite (chaos/scenarios/outage.ts on FerretDB, `npm run chaos`): a MongoDB
// claim interrupted between its two writes strands its documents for an hour. claimBatch first
// inserts the marker `<collection>|<id>|<claim_seq + 1>` into agent_claims, then sets the document
// to processing with `$inc: {claim_seq: 1}`. When the second write never happens (the server went
// away, the process was killed), the marker stays while claim_seq does not move: every later claim
// computes the same marker id, gets a duplicate key and takes the document for someone else's, so
// nobody holds it and nobody can claim it until cleanupMarkers() deletes markers older than
// MARKER_TTL_MS (1 h). This test leaves exactly that state (the marker of a claim that stopped
// there, older than any lease) and expects the document to be claimable again. It is marked todo
// until src/stores/mongodb/documents.ts takes over abandoned markers.

import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';

import { CLAIMS_COLLECTION } from '../../src/stores/mongodb/index.js';
import type { Store } from '../../src/stores/types.js';
import { withDb } from '../helpers/mongodb.js';
import { type TargetDatabase, TARGETS } from '../helpers/targets.js';

const FINDING =
  'src/stores/mongodb/documents.ts claimBatch: a marker left by a claim interrupted before its update blocks the document until the 1 h marker TTL';

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

    it(
      'leaves its documents claimable once the lease it would have had is over',
      { todo: FINDING },
      async () => {
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
        const claimed = await store.claimBatch('live-agent', 10, 60_000);
        assert.deepEqual(
          claimed.map((d) => d.id),
          [id],
          'a pending document nobody holds must be claimable (the marker is older than any lease)',
        );
      },
    );
  });
}
