import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { formatDuration, parseDuration } from '../../src/control/duration.js';

describe('durations', () => {
  it('reads seconds and unit suffixes, alone or combined', () => {
    assert.equal(parseDuration('90'), 90_000);
    assert.equal(parseDuration('0.5'), 500);
    assert.equal(parseDuration('90s'), 90_000);
    assert.equal(parseDuration('30m'), 1_800_000);
    assert.equal(parseDuration('2h'), 7_200_000);
    assert.equal(parseDuration('1d'), 86_400_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration(' 2H '), 7_200_000);
    assert.equal(parseDuration('250ms'), 250);
  });

  it('refuses anything else', () => {
    for (const bad of ['', 'soon', '-5', '2 h', 'h2', '1.5.5', '10y', '5s tomorrow']) {
      assert.equal(parseDuration(bad), null, bad);
    }
  });

  it('writes durations back', () => {
    assert.equal(formatDuration(5_400_000), '1h30m');
    assert.equal(formatDuration(45_000), '45s');
    assert.equal(formatDuration(0), '0s');
    assert.equal(formatDuration(90_061_000), '1d1h1m1s');
  });
});
