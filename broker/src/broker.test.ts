/**
 * In-process integration tests: a real Broker, clients on in-memory duplex streams. They look at state the
 * black-box tests cannot see (windows, queues, counters) without sockets or child processes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IPublishPacket } from 'mqtt-packet';
import { pino } from 'pino';
import { Broker } from './broker.js';
import { DEFAULTS } from './config/defaults.js';
import type { Config, MqttConfig } from './config/types.js';
import { TestClient } from './testing/client.js';

function broker(mqtt: Partial<MqttConfig> = {}): Broker {
  const config: Config = { ...DEFAULTS, sys_interval: 0, mqtt: { ...DEFAULTS.mqtt, ...mqtt } };
  return new Broker(config, pino({ level: 'silent' }), 'test');
}

const publish = (topic: string, qos: 0 | 1 | 2, messageId?: number, payload = 'x'): IPublishPacket =>
  ({ cmd: 'publish', topic, payload: Buffer.from(payload), qos, retain: false, dup: false, messageId });

test('the outgoing in-flight window holds at max_inflight until acknowledgements free it', async () => {
  const b = broker({ max_inflight: 2 });
  const sub = new TestClient(b, 4);
  await sub.connect('sub');
  sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 't', qos: 1 }] });
  await sub.until((r) => r.some((p) => p.cmd === 'suback'));
  const pub = new TestClient(b, 4);
  await pub.connect('pub');
  for (let i = 1; i <= 5; i++) pub.send(publish('t', 1, i, String(i)));
  await pub.until((r) => r.filter((p) => p.cmd === 'puback').length === 5);
  await sub.until((r) => r.filter((p) => p.cmd === 'publish').length === 2);
  assert.equal(b.sessions.get('sub')?.queue.length, 3, 'three wait in the queue');
  const first = sub.all('publish')[0] as IPublishPacket;
  sub.send({ cmd: 'puback', messageId: first.messageId });
  await sub.until((r) => r.filter((p) => p.cmd === 'publish').length === 3);
  assert.deepEqual(sub.all('publish').map((p) => String(p.payload)), ['1', '2', '3'], 'order kept');
  await b.close(100);
});

test('a full session queue drops new messages and counts them by reason', async () => {
  const b = broker({ max_inflight: 1, max_queued: 2 });
  const sub = new TestClient(b, 5);
  await sub.connect('sub', { clean: false, properties: { sessionExpiryInterval: 60 } });
  sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 't', qos: 1 }] });
  await sub.until((r) => r.some((p) => p.cmd === 'suback'));
  const pub = new TestClient(b, 5);
  await pub.connect('pub');
  for (let i = 1; i <= 6; i++) pub.send(publish('t', 1, i));
  await pub.until((r) => r.filter((p) => p.cmd === 'puback').length === 6);
  // one in flight, two queued, three dropped
  assert.equal(b.stats.dropsByReason.get('queue_full'), 3);
  assert.equal(b.stats.messagesDropped, 3);
  await b.close(100);
});

test('a shared-group message unacknowledged by a member that leaves goes to another member', async () => {
  const b = broker();
  const members = [new TestClient(b, 4), new TestClient(b, 4)];
  for (const [i, m] of members.entries()) {
    await m.connect(`m${i}`);
    m.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/g/jobs', qos: 1 }] });
    await m.until((r) => r.some((p) => p.cmd === 'suback'));
  }
  const pub = new TestClient(b, 4);
  await pub.connect('pub');
  pub.send(publish('jobs', 1, 1, 'job-1'));
  await pub.until((r) => r.some((p) => p.cmd === 'puback'));
  const holder = members.find((m) => m.all('publish').length === 1);
  const other = members.find((m) => m !== holder);
  assert.ok(holder && other, 'exactly one member got the job');
  holder.stream.destroy(); // leaves without PUBACK
  await other.until((r) => r.some((p) => p.cmd === 'publish'));
  assert.equal(String(other.all('publish')[0]?.payload), 'job-1');
  await b.close(100);
});

test('a will goes out when the connection drops, and not after DISCONNECT', async () => {
  const b = broker();
  const watcher = new TestClient(b, 4);
  await watcher.connect('w');
  watcher.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'wills/#', qos: 0 }] });
  await watcher.until((r) => r.some((p) => p.cmd === 'suback'));
  const polite = new TestClient(b, 4);
  await polite.connect('polite', { will: { topic: 'wills/polite', payload: Buffer.from('gone'), qos: 0, retain: false } });
  polite.send({ cmd: 'disconnect' });
  await polite.until(() => polite.closed);
  const rude = new TestClient(b, 4);
  await rude.connect('rude', { will: { topic: 'wills/rude', payload: Buffer.from('gone'), qos: 0, retain: false } });
  rude.stream.destroy();
  await watcher.until((r) => r.some((p) => p.cmd === 'publish'));
  assert.deepEqual(watcher.all('publish').map((p) => p.topic), ['wills/rude']);
  await b.close(100);
});

test('session takeover leaves one session, attached to the new connection', async () => {
  const b = broker();
  const first = new TestClient(b, 5);
  await first.connect('same', { clean: false, properties: { sessionExpiryInterval: 60 } });
  const second = new TestClient(b, 5);
  const connack = await second.connect('same', { clean: false, properties: { sessionExpiryInterval: 60 } });
  assert.equal(connack.sessionPresent, true);
  await first.until(() => first.closed);
  assert.equal(first.all('disconnect')[0]?.reasonCode, 0x8e);
  assert.equal(b.sessions.size, 1);
  assert.equal(b.stats.clientsConnected, 1);
  await b.close(100);
});

test('the subscription count follows subscribes, replacements, unsubscribes and session ends', async () => {
  const b = broker();
  const c = new TestClient(b, 4);
  await c.connect('counter');
  c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a/#', qos: 0 }, { topic: '$share/g/b', qos: 1 }, { topic: 'c', qos: 0 }] });
  await c.until((r) => r.filter((p) => p.cmd === 'suback').length === 1);
  assert.equal(b.router.subscriptionCount, 3);
  c.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'a/#', qos: 1 }] }); // a replacement, not a new one
  c.send({ cmd: 'unsubscribe', messageId: 3, unsubscriptions: ['c', 'never'] });
  await c.until((r) => r.some((p) => p.cmd === 'unsuback'));
  assert.equal(b.router.subscriptionCount, 2);
  c.stream.destroy(); // a clean session ends with its connection
  await c.until(() => c.closed);
  // The server end's 'close' is emitted on the next tick after the pair is destroyed; one setImmediate runs
  // after every queued tick, so the broker has released the session by then (no guessing at a duration).
  await new Promise((r) => setImmediate(r));
  assert.equal(b.router.subscriptionCount, 0);
  await b.close(100);
});

test('a merged copy takes out of the queue what the other copy delivered already, and brings what it still owed', async () => {
  const b = broker();
  const c = new TestClient(b, 5);
  await c.connect('c', { clean: false, properties: { sessionExpiryInterval: 60 } });
  c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 't', qos: 2 }] });
  await c.until((r) => r.some((p) => p.cmd === 'suback'));
  c.send({ cmd: 'disconnect' });
  await c.until(() => c.closed);
  const pub = new TestClient(b, 5);
  await pub.connect('pub');
  for (let i = 1; i <= 3; i++) pub.send(publish('t', 2, i, `m${i}`));
  await pub.until((r) => r.filter((p) => p.cmd === 'pubrec').length === 3);
  const session = b.sessions.get('c');
  assert.ok(session);
  const ids = [...session.queue].map((d) => d.message.id as string);
  assert.equal(ids.length, 3, 'three queued for the absent client, each with an identity');
  // Another copy of the session (a node that held it while this one did too) delivered m1 and m2 to the client
  // and still owed one message of its own.
  const owed = { topic: 't', payload: Buffer.from('other'), qos: 2 as const, retain: false, properties: undefined, origin: 'pub', expiresAt: 0, id: 'n9:1' };
  b.merge({
    session: { clientId: 'c', username: undefined, expiryInterval: 60, disconnectedAt: Date.now(), will: null, subscriptions: [] },
    deliveries: [{ clientId: 'c', seq: 1, message: owed, qos: 2, retain: false, subIds: undefined, packetId: 0, state: 0 }],
    incoming: [],
    mark: 1,
    seen: [ids[0] as string, ids[1] as string, 'n9:1'],
  });
  assert.equal(b.stats.dropsByReason.get('duplicate'), 2, 'm1 and m2 leave the queue');
  const back = new TestClient(b, 5);
  await back.connect('c', { clean: false, properties: { sessionExpiryInterval: 60 } });
  await back.until((r) => r.filter((p) => p.cmd === 'publish').length === 2);
  assert.deepEqual(back.all('publish').map((p) => String((p as IPublishPacket).payload)), ['m3', 'other']);
  await b.close(100);
});

test('a CONNACK fits the client\'s Maximum Packet Size: announcements go first; a client asking for less than a CONNACK is closed', async () => {
  const b = broker();
  const small = new TestClient(b, 5);
  const connack = await small.connect('small', { properties: { maximumPacketSize: 8 } });
  assert.equal(connack.reasonCode, 0);
  assert.ok(2 + (connack.length ?? 0) <= 8, `the CONNACK has ${2 + (connack.length ?? 0)} bytes`); // [MQTT-3.1.2-24]
  assert.equal(connack.properties?.topicAliasMaximum, undefined, 'an announcement the client can do without');
  const tiny = new TestClient(b, 5);
  tiny.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'tiny', clean: true, keepalive: 0, properties: { maximumPacketSize: 4 } });
  await tiny.until(() => tiny.closed);
  assert.equal(tiny.all('connack').length, 0, 'no packet larger than it allows');
  const normal = new TestClient(b, 5);
  assert.equal((await normal.connect('normal')).properties?.topicAliasMaximum, DEFAULTS.mqtt.topic_alias_maximum, 'others keep theirs');
  await b.close(100);
});

test('a merged copy also takes out what this copy has in flight and the other copy completed', async () => {
  const b = broker();
  const c = new TestClient(b, 5);
  await c.connect('c', { clean: false, properties: { sessionExpiryInterval: 60 } });
  c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 't', qos: 2 }] });
  await c.until((r) => r.some((p) => p.cmd === 'suback'));
  const pub = new TestClient(b, 5);
  await pub.connect('pub');
  for (let i = 1; i <= 2; i++) pub.send(publish('t', 2, i, `m${i}`));
  await c.until((r) => r.filter((p) => p.cmd === 'publish').length === 2); // sent, never acknowledged
  c.send({ cmd: 'disconnect' });
  await c.until(() => c.closed);
  const session = b.sessions.get('c');
  assert.ok(session);
  const ids = [...session.inflight.values()].map((d) => d.message.id as string);
  assert.equal(ids.length, 2, 'both in flight');
  // The other copy sent m1 to the client on another node and completed it there.
  b.merge({
    session: { clientId: 'c', username: undefined, expiryInterval: 60, disconnectedAt: Date.now(), will: null, subscriptions: [] },
    deliveries: [], incoming: [], mark: 0, seen: [ids[0] as string],
  });
  const back = new TestClient(b, 5);
  await back.connect('c', { clean: false, properties: { sessionExpiryInterval: 60 } });
  await back.until((r) => r.filter((p) => p.cmd === 'publish').length === 1);
  assert.deepEqual(back.all('publish').map((p) => [String((p as IPublishPacket).payload), (p as IPublishPacket).dup]), [['m2', true]], 'only m2 is sent again');
  assert.equal(b.stats.dropsByReason.get('duplicate'), 1);
  await b.close(100);
});
