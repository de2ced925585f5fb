import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { ERROR_CODES } from '../../src/errors.js';

describe('error registry', () => {
  const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');

  it('documents every error code in docs/errors.md, with its HTTP status', () => {
    for (const [code, { status }] of Object.entries(ERROR_CODES)) {
      const row = doc.split('\n').find((line) => line.startsWith(`| \`${code}\` |`));
      assert.ok(row, `${code} is not documented in docs/errors.md`);
      if (code !== 'PA_CONFIG_INVALID')
        assert.ok(row.includes(`| ${status} |`), `${code} should say ${status}: ${row}`);
    }
  });

  it('documents no code that does not exist', () => {
    const documented = [...doc.matchAll(/^\| `(PA_[A-Z_]+)` \|/gm)].map((m) => m[1]);
    assert.deepEqual(
      documented.filter((code) => !(code! in ERROR_CODES)),
      [],
    );
  });
});
