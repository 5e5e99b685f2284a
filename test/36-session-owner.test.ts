/**
 * 36 session owner: a session belongs to the identity that made it. With a password file and the ACL rule
 * `users/%u/#`, alice keeps a persistent session (client id X) and a QoS 1 message is queued for her; bob logs in
 * with his own password, client id X and clean start off. He must get a new, empty session (session present 0),
 * none of alice's messages and none of her subscriptions, and alice's session is gone: on one node, across a
 * restart from the store, and across a cluster. Every delivery is read-authorized for the client that receives
 * it: a queued message the ACL no longer lets its owner read stays unsent, and a shared group never hands a message
 * to a member that may not read it. Each case runs for MQTT 3.1.1 and 5.0.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import type mqtt from 'mqtt-packet';
import { startBroker, type RunningBroker } from './helpers/broker.js';
import { ClientPool, VERSIONS, pid, receive, subscribe, text, uid, type Version } from './helpers/c1.js';
import type { RawClient } from './helpers/raw.js';
import { startEtcd, type RunningEtcd } from './helpers/etcd.js';

const T = { timeout: 30000 };

/**
 * users/%u/# for everyone; the admin may publish anywhere. Everyone may subscribe to jobs/#, but bob may not read
 * jobs/secret/... (a deny before the allow: he may subscribe to jobs/#, and secrets never reach him).
 */
const RULES = `rules:
  - {permission: allow, action: all, username: admin, topics: ["#"]}
  - {permission: allow, action: all, topics: ["users/%u/#"]}
  - {permission: deny, action: subscribe, username: bob, topics: ["jobs/secret/#"]}
  - {permission: allow, action: subscribe, topics: ["jobs/#"]}
`;

/** RULES with alice losing jobs/secret/... too. */
const RULES_LATER = RULES.replace('username: bob, topics: ["jobs/secret/#"]', 'username: [alice, bob], topics: ["jobs/secret/#"]');

function secrets(): { passwd: string; acl: string } {
  const dir = mkdtempSync(join(tmpdir(), 'smq-36-'));
  const passwd = join(dir, 'passwd');
  for (const [i, user] of ['alice', 'bob', 'admin'].entries()) {
    const made = spawnSync('mosquitto_passwd', [...(i === 0 ? ['-c'] : []), '-b', passwd, user, `${user}-pw`], { encoding: 'utf8' });
    assert.equal(made.status, 0, `mosquitto_passwd: ${made.stderr}`);
  }
  const acl = join(dir, 'acl.yaml');
  writeFileSync(acl, RULES);
  return { passwd, acl };
}

function config(s: { passwd: string; acl: string }, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { auth: { enable: true, password_file: s.passwd, max_failures: 0 }, acl: { enable: true, file: s.acl }, ...extra };
}

/** CONNECT fields of a user: persistent (clean start off, a long session expiry for v5). */
function as(user: string, clientId: string, v: Version): Partial<mqtt.IConnectPacket> {
  return {
    clientId, clean: false, username: user, password: Buffer.from(`${user}-pw`),
    ...(v === 5 ? { properties: { sessionExpiryInterval: 3600 } } : {}),
  };
}

/** A normal DISCONNECT, and the close after it. */
async function leave(c: RawClient): Promise<void> {
  c.send({ cmd: 'disconnect' });
  await c.closed;
}

/** Publishes at QoS 1 as the admin and waits for the PUBACK. */
async function publish(pool: ClientPool, port: number, v: Version, topic: string, payload: string): Promise<void> {
  const { client } = await pool.connect(port, v, { username: 'admin', password: Buffer.from('admin-pw') });
  const messageId = pid();
  client.send({ cmd: 'publish', topic, payload, qos: 1, messageId, dup: false, retain: false });
  const ack = (await client.next('puback')) as mqtt.IPubackPacket;
  assert.equal(ack.messageId, messageId);
  await leave(client);
}

/** The next PUBLISH `c` gets is `payload` (and so nothing it should not have got came before it). */
async function nextIs(c: RawClient, payload: string): Promise<void> {
  assert.equal(text(await receive(c)), payload);
}

/** Alice makes her session on client id X, subscribed to users/alice/#, and a message is queued for her. */
async function aliceAway(pool: ClientPool, port: number, v: Version, x: string, queued: string): Promise<void> {
  const { client: alice } = await pool.connect(port, v, as('alice', x, v));
  assert.deepEqual((await subscribe(alice, [{ topic: 'users/alice/#', qos: 1 }])).granted, [1]);
  await leave(alice);
  await publish(pool, port, v, 'users/alice/inbox', queued);
}

/** Bob resumes client id X: a new session, nothing of alice's; then a message of his own is what he gets. */
async function bobGetsNothingOfAlices(pool: ClientPool, port: number, v: Version, x: string): Promise<void> {
  const { client: bob, connack } = await pool.connect(port, v, as('bob', x, v));
  assert.equal(connack.sessionPresent, false, 'another identity gets a new session');
  assert.deepEqual((await subscribe(bob, [{ topic: 'users/bob/#', qos: 1 }])).granted, [1]);
  const mine = uid('for-bob');
  await publish(pool, port, v, 'users/bob/inbox', mine);
  await nextIs(bob, mine);
  await leave(bob);
}

describe('36 session owner', () => {
  const s = secrets();
  let broker: RunningBroker;
  const pool = new ClientPool();

  before(async () => { broker = await startBroker({ config: config(s) }); });
  after(async () => { await broker?.stop(); });
  afterEach(() => pool.closeAll());

  for (const v of VERSIONS) {
    it(`[v${v}] alice resumes her own session and gets what was queued`, T, async () => {
      const x = uid('x');
      const queued = uid('for-alice');
      await aliceAway(pool, broker.port, v, x, queued);
      const { client: alice, connack } = await pool.connect(broker.port, v, as('alice', x, v));
      assert.equal(connack.sessionPresent, true);
      await nextIs(alice, queued);
    });

    it(`[v${v}] bob with alice's client id gets a new, empty session; alice's is discarded`, T, async () => {
      const x = uid('x');
      await aliceAway(pool, broker.port, v, x, uid('for-alice'));
      await bobGetsNothingOfAlices(pool, broker.port, v, x);
      // Bob's session now holds X; alice comes back to a new one too, without her subscriptions or message.
      const { client: alice, connack } = await pool.connect(broker.port, v, as('alice', x, v));
      assert.equal(connack.sessionPresent, false);
      await subscribe(alice, [{ topic: 'users/alice/#', qos: 1 }]);
      const marker = uid('marker');
      await publish(pool, broker.port, v, 'users/alice/inbox', marker);
      await nextIs(alice, marker);
    });

    it(`[v${v}] a queued message the ACL no longer lets its owner read is not sent when she comes back`, T, async () => {
      const x = uid('x');
      const { client: alice } = await pool.connect(broker.port, v, as('alice', x, v));
      await subscribe(alice, [{ topic: 'jobs/#', qos: 1 }]);
      await leave(alice);
      await publish(pool, broker.port, v, 'jobs/secret/1', uid('secret'));
      const since = broker.logs.length;
      writeFileSync(s.acl, RULES_LATER);
      await broker.waitForLog((r) => r['msg'] === 'acl reloaded' && broker.logs.indexOf(r) >= since, 10000);
      try {
        const { client: back, connack } = await pool.connect(broker.port, v, as('alice', x, v));
        assert.equal(connack.sessionPresent, true);
        const open = uid('open');
        await publish(pool, broker.port, v, 'jobs/open/1', open);
        await nextIs(back, open);
      } finally {
        const restored = broker.logs.length;
        writeFileSync(s.acl, RULES);
        await broker.waitForLog((r) => r['msg'] === 'acl reloaded' && broker.logs.indexOf(r) >= restored, 10000);
      }
    });

    it(`[v${v}] a shared group never gives a message to a member that may not read it`, T, async () => {
      const group = `$share/${uid('g')}/jobs/#`;
      const { client: alice } = await pool.connect(broker.port, v, as('alice', uid('a'), v));
      const { client: bob } = await pool.connect(broker.port, v, as('bob', uid('b'), v));
      assert.deepEqual((await subscribe(alice, [{ topic: group, qos: 1 }])).granted, [1]);
      assert.deepEqual((await subscribe(bob, [{ topic: group, qos: 1 }])).granted, [1]);
      // Round robin would give every other one to bob: all go to alice, none is lost.
      const secrets = Array.from({ length: 6 }, () => uid('secret'));
      for (const p of secrets) await publish(pool, broker.port, v, 'jobs/secret/1', p);
      for (const p of secrets) await nextIs(alice, p);
      // Two open jobs: one for each member; what bob gets first is an open one.
      for (let i = 0; i < 2; i++) await publish(pool, broker.port, v, 'jobs/open/1', uid('open'));
      assert.match(text(await receive(bob)), /^open-/, 'bob got none of the secrets');
    });
  }

  it('ownership survives a restart from the store: bob still gets a new session', T, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'smq-36-store-'));
    let b = await startBroker({ config: config(s, { store: { dir } }) });
    try {
      const x = uid('x');
      await aliceAway(pool, b.port, 5, x, uid('for-alice'));
      assert.equal(await b.stop('SIGKILL'), null);
      b = await startBroker({ config: config(s, { store: { dir } }) });
      await bobGetsNothingOfAlices(pool, b.port, 5, x);
    } finally {
      await b.stop();
    }
  });

  describe('in a cluster', () => {
    let etcd: RunningEtcd;
    const nodes: RunningBroker[] = [];
    before(async () => {
      etcd = await startEtcd();
      const cluster = `o${process.pid}`;
      for (const id of ['n1', 'n2']) {
        nodes.push(await startBroker({
          config: config(s, { cluster, broker: id, etcd: { endpoints: [etcd.endpoint], lease_ttl: 5 }, store: { dir: mkdtempSync(join(tmpdir(), `smq-36-${id}-`)) } }),
          timeoutMs: 30000,
        }));
      }
    });
    after(async () => {
      for (const n of nodes) await n.stop();
      await etcd?.destroy();
    });

    for (const v of VERSIONS) {
      it(`[v${v}] alice's session on n1 is not handed to bob on n2`, T, async () => {
        const [n1, n2] = nodes as [RunningBroker, RunningBroker];
        const x = uid('x');
        await aliceAway(pool, n1.port, v, x, uid('for-alice'));
        await bobGetsNothingOfAlices(pool, n2.port, v, x);
        const { connack } = await pool.connect(n1.port, v, as('alice', x, v));
        assert.equal(connack.sessionPresent, false, 'and alice\'s old session is gone cluster-wide');
      });
    }
  });
});
