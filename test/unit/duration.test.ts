// The one duration grammar, row by row: what parseDuration reads, what the server's schema pattern
// (as Ajv compiles it) lets through, and what an expiry accepts must agree on every row, so that
// agentctl, the schema and the route can never disagree again.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Ajv } from 'ajv';

import { DURATION_PATTERN, formatDuration, parseDuration, parseExpiry } from '../../src/control/duration.js';

/** text, milliseconds (null: not a duration), valid as an expiry (1 s to 30 d). */
const ROWS: [string, number | null, boolean][] = [
  ['90', 90_000, true],
  ['0.5', 500, false],
  ['1', 1_000, true],
  ['90s', 90_000, true],
  ['30m', 1_800_000, true],
  ['2h', 7_200_000, true],
  ['2H', 7_200_000, true],
  ['1D', 86_400_000, true],
  ['1h30m', 5_400_000, true],
  ['1H30M', 5_400_000, true],
  ['250ms', 250, false],
  ['1500MS', 1_500, true],
  ['1.5h', 5_400_000, true],
  ['30d', 2_592_000_000, true],
  ['31d', 2_678_400_000, false],
  ['0', 0, false],
  ['1d1h1m1s1ms', 90_061_001, true],
  ['', null, false],
  ['soon', null, false],
  ['tomorrow', null, false],
  ['-5', null, false],
  ['2 h', null, false],
  ['h2', null, false],
  ['1.5.5', null, false],
  ['10y', null, false],
  ['5s tomorrow', null, false],
  ['1.2345s', null, false],
  ['1234567890', null, false],
  ['1s1s1s1s1s1s', null, false],
];

describe('durations', () => {
  const schemaAccepts = new Ajv().compile({ type: 'string', pattern: DURATION_PATTERN });

  for (const [text, ms, expiry] of ROWS) {
    it(`${JSON.stringify(text)}: ${ms === null ? 'not a duration' : `${ms} ms`}${expiry ? ', an expiry' : ''}`, () => {
      assert.equal(parseDuration(text), ms);
      assert.equal(schemaAccepts(text), ms !== null, 'the schema pattern and the parser agree');
      assert.equal(parseExpiry(text), expiry ? ms : null);
    });
  }

  it('ignores surrounding blanks when parsing (agentctl trims; the schema refuses them)', () => {
    assert.equal(parseDuration(' 2H '), 7_200_000);
    assert.equal(schemaAccepts(' 2H '), false);
  });

  for (const [ms, text] of [
    [5_400_000, '1h30m'],
    [45_000, '45s'],
    [0, '0s'],
    [90_061_000, '1d1h1m1s'],
  ] as const) {
    it(`writes ${ms} ms back as ${text}`, () => assert.equal(formatDuration(ms), text));
  }
});
