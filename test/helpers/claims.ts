// Claim owners and held-document handles for store tests: a claim takes an owner, and every later
// operation on its documents takes (id, token) pairs.

import type { ClaimedDocument, ClaimOwner, HeldDocument } from '../../src/stores/types.js';

/** An owner whose instance id is derived from its name (tests that need two processes pass one). */
export function owner(agentId: string, instanceId = `${agentId}/1`): ClaimOwner {
  return { agentId, instanceId };
}

/** The handles the store acts on: each document's id and its claim's token. */
export function held(documents: ClaimedDocument[]): HeldDocument[] {
  return documents.map(({ id, token }) => ({ id, token }));
}
