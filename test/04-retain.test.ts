/**
 * Black-box tests, feature 04: retained messages, for MQTT 3.1.1 (v4) and 5.0 (v5).
 * Spec ids are given per version where they differ: "3.1.1 [..]" refers to the MQTT 3.1.1 standard,
 * "5.0 [..]" to MQTT 5.0.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker, type RunningBroker } from './helpers/broker.js';
import { VERSIONS, clientsFor, stopBroker, text, uniq } from './helpers/c2.js';

let broker: RunningBroker;

before(async () => {
  broker = await startBroker();
});

after(async () => {
  await stopBroker(broker);
});

const T = { timeout: 20000 };

for (const v of VERSIONS) {
  // 3.1.1 [MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-8]; 5.0 [MQTT-3.3.1-5] [MQTT-3.3.1-9]
  test(`[v${v}] a retained message is stored and sent with RETAIN=1 to a new subscriber`, T, async (t) => {
    const c = clientsFor(t, broker.port);
    const topic = uniq('retain/stored');
    const pub = await c.mqtt(v);
    await pub.client.publishAsync(topic, 'hello', { qos: 1, retain: true });

    const sub = await c.mqtt(v);
    await sub.client.subscribeAsync(topic, { qos: 1 });
    const m = await sub.inbox.next();
    assert.equal(m.topic, topic);
    assert.equal(text(m.payload), 'hello');
    assert.equal(m.packet.retain, true, 'sent because of a new subscription: RETAIN must be 1');
    assert.equal(m.packet.qos, 1);
    await sub.inbox.expectSilence();
  });

  // 3.1.1 [MQTT-3.3.1-5] (replace); 5.0 [MQTT-3.3.1-5]
  test(`[v${v}] a newer retained message replaces the older one`, T, async (t) => {
    const c = clientsFor(t, broker.port);
    const topic = uniq('retain/replace');
    const pub = await c.mqtt(v);
    await pub.client.publishAsync(topic, 'one', { qos: 1, retain: true });
    await pub.client.publishAsync(topic, 'two', { qos: 1, retain: true });

    const sub = await c.mqtt(v);
    await sub.client.subscribeAsync(topic, { qos: 1 });
    const m = await sub.inbox.next();
    assert.equal(text(m.payload), 'two');
    assert.equal(m.packet.retain, true);
    await sub.inbox.expectSilence();
  });

  // 3.1.1 [MQTT-3.3.1-10] [MQTT-3.3.1-11]; 5.0 [MQTT-3.3.1-6] [MQTT-3.3.1-7]
  test(`[v${v}] an empty retained payload is delivered to existing subscribers and deletes the retained message`, T, async (t) => {
    const c = clientsFor(t, broker.port);
    const topic = uniq('retain/delete');
    const live = await c.mqtt(v);
    await live.client.subscribeAsync(topic, { qos: 1 });
    const pub = await c.mqtt(v);

    await pub.client.publishAsync(topic, 'x', { qos: 1, retain: true });
    assert.equal(text((await live.inbox.next()).payload), 'x');

    await pub.client.publishAsync(topic, '', { qos: 1, retain: true });
    // "Processed as normal": the existing subscriber gets the zero-byte message.
    const empty = await live.inbox.next();
    assert.equal(empty.topic, topic);
    assert.equal(empty.payload.length, 0);

    const late = await c.mqtt(v);
    await late.client.subscribeAsync(topic, { qos: 1 });
    await late.inbox.expectSilence(500);
  });

  // 3.1.1 [MQTT-3.3.1-11]; 5.0 [MQTT-3.3.1-7]
  test(`[v${v}] a zero-byte retained message is not stored`, T, async (t) => {
    const c = clientsFor(t, broker.port);
    const topic = uniq('retain/empty');
    const pub = await c.mqtt(v);
    await pub.client.publishAsync(topic, '', { qos: 1, retain: true });

    const sub = await c.mqtt(v);
    await sub.client.subscribeAsync(topic, { qos: 1 });
    await sub.inbox.expectSilence(500);
  });

  // 3.1.1 [MQTT-3.3.1-12]; 5.0 [MQTT-3.3.1-8]
  test(`[v${v}] a publish with RETAIN=0 neither replaces nor removes the retained message`, T, async (t) => {
    const c = clientsFor(t, broker.port);
    const topic = uniq('retain/keep');
    const pub = await c.mqtt(v);
    await pub.client.publishAsync(topic, 'kept', { qos: 1, retain: true });
    await pub.client.publishAsync(topic, 'live', { qos: 1, retain: false });
    await pub.client.publishAsync(topic, '', { qos: 1, retain: false });

    const sub = await c.mqtt(v);
    await sub.client.subscribeAsync(topic, { qos: 1 });
    assert.equal(text((await sub.inbox.next()).payload), 'kept');
    await sub.inbox.expectSilence();
  });

  // 3.1.1 [MQTT-3.3.1-9]; 5.0 [MQTT-3.3.1-12] (Retain As Published 0, the default)
  test(`[v${v}] a retained publish to an established subscription arrives with RETAIN=0`, T, async (t) => {
    const c = clientsFor(t, broker.port);
    const topic = uniq('retain/live');
    const sub = await c.mqtt(v);
    await sub.client.subscribeAsync(topic, { qos: 1 });
    const pub = await c.mqtt(v);
    await pub.client.publishAsync(topic, 'r', { qos: 1, retain: true });

    const m = await sub.inbox.next();
    assert.equal(text(m.payload), 'r');
    assert.equal(m.packet.retain, false, 'matches an established subscription: RETAIN must be 0');

    // The message was nevertheless stored: a new subscription gets it with RETAIN=1.
    const late = await c.mqtt(v);
    await late.client.subscribeAsync(topic, { qos: 1 });
    assert.equal((await late.inbox.next()).packet.retain, true);
  });

  // 3.1.1 [MQTT-3.3.1-6]; 5.0 [MQTT-3.3.1-9] ("on each matching topic name")
  test(`[v${v}] a wildcard subscription gets every matching retained message`, T, async (t) => {
    const c = clientsFor(t, broker.port);
    const base = uniq('retain/wild');
    const pub = await c.mqtt(v);
    for (const leaf of ['a', 'b/c', 'd']) {
      await pub.client.publishAsync(`${base}/${leaf}`, leaf, { qos: 1, retain: true });
    }
    await pub.client.publishAsync(`${base}-other/a`, 'no', { qos: 1, retain: true });

    const all = await c.mqtt(v);
    await all.client.subscribeAsync(`${base}/#`, { qos: 1 });
    const got = await all.inbox.take(3);
    assert.deepEqual(got.map((m) => m.topic).sort(), [`${base}/a`, `${base}/b/c`, `${base}/d`]);
    assert.ok(got.every((m) => m.packet.retain));
    await all.inbox.expectSilence();

    const one = await c.mqtt(v);
    await one.client.subscribeAsync(`${base}/+`, { qos: 1 });
    const got2 = await one.inbox.take(2);
    assert.deepEqual(got2.map((m) => m.topic).sort(), [`${base}/a`, `${base}/d`]);
    await one.inbox.expectSilence();
  });

  // Retained messages keep their QoS (3.1.1 [MQTT-3.3.1-5]) and are sent at the minimum of it and the
  // granted QoS (3.1.1 [MQTT-3.8.4-6]; 5.0 [MQTT-3.8.4-8]).
  test(`[v${v}] a retained message is downgraded to the subscription QoS, never upgraded`, T, async (t) => {
    const c = clientsFor(t, broker.port);
    const q2 = uniq('retain/qos2');
    const q0 = uniq('retain/qos0');
    const pub = await c.mqtt(v);
    await pub.client.publishAsync(q2, 'two', { qos: 2, retain: true });
    await pub.client.publishAsync(q0, 'zero', { qos: 0, retain: true });
    // QoS 0 has no acknowledgement: a QoS 1 publish on the same connection afterwards is processed after it.
    await pub.client.publishAsync(uniq('retain/fence'), 'fence', { qos: 1 });

    for (const subQos of [0, 1, 2] as const) {
      const sub = await c.mqtt(v);
      await sub.client.subscribeAsync(q2, { qos: subQos });
      const m = await sub.inbox.next();
      assert.equal(text(m.payload), 'two');
      assert.equal(m.packet.qos, subQos, `retained QoS 2 message, subscription QoS ${subQos}`);
      assert.equal(m.packet.retain, true);
    }
    const sub = await c.mqtt(v);
    await sub.client.subscribeAsync(q0, { qos: 2 });
    const m = await sub.inbox.next();
    assert.equal(text(m.payload), 'zero');
    assert.equal(m.packet.qos, 0, 'retained QoS 0 message must not be upgraded');
  });

  // 3.1.1 [MQTT-3.8.4-3]; 5.0 [MQTT-3.8.4-3] [MQTT-3.8.4-4] (Retain Handling 0)
  test(`[v${v}] re-subscribing to the same filter sends the retained message again${v === 5 ? ' (retain handling 0)' : ''}`, T, async (t) => {
    const c = clientsFor(t, broker.port);
    const topic = uniq('retain/resub');
    const pub = await c.mqtt(v);
    await pub.client.publishAsync(topic, 'again', { qos: 1, retain: true });

    const sub = await c.mqtt(v);
    const opts = v === 5 ? { qos: 1 as const, rh: 0 } : { qos: 1 as const };
    await sub.client.subscribeAsync(topic, opts);
    assert.equal(text((await sub.inbox.next()).payload), 'again');
    await sub.client.subscribeAsync(topic, opts);
    const m = await sub.inbox.next();
    assert.equal(text(m.payload), 'again');
    assert.equal(m.packet.retain, true);
    await sub.inbox.expectSilence();
  });
}

// 5.0 [MQTT-3.3.1-10]: Retain Handling 1 sends retained messages only if the subscription did not exist.
test('[v5] retain handling 1: retained sent for a new subscription, not for a re-subscribe', T, async (t) => {
  const c = clientsFor(t, broker.port);
  const topic = uniq('retain/rh1');
  const pub = await c.mqtt(5);
  await pub.client.publishAsync(topic, 'once', { qos: 1, retain: true });

  const sub = await c.mqtt(5);
  await sub.client.subscribeAsync(topic, { qos: 1, rh: 1 });
  const m = await sub.inbox.next();
  assert.equal(text(m.payload), 'once');
  assert.equal(m.packet.retain, true);

  await sub.client.subscribeAsync(topic, { qos: 1, rh: 1 });
  await sub.inbox.expectSilence(500);
});

// 5.0 [MQTT-3.3.1-11]: Retain Handling 2 never sends retained messages at subscribe time.
test('[v5] retain handling 2: no retained message at subscribe, live messages still arrive', T, async (t) => {
  const c = clientsFor(t, broker.port);
  const topic = uniq('retain/rh2');
  const pub = await c.mqtt(5);
  await pub.client.publishAsync(topic, 'stored', { qos: 1, retain: true });

  const sub = await c.mqtt(5);
  await sub.client.subscribeAsync(topic, { qos: 1, rh: 2 });
  await pub.client.publishAsync(topic, 'live', { qos: 1 });
  // A retained message would be sent before messages published after the SUBACK.
  assert.equal(text((await sub.inbox.next()).payload), 'live');
  await sub.inbox.expectSilence();
});

// 5.0 [MQTT-3.3.1-12] [MQTT-3.3.1-13]
test('[v5] retain as published: RETAIN kept on live messages only when rap=1', T, async (t) => {
  const c = clientsFor(t, broker.port);
  const topic = uniq('retain/rap');
  const keep = await c.mqtt(5);
  await keep.client.subscribeAsync(topic, { qos: 1, rap: true });
  const clear = await c.mqtt(5);
  await clear.client.subscribeAsync(topic, { qos: 1, rap: false });
  const pub = await c.mqtt(5);

  await pub.client.publishAsync(topic, 'r', { qos: 1, retain: true });
  const k = await keep.inbox.next();
  const l = await clear.inbox.next();
  assert.equal(text(k.payload), 'r');
  assert.equal(k.packet.retain, true, 'rap=1 keeps RETAIN as published');
  assert.equal(text(l.payload), 'r');
  assert.equal(l.packet.retain, false, 'rap=0 clears RETAIN on live messages');

  await pub.client.publishAsync(topic, 'n', { qos: 1, retain: false });
  const k2 = await keep.inbox.next();
  assert.equal(text(k2.payload), 'n');
  assert.equal(k2.packet.retain, false, 'rap=1 with a non-retained publish');
  assert.equal((await clear.inbox.next()).packet.retain, false);
});
