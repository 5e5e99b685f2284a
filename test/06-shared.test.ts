/**
 * Black-box tests, feature 06: shared subscriptions (`$share/<group>/<filter>`, MQTT 5.0 §4.8.2, which smq
 * also offers to 3.1.1 clients) and smq's `$queue/<filter>` extension (one implicit group), with the
 * configurable member-selection strategies (`mqtt.shared_strategy`).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker, type RunningBroker } from './helpers/broker.js';
import {
  VERSIONS, brokerFor, clientsFor, delay, rawNextPublish, rawSubscribe, stopBroker, text, uniq, waitForTotal,
  type Clients, type Inbox, type MqttConn, type Version,
} from './helpers/c2.js';

let broker: RunningBroker;

before(async () => {
  broker = await startBroker();
});

after(async () => {
  await stopBroker(broker);
});

const T = { timeout: 30000 };

/** `n` MQTT.js clients, each subscribed to `filter` with QoS 1. */
async function members(c: Clients, v: Version, filter: string, n: number): Promise<MqttConn[]> {
  const out: MqttConn[] = [];
  for (let i = 0; i < n; i++) {
    const m = await c.mqtt(v);
    await m.client.subscribeAsync(filter, { qos: 1 });
    out.push(m);
  }
  return out;
}

/** Publishes `count` QoS 1 messages with payloads `${prefix}0`, `${prefix}1`, … one after another. */
async function publishMany(pub: MqttConn, topic: string, count: number, prefix = ''): Promise<void> {
  for (let i = 0; i < count; i++) await pub.client.publishAsync(topic, `${prefix}${i}`, { qos: 1 });
}

/** The payloads of every message the inboxes received. */
function payloads(inboxes: readonly Inbox[]): string[] {
  return inboxes.flatMap((i) => i.all.map((m) => text(m.payload)));
}

/** Asserts that the group's members together received each of `expected` exactly once. */
function assertExactlyOnce(group: readonly MqttConn[], expected: readonly string[], name: string): void {
  const got = payloads(group.map((m) => m.inbox));
  assert.equal(got.length, expected.length, `${name}: ${got.length} deliveries for ${expected.length} messages`);
  assert.deepEqual([...got].sort(), [...expected].sort(), `${name}: every message exactly once`);
}

function range(n: number, prefix = ''): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}${i}`);
}

for (const v of VERSIONS) {
  // 5.0 §4.8.2: each message goes to one session per shared subscription; a non-shared subscription on the
  // same filter is independent. Round robin (smq's default strategy) splits a run of messages evenly.
  test(`[v${v}] $share groups: one member per group gets each message, plain subscribers get all, round robin is even`, T, async (t) => {
    const c = clientsFor(t, broker.port);
    const topic = uniq('shared/t');
    const g1 = await members(c, v, `$share/${uniq('g1')}/${topic}`, 3);
    const g2 = await members(c, v, `$share/${uniq('g2')}/${topic}`, 2);
    const [plain] = await members(c, v, topic, 1);
    const pub = await c.mqtt(v);

    await publishMany(pub, topic, 30);
    await waitForTotal(g1.map((m) => m.inbox), 30);
    await waitForTotal(g2.map((m) => m.inbox), 30);
    await plain!.inbox.waitTotal(30);
    await delay(300); // proves that no duplicates follow

    const all = range(30);
    assertExactlyOnce(g1, all, 'g1');
    assertExactlyOnce(g2, all, 'g2');
    assert.deepEqual(payloads([plain!.inbox]), all, 'plain subscriber: all 30, in order');
    assert.deepEqual(g1.map((m) => m.inbox.all.length), [10, 10, 10], 'round robin over 3 members');
    assert.deepEqual(g2.map((m) => m.inbox.all.length), [15, 15], 'round robin over 2 members');
  });

  // smq extension: `$queue/<filter>` is a shared subscription with one implicit group.
  // Mosquitto has no `$queue/`: there it is an ordinary filter that matches nothing we publish.
  test(`[v${v}] $queue/ subscribers form one group`, T, async (t) => {
    const c = clientsFor(t, broker.port);
    const topic = uniq('shared/q');
    const queue = await members(c, v, `$queue/${topic}`, 3);
    const [plain] = await members(c, v, topic, 1);
    const pub = await c.mqtt(v);

    await publishMany(pub, topic, 30);
    await waitForTotal(queue.map((m) => m.inbox), 30);
    await plain!.inbox.waitTotal(30);
    await delay(300);

    assertExactlyOnce(queue, range(30), '$queue');
    assert.ok(queue.every((m) => m.inbox.all.length > 0), `every member takes part: ${queue.map((m) => m.inbox.all.length).join(',')}`);
    assert.ok(queue.every((m) => m.inbox.all.every((r) => r.topic === topic)), 'delivered with the published topic');
    assert.equal(plain!.inbox.all.length, 30);
  });

  test(`[v${v}] unsubscribing a member redistributes its share to the others`, T, async (t) => {
    const c = clientsFor(t, broker.port);
    const topic = uniq('shared/unsub');
    const filter = `$share/${uniq('g')}/${topic}`;
    const group = await members(c, v, filter, 3);
    const pub = await c.mqtt(v);

    await publishMany(pub, topic, 6, 'a');
    await waitForTotal(group.map((m) => m.inbox), 6);
    assertExactlyOnce(group, range(6, 'a'), 'before');

    const [m1, m2, m3] = group;
    await m3!.client.unsubscribeAsync(filter);
    const before3 = m3!.inbox.all.length;
    const before12 = m1!.inbox.all.length + m2!.inbox.all.length;

    await publishMany(pub, topic, 6, 'b');
    await waitForTotal([m1!.inbox, m2!.inbox], before12 + 6);
    await delay(300);
    assert.equal(m3!.inbox.all.length, before3, 'the unsubscribed member gets nothing more');
    const second = [m1!, m2!].flatMap((m) => m.inbox.all.map((r) => text(r.payload)).filter((p) => p.startsWith('b')));
    assert.deepEqual(second.sort(), range(6, 'b').sort(), 'the remaining members get every message exactly once');
    assert.ok([m1!, m2!].every((m) => m.inbox.all.some((r) => text(r.payload).startsWith('b'))), 'both remaining members take part');
  });

  // 5.0 §4.8.2: if a member's session ends before it acknowledged a QoS 1 message, the Server SHOULD send
  // the message to another member of the group.
  test(`[v${v}] a QoS 1 message left unacknowledged by a member that goes away is redelivered to another member`, T, async (t) => {
    const c = clientsFor(t, broker.port);
    const topic = uniq('shared/redeliver');
    const filter = `$share/${uniq('g')}/${topic}`;
    // Clean session (v5: no session expiry): the session ends with the connection.
    const raw = await c.raw(v, { clean: true });
    await rawSubscribe(raw.client, [{ topic: filter, qos: 1 }]);
    const pub = await c.mqtt(v);
    await pub.client.publishAsync(topic, 'm1', { qos: 1 });
    const first = await rawNextPublish(raw.client, 3000, false); // PUBACK withheld
    assert.equal(text(first.payload), 'm1');

    const [other] = await members(c, v, filter, 1);
    raw.client.destroy();
    const m = await other!.inbox.next(5000);
    assert.equal(text(m.payload), 'm1');
    assert.equal(m.topic, topic);
  });

  // 5.0 §3.3.1.3 and §4.8.2: retained messages are sent when a new *non-shared* subscription is made, not
  // when a shared subscription is established.
  test(`[v${v}] retained messages are not sent on a $share subscribe`, T, async (t) => {
    const c = clientsFor(t, broker.port);
    const topic = uniq('shared/retained');
    const pub = await c.mqtt(v);
    await pub.client.publishAsync(topic, 'stored', { qos: 1, retain: true });

    const [member] = await members(c, v, `$share/${uniq('g')}/${topic}`, 1);
    await pub.client.publishAsync(topic, 'live', { qos: 1 });
    const m = await member!.inbox.next();
    assert.equal(text(m.payload), 'live', 'the first message is the live one, not the retained one');
    await member!.inbox.expectSilence();
  });
}

for (const v of VERSIONS) {
  // smq option. Mosquitto: the harness does not pass smq's config, and Mosquitto only has round robin.
  test(`[v${v}] shared_strategy hash_clientid: all messages of one publisher go to the same member`, T, async (t) => {
    const { clients: c } = await brokerFor(t, { config: { mqtt: { shared_strategy: 'hash_clientid' } } });
    const topic = uniq('shared/hash');
    const group = await members(c, v, `$share/${uniq('g')}/${topic}`, 3);
    const publishers = [await c.mqtt(v), await c.mqtt(v), await c.mqtt(v)];
    for (const [i, p] of publishers.entries()) await publishMany(p, topic, 10, `p${i}-`);
    await waitForTotal(group.map((m) => m.inbox), 30);
    await delay(300);

    assertExactlyOnce(group, [...range(10, 'p0-'), ...range(10, 'p1-'), ...range(10, 'p2-')], 'group');
    for (const i of publishers.keys()) {
      const receivers = group.filter((m) => m.inbox.all.some((r) => text(r.payload).startsWith(`p${i}-`)));
      assert.equal(receivers.length, 1, `publisher ${i}'s messages went to ${receivers.length} members`);
    }
  });

  // smq option; with Mosquitto the default (round robin) runs instead, which passes as well.
  test(`[v${v}] shared_strategy random: each message still goes to exactly one member`, T, async (t) => {
    const { clients: c } = await brokerFor(t, { config: { mqtt: { shared_strategy: 'random' } } });
    const topic = uniq('shared/random');
    const group = await members(c, v, `$share/${uniq('g')}/${topic}`, 3);
    const pub = await c.mqtt(v);
    await publishMany(pub, topic, 30);
    await waitForTotal(group.map((m) => m.inbox), 30);
    await delay(300);
    assertExactlyOnce(group, range(30), 'group');
  });
}
