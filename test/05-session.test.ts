/**
 * Black-box tests, feature 05: sessions — clean session / clean start, the CONNACK Session Present flag,
 * persistent subscriptions and queues, the queue bound, and MQTT 5 session expiry.
 * "3.1.1 [..]" ids refer to the MQTT 3.1.1 standard, "5.0 [..]" to MQTT 5.0.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IClientOptions } from 'mqtt';
import type { IPublishPacket } from 'mqtt-packet';
import { startBroker, type RunningBroker } from './helpers/broker.js';
import { RawClient } from './helpers/raw.js';
import {
  VERSIONS, brokerFor, clientsFor, closeMqtt, closeRaw, delay, rawSubscribe, stopBroker, text, uniq, type Version,
} from './helpers/c2.js';

let broker: RunningBroker;

before(async () => {
  broker = await startBroker();
});

after(async () => {
  await stopBroker(broker);
});

const T = { timeout: 20000 };

/** MQTT.js options for a session that outlives the connection (v5: for `expiry` seconds). */
function persistent(v: Version, clientId: string, expiry = 300): IClientOptions {
  return v === 5 ? { clientId, clean: false, properties: { sessionExpiryInterval: expiry } } : { clientId, clean: false };
}

for (const v of VERSIONS) {
  // 3.1.1 [MQTT-3.2.2-1]; 5.0 [MQTT-3.2.2-2]
  test(`[v${v}] clean ${v === 5 ? 'start' : 'session'} 1: CONNACK session present is 0, even when a session was stored`, T, async (t) => {
    const c = clientsFor(t, broker.port);
    const id = uniq('sess-clean');
    const first = await c.mqtt(v, { clientId: id, clean: true });
    assert.equal(first.connack.sessionPresent, false);
    await closeMqtt(first.client);

    const stored = await c.mqtt(v, persistent(v, id));
    await stored.client.subscribeAsync(uniq('sess/clean'), { qos: 1 });
    await closeMqtt(stored.client);

    const again = await c.mqtt(v, { clientId: id, clean: true });
    assert.equal(again.connack.sessionPresent, false);
  });

  // 3.1.1 [MQTT-3.2.2-2] [MQTT-3.2.2-3]; 5.0 [MQTT-3.2.2-3]
  test(`[v${v}] clean ${v === 5 ? 'start' : 'session'} 0: session present is 0 without a stored session, 1 with one`, T, async (t) => {
    const c = clientsFor(t, broker.port);
    const id = uniq('sess-present');
    const first = await c.mqtt(v, persistent(v, id));
    assert.equal(first.connack.sessionPresent, false, 'no session stored yet');
    await first.client.subscribeAsync(uniq('sess/present'), { qos: 1 });
    await closeMqtt(first.client);

    const second = await c.mqtt(v, persistent(v, id));
    assert.equal(second.connack.sessionPresent, true, 'the session from the first connection');
  });

  // 3.1.1 [MQTT-3.1.2-6]; 5.0 [MQTT-3.1.2-4]
  test(`[v${v}] clean ${v === 5 ? 'start' : 'session'} 1 discards a stored session: no queued messages, no subscriptions`, T, async (t) => {
    const c = clientsFor(t, broker.port);
    const id = uniq('sess-discard');
    const topic = uniq('sess/discard');
    const stored = await c.mqtt(v, persistent(v, id));
    await stored.client.subscribeAsync(topic, { qos: 1 });
    await closeMqtt(stored.client);

    const pub = await c.mqtt(v);
    await pub.client.publishAsync(topic, 'queued', { qos: 1 });

    const fresh = await c.mqtt(v, { clientId: id, clean: true });
    assert.equal(fresh.connack.sessionPresent, false);
    await pub.client.publishAsync(topic, 'live', { qos: 1 });
    await fresh.inbox.expectSilence(500);
  });

  // 3.1.1 [MQTT-3.1.2-4]; 5.0 §4.1 (subscriptions are part of the Server's Session State)
  test(`[v${v}] a persistent session keeps its subscriptions across a reconnect`, T, async (t) => {
    const c = clientsFor(t, broker.port);
    const id = uniq('sess-keep');
    const topic = uniq('sess/keep');
    const first = await c.mqtt(v, persistent(v, id));
    await first.client.subscribeAsync(topic, { qos: 1 });
    await closeMqtt(first.client);

    const second = await c.mqtt(v, persistent(v, id));
    assert.equal(second.connack.sessionPresent, true);
    const pub = await c.mqtt(v);
    await pub.client.publishAsync(topic, 'after', { qos: 1 });
    const m = await second.inbox.next();
    assert.equal(m.topic, topic);
    assert.equal(text(m.payload), 'after');
  });

  // 3.1.1 [MQTT-3.1.2-5]; 5.0 §4.1 (Application Messages pending transmission are Session State).
  // Whether QoS 0 messages are queued too is the broker's choice, so the test tolerates either.
  test(`[v${v}] QoS 1 and 2 messages published while the client was away are delivered on reconnect`, T, async (t) => {
    const c = clientsFor(t, broker.port);
    const id = uniq('sess-queue');
    const topic = uniq('sess/queue');
    const first = await c.mqtt(v, persistent(v, id));
    await first.client.subscribeAsync(topic, { qos: 2 });
    await closeMqtt(first.client);

    const pub = await c.mqtt(v);
    await pub.client.publishAsync(topic, 'a', { qos: 1 });
    await pub.client.publishAsync(topic, 'b', { qos: 2 });
    await pub.client.publishAsync(topic, 'z', { qos: 0 });

    const second = await c.mqtt(v, persistent(v, id));
    assert.equal(second.connack.sessionPresent, true);
    const [a, b] = await second.inbox.take(2, 5000);
    // Ordered topic: messages from one publisher arrive in the order published (3.1.1 [MQTT-4.6.0-6]).
    assert.deepEqual([text(a!.payload), a!.packet.qos], ['a', 1]);
    assert.deepEqual([text(b!.payload), b!.packet.qos], ['b', 2]);
    const rest = await second.inbox.drain(300);
    assert.ok(rest.every((m) => text(m.payload) === 'z'), `only the QoS 0 message may follow, got ${rest.map((m) => text(m.payload)).join(',')}`);
    assert.ok(rest.length <= 1, 'the QoS 0 message at most once');
  });
}

// smq's documented bound (config `mqtt.max_queued`, beyond the in-flight window `mqtt.max_inflight`).
// Mosquitto: the harness does not pass smq's config to it, so its own default (1000) applies there.
const MAX_QUEUED = 5;
const MAX_INFLIGHT = 2;
for (const v of VERSIONS) {
  test(`[v${v}] the queue of an offline session is bounded by max_queued and the broker stays healthy`, T, async (t) => {
    const { clients: c } = await brokerFor(t, { config: { mqtt: { max_queued: MAX_QUEUED, max_inflight: MAX_INFLIGHT } } });
    const id = uniq('sess-bound');
    const topic = uniq('sess/bound');
    const first = await c.mqtt(v, persistent(v, id));
    await first.client.subscribeAsync(topic, { qos: 1 });
    await closeMqtt(first.client);

    const pub = await c.mqtt(v);
    for (let i = 0; i < 10; i++) {
      // Dropping a message for one offline subscriber is no error for the publisher; tolerate either answer.
      await pub.client.publishAsync(topic, String(i), { qos: 1 }).catch(() => undefined);
    }

    const second = await c.mqtt(v, persistent(v, id));
    assert.equal(second.connack.sessionPresent, true);
    await second.inbox.waitTotal(MAX_QUEUED, 5000);
    const got = (await second.inbox.drain(700)).map((m) => Number(text(m.payload)));
    assert.ok(got.length >= MAX_QUEUED, `at least ${MAX_QUEUED} delivered, got ${got.length}`);
    assert.ok(got.length <= MAX_QUEUED + MAX_INFLIGHT, `at most max_queued + max_inflight = ${MAX_QUEUED + MAX_INFLIGHT}, got ${got.length}: ${got.join(',')}`);
    assert.deepEqual(got, [...got].sort((x, y) => x - y), 'queued messages keep their order');

    // Still healthy: the reconnected session and a brand-new client both get new messages.
    const other = await c.mqtt(v);
    await other.client.subscribeAsync(topic, { qos: 1 });
    await pub.client.publishAsync(topic, 'fresh', { qos: 1 });
    assert.equal(text((await second.inbox.next()).payload), 'fresh');
    assert.equal(text((await other.inbox.next()).payload), 'fresh');
  });
}

// 5.0 §3.1.2.11.2: the session is discarded when the Session Expiry Interval has passed after the
// Network Connection closed. Expiry is time-based, so the test waits it out (1 s expiry, 2.5 s wait).
test('[v5] session expiry interval 1: after it passes the session and its queued messages are gone', T, async (t) => {
  const c = clientsFor(t, broker.port);
  const id = uniq('sess-expire');
  const topic = uniq('sess/expire');
  const first = await c.mqtt(5, persistent(5, id, 1));
  await first.client.subscribeAsync(topic, { qos: 1 });
  await closeMqtt(first.client);

  const pub = await c.mqtt(5);
  await pub.client.publishAsync(topic, 'stale', { qos: 1 });
  await delay(2500);

  const second = await c.mqtt(5, persistent(5, id, 60));
  assert.equal(second.connack.sessionPresent, false, 'the session expired');
  await pub.client.publishAsync(topic, 'after', { qos: 1 });
  await second.inbox.expectSilence(500);
});

// 5.0 §3.1.2.11.2: an absent Session Expiry Interval means 0 — the session ends when the connection closes.
test('[v5] session expiry 0 with clean start 0: the session ends at disconnect', T, async (t) => {
  const c = clientsFor(t, broker.port);
  const id = uniq('sess-zero');
  const topic = uniq('sess/zero');
  const raw = await c.raw(5, { clientId: id, clean: false });
  assert.equal(raw.connack.sessionPresent, false);
  await rawSubscribe(raw.client, [{ topic, qos: 1 }]);
  await closeRaw(raw.client);

  const second = await c.mqtt(5, persistent(5, id, 60));
  assert.equal(second.connack.sessionPresent, false);
  const pub = await c.mqtt(5);
  await pub.client.publishAsync(topic, 'x', { qos: 1 });
  await second.inbox.expectSilence(500);
});

// 5.0 §3.14.2.2.2: the Client may set a new Session Expiry Interval in DISCONNECT.
test('[v5] DISCONNECT with session expiry 0 ends a session that would have lasted 300 s', T, async (t) => {
  const c = clientsFor(t, broker.port);
  const id = uniq('sess-shorten');
  const topic = uniq('sess/shorten');
  const raw = await c.raw(5, { clientId: id, clean: false, properties: { sessionExpiryInterval: 300 } });
  await rawSubscribe(raw.client, [{ topic, qos: 1 }]);
  await closeRaw(raw.client, { reasonCode: 0, properties: { sessionExpiryInterval: 0 } });

  const second = await c.mqtt(5, persistent(5, id, 60));
  assert.equal(second.connack.sessionPresent, false);
});

// 5.0 §3.14.2.2.2. The session would expire after 1 s; the DISCONNECT extends it to 60 s, so after waiting
// 2.5 s (time-based behaviour) the session and its queued message are still there.
test('[v5] DISCONNECT with a longer session expiry keeps the session beyond the original interval', T, async (t) => {
  const c = clientsFor(t, broker.port);
  const id = uniq('sess-extend');
  const topic = uniq('sess/extend');
  const raw = await c.raw(5, { clientId: id, clean: false, properties: { sessionExpiryInterval: 1 } });
  await rawSubscribe(raw.client, [{ topic, qos: 1 }]);
  await closeRaw(raw.client, { reasonCode: 0, properties: { sessionExpiryInterval: 60 } });

  const pub = await c.mqtt(5);
  await pub.client.publishAsync(topic, 'kept', { qos: 1 });
  await delay(2500);

  const second = await c.mqtt(5, persistent(5, id, 60));
  assert.equal(second.connack.sessionPresent, true);
  assert.equal(text((await second.inbox.next()).payload), 'kept');
});

// 5.0 [MQTT-3.3.4-9], [MQTT-4.4.0-1]
test('[v5] a client back with a smaller Receive Maximum gets no more unacknowledged messages again than it allows; each PUBACK lets one more out', T, async (t) => {
  const c = clientsFor(t, broker.port);
  const id = uniq('sess-rmax');
  const topic = uniq('rmax');
  const session = { clientId: id, clean: false, properties: { sessionExpiryInterval: 60, receiveMaximum: 10 } };
  const first = await RawClient.connected(broker.port, 5, session);
  t.after(() => first.client.socket.destroy());
  first.client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] });
  await first.client.next('suback');
  const pub = await c.mqtt(5, { clientId: uniq('rmax-pub') });
  for (let i = 0; i < 5; i++) await pub.client.publishAsync(topic, `m${i}`, { qos: 1 });
  // Five arrive and are never acknowledged; the client goes.
  for (let i = 0; i < 5; i++) assert.equal(text(((await first.client.next('publish')) as IPublishPacket).payload), `m${i}`);
  first.client.socket.destroy();
  await first.client.closed;

  const back = await RawClient.connected(broker.port, 5, { ...session, properties: { sessionExpiryInterval: 60, receiveMaximum: 2 } });
  t.after(() => back.client.socket.destroy());
  assert.equal(back.connack.sessionPresent, true);
  const resent = [(await back.client.next('publish')) as IPublishPacket, (await back.client.next('publish')) as IPublishPacket];
  assert.deepEqual(resent.map((p) => [text(p.payload), p.dup]), [['m0', true], ['m1', true]]);
  await back.client.expectSilence(300); // two unacknowledged: the window is full
  back.client.send({ cmd: 'puback', messageId: resent[0]?.messageId ?? 0 });
  const third = (await back.client.next('publish')) as IPublishPacket;
  assert.deepEqual([text(third.payload), third.dup], ['m2', true]);
  await back.client.expectSilence(300);
  for (const p of [resent[1], third]) back.client.send({ cmd: 'puback', messageId: p?.messageId ?? 0 });
  const rest = [(await back.client.next('publish')) as IPublishPacket, (await back.client.next('publish')) as IPublishPacket];
  assert.deepEqual(rest.map((p) => text(p.payload)), ['m3', 'm4']);
});
