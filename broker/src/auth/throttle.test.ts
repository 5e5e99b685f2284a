import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import type { ClientInfo } from '../hooks/types.js';
import { RC } from '../protocol/reason-codes.js';
import { authFailureHook, FailureThrottle, MAX_DELAY_MS } from './throttle.js';

/** A clock tests move by hand. */
function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => { t += ms; } };
}

const A = '192.0.2.1';
const B = '192.0.2.2';

test('no delay below max_failures; failure_delay at it; doubling per further failure; capped at 30 s', () => {
  const c = clock();
  const th = new FailureThrottle({ maxFailures: 3, windowMs: 60000, delayMs: 1000, now: c.now });
  assert.equal(th.delayFor(A), 0);
  th.recordFailure(A);
  th.recordFailure(A);
  assert.equal(th.delayFor(A), 0, 'two failures: not yet');
  assert.equal(th.recordFailure(A), 3);
  assert.equal(th.delayFor(A), 1000);
  th.recordFailure(A);
  assert.equal(th.delayFor(A), 2000);
  th.recordFailure(A);
  assert.equal(th.delayFor(A), 4000);
  for (let i = 0; i < 20; i++) th.recordFailure(A);
  assert.equal(th.delayFor(A), MAX_DELAY_MS);
  assert.equal(MAX_DELAY_MS, 30000);
  assert.equal(th.delayFor(B), 0, 'other addresses are not affected');
});

test('failures older than the window stop counting', () => {
  const c = clock();
  const th = new FailureThrottle({ maxFailures: 2, windowMs: 10000, delayMs: 500, now: c.now });
  th.recordFailure(A);
  c.advance(6000);
  th.recordFailure(A);
  assert.equal(th.delayFor(A), 500);
  c.advance(4001); // the first failure is now 10.001 s old
  assert.equal(th.delayFor(A), 0);
  assert.equal(th.recordFailure(A), 2);
  assert.equal(th.delayFor(A), 500);
});

test('a successful login resets the address', () => {
  const c = clock();
  const th = new FailureThrottle({ maxFailures: 1, windowMs: 60000, delayMs: 100, now: c.now });
  th.recordFailure(A);
  assert.equal(th.delayFor(A), 100);
  th.reset(A);
  assert.equal(th.delayFor(A), 0);
  assert.equal(th.size, 0);
});

test('max_failures 0 or failure_delay 0 never slow anyone', () => {
  for (const [maxFailures, delayMs] of [[0, 1000], [3, 0]] as const) {
    const th = new FailureThrottle({ maxFailures, windowMs: 60000, delayMs });
    for (let i = 0; i < 10; i++) th.recordFailure(A);
    assert.equal(th.enabled, false);
    assert.equal(th.delayFor(A), 0);
  }
});

test('memory stays bounded: expired addresses are pruned, and the least recently failing beyond the cap', () => {
  const c = clock();
  const th = new FailureThrottle({ maxFailures: 2, windowMs: 1000, delayMs: 100, maxAddresses: 100, now: c.now });
  for (let i = 0; i < 50; i++) th.recordFailure(`10.0.0.${i}`);
  assert.equal(th.size, 50);
  c.advance(1001);
  th.recordFailure(A);
  assert.equal(th.size, 1, 'the 50 expired addresses are gone');
  for (let i = 0; i < 500; i++) th.recordFailure(`10.1.${i >> 8}.${i & 255}`);
  assert.equal(th.size, 100);
  // One address failing a hundred thousand times keeps only the failures that can still change its delay.
  for (let i = 0; i < 100000; i++) th.recordFailure(B);
  assert.equal(th.delayFor(B), MAX_DELAY_MS);
  assert.ok(th.recordFailure(B) < 20);
});

function client(remoteAddress: string): ClientInfo {
  return { clientId: 'c1', username: 'alice', remoteAddress, transport: 'tcp', protocolVersion: 4, certificate: undefined };
}

test('the hook logs every failure without a password, and waits then abstains once the address is throttled', async () => {
  const records: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void records.push(JSON.parse(s) as Record<string, unknown>) });
  const th = new FailureThrottle({ maxFailures: 2, windowMs: 60000, delayMs: 40 });
  const hook = authFailureHook(th, log);
  assert.equal(hook.authenticate?.(client(A), { cmd: 'connect', clientId: 'c1' }), undefined, 'no failures: answers at once');
  hook.onAuthFailure?.(client(A), RC.BAD_USERNAME_OR_PASSWORD);
  hook.onAuthFailure?.(client(A), RC.BAD_USERNAME_OR_PASSWORD);
  const failed = records.filter((r) => r['msg'] === 'authentication failed');
  assert.equal(failed.length, 2);
  assert.deepEqual(Object.keys(failed[0] ?? {}).filter((k) => ['clientId', 'username', 'remote', 'reasonCode'].includes(k)).sort(), ['clientId', 'reasonCode', 'remote', 'username']);
  assert.ok(records.some((r) => r['msg'] === 'login attempts from this address are slowed down' && r['delayMs'] === 40));

  const start = performance.now();
  const answer = await hook.authenticate?.(client(A), { cmd: 'connect', clientId: 'c1' });
  const waited = performance.now() - start;
  assert.equal(answer, undefined, 'abstains after the wait so the real backends decide');
  assert.ok(waited >= 39, `waited only ${waited} ms`);

  hook.onConnected?.(client(A), { cmd: 'connect', clientId: 'c1' });
  assert.equal(th.delayFor(A), 0, 'a login that got through resets the address');
});

test('refusals that are not about credentials (a ban) are neither logged nor counted here', () => {
  const records: string[] = [];
  const th = new FailureThrottle({ maxFailures: 1, windowMs: 60000, delayMs: 100 });
  const hook = authFailureHook(th, pino({ level: 'info' }, { write: (s: string) => void records.push(s) }));
  hook.onAuthFailure?.(client(A), RC.BANNED);
  assert.equal(th.delayFor(A), 0);
  assert.deepEqual(records, []);
  hook.onAuthFailure?.(client(A), RC.NOT_AUTHORIZED);
  assert.equal(th.delayFor(A), 100);
});

test('with the throttle off the hook only logs: it has no authenticate to slow the CONNECT path', () => {
  const hook = authFailureHook(new FailureThrottle({ maxFailures: 0, windowMs: 60000, delayMs: 1000 }), pino({ level: 'silent' }));
  assert.equal(hook.authenticate, undefined);
  assert.equal(typeof hook.onAuthFailure, 'function');
});
