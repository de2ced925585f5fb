import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { formatTextLine, redactRequestUrl } from '../../src/logging.js';

describe('request URLs in log lines', () => {
  it('hide the values of query parameters that look like credentials', () => {
    assert.equal(
      redactRequestUrl('/api/cluster/pause?reason=deploy&token=abc123&access_token=x&API_KEY=y&wait=true'),
      '/api/cluster/pause?reason=deploy&token=[redacted]&access_token=[redacted]&API_KEY=[redacted]&wait=true',
    );
    assert.equal(redactRequestUrl('/api/x?pass%77ord=hunter2'), '/api/x?pass%77ord=[redacted]');
    assert.equal(redactRequestUrl('/api/x?%E0%A4%A=1&auth=2'), '/api/x?%E0%A4%A=1&auth=[redacted]');
  });

  it('leave other URLs as they are', () => {
    for (const url of ['/health', '/api/cluster/history?limit=5', '/api/x?', '/api/x?flag', '/api/x?a=b=c']) {
      assert.equal(redactRequestUrl(url), url);
    }
  });
});

describe('text log lines', () => {
  it("read as the seed's [LEVEL] message lines", () => {
    assert.equal(
      formatTextLine('{"level":30,"msg":"Agent a started","agent":"a"}'),
      '[INFO] Agent a started',
    );
    assert.equal(formatTextLine('{"level":40,"msg":"slow","ms":5}'), '[WARNING] slow ms=5');
    assert.equal(formatTextLine('not json'), 'not json');
  });
});
