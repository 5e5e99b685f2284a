import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULTS } from '../config/defaults.js';
import { RC } from '../protocol/reason-codes.js';
import { ConnectionGuard } from './connection-guard.js';
import { FlappingDetector } from './flapping.js';
import { TokenBucket } from './token-bucket.js';
import { withinTopicLimits } from './topic-limits.js';

test('token bucket: a burst passes, then each token costs 1/rate seconds', () => {
  const b = new TokenBucket(10, 3, 0);
  assert.deepEqual([b.take(0), b.take(0), b.take(0)], [0, 0, 0]);
  assert.equal(b.take(0), 100, 'one token short at 10/s is 100 ms');
  assert.equal(b.take(0), 100, 'a refused take costs nothing');
  assert.equal(b.take(100), 0, 'after the wait the token is there');
  assert.equal(b.take(1000), 0, 'refilled after a second');
  assert.equal(b.full(10_000), true);
});

test('connection guard: total, per-address and rate limits, each released', () => {
  const g = new ConnectionGuard({ ...DEFAULTS.limits, max_connections: 3, max_connections_per_address: 2, connection_rate: 0 });
  assert.equal(g.admit('a', 0), null);
  assert.equal(g.admit('a', 0), null);
  assert.deepEqual(g.admit('a', 0), { rc: RC.QUOTA_EXCEEDED, limit: 'max_connections_per_address' });
  assert.deepEqual(g.admit('b', 0), { rc: RC.QUOTA_EXCEEDED, limit: 'max_connections' });
  g.release('a');
  g.release('a');
  g.release('b');
  assert.equal(g.open, 1);
  assert.equal(g.admit('b', 0), null);

  const r = new ConnectionGuard({ ...DEFAULTS.limits, max_connections: 0, connection_rate: 2 });
  assert.equal(r.admit('x', 0), null);
  assert.equal(r.admit('x', 0), null);
  assert.deepEqual(r.admit('x', 0), { rc: RC.CONNECTION_RATE_EXCEEDED, limit: 'connection_rate' });
  assert.equal(r.admit('y', 0), null, 'another address has its own bucket');
  assert.equal(r.admit('x', 1000), null, 'the rate refills');
});

test('flapping: more than max connections in the window bans for the ban time', () => {
  const f = new FlappingDetector(3, 60, 300);
  assert.deepEqual([1, 2, 3].map((t) => f.banned('c', t)), [false, false, false]);
  assert.equal(f.banned('c', 4), true);
  assert.equal(f.banned('c', 299_000), true, 'still banned');
  assert.equal(f.banned('other', 5), false);
  assert.equal(f.banned('c', 300_005), false, 'ban over');
  assert.equal(new FlappingDetector(0, 60, 300).banned('c', 0), false, 'off when max is 0');
});

test('topic limits count levels and UTF-8 bytes', () => {
  const cases: [string, number, number, boolean][] = [
    ['a/b/c', 3, 100, true],
    ['a/b/c/d', 3, 100, false],
    ['///', 4, 100, true],
    ['////', 4, 100, false],
    ['x'.repeat(10), 128, 10, true],
    ['x'.repeat(11), 128, 10, false],
    ['é'.repeat(5), 128, 10, true], // 10 bytes
    ['é'.repeat(6), 128, 10, false], // 12 bytes in 6 characters
  ];
  for (const [topic, levels, length, ok] of cases) assert.equal(withinTopicLimits(topic, levels, length), ok, topic);
});

test('semaphore: at most `size` jobs run at once, the rest wait in order', async () => {
  const { Semaphore } = await import('./semaphore.js');
  const sem = new Semaphore(2);
  let running = 0;
  let peak = 0;
  const order: number[] = [];
  const gates: (() => void)[] = [];
  const jobs = [0, 1, 2, 3].map((i) => sem.run(async () => {
    running++;
    peak = Math.max(peak, running);
    await new Promise<void>((resolve) => gates.push(resolve));
    order.push(i);
    running--;
  }));
  await new Promise((r) => setImmediate(r));
  assert.equal(gates.length, 2, 'two started');
  assert.equal(sem.queued, 2);
  while (gates.length) {
    gates.shift()?.();
    await new Promise((r) => setImmediate(r));
  }
  await Promise.all(jobs);
  assert.equal(peak, 2);
  assert.deepEqual(order, [0, 1, 2, 3]);
});

test('semaphore: a job whose client went away leaves the queue at once and never runs', async () => {
  const { Semaphore } = await import('./semaphore.js');
  const sem = new Semaphore(1);
  let release: () => void = () => undefined;
  const busy = sem.run(() => new Promise<void>((resolve) => { release = resolve; }));
  const gone = new AbortController();
  let ran = false;
  const abandoned = sem.run(async () => { ran = true; }, () => gone.signal);
  const next = sem.run(async () => 'next');
  assert.equal(sem.queued, 2);
  gone.abort(new Error('client went away'));
  await assert.rejects(abandoned, /client went away/);
  assert.equal(sem.queued, 1, 'its place is given up without waiting for a slot');
  await assert.rejects(sem.run(async () => undefined, () => gone.signal), /client went away/, 'an aborted signal never queues');
  assert.equal(sem.queued, 1);
  release();
  assert.equal(await next, 'next');
  await busy;
  assert.equal(ran, false);
});

test('connection guard: refused connections are kept open to be told why only up to a bound, in all and per address', async () => {
  const { MAX_EXPLAINED, MAX_EXPLAINED_PER_ADDRESS } = await import('./connection-guard.js');
  const g = new ConnectionGuard({ ...DEFAULTS.limits, max_connections: 1, max_connections_per_address: 0, connection_rate: 0 });
  assert.equal(g.admit('10.0.0.1', 0), null);
  const explained: string[] = [];
  for (let i = 0; i < MAX_EXPLAINED_PER_ADDRESS + 1; i++) {
    assert.ok(g.admit('10.0.0.2', 0) !== null);
    if (g.explain('10.0.0.2')) explained.push('10.0.0.2');
    else g.release('10.0.0.2');
  }
  assert.equal(explained.length, MAX_EXPLAINED_PER_ADDRESS, 'one address gets only so many explanations at once');
  let others = 0;
  for (let i = 0; i < MAX_EXPLAINED + 10; i++) {
    const a = `10.1.${i >> 8}.${i & 255}`;
    assert.ok(g.admit(a, 0) !== null);
    if (g.explain(a)) others++;
    else g.release(a);
  }
  assert.equal(others, MAX_EXPLAINED - MAX_EXPLAINED_PER_ADDRESS, 'and all addresses together only so many');
  g.release('10.0.0.2', true);
  assert.ok(g.admit('10.0.0.2', 0) !== null);
  assert.equal(g.explain('10.0.0.2'), true, 'a closed explanation makes room');
  assert.equal(g.open, 1 + MAX_EXPLAINED, 'every admitted connection is counted until released');
});

test('connection guard: addresses of one IPv6 /64 share a limit; a mapped IPv4 address is its IPv4 host', () => {
  const g = new ConnectionGuard({ ...DEFAULTS.limits, max_connections: 0, max_connections_per_address: 2, connection_rate: 0 });
  assert.equal(g.admit('2001:db8:0:1::1', 0), null);
  assert.equal(g.admit('2001:db8:0:1::2', 0), null);
  assert.equal(g.admit('2001:db8:0:1:ffff::3', 0)?.limit, 'max_connections_per_address', 'rotating within the /64 does not help');
  assert.equal(g.admit('2001:db8:0:2::1', 0), null, 'the next /64 is another host');
  assert.equal(g.admit('10.0.0.9', 0), null);
  assert.equal(g.admit('::ffff:10.0.0.9', 0), null);
  assert.equal(g.admit('10.0.0.9', 0)?.limit, 'max_connections_per_address', 'the same host in two spellings');
  g.release('10.0.0.9'); // the refused one (refused connections are counted until released too)
  g.release('::ffff:10.0.0.9');
  assert.equal(g.admit('10.0.0.9', 0), null, 'released in either spelling');
});
