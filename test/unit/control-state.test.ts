import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { InvalidControlStateError } from '../../src/errors.js';
import { parseControlState, parseControlVersion, tryParseControlState } from '../../src/model/control.js';

const good = {
  command: 'pause',
  version: 3,
  timestamp: '2026-01-11T10:30:00Z',
  reason: 'r',
  updated_by: 'admin',
};

describe('control document parsing', () => {
  it('accepts a well-formed document, with versions as numbers, numeric strings, bigints or Longs', () => {
    assert.equal(parseControlState(good).version, 3);
    assert.equal(parseControlState({ ...good, version: '12' }).version, 12);
    assert.equal(parseControlState({ ...good, version: 12n }).version, 12);
    assert.equal(parseControlState({ ...good, version: { toNumber: () => 13 } }).version, 13);
    assert.equal(parseControlState({ ...good, reason: undefined }).reason, null);
    assert.ok(parseControlState({ ...good, timestamp: new Date() }).timestamp instanceof Date);
  });

  for (const [what, doc, pattern] of [
    ['a missing document', null, /missing/],
    ['a non-object', 'pause', /not an object/],
    [
      'an unknown command',
      { ...good, command: 'explode' },
      /command "explode" is not one of running, pause, shutdown/,
    ],
    ['a command of the wrong type', { ...good, command: 1 }, /command 1 is not one of/],
    ['a missing version', { ...good, version: undefined }, /version "missing"/],
    ['a negative version', { ...good, version: -1 }, /version "-1"/],
    ['a fractional version', { ...good, version: 1.5 }, /version "1.5"/],
    ['a string version', { ...good, version: 'ten' }, /version "ten"/],
    ['a bad timestamp', { ...good, timestamp: 'yesterday' }, /timestamp/],
    ['a numeric reason', { ...good, reason: 5 }, /reason/],
    ['a missing updated_by', { ...good, updated_by: undefined }, /updated_by/],
  ] as const) {
    it(`rejects ${what} with a message naming the problem`, () => {
      assert.throws(
        () => parseControlState(doc),
        (error: unknown) => error instanceof InvalidControlStateError && pattern.test(error.message),
      );
      assert.equal(tryParseControlState(doc), null);
    });
  }

  it('reads the version alone', () => {
    assert.equal(parseControlVersion({ version: 4 }), 4);
    assert.throws(() => parseControlVersion({ version: 'x' }), InvalidControlStateError);
    assert.throws(() => parseControlVersion(undefined), InvalidControlStateError);
  });
});
