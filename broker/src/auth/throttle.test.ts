import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import type { ClientInfo } from '../hooks/types.js';
import { RC } from '../protocol/reason-codes.js';
import { authFailureHook, FailureThrottle, LoginGate, MAX_DELAY_MS } from './throttle.js';

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

test('the hook logs failures without a password, and past the threshold only when the delay grows', () => {
  const records: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void records.push(JSON.parse(s) as Record<string, unknown>) });
  const th = new FailureThrottle({ maxFailures: 2, windowMs: 60000, delayMs: 40, maxDelayMs: 160 });
  const hook = authFailureHook(th, log);
  hook.onAuthFailure?.(client(A), RC.BAD_USERNAME_OR_PASSWORD);
  hook.onAuthFailure?.(client(A), RC.BAD_USERNAME_OR_PASSWORD);
  const failed = (): Record<string, unknown>[] => records.filter((r) => r['msg'] === 'authentication failed');
  assert.equal(failed().length, 2);
  assert.deepEqual(Object.keys(failed()[0] ?? {}).filter((k) => ['clientId', 'username', 'remote', 'reasonCode', 'password'].includes(k)).sort(), ['clientId', 'reasonCode', 'remote', 'username']);
  assert.ok(records.some((r) => r['msg'] === 'login attempts from this address are slowed down' && r['delayMs'] === 40));
  // 80, 160, then capped: a guessing run of 100 more attempts writes two more lines, not a hundred.
  for (let i = 0; i < 100; i++) hook.onAuthFailure?.(client(A), RC.BAD_USERNAME_OR_PASSWORD);
  assert.equal(failed().length, 4);
  hook.onConnected?.(client(A), { cmd: 'connect', clientId: 'c1' });
  assert.equal(th.delayFor(A), 0, 'a login that got through resets the address');
});

test('the login gate: no wait for a clean address; a timer for a slowed one; a cap per slowed address', async () => {
  const th = new FailureThrottle({ maxFailures: 1, windowMs: 60000, delayMs: 40 });
  const gate = new LoginGate(th, 2);
  const live = new AbortController();
  const clean = gate.enter(A, () => live.signal);
  assert.ok(clean !== null && clean.wait === null, 'no failures: go on at once');
  th.recordFailure(A);
  // Measured from before the timer is armed (enter()): from after it, a loaded machine makes the wait look short.
  // libuv's clock has millisecond steps, so a 40 ms timer may end 1 ms early by performance.now().
  const start = performance.now();
  const first = gate.enter(A, () => live.signal);
  const second = gate.enter(A, () => live.signal);
  assert.ok(first?.wait && second?.wait);
  assert.equal(gate.enter(A, () => live.signal), null, 'a third pending login from the slowed address is refused');
  assert.ok(gate.enter(B, () => live.signal) !== null, 'another address is not affected');
  assert.equal(await first.wait, true);
  assert.ok(performance.now() - start >= 39, 'the slowed login waited its delay');
  first.leave();
  first.leave(); // twice is harmless
  assert.equal(gate.pendingFor(A), 1);
  second.leave();
  assert.equal(gate.pendingFor(A), 0);
});

test('the login gate: a client that goes away frees its place at once', async () => {
  const th = new FailureThrottle({ maxFailures: 1, windowMs: 60000, delayMs: 60000 });
  th.recordFailure(A);
  const gate = new LoginGate(th, 1);
  const gone = new AbortController();
  const v = gate.enter(A, () => gone.signal);
  assert.ok(v?.wait);
  assert.equal(gate.enter(A, () => new AbortController().signal), null);
  gone.abort();
  assert.equal(await v.wait, false, 'the wait ends without the minute passing');
  assert.equal(gate.pendingFor(A), 0);
  v.leave();
  assert.equal(gate.pendingFor(A), 0, 'leave() after an abort does not count twice');
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

test('with the throttle off the hook only logs', () => {
  const hook = authFailureHook(new FailureThrottle({ maxFailures: 0, windowMs: 60000, delayMs: 1000 }), pino({ level: 'silent' }));
  assert.equal(hook.authenticate, undefined);
  assert.equal(hook.onConnected, undefined);
  assert.equal(typeof hook.onAuthFailure, 'function');
});
