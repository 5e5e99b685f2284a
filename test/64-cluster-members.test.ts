/**
 * 64 cluster members: what a node knows of the others' versions (member records' `features`) outlives their
 * absence from the member list (issue 17). A node out of the list (its lease lost in a stall or an etcd cut) still
 * reads message identities when it returns; writing for it without them made its sessions take QoS 2 messages
 * twice (the checker, seed 17: a batch written while the target was briefly out of the list, then sent again).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { DEFAULTS } from '../broker/src/config/defaults.js';
import { connectEtcd } from '../broker/src/cluster/etcd.js';
import { Keys } from '../broker/src/cluster/keys.js';
import { FEATURES, type MemberInfo, Membership } from '../broker/src/cluster/members.js';
import { startEtcd, type RunningEtcd } from './helpers/etcd.js';

let etcd: RunningEtcd;
const log = pino({ level: 'silent' });
const stops: (() => Promise<void>)[] = [];

before(async () => {
  etcd = await startEtcd();
});

after(async () => {
  for (const s of stops) await s();
  await etcd.destroy();
});

function member(id: string, features: readonly string[]): Membership {
  const client = connectEtcd({ ...DEFAULTS.etcd, endpoints: [etcd.endpoint] });
  const self: MemberInfo = { id, name: id, addresses: [], version: 'test', started: Date.now(), clients: 0, features };
  const m = new Membership(client, new Keys(`m${process.pid}`), self, 1, log, () => undefined, () => 0);
  stops.push(async () => {
    await m.stop();
    client.close();
  });
  return m;
}

/** Resolves once `m`'s member list has (or lacks) `id`. */
async function until(what: string, cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!cond()) {
    assert.ok(Date.now() < deadline, `${what} within 10 s`);
    await new Promise((r) => setImmediate(r));
  }
}

test('a node remembers what another announced after it left the member list, and learns its new record when it returns', async () => {
  const a = member('a', FEATURES);
  await a.start();
  const b = member('b', FEATURES);
  await b.start();
  await until('a sees b', () => a.members.has('b'));
  assert.equal(a.reads('b', 'message-id'), true);
  await b.stop();
  await until('b leaves a\'s list', () => !a.members.has('b'));
  assert.equal(a.reads('b', 'message-id'), true, 'still known to read identities while out of the list');
  assert.equal(a.reads('never-seen', 'message-id'), false, 'a node never seen is taken as the oldest version');
  const older = member('b', []);
  await older.start();
  await until('b is back', () => a.members.has('b'));
  assert.equal(a.reads('b', 'message-id'), false, 'b came back as a version without identities');
});
