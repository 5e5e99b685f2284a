/**
 * Black-box tests, feature 07: will messages — published on an abnormal close or a keep-alive timeout,
 * discarded on a normal DISCONNECT, will retain and QoS, and MQTT 5's will delay and DISCONNECT 0x04.
 * "3.1.1 [..]" ids refer to the MQTT 3.1.1 standard, "5.0 [..]" to MQTT 5.0.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type * as mqttPacket from 'mqtt-packet';
import { startBroker, type RunningBroker } from './helpers/broker.js';
import {
  VERSIONS, clientsFor, closeRaw, stopBroker, text, uniq, withTimeout, type Clients, type MqttConn, type Version,
} from './helpers/c2.js';

let broker: RunningBroker;

before(async () => {
  broker = await startBroker();
});

after(async () => {
  await stopBroker(broker);
});

const T = { timeout: 20000 };

type Will = NonNullable<mqttPacket.IConnectPacket['will']>;

/** An MQTT.js client subscribed to `topic` (QoS `qos`), ready to see a will arrive. */
async function observer(c: Clients, v: Version, topic: string, qos: 0 | 1 | 2 = 1): Promise<MqttConn> {
  const o = await c.mqtt(v);
  await o.client.subscribeAsync(topic, { qos });
  return o;
}

function will(topic: string, over: Partial<Will> = {}): Will {
  return { topic, payload: Buffer.from('gone'), qos: 1, retain: false, ...over };
}

for (const v of VERSIONS) {
  // 3.1.1 [MQTT-3.1.2-8]; 5.0 [MQTT-3.1.2-8]
  test(`[v${v}] the will is published when the connection is closed without DISCONNECT`, T, async (t) => {
    const c = clientsFor(t, broker.port);
    const topic = uniq('will/abnormal');
    const obs = await observer(c, v, topic);
    const raw = await c.raw(v, { will: will(topic) });
    raw.client.destroy();

    const m = await obs.inbox.next(5000);
    assert.equal(m.topic, topic);
    assert.equal(text(m.payload), 'gone');
    assert.equal(m.packet.qos, 1);
    assert.equal(m.packet.retain, false);
  });

  // 3.1.1 [MQTT-3.1.2-24] (closed after 1.5 × keep alive) and [MQTT-3.1.2-8]; 5.0 [MQTT-3.1.2-22], [MQTT-3.1.2-8]
  test(`[v${v}] the will is published when the keep-alive times out`, T, async (t) => {
    const c = clientsFor(t, broker.port);
    const topic = uniq('will/keepalive');
    const obs = await observer(c, v, topic);
    // Keep alive 1 s and then silence: the broker must give up after 1.5 s. The timeout allows for coarse
    // keep-alive timers (Mosquitto 2.0.11 closes such a connection only after about 4.5 s); the exact
    // 1.5 × keep-alive bound is the connect suite's business, this test is about the will.
    const raw = await c.raw(v, { keepalive: 1, will: will(topic, { payload: Buffer.from('timeout') }) });

    await withTimeout(raw.client.closed, 8000, 'the broker closes the timed-out connection');
    const m = await obs.inbox.next(3000);
    assert.equal(text(m.payload), 'timeout');
  });

  // 3.1.1 [MQTT-3.1.2-10]; 5.0 [MQTT-3.1.2-10] [MQTT-3.14.4-3]
  test(`[v${v}] the will is not published after a normal DISCONNECT`, T, async (t) => {
    const c = clientsFor(t, broker.port);
    const topic = uniq('will/normal');
    const obs = await observer(c, v, topic);
    const raw = await c.raw(v, { will: will(topic) });
    await closeRaw(raw.client, v === 5 ? { reasonCode: 0 } : {});

    await obs.inbox.expectSilence(700);
  });

  // 3.1.1 [MQTT-3.1.2-17]; 5.0 [MQTT-3.1.2-17]
  test(`[v${v}] a will with will retain 1 is published as a retained message`, T, async (t) => {
    const c = clientsFor(t, broker.port);
    const topic = uniq('will/retain');
    const obs = await observer(c, v, topic);
    const raw = await c.raw(v, { will: will(topic, { retain: true, payload: Buffer.from('last words') }) });
    raw.client.destroy();
    assert.equal(text((await obs.inbox.next(5000)).payload), 'last words');

    const late = await observer(c, v, topic);
    const m = await late.inbox.next();
    assert.equal(text(m.payload), 'last words');
    assert.equal(m.packet.retain, true, 'a later subscriber gets the will as a retained message');
  });

  // 3.1.1 §3.1.2.6 (Will QoS) and [MQTT-3.8.4-6]; 5.0 §3.1.2.6 and [MQTT-3.8.4-8]
  test(`[v${v}] the will is published with its will QoS (capped by each subscription)`, T, async (t) => {
    const c = clientsFor(t, broker.port);
    const topic = uniq('will/qos');
    const q2 = await observer(c, v, topic, 2);
    const q1 = await observer(c, v, topic, 1);
    const raw = await c.raw(v, { will: will(topic, { qos: 2 }) });
    raw.client.destroy();

    assert.equal((await q2.inbox.next(5000)).packet.qos, 2);
    assert.equal((await q1.inbox.next(5000)).packet.qos, 1);
  });
}

// 5.0 [MQTT-3.1.3-9] and §3.1.3.2.2: the will waits for the Will Delay Interval. Will delay is time-based:
// the test proves the will is absent for the first second and present within five.
test('[v5] will delay interval 2: the will arrives after the delay, not before', T, async (t) => {
  const c = clientsFor(t, broker.port);
  const topic = uniq('will/delay');
  const obs = await observer(c, 5, topic);
  const raw = await c.raw(5, {
    properties: { sessionExpiryInterval: 10 },
    will: will(topic, { payload: Buffer.from('late'), properties: { willDelayInterval: 2 } }),
  });
  const closedAt = Date.now();
  raw.client.destroy();

  await obs.inbox.expectSilence(1000);
  const m = await obs.inbox.next(4000);
  assert.equal(text(m.payload), 'late');
  const after = Date.now() - closedAt;
  assert.ok(after >= 1500, `the will arrived ${after} ms after the close, before its 2 s delay`);
});

// 5.0 [MQTT-3.1.3-9]: a new connection to the session within the delay cancels the will.
test('[v5] reconnecting within the will delay cancels the will', T, async (t) => {
  const c = clientsFor(t, broker.port);
  const topic = uniq('will/cancel');
  const id = uniq('will-cancel');
  const obs = await observer(c, 5, topic);
  const raw = await c.raw(5, {
    clientId: id,
    clean: false,
    properties: { sessionExpiryInterval: 10 },
    will: will(topic, { properties: { willDelayInterval: 2 } }),
  });
  raw.client.destroy();

  // Clean start 0: the same session continues (clean start 1 would end it and so publish the will).
  const back = await c.mqtt(5, { clientId: id, clean: false, properties: { sessionExpiryInterval: 10 } });
  assert.equal(back.connack.sessionPresent, true);
  // Time-based: wait well past the 2 s delay.
  await obs.inbox.expectSilence(3500);
});

// 5.0 §3.1.3.2.2: the will is published when the delay passes or the session ends, whichever comes first.
test('[v5] a will delay longer than the session expiry: the will is published when the session ends', T, async (t) => {
  const c = clientsFor(t, broker.port);
  const topic = uniq('will/expiry');
  const obs = await observer(c, 5, topic);
  const raw = await c.raw(5, {
    clean: false,
    properties: { sessionExpiryInterval: 1 },
    will: will(topic, { payload: Buffer.from('session over'), properties: { willDelayInterval: 30 } }),
  });
  raw.client.destroy();

  // The session ends 1 s after the close, long before the 30 s will delay.
  const m = await obs.inbox.next(5000);
  assert.equal(text(m.payload), 'session over');
});

// 5.0 §3.14.2.1: Reason Code 0x04 "Disconnect with Will Message".
test('[v5] DISCONNECT with reason code 0x04 publishes the will', T, async (t) => {
  const c = clientsFor(t, broker.port);
  const topic = uniq('will/rc4');
  const obs = await observer(c, 5, topic);
  const raw = await c.raw(5, { will: will(topic, { payload: Buffer.from('asked for') }) });
  await closeRaw(raw.client, { reasonCode: 0x04 });

  const m = await obs.inbox.next(5000);
  assert.equal(text(m.payload), 'asked for');
});
