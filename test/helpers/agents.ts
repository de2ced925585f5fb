// In-process agents on a fresh SQLite file, for tests of one agent and of the HTTP API. Every
// agent made here is stopped by cleanup(), which fails the test if one would not stop.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { pino } from 'pino';

import { type Agent, type AgentOptions, createAgent } from '../../src/agent/agent.js';
import { createSqliteStore } from '../../src/stores/sqlite/index.js';
import type { Store } from '../../src/stores/types.js';

export interface Sandbox {
  dir: string;
  dbPath: string;
  /** Another connection to the same file, for assertions. */
  store: Store;
  agent(options?: AgentOptions): Agent;
  cleanup(): Promise<void>;
}

export async function sandbox(): Promise<Sandbox> {
  const dir = mkdtempSync(join(tmpdir(), 'pa-agent-'));
  const dbPath = join(dir, 'store.db');
  const store = createSqliteStore({ path: dbPath });
  await store.init();
  const agents: Agent[] = [];
  return {
    dir,
    dbPath,
    store,
    agent(options = {}) {
      const agent = createAgent({
        store: { kind: 'sqlite', path: dbPath },
        agentId: `agent-${agents.length + 1}`,
        controlFile: join(dir, `control-${agents.length + 1}`),
        pollIntervalMs: 100,
        controlPollingIntervalMs: 200,
        heartbeatIntervalMs: 200,
        logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
        ...options,
      });
      agents.push(agent);
      return agent;
    },
    async cleanup() {
      const stuck: string[] = [];
      await Promise.all(
        agents.map(async (agent) => {
          const stopped = await Promise.race([
            agent.stop().then(() => true),
            new Promise<false>((resolve) => setTimeout(() => resolve(false), 15_000).unref()),
          ]);
          if (!stopped) stuck.push(agent.settings.agentId);
        }),
      );
      await store.close();
      rmSync(dir, { recursive: true, force: true });
      if (stuck.length > 0) throw new Error(`agents that would not stop: ${stuck.join(', ')}`);
    },
  };
}
