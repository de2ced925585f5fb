// The in-memory store of the runtime's unit tests passes the suite every real store passes, so
// that what those tests learn from it holds for the real ones.

import { createMemoryStore, type MemoryStore } from '../helpers/memory-store.js';
import { describeStore } from './conformance.js';

describeStore('memory (the unit tests’ fake)', async () => {
  const shared: MemoryStore = createMemoryStore();
  return {
    async open() {
      return shared;
    },
    async manualBump() {
      shared.bumpVersion();
    },
    async setVersion(version: number) {
      shared.setVersion(version);
    },
    async setRawPolicy(version: number, body: Record<string, unknown>) {
      shared.setRawPolicy({ ...body, version, timestamp: new Date().toISOString() });
    },
    async addRawPolicyHistory(entry: Record<string, unknown>) {
      shared.addRawPolicyHistory(entry);
    },
    async cleanup() {},
  };
});
