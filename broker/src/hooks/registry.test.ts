import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IConnectPacket } from 'mqtt-packet';
import { pino } from 'pino';
import { Message } from '../message/message.js';
import { RC } from '../protocol/reason-codes.js';
import { HookRegistry } from './registry.js';
import type { ClientInfo, Hook } from './types.js';

const log = pino({ level: 'silent' });
const client: ClientInfo = { clientId: 'c1', username: 'u', remoteAddress: '127.0.0.1', transport: 'tcp', protocolVersion: 5, certificate: undefined };
const connect: IConnectPacket = { cmd: 'connect', clientId: 'c1' };
const message = new Message('a/b', Buffer.from('x'), 1, false, undefined, 'c1', Date.now());

function registry(hooks: Hook[], auth = false, acl = false): HookRegistry {
  const r = new HookRegistry(log, { authRequired: auth, aclRequired: acl });
  for (const h of hooks) r.add(h);
  return r;
}

test('authenticate: with no hooks, anonymous clients get in unless auth.enable is on', async () => {
  assert.equal((await registry([]).authenticate(client, connect)).rc, RC.SUCCESS);
  assert.equal((await registry([], true).authenticate(client, connect)).rc, RC.NOT_AUTHORIZED);
});

test('authenticate: the first hook that answers decides; abstaining hooks are skipped', async () => {
  const calls: string[] = [];
  const abstain: Hook = { name: 'a', authenticate: () => { calls.push('a'); return undefined; } };
  const deny: Hook = { name: 'b', authenticate: async () => { calls.push('b'); return { ok: false, reasonCode: RC.BAD_USERNAME_OR_PASSWORD }; } };
  const allow: Hook = { name: 'c', authenticate: () => { calls.push('c'); return { ok: true }; } };
  assert.equal((await registry([abstain, deny, allow]).authenticate(client, connect)).rc, RC.BAD_USERNAME_OR_PASSWORD);
  assert.deepEqual(calls, ['a', 'b']);
  assert.equal((await registry([abstain, allow, deny], true).authenticate(client, connect)).rc, RC.SUCCESS);
  const named: Hook = { name: 'n', authenticate: () => ({ ok: true, identity: 'sub-1', expiresAt: 5000 }) };
  assert.deepEqual(await registry([named]).authenticate(client, connect), { rc: RC.SUCCESS, identity: 'sub-1', expiresAt: 5000 }, 'the identity and expiry a hook names travel with the verdict');
});

test('authorizePublish: any denial wins, a reason code is kept, all abstaining follows acl.enable', () => {
  const allow: Hook = { name: 'allow', authorizePublish: () => true };
  const deny: Hook = { name: 'deny', authorizePublish: () => false };
  const quota: Hook = { name: 'quota', authorizePublish: () => RC.QUOTA_EXCEEDED };
  const abstain: Hook = { name: 'abstain', authorizePublish: () => undefined };
  assert.equal(registry([allow, deny]).authorizePublish(client, message), RC.NOT_AUTHORIZED);
  assert.equal(registry([deny, allow]).authorizePublish(client, message), RC.NOT_AUTHORIZED);
  assert.equal(registry([allow, quota]).authorizePublish(client, message), RC.QUOTA_EXCEEDED);
  assert.equal(registry([abstain]).authorizePublish(client, message), RC.SUCCESS);
  assert.equal(registry([abstain], false, true).authorizePublish(client, message), RC.NOT_AUTHORIZED);
  assert.equal(registry([abstain, allow], false, true).authorizePublish(client, message), RC.SUCCESS);
  assert.equal(registry([], false, true).authorizePublish(client, message), RC.NOT_AUTHORIZED);
});

test('authorizeSubscribe: async answers combine like publish ones', async () => {
  const allow: Hook = { name: 'allow', authorizeSubscribe: async () => true };
  const deny: Hook = { name: 'deny', authorizeSubscribe: () => false };
  const sub = { filter: 'a/#', qos: 1 as const };
  assert.equal(await registry([allow]).authorizeSubscribe(client, sub), RC.SUCCESS);
  assert.equal(await registry([allow, deny]).authorizeSubscribe(client, sub), RC.NOT_AUTHORIZED);
});

test('event hooks all run, and a throwing hook neither stops the others nor reaches the caller', () => {
  const seen: string[] = [];
  const bad: Hook = { name: 'bad', onConnected: () => { throw new Error('boom'); }, onPublish: () => { throw new Error('boom'); } };
  const good: Hook = { name: 'good', onConnected: (c) => seen.push(`connected ${c.clientId}`), onPublish: (_c, m) => void seen.push(`publish ${m.topic}`) };
  const r = registry([bad, good]);
  r.connected(client, connect);
  assert.equal(r.publish(client, message), null, 'nobody holds the acknowledgement');
  assert.deepEqual(seen, ['connected c1', 'publish a/b']);
});

test('publish returns the wait of every hook that holds the acknowledgement, all of them together', async () => {
  const releases: (() => void)[] = [];
  const holding = (name: string): Hook => ({ name, onPublish: () => new Promise<void>((resolve) => releases.push(resolve)) });
  const hold = registry([holding('a'), { name: 'quiet', onPublish: () => undefined }, holding('b')]).publish(client, message);
  assert.ok(hold instanceof Promise);
  let done = false;
  void hold.then(() => (done = true));
  releases[0]?.();
  await new Promise((r) => setImmediate(r));
  assert.equal(done, false, 'one of two waits is not enough');
  releases[1]?.();
  await hold;
});

test('hooks that provide no publish listener leave the publish list null (one check on the hot path)', () => {
  const r = registry([{ name: 'auth-only', authenticate: () => undefined }]);
  assert.equal(r.publishListeners, null);
});

test('hooks may claim $ prefixes other than $SYS', () => {
  const r = registry([{ name: 'bridge', claims: ['$queue/'] }]);
  assert.equal(r.claims('$queue/events'), true);
  assert.equal(r.claims('$SYS/broker/uptime'), false);
  assert.equal(r.claims('$other/x'), false);
  assert.throws(() => registry([{ name: 'greedy', claims: ['$SYS/'] }]), /cannot claim/);
});
