// HTTP sees an agent only through the control plane and its read-only view (src/agent/view.ts):
// no file under src/http/ may import src/agent/agent.ts, directly or through another file of ours,
// `import type` included. A route that needs more of the agent adds it to the view.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Agent, createAgent } from '../../src/agent/agent.js';
import { importGraph, repositoryRoot } from '../helpers/import-graph.js';

const AGENT = 'src/agent/agent.ts';

/** For each file under `folder`, the first import path that reaches `target`, if any. */
function pathsTo(graph: Map<string, string[]>, folder: string, target: string): string[] {
  const found: string[] = [];
  for (const start of [...graph.keys()].filter((f) => f.startsWith(folder)).sort()) {
    const previous = new Map<string, string | null>([[start, null]]);
    const queue = [start];
    while (queue.length > 0) {
      const file = queue.shift()!;
      if (file === target) {
        const path: string[] = [];
        for (let at: string | null = file; at !== null; at = previous.get(at) ?? null) path.unshift(at);
        found.push(path.join(' → '));
        break;
      }
      for (const next of graph.get(file) ?? []) {
        if (previous.has(next)) continue;
        previous.set(next, file);
        queue.push(next);
      }
    }
  }
  return found;
}

describe('the HTTP layer and the agent', () => {
  const graph = importGraph(repositoryRoot());

  it('finds an import path when there is one', () => {
    const sample = new Map([
      ['src/http/a.ts', ['src/http/b.ts']],
      ['src/http/b.ts', ['src/metrics.ts']],
      ['src/metrics.ts', [AGENT]],
      ['src/http/c.ts', ['src/agent/view.ts']],
      [AGENT, ['src/agent/view.ts']],
    ]);
    assert.deepEqual(pathsTo(sample, 'src/http/', AGENT), [
      `src/http/a.ts → src/http/b.ts → src/metrics.ts → ${AGENT}`,
      `src/http/b.ts → src/metrics.ts → ${AGENT}`,
    ]);
  });

  it('reads the routes and what they import', () => {
    const routes = [...graph.keys()].filter((f) => f.startsWith('src/http/routes/'));
    assert.ok(routes.length >= 6, `${routes.length} route files`);
    assert.ok(graph.get('src/http/types.ts')?.includes('src/agent/view.ts'), 'types.ts imports the view');
    assert.ok(graph.has(AGENT));
  });

  it('no file under src/http/ imports src/agent/agent.ts, directly or not', () => {
    const paths = pathsTo(graph, 'src/http/', AGENT);
    assert.deepEqual(paths, [], `src/http/ reaches the Agent:\n  ${paths.join('\n  ')}`);
  });

  it("an agent's view leads nowhere back to the Agent object", () => {
    const agent = createAgent();
    const { view } = agent;
    assert.ok(!(view instanceof Agent));
    assert.ok(Object.isFrozen(view));
    for (const key of Object.keys(view)) {
      if (key === 'store') continue; // not opened before start(): it throws PA_STORE_UNAVAILABLE
      const value: unknown = (view as unknown as Record<string, unknown>)[key];
      assert.notEqual(value, agent, `view.${key} is the agent`);
      assert.ok(!(value instanceof Agent), `view.${key} is an Agent`);
    }
    assert.equal(view.state, agent.state);
    assert.equal(view.settings.agentId, agent.settings.agentId);
    assert.throws(() => view.store, { code: 'PA_STORE_UNAVAILABLE' });
  });
});
