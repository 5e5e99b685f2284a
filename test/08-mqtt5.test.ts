/**
 * Black-box tests, feature 08: MQTT 5 only — properties passed through, message expiry, topic aliases in
 * both directions, the client's Maximum Packet Size, subscription identifiers, no local, Request Problem
 * Information and AUTH without an authentication method. Spec ids refer to MQTT 5.0.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type * as mqttPacket from 'mqtt-packet';
import { startBroker, type RunningBroker } from './helpers/broker.js';
import {
  clientsFor, closeMqtt, delay, nextId, rawNextPublish, rawPublish, rawSubscribe, stopBroker, text, uniq,
} from './helpers/c2.js';

let broker: RunningBroker;

before(async () => {
  // Inbound aliases need a Topic Alias Maximum above 0; state it rather than rely on a default.
  broker = await startBroker({ config: { mqtt: { topic_alias_maximum: 10 } } });
});

after(async () => {
  await stopBroker(broker);
});

const T = { timeout: 20000 };

/** Subscription identifiers of a PUBLISH, as a sorted list (the property is a number or a list). */
function subIds(p: mqttPacket.IPublishPacket): number[] {
  const s = p.properties?.subscriptionIdentifier;
  if (s === undefined) return [];
  return (Array.isArray(s) ? [...s] : [s]).sort((a, b) => a - b);
}

/** Asserts that an acknowledgement carries neither a Reason String nor User Properties. */
function assertNoProblemInfo(p: mqttPacket.Packet, what: string): void {
  const props = 'properties' in p ? (p.properties as { reasonString?: string; userProperties?: unknown } | undefined) : undefined;
  assert.equal(props?.reasonString, undefined, `${what}: no Reason String with request problem information 0`);
  assert.equal(props?.userProperties, undefined, `${what}: no User Properties with request problem information 0`);
}

// [MQTT-3.3.2-17] [MQTT-3.3.2-18]
test('[v5] user properties are forwarded unaltered and in order', T, async (t) => {
  const c = clientsFor(t, broker.port);
  const topic = uniq('v5/user');
  const sub = await c.mqtt(5);
  await sub.client.subscribeAsync(topic, { qos: 1 });
  const pub = await c.mqtt(5);
  const userProperties = { zeta: '1', alpha: ['x', 'y', 'x'], 'ünïcødé': 'välue', empty: '' };
  await pub.client.publishAsync(topic, 'p', { qos: 1, properties: { userProperties } });

  // mqtt-packet parses into an object without prototype; compare the entries.
  const got = { ...(await sub.inbox.next()).packet.properties?.userProperties };
  assert.deepEqual(got, userProperties);
  assert.deepEqual(Object.keys(got), Object.keys(userProperties), 'order of names kept');
});

// [MQTT-3.3.2-4] [MQTT-3.3.2-20]
test('[v5] payload format indicator and content type are forwarded', T, async (t) => {
  const c = clientsFor(t, broker.port);
  const topic = uniq('v5/format');
  const sub = await c.mqtt(5);
  await sub.client.subscribeAsync(topic, { qos: 1 });
  const pub = await c.mqtt(5);
  await pub.client.publishAsync(topic, '{"a":1}', { qos: 1, properties: { payloadFormatIndicator: true, contentType: 'application/json; charset=utf-8' } });

  const p = (await sub.inbox.next()).packet.properties;
  assert.equal(p?.payloadFormatIndicator, true);
  assert.equal(p?.contentType, 'application/json; charset=utf-8');
});

// [MQTT-3.3.2-15] [MQTT-3.3.2-16]
test('[v5] response topic and correlation data are forwarded', T, async (t) => {
  const c = clientsFor(t, broker.port);
  const topic = uniq('v5/request');
  const sub = await c.mqtt(5);
  await sub.client.subscribeAsync(topic, { qos: 1 });
  const pub = await c.mqtt(5);
  const correlationData = Buffer.from([0, 1, 2, 0xfe, 0xff]);
  await pub.client.publishAsync(topic, 'req', { qos: 1, properties: { responseTopic: `${topic}/reply`, correlationData } });

  const p = (await sub.inbox.next()).packet.properties;
  assert.equal(p?.responseTopic, `${topic}/reply`);
  assert.ok(p?.correlationData && correlationData.equals(p.correlationData), 'correlation data byte for byte');
});

// [MQTT-3.3.2-5] (expired messages are not delivered) and [MQTT-3.3.2-6] (remaining interval). Expiry is
// time-based: a 1 s message waits 2.5 s in an offline session's queue.
test('[v5] message expiry: a queued message that expired is not delivered; others carry the remaining interval', T, async (t) => {
  const c = clientsFor(t, broker.port);
  const id = uniq('v5-expiry');
  const topic = uniq('v5/expiry');
  const opts = { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } };
  const first = await c.mqtt(5, opts);
  await first.client.subscribeAsync(topic, { qos: 1 });
  await closeMqtt(first.client);

  const pub = await c.mqtt(5);
  await pub.client.publishAsync(topic, 'short', { qos: 1, properties: { messageExpiryInterval: 1 } });
  await pub.client.publishAsync(topic, 'long', { qos: 1, properties: { messageExpiryInterval: 60 } });
  await pub.client.publishAsync(topic, 'forever', { qos: 1 });
  await delay(2500);

  const back = await c.mqtt(5, opts);
  assert.equal(back.connack.sessionPresent, true);
  const [long, forever] = await back.inbox.take(2);
  assert.equal(text(long!.payload), 'long', 'the expired message must not be delivered');
  const left = long!.packet.properties?.messageExpiryInterval;
  assert.ok(left !== undefined && left >= 1 && left <= 59, `remaining expiry after 2.5 s of 60 s: ${left}`);
  assert.equal(text(forever!.payload), 'forever');
  assert.equal(forever!.packet.properties?.messageExpiryInterval, undefined, 'no expiry when none was set');
  await back.inbox.expectSilence();
});

// [MQTT-3.3.2-6]
test('[v5] message expiry: a delivered message carries an interval no larger than the one sent', T, async (t) => {
  const c = clientsFor(t, broker.port);
  const topic = uniq('v5/expiry-live');
  const sub = await c.mqtt(5);
  await sub.client.subscribeAsync(topic, { qos: 1 });
  const pub = await c.mqtt(5);
  await pub.client.publishAsync(topic, 'x', { qos: 1, properties: { messageExpiryInterval: 30 } });

  const left = (await sub.inbox.next()).packet.properties?.messageExpiryInterval;
  assert.ok(left !== undefined && left >= 1 && left <= 30, `message expiry interval forwarded as ${left}`);
});

// [MQTT-3.3.2-12]: the Server accepts aliases up to its Topic Alias Maximum; an empty topic name with a known
// alias means the aliased topic; a new topic name with the same alias replaces the mapping.
test('[v5] inbound topic alias: an empty topic with a mapped alias is delivered with the full topic', T, async (t) => {
  const c = clientsFor(t, broker.port);
  const base = uniq('v5/alias-in');
  const sub = await c.mqtt(5);
  await sub.client.subscribeAsync(`${base}/#`, { qos: 1 });
  const raw = await c.raw(5);
  const max = raw.connack.properties?.topicAliasMaximum ?? 0;
  assert.ok(max >= 1, `the broker announces a Topic Alias Maximum (config topic_alias_maximum: 10), got ${max}`);

  await rawPublish(raw.client, `${base}/one`, 'first', { qos: 1, properties: { topicAlias: 1 } });
  await rawPublish(raw.client, '', 'second', { qos: 1, properties: { topicAlias: 1 } });
  await rawPublish(raw.client, `${base}/two`, 'third', { qos: 1, properties: { topicAlias: 1 } });
  await rawPublish(raw.client, '', 'fourth', { qos: 1, properties: { topicAlias: 1 } });

  const got = await sub.inbox.take(4);
  assert.deepEqual(got.map((m) => [m.topic, text(m.payload)]), [
    [`${base}/one`, 'first'],
    [`${base}/one`, 'second'],
    [`${base}/two`, 'third'],
    [`${base}/two`, 'fourth'],
  ]);
  // The subscriber announced no Topic Alias Maximum, so it must get no alias ([MQTT-3.3.2-11]).
  assert.ok(got.every((m) => m.packet.properties?.topicAlias === undefined));
});

// §3.3.2.3.4 and reason code 0x94 "Topic Alias invalid": an alias above the Server's Topic Alias Maximum
// [MQTT-3.3.2-9]. An alias of 0 [MQTT-3.3.2-8] is a Protocol Error that the 0x94 definition does not name
// explicitly, so 0x82 (Protocol Error) is accepted for it as well.
const badAliases = [
  { name: 'above the maximum', alias: (max: number) => max + 1, codes: [0x94] },
  { name: '0', alias: () => 0, codes: [0x94, 0x82] },
] as const;
for (const { name, alias, codes } of badAliases) {
  test(`[v5] inbound topic alias ${name}: DISCONNECT ${codes.map((x) => `0x${x.toString(16)}`).join(' or ')}`, T, async (t) => {
    const c = clientsFor(t, broker.port);
    const raw = await c.raw(5);
    const max = raw.connack.properties?.topicAliasMaximum ?? 0;
    raw.client.send({ cmd: 'publish', topic: uniq('v5/alias-bad'), payload: 'x', qos: 0, retain: false, dup: false, properties: { topicAlias: alias(max) } });
    const packets = await raw.client.expectClosed();
    const disconnect = packets.find((p): p is mqttPacket.IDisconnectPacket => p.cmd === 'disconnect');
    assert.ok(disconnect, `a DISCONNECT before the close, got ${JSON.stringify(packets)}`);
    const rc = disconnect.reasonCode ?? 0;
    assert.ok((codes as readonly number[]).includes(rc), `reason code 0x${rc.toString(16)}`);
  });
}

// §3.3.2.3.4: an empty Topic Name with an alias that has no mapping is a Protocol Error (0x82).
test('[v5] inbound topic alias never mapped, with an empty topic: DISCONNECT 0x82', T, async (t) => {
  const c = clientsFor(t, broker.port);
  const raw = await c.raw(5);
  raw.client.send({ cmd: 'publish', topic: '', payload: 'x', qos: 0, retain: false, dup: false, properties: { topicAlias: 1 } });
  const packets = await raw.client.expectClosed();
  const disconnect = packets.find((p): p is mqttPacket.IDisconnectPacket => p.cmd === 'disconnect');
  assert.ok(disconnect, `a DISCONNECT before the close, got ${JSON.stringify(packets)}`);
  assert.equal(disconnect.reasonCode, 0x82);
});

// §3.3.2.3.4: the Server MAY use aliases toward a client that allows them (smq does, for repeated topics),
// never above the client's Topic Alias Maximum [MQTT-3.3.2-11] and never toward a client that sent none.
test('[v5] outbound topic alias: repeated topics to a client with topicAliasMaximum 10 use an alias', T, async (t) => {
  const c = clientsFor(t, broker.port);
  const topic = uniq('v5/alias-out');
  const aliased = await c.raw(5, { properties: { topicAliasMaximum: 10 } });
  await rawSubscribe(aliased.client, [{ topic, qos: 1 }]);
  const plain = await c.raw(5);
  await rawSubscribe(plain.client, [{ topic, qos: 1 }]);
  const pub = await c.mqtt(5);
  for (const n of [1, 2, 3]) await pub.client.publishAsync(topic, `m${n}`, { qos: 1 });

  const aliases = new Map<number, string>();
  const seen: mqttPacket.IPublishPacket[] = [];
  for (let i = 0; i < 3; i++) {
    const p = await rawNextPublish(aliased.client);
    const alias = p.properties?.topicAlias;
    if (alias !== undefined) {
      assert.ok(alias >= 1 && alias <= 10, `alias ${alias} within the client's maximum`);
      if (p.topic !== '') aliases.set(alias, p.topic);
    }
    const resolved = p.topic !== '' ? p.topic : alias !== undefined ? aliases.get(alias) : undefined;
    assert.equal(resolved, topic, `publish ${i + 1} resolves to the topic (topic '${p.topic}', alias ${alias})`);
    assert.equal(text(p.payload), `m${i + 1}`);
    seen.push(p);
  }
  // Whether the topic name is then left empty is the Server's choice; the alias must be there.
  assert.ok(seen.slice(1).every((p) => p.properties?.topicAlias !== undefined), 'the second and later publishes carry the alias');

  for (let i = 0; i < 3; i++) {
    const p = await rawNextPublish(plain.client);
    assert.equal(p.topic, topic);
    assert.equal(p.properties?.topicAlias, undefined, 'no alias toward a client without Topic Alias Maximum');
  }
});

// [MQTT-3.1.2-24] [MQTT-3.1.2-25]: a message larger than the client's Maximum Packet Size is discarded for that
// client (as if sent) while other subscribers get it.
test("[v5] a message above a subscriber's maximum packet size is not sent to it; others get it", T, async (t) => {
  const c = clientsFor(t, broker.port);
  const topic = uniq('v5/maxsize');
  const small = await c.raw(5, { properties: { maximumPacketSize: 256 } });
  await rawSubscribe(small.client, [{ topic, qos: 1 }]);
  const big = await c.mqtt(5);
  await big.client.subscribeAsync(topic, { qos: 1 });
  const pub = await c.mqtt(5);
  await pub.client.publishAsync(topic, Buffer.alloc(1000, 0x61), { qos: 1 });
  await pub.client.publishAsync(topic, 'small', { qos: 1 });

  const first = await rawNextPublish(small.client);
  assert.equal(text(first.payload), 'small', 'the oversized message was skipped');
  await small.client.expectSilence();
  assert.ok(small.client.isOpen, 'the small client stays connected');

  const [a, b] = await big.inbox.take(2);
  assert.equal(a!.payload.length, 1000);
  assert.equal(text(b!.payload), 'small');
});

// [MQTT-3.3.4-3] [MQTT-3.3.4-4] [MQTT-3.3.4-5]: overlapping subscriptions either give one PUBLISH with all
// their identifiers or one PUBLISH per subscription, each with its own identifier.
test('[v5] subscription identifiers are sent with the messages their subscriptions match', T, async (t) => {
  const c = clientsFor(t, broker.port);
  const base = uniq('v5/subid');
  const other = uniq('v5/subid-none');
  const raw = await c.raw(5);
  assert.notEqual(raw.connack.properties?.subscriptionIdentifiersAvailable, false);
  await rawSubscribe(raw.client, [{ topic: `${base}/+`, qos: 1 }], { subscriptionIdentifier: 7 });
  await rawSubscribe(raw.client, [{ topic: `${base}/a`, qos: 1 }], { subscriptionIdentifier: 9 });
  await rawSubscribe(raw.client, [{ topic: other, qos: 1 }]);
  const pub = await c.mqtt(5);

  await pub.client.publishAsync(`${base}/a`, 'both', { qos: 1 });
  const copies = [await rawNextPublish(raw.client)];
  if (subIds(copies[0]!).length === 1) copies.push(await rawNextPublish(raw.client));
  await raw.client.expectSilence();
  assert.ok(copies.every((p) => text(p.payload) === 'both'));
  if (copies.length === 1) {
    assert.deepEqual(subIds(copies[0]!), [7, 9], 'one copy carries both identifiers');
  } else {
    assert.deepEqual(copies.map(subIds).sort(), [[7], [9]], 'one copy per subscription, each with its identifier');
  }

  await pub.client.publishAsync(`${base}/b`, 'one', { qos: 1 });
  assert.deepEqual(subIds(await rawNextPublish(raw.client)), [7]);
  await pub.client.publishAsync(other, 'none', { qos: 1 });
  assert.deepEqual(subIds(await rawNextPublish(raw.client)), [], 'no identifier when the subscription has none');
});

// [MQTT-3.8.3-3]
test('[v5] no local: a client subscribed with nl=1 does not get its own publishes', T, async (t) => {
  const c = clientsFor(t, broker.port);
  const topic = uniq('v5/nolocal');
  const self = await c.mqtt(5);
  await self.client.subscribeAsync(topic, { qos: 1, nl: true });
  const peer = await c.mqtt(5);
  await peer.client.subscribeAsync(topic, { qos: 1, nl: false });

  await self.client.publishAsync(topic, 'own', { qos: 1 });
  assert.equal(text((await peer.inbox.next()).payload), 'own', 'other subscribers get it');
  await peer.client.publishAsync(topic, 'from peer', { qos: 1 });
  // Messages keep their order, so had 'own' been forwarded to self it would arrive first.
  assert.equal(text((await self.inbox.next()).payload), 'from peer');
  assert.equal(text((await peer.inbox.next()).payload), 'from peer', 'nl=0 gets its own publish');
  await self.inbox.expectSilence();
});

// [MQTT-3.1.2-29]: with Request Problem Information 0 the Server MUST NOT send a Reason String or User
// Properties on any packet other than PUBLISH, CONNACK or DISCONNECT. Acknowledgements that may carry a
// refusal are provoked: 0x10 no matching subscribers, 0x11 no subscription existed, 0x99 payload format
// invalid, and a publish to `$SYS/` (which brokers commonly refuse). A broker may answer the last two with a
// DISCONNECT instead, so each gets its own connection. Whether reason strings are sent when the client asks
// for them is optional, so that is not tested.
test('[v5] request problem information 0: acknowledgements, refusals included, carry no reason string', T, async (t) => {
  const c = clientsFor(t, broker.port);
  const noProblemInfo = { properties: { requestProblemInformation: false } };
  const raw = await c.raw(5, noProblemInfo);
  const r = raw.client;

  assertNoProblemInfo(await rawSubscribe(r, [{ topic: uniq('v5/rpi'), qos: 2 }]), 'SUBACK');
  r.send({ cmd: 'unsubscribe', messageId: nextId(r), unsubscriptions: [uniq('v5/rpi-never')] });
  assertNoProblemInfo(await r.next('unsuback'), 'UNSUBACK (no subscription existed)');
  assertNoProblemInfo((await rawPublish(r, uniq('v5/rpi-nobody'), 'x', { qos: 1 }))!, 'PUBACK (no matching subscribers)');
  assertNoProblemInfo((await rawPublish(r, uniq('v5/rpi-nobody'), 'x', { qos: 2 }))!, 'PUBREC');

  const refusable: [string, mqttPacket.IPublishPacket][] = [
    ['payload not UTF-8 though declared so', {
      cmd: 'publish', topic: uniq('v5/rpi-nobody'), payload: Buffer.from([0xff, 0xfe, 0xc0]), qos: 1, messageId: 1,
      retain: false, dup: false, properties: { payloadFormatIndicator: true },
    }],
    ['publish to $SYS/', { cmd: 'publish', topic: `$SYS/${uniq('smq-test')}`, payload: 'x', qos: 1, messageId: 1, retain: false, dup: false }],
  ];
  for (const [what, packet] of refusable) {
    const one = await c.raw(5, noProblemInfo);
    one.client.send(packet);
    const p = await one.client.next(undefined, 3000);
    if (p.cmd === 'puback') {
      assertNoProblemInfo(p, `${what}: PUBACK 0x${(p.reasonCode ?? 0).toString(16)}`);
    } else {
      assert.equal(p.cmd, 'disconnect', `${what}: expected PUBACK or DISCONNECT, got ${JSON.stringify(p)}`);
    }
  }
});

// §4.12: a Client that sent no Authentication Method in CONNECT must not send AUTH. The spec leaves the exact
// reason to the Server: 0x82 (Protocol Error) or 0x8C (Bad authentication method) are both accepted.
test('[v5] AUTH without an authentication method in CONNECT: DISCONNECT 0x82 or 0x8C', T, async (t) => {
  const c = clientsFor(t, broker.port);
  const raw = await c.raw(5);
  raw.client.send({ cmd: 'auth', reasonCode: 0x18 });
  const packets = await raw.client.expectClosed();
  const disconnect = packets.find((p): p is mqttPacket.IDisconnectPacket => p.cmd === 'disconnect');
  assert.ok(disconnect, `a DISCONNECT before the close, got ${JSON.stringify(packets)}`);
  assert.ok([0x82, 0x8c].includes(disconnect.reasonCode ?? 0), `reason code 0x${(disconnect.reasonCode ?? 0).toString(16)}`);
});
