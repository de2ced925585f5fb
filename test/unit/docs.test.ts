import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { ENV_NAMES, ENV_SCHEMA } from '../../src/config.js';

const read = (path: string) => readFileSync(new URL(`../../../${path}`, import.meta.url), 'utf8');

describe('documentation kept in step with the code', () => {
  it('docs/configuration.md lists every environment variable with its default', () => {
    const doc = read('docs/configuration.md');
    const properties = ENV_SCHEMA.properties as unknown as Record<string, { default?: unknown }>;
    for (const name of ENV_NAMES) {
      const row = doc.split('\n').find((line) => line.startsWith(`| \`${name}\` |`));
      assert.ok(row, `${name} is missing from docs/configuration.md`);
      const def = properties[name]?.default;
      if (def !== undefined)
        assert.ok(row.includes(`\`${String(def)}\``), `${name}: default ${String(def)} not shown`);
    }
  });

  it('docs/api.md documents every route the app registers', async () => {
    const doc = read('docs/api.md');
    const { buildApp } = await import('../../src/http/app.js');
    const { createAgent } = await import('../../src/agent/agent.js');
    const { pino } = await import('pino');
    const app = await buildApp({ agent: createAgent(), logger: pino({ level: 'silent' }), publicConfig: {} });
    await app.ready();
    const spec = app.swagger() as { paths: Record<string, Record<string, unknown>> };
    for (const [path, methods] of Object.entries(spec.paths)) {
      for (const method of Object.keys(methods)) {
        const heading = `${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`;
        assert.ok(doc.includes(heading), `docs/api.md does not document ${heading}`);
      }
    }
    await app.close();
  });
});
