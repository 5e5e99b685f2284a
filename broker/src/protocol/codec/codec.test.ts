import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import mqtt, { type IPublishPacket, type Packet } from 'mqtt-packet';
import { MqttError } from '../errors.js';
import { RC } from '../reason-codes.js';
import { PacketReader } from './reader.js';
import { encodeAck, encodePublish, NO_PROPERTIES, PINGRESP, PUBACK, PUBCOMP, PUBREC, PUBREL } from './writer.js';

// Byte-level fixtures shared by the reader and writer tests.
const PUBLISH_V4_QOS0 = Buffer.from([
  0x30, 0x07, //             PUBLISH, QoS 0; Remaining Length 7
  0x00, 0x03, 0x61, 0x2f, 0x62, // topic "a/b"
  0x68, 0x69, //             payload "hi"
]);
const PUBLISH_V4_QOS1_RETAIN_DUP = Buffer.from([
  0x3b, 0x09, //             PUBLISH, DUP, QoS 1, RETAIN; Remaining Length 9
  0x00, 0x03, 0x61, 0x2f, 0x62, // topic "a/b"
  0x12, 0x34, //             packet id 0x1234
  0x68, 0x69, //             payload "hi"
]);
const PUBLISH_V5_QOS2_NO_PROPS = Buffer.from([
  0x34, 0x0a, //             PUBLISH, QoS 2; Remaining Length 10
  0x00, 0x03, 0x61, 0x2f, 0x62, // topic "a/b"
  0x00, 0x07, //             packet id 7
  0x00, //                   property length 0
  0x68, 0x69, //             payload "hi"
]);
const PUBLISH_V5_ALIAS = Buffer.from([
  0x30, 0x08, //             PUBLISH, QoS 0; Remaining Length 8
  0x00, 0x00, //             empty topic
  0x03, 0x23, 0x00, 0x05, // properties (3 bytes): Topic Alias (0x23) = 5
  0x68, 0x69, //             payload "hi"
]);
const CONNECT_V5 = mqtt.generate({ cmd: 'connect', protocolVersion: 5, clientId: 'c', keepalive: 0 });

/** Parses `chunks` in order and returns what came out. */
function read(chunks: Buffer[], version = 4, max = 1 << 20): { packets: Packet[]; errors: Error[] } {
  const packets: Packet[] = [];
  const errors: Error[] = [];
  const reader = new PacketReader(max, { onPacket: (p) => packets.push(p), onParseError: (e) => errors.push(e) });
  reader.version = version;
  for (const c of chunks) reader.parse(c);
  return { packets, errors };
}

function only(packets: Packet[]): IPublishPacket {
  assert.equal(packets.length, 1);
  return packets[0] as IPublishPacket;
}

describe('PacketReader', () => {
  it('decodes a v3.1.1 QoS 0 and a QoS 1 PUBLISH with DUP and RETAIN', () => {
    const a = only(read([PUBLISH_V4_QOS0]).packets);
    assert.deepEqual([a.cmd, a.topic, a.qos, a.retain, a.dup, a.payload.toString()], ['publish', 'a/b', 0, false, false, 'hi']);
    assert.equal(a.messageId, undefined);
    const b = only(read([PUBLISH_V4_QOS1_RETAIN_DUP]).packets);
    assert.deepEqual([b.qos, b.retain, b.dup, b.messageId, b.payload.toString()], [1, true, true, 0x1234, 'hi']);
  });

  it('decodes a v5 PUBLISH with an empty property list itself and one with properties through mqtt-packet', () => {
    const a = only(read([PUBLISH_V5_QOS2_NO_PROPS], 5).packets);
    assert.deepEqual([a.topic, a.qos, a.messageId, a.payload.toString(), a.properties], ['a/b', 2, 7, 'hi', undefined]);
    const b = only(read([PUBLISH_V5_ALIAS], 5).packets);
    assert.deepEqual([b.topic, b.properties?.topicAlias, b.payload.toString()], ['', 5, 'hi']);
  });

  it('learns the protocol level from CONNECT', () => {
    const { packets, errors } = read([Buffer.concat([CONNECT_V5, PUBLISH_V5_ALIAS])]);
    assert.deepEqual(errors, []);
    assert.deepEqual(packets.map((p) => p.cmd), ['connect', 'publish']);
    assert.equal((packets[1] as IPublishPacket).properties?.topicAlias, 5);
  });

  it('gives the same packets however the bytes are split', () => {
    const stream = Buffer.concat([PUBLISH_V4_QOS0, PUBLISH_V4_QOS1_RETAIN_DUP, Buffer.from([0xc0, 0x00, 0x40, 0x02, 0x00, 0x09])]);
    const whole = read([stream]).packets;
    assert.deepEqual(whole.map((p) => p.cmd), ['publish', 'publish', 'pingreq', 'puback']);
    for (let cut = 1; cut < stream.length; cut++) {
      assert.deepEqual(read([stream.subarray(0, cut), stream.subarray(cut)]).packets, whole, `split at ${cut}`);
    }
    assert.deepEqual(read([...stream].map((b) => Buffer.from([b]))).packets, whole, 'one byte at a time');
  });

  it('copies payloads out of the read buffer', () => {
    const chunk = Buffer.from(PUBLISH_V4_QOS0);
    const p = only(read([chunk]).packets);
    chunk.fill(0);
    assert.equal(p.payload.toString(), 'hi');
  });

  it('decodes the four acknowledgements, with reason code 0 in v5', () => {
    const bytes = [0x40, 0x50, 0x62, 0x70].map((b) => Buffer.from([b, 0x02, 0x00, 0x2a]));
    assert.deepEqual(
      read(bytes).packets.map((p) => [p.cmd, (p as { messageId: number }).messageId]),
      [['puback', 42], ['pubrec', 42], ['pubrel', 42], ['pubcomp', 42]],
    );
    assert.ok(read(bytes, 5).packets.every((p) => (p as { reasonCode: number }).reasonCode === 0));
  });

  it('takes v5 acknowledgements with a reason code through mqtt-packet', () => {
    const p = read([Buffer.from([0x40, 0x03, 0x00, 0x2a, 0x10])], 5).packets[0] as { cmd: string; reasonCode: number };
    assert.deepEqual([p.cmd, p.reasonCode], ['puback', 0x10]);
  });

  it('rejects reserved flags, QoS 3, a five-byte length and a truncated topic', () => {
    const cases: [string, Buffer][] = [
      ['PUBREL with flags 0', Buffer.from([0x60, 0x02, 0x00, 0x01])],
      ['PUBACK with flags 2', Buffer.from([0x42, 0x02, 0x00, 0x01])],
      ['PUBLISH QoS 3', Buffer.from([0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01])],
      ['five-byte length', Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])],
      ['topic longer than the packet', Buffer.from([0x30, 0x03, 0x00, 0x09, 0x61])],
      ['reserved packet type 0', Buffer.from([0x00, 0x00])],
    ];
    for (const [name, bytes] of cases) {
      const { packets, errors } = read([bytes]);
      assert.equal(errors.length, 1, name);
      assert.equal(packets.length, 0, name);
    }
  });

  it('shares mqtt-packet between readers without one frame leaking into the next', () => {
    // A malformed SUBSCRIBE (its filter runs past the packet) fails in the shared parser; a good one must still
    // parse after it.
    const bad = read([Buffer.from([0x82, 0x05, 0x00, 0x01, 0x00, 0x09, 0x61])]);
    assert.equal(bad.errors.length, 1);
    const good = read([mqtt.generate({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'a/#', qos: 1 }] })]);
    assert.deepEqual(good.errors, []);
    assert.equal((good.packets[0] as { subscriptions: { topic: string }[] }).subscriptions[0]?.topic, 'a/#');
    // A v5 CONNECT read by one connection does not make the next v3.1.1 connection's SUBSCRIBE parse as v5.
    assert.equal(read([CONNECT_V5], 4).packets[0]?.cmd, 'connect');
    const sub = mqtt.generate({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: 'b', qos: 0 }] });
    const v4 = read([sub], 4);
    assert.deepEqual(v4.errors, []);
    assert.equal((v4.packets[0] as { subscriptions: { topic: string }[] }).subscriptions[0]?.topic, 'b');
  });

  it('parses a good CONNECT right after mqtt-packet refused a bad one', () => {
    const good = mqtt.generate({ cmd: 'connect', protocolVersion: 4, clientId: 'a', keepalive: 0 });
    const bad = Buffer.from(good);
    bad[9] = (bad[9] as number) | 1; // reserved connect flag [MQTT-3.1.2-3]
    assert.equal(read([bad]).errors.length, 1);
    const after = read([good]);
    assert.deepEqual(after.errors, []);
    assert.equal(after.packets[0]?.cmd, 'connect');
  });

  it('refuses an oversized packet from its header, before the body arrives', () => {
    const { errors } = read([Buffer.from([0x30, 0x80, 0x80, 0x01])], 4, 1000); // announces 16384 bytes
    assert.equal(errors.length, 1);
    assert.ok(errors[0] instanceof MqttError);
    assert.equal(errors[0].reasonCode, RC.PACKET_TOO_LARGE);
  });

  it('stops delivering once halted', () => {
    const packets: Packet[] = [];
    const reader = new PacketReader(1 << 20, {
      onPacket: (p) => {
        packets.push(p);
        reader.halted = true;
      },
      onParseError: () => assert.fail('no error expected'),
    });
    reader.parse(Buffer.concat([PUBLISH_V4_QOS0, PUBLISH_V4_QOS0]));
    assert.equal(packets.length, 1);
  });

  it('reassembles a large PUBLISH that arrives in many chunks', () => {
    const big = mqtt.generate({ cmd: 'publish', topic: 't', payload: Buffer.alloc(300_000, 7), qos: 1, messageId: 3, dup: false, retain: false });
    const chunks: Buffer[] = [];
    for (let i = 0; i < big.length; i += 65536) chunks.push(big.subarray(i, i + 65536));
    const p = only(read(chunks).packets);
    assert.equal(p.payload.length, 300_000);
    assert.ok((p.payload as Buffer).every((b) => b === 7));
  });
});

describe('packet writer', () => {
  const topic = Buffer.from('a/b');
  const payload = Buffer.from('hi');

  it('encodes PUBLISH byte for byte like the fixtures', () => {
    assert.deepEqual(encodePublish(topic, payload, 0, false, false, 0, null), PUBLISH_V4_QOS0);
    assert.deepEqual(encodePublish(topic, payload, 1, true, true, 0x1234, null), PUBLISH_V4_QOS1_RETAIN_DUP);
    assert.deepEqual(encodePublish(topic, payload, 2, false, false, 7, NO_PROPERTIES), PUBLISH_V5_QOS2_NO_PROPS);
  });

  it('agrees with mqtt-packet across Remaining Length sizes and versions', () => {
    for (const size of [0, 1, 120, 121, 16_380, 16_384, 2_097_000, 2_097_152]) {
      for (const qos of [0, 1, 2] as const) {
        for (const version of [4, 5] as const) {
          const body = Buffer.alloc(size, 0x5a);
          const ours = encodePublish(Buffer.from('x/ÿ/€'), body, qos, qos > 0, true, 513, version === 5 ? NO_PROPERTIES : null);
          const theirs = mqtt.generate(
            { cmd: 'publish', topic: 'x/ÿ/€', payload: body, qos, dup: qos > 0, retain: true, messageId: qos > 0 ? 513 : undefined },
            { protocolVersion: version },
          );
          assert.ok(ours.equals(theirs), `size ${size} qos ${qos} v${version}`);
        }
      }
    }
  });

  it('encodes the acknowledgements and PINGRESP', () => {
    assert.deepEqual(encodeAck(PUBACK, 0x0102), Buffer.from([0x40, 0x02, 0x01, 0x02]));
    assert.deepEqual(encodeAck(PUBREC, 1), mqtt.generate({ cmd: 'pubrec', messageId: 1 }));
    assert.deepEqual(encodeAck(PUBREL, 65535), mqtt.generate({ cmd: 'pubrel', messageId: 65535 }));
    assert.deepEqual(encodeAck(PUBCOMP, 9), mqtt.generate({ cmd: 'pubcomp', messageId: 9 }));
    assert.deepEqual(PINGRESP, mqtt.generate({ cmd: 'pingresp' }));
  });
});
