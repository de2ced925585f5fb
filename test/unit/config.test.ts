import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { loadConfig, publicConfig, redactUrl } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return (error.details?.problems as string[]) ?? [];
  }
  assert.fail('expected a ConfigError');
}

describe('configuration', () => {
  it('needs nothing: the embedded store on port 8000 with the documented defaults', () => {
    const config = loadConfig({});
    assert.equal(config.port, 8000);
    assert.deepEqual(config.store, { kind: 'sqlite', path: 'data/pulling-agent.db' });
    assert.equal(config.distributedControl, true);
    assert.equal(config.eventDriven, true);
    assert.equal(config.controlPollingIntervalMs, 10_000);
    assert.equal(config.pollIntervalMs, 5_000);
    assert.equal(config.batchSize, 100);
    assert.equal(config.concurrency, 1);
    assert.equal(config.maxRetries, 3);
    assert.equal(config.shutdownTimeoutMs, 30_000);
    assert.equal(config.heartbeatIntervalMs, 5_000);
    assert.equal(config.controlFile, '/tmp/control/state');
    assert.ok(Object.isFrozen(config));
  });

  it('reads every variable, with fractions of seconds and boolean words', () => {
    const config = loadConfig({
      PORT: '9001',
      CONTROL_POLLING_INTERVAL: '0.5',
      ENABLE_CHANGE_STREAMS: 'false',
      ENABLE_DISTRIBUTED_CONTROL: 'no',
      BATCH_SIZE: '7',
      AGENT_ID: 'pod-1',
      DATA_DIR: '/var/lib/pa',
    });
    assert.equal(config.port, 9001);
    assert.equal(config.controlPollingIntervalMs, 500);
    assert.equal(config.eventDriven, false);
    assert.equal(config.distributedControl, false);
    assert.equal(config.batchSize, 7);
    assert.equal(config.agentId, 'pod-1');
    assert.deepEqual(config.store, { kind: 'sqlite', path: '/var/lib/pa/pulling-agent.db' });
  });

  it('treats an empty variable as unset, never as 0', () => {
    assert.equal(loadConfig({ BATCH_SIZE: '', PORT: ' ' }).batchSize, 100);
  });

  it('names every bad variable and what it allows, all at once', () => {
    const found = problems({
      BATCH_SIZE: 'abc',
      ENABLE_CHANGE_STREAMS: 'maybe',
      LOG_LEVEL: 'loud',
      PORT: '70000',
    });
    assert.equal(found.length, 4);
    assert.ok(found.some((p) => p === 'BATCH_SIZE="abc" must be a whole number from 1 to 10000'));
    assert.ok(found.some((p) => p === 'ENABLE_CHANGE_STREAMS="maybe" must be true or false'));
    assert.ok(found.some((p) => p.startsWith('LOG_LEVEL="loud" must be fatal, error, warn')));
    assert.ok(found.some((p) => p.startsWith('PORT="70000" must be a whole number from 0 to 65535')));
    assert.ok(
      problems({ CONTROL_POLLING_INTERVAL: '0' })[0]?.startsWith(
        'CONTROL_POLLING_INTERVAL="0" must be a number of seconds',
      ),
    );
    assert.ok(problems({ BATCH_SIZE: '1.5' })[0]?.startsWith('BATCH_SIZE="1.5"'));
  });

  it('selects the store from the URL and its aliases', () => {
    assert.equal(loadConfig({ STORE_URL: 'postgres://u:p@h/db' }).store.kind, 'postgres');
    assert.equal(loadConfig({ DATABASE_URL: 'postgresql://h/db' }).store.kind, 'postgres');
    assert.equal(loadConfig({ MONGODB_URI: 'mongodb://h:27017/app' }).store.kind, 'mongodb');
    assert.equal(loadConfig({ STORE_URL: 'mongodb+srv://cluster/app' }).store.kind, 'mongodb');
    assert.deepEqual(loadConfig({ STORE_URL: 'sqlite:/tmp/x.db' }).store, {
      kind: 'sqlite',
      path: '/tmp/x.db',
    });
    assert.match(
      problems({ STORE_URL: 'redis://user:secret@h' })[0] ?? '',
      /STORE_URL=redis:\/\/user:\*\*\*@h.*must start with sqlite:/,
    );
    assert.match(problems({ STORE_URL: 'sqlite:' })[0] ?? '', /needs a file path/);
  });

  it('never shows a password in /api/config or in an error', () => {
    const config = loadConfig({ STORE_URL: 'postgres://admin:s3cret@db:5432/app' });
    const shown = JSON.stringify(publicConfig(config));
    assert.ok(!shown.includes('s3cret'), shown);
    assert.ok(shown.includes('admin:***@db'));
    assert.equal(redactUrl('mongodb://u:pw@h/db'), 'mongodb://u:***@h/db');
    assert.ok(!problems({ STORE_URL: 'ftp://u:s3cret@h' }).join().includes('s3cret'));
  });
});
