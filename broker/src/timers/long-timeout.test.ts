import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { LongTimeout, MAX_TIMEOUT_MS } from './long-timeout.js';

const DAY = 86_400_000;

describe('timers/long-timeout', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_700_000_000_000 }));
  afterEach(() => mock.timers.reset());

  it('waits a delay past 2^31-1 ms in full (a plain setTimeout would fire at once)', () => {
    let fired = 0;
    const t = new LongTimeout(() => fired++, 30 * DAY);
    mock.timers.tick(1);
    assert.equal(fired, 0);
    mock.timers.tick(MAX_TIMEOUT_MS);
    assert.equal(fired, 0, 'still waiting after the first hop of 24.8 days');
    mock.timers.tick(30 * DAY - MAX_TIMEOUT_MS - 2);
    assert.equal(fired, 0);
    mock.timers.tick(1);
    assert.equal(fired, 1);
    assert.equal(t.deadline, 1_700_000_000_000 + 30 * DAY);
  });

  it('the longest MQTT interval, 2^32-1 seconds, is 136 years away, not now', () => {
    let fired = 0;
    new LongTimeout(() => fired++, 0xffffffff * 1000);
    for (let i = 0; i < 100; i++) mock.timers.tick(MAX_TIMEOUT_MS);
    assert.equal(fired, 0);
  });

  it('short delays fire once, clear() cancels, 0 fires at once', () => {
    let fired = 0;
    new LongTimeout(() => fired++, 50);
    const cancelled = new LongTimeout(() => fired += 10, 50);
    cancelled.clear();
    mock.timers.tick(50);
    assert.equal(fired, 1);
    new LongTimeout(() => fired++, 0);
    mock.timers.tick(0);
    assert.equal(fired, 2);
    const long = new LongTimeout(() => fired += 100, 40 * DAY);
    mock.timers.tick(MAX_TIMEOUT_MS + 1);
    long.clear();
    mock.timers.tick(40 * DAY);
    assert.equal(fired, 2, 'cleared between hops');
  });
});
