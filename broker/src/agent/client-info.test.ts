import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt, { type IConnectPacket, type Packet } from 'mqtt-packet';
import { MqttError } from '../protocol/errors.js';
import { PacketReader } from '../protocol/codec/reader.js';
import { RC } from '../protocol/reason-codes.js';
import {
  ClientInfoError,
  clientInfoFromJson,
  clientInfoFromTrailer,
  clientInfoOf,
  connectTrailer,
  type ConnectWithTrailer,
} from './client-info.js';

const INFO = { host_name: 'pi.example.com', intranet_ip: '192.168.1.100', public_ip: '', platform: 'linux', arch: 'aarch64', os: 'CentOS Stream release 8', agent_version: 'v0.0.1' };

/** An MQTT string: two-byte big-endian length, then the UTF-8 bytes. */
function mqttString(s: string | Buffer): number[] {
  const b = Buffer.isBuffer(s) ? s : Buffer.from(s, 'utf8');
  return [b.length >> 8, b.length & 0xff, ...b];
}

/** A CONNECT frame: fixed header 0x10, the Remaining Length (1 or 2 bytes here), then `body`. */
function frame(body: number[]): Buffer {
  const n = body.length;
  const rl = n < 128 ? [n] : [(n & 0x7f) | 0x80, n >> 7];
  return Buffer.from([0x10, ...rl, ...body]);
}

const JSON_TEXT = '{"host_name":"h1","os":"linux"}';

test('connectTrailer: MQTT 3.1.1 without anything after the payload is an ordinary client', () => {
  const f = frame([
    ...mqttString('MQTT'), 0x04, // protocol name, level 4
    0x02, 0x00, 0x3c, //            flags: clean session; keep-alive 60
    ...mqttString('a1'), //         client id
  ]);
  assert.equal(connectTrailer(f, 0, f.length), null);
});

test('connectTrailer: MQTT 3.1.1, the string after the client id', () => {
  const f = frame([
    ...mqttString('MQTT'), 0x04, 0x02, 0x00, 0x3c,
    ...mqttString('a1'),
    ...mqttString(JSON_TEXT), //    the ClientInfo string
  ]);
  const t = connectTrailer(f, 0, f.length);
  assert.deepEqual(t, Buffer.from(mqttString(JSON_TEXT)));
  assert.deepEqual(clientInfoFromTrailer(t as Buffer), { ...clientInfoFromJson('{}'), host_name: 'h1', os: 'linux' });
});

test('connectTrailer: MQTT 3.1.1 with will, user name and password, the string after the password', () => {
  const f = frame([
    ...mqttString('MQTT'), 0x04,
    0xee, 0x00, 0x05, //            flags: user name, password, will retain, will QoS 1, will, clean; keep-alive 5
    ...mqttString('agent-7'),
    ...mqttString('will/t'), //     will topic
    ...mqttString('bye'), //        will payload
    ...mqttString('user'),
    ...mqttString('secret'),
    ...mqttString(JSON_TEXT),
  ]);
  assert.deepEqual(connectTrailer(f, 0, f.length), Buffer.from(mqttString(JSON_TEXT)));
});

test('connectTrailer: MQTT 3.1 ("MQIsdp", 12-byte variable header) with user name and password', () => {
  const f = frame([
    ...mqttString('MQIsdp'), 0x03, // 3.1
    0xc2, 0x00, 0x0a, //            user name, password, clean; keep-alive 10
    ...mqttString('old-agent'),
    ...mqttString('u'),
    ...mqttString('p'),
    ...mqttString(JSON_TEXT),
  ]);
  assert.deepEqual(connectTrailer(f, 0, f.length), Buffer.from(mqttString(JSON_TEXT)));
  const plain = frame([...mqttString('MQIsdp'), 0x03, 0xc2, 0x00, 0x0a, ...mqttString('old-agent'), ...mqttString('u'), ...mqttString('p')]);
  assert.equal(connectTrailer(plain, 0, plain.length), null);
});

test('connectTrailer: MQTT 5 skips the CONNECT and will properties', () => {
  const f = frame([
    ...mqttString('MQTT'), 0x05,
    0xc6, 0x00, 0x1e, //            user name, password, will (QoS 0), clean start; keep-alive 30
    0x05, 0x11, 0x00, 0x00, 0x00, 0x3c, // properties (5 bytes): session expiry interval 60
    ...mqttString('v5-agent'),
    0x05, 0x18, 0x00, 0x00, 0x00, 0x02, // will properties (5 bytes): will delay interval 2
    ...mqttString('w'), ...mqttString('x'),
    ...mqttString('u'), ...mqttString('p'),
    ...mqttString(JSON_TEXT),
  ]);
  assert.deepEqual(connectTrailer(f, 0, f.length), Buffer.from(mqttString(JSON_TEXT)));
  const plain = frame([...mqttString('MQTT'), 0x05, 0x02, 0x00, 0x1e, 0x00, ...mqttString('v5-agent')]);
  assert.equal(connectTrailer(plain, 0, plain.length), null);
});

test('connectTrailer: a two-byte Remaining Length and a frame inside a larger buffer', () => {
  const big = JSON.stringify({ ...INFO, note: 'x'.repeat(200) });
  const f = frame([...mqttString('MQTT'), 0x04, 0x02, 0x00, 0x3c, ...mqttString('a1'), ...mqttString(big)]);
  assert.ok(f.length > 130);
  const buf = Buffer.concat([Buffer.from([0xc0, 0x00]), f, Buffer.from([0xc0, 0x00])]); // PINGREQs around it
  const t = connectTrailer(buf, 2, 2 + f.length);
  assert.deepEqual(clientInfoFromTrailer(t as Buffer), INFO, 'the unknown field is ignored');
});

test('connectTrailer agrees with mqtt-packet on every protocol level and field combination', () => {
  for (const protocolVersion of [3, 4, 5] as const) {
    for (const extra of [{}, { username: 'u' }, { username: 'u', password: Buffer.from('p') }, { will: { topic: 'w', payload: Buffer.from('x'), qos: 1 as const, retain: false } }]) {
      const packet = {
        cmd: 'connect', protocolId: protocolVersion === 3 ? 'MQIsdp' : 'MQTT', protocolVersion, clientId: 'c', clean: true, keepalive: 5, ...extra,
        properties: protocolVersion === 5 ? { sessionExpiryInterval: 9, userProperties: { a: 'b' } } : undefined,
      } as IConnectPacket;
      const plain = mqtt.generate(packet);
      assert.equal(connectTrailer(plain, 0, plain.length), null, `v${protocolVersion} ${Object.keys(extra).join(',')}`);
      const body = [...plain.subarray(2), ...mqttString(JSON_TEXT)];
      const f = frame(body);
      assert.deepEqual(connectTrailer(f, 0, f.length), Buffer.from(mqttString(JSON_TEXT)));
    }
  }
});

test('the reader hands the trailing bytes on with the CONNECT, and mqtt-packet still decodes the rest', () => {
  const f = frame([...mqttString('MQTT'), 0x04, 0x82, 0x00, 0x3c, ...mqttString('a1'), ...mqttString('bob'), ...mqttString(JSON_TEXT)]);
  const got: Packet[] = [];
  const reader = new PacketReader(1 << 20, { onPacket: (p) => got.push(p), onParseError: (e) => assert.fail(e) });
  reader.parse(Buffer.concat([f, Buffer.from([0xc0, 0x00])]));
  const connect = got[0] as ConnectWithTrailer;
  assert.equal(connect.cmd, 'connect');
  assert.equal(connect.clientId, 'a1');
  assert.equal(connect.username, 'bob');
  assert.deepEqual(connect.trailer, Buffer.from(mqttString(JSON_TEXT)));
  assert.equal(got[1]?.cmd, 'pingreq');
  const ordinary: Packet[] = [];
  new PacketReader(1 << 20, { onPacket: (p) => ordinary.push(p), onParseError: (e) => assert.fail(e) })
    .parse(frame([...mqttString('MQTT'), 0x04, 0x02, 0x00, 0x3c, ...mqttString('a1')]));
  assert.equal('trailer' in (ordinary[0] as object), false);
});

test('clientInfoFromTrailer refuses what is not exactly one well-formed MQTT string of JSON', () => {
  const bad: [string, Buffer][] = [
    ['one byte', Buffer.from([0x00])],
    ['length longer than the bytes', Buffer.from([0x00, 0x05, 0x7b, 0x7d])],
    ['length shorter than the bytes', Buffer.from([0x00, 0x01, 0x7b, 0x7d])],
    ['two strings', Buffer.from([...mqttString('{}'), ...mqttString('{}')])],
    ['invalid UTF-8', Buffer.from([0x00, 0x02, 0xc3, 0x28])],
    ['U+0000', Buffer.from(mqttString('{"os":"a\u0000"}'))],
    ['empty string', Buffer.from([0x00, 0x00])],
    ['not JSON', Buffer.from(mqttString('host=pi'))],
    ['JSON array', Buffer.from(mqttString('["pi"]'))],
    ['JSON null', Buffer.from(mqttString('null'))],
    ['JSON string', Buffer.from(mqttString('"pi"'))],
    ['a field that is not a string', Buffer.from(mqttString('{"host_name":7}'))],
    ['a null field', Buffer.from(mqttString('{"os":null}'))],
    ['more than 4 KiB', Buffer.from(mqttString(JSON.stringify({ host_name: 'h'.repeat(4096) })))],
  ];
  for (const [what, bytes] of bad) assert.throws(() => clientInfoFromTrailer(bytes), ClientInfoError, what);
});

test('clientInfoFromJson: missing fields are empty strings, unknown fields of any type are ignored', () => {
  assert.deepEqual(clientInfoFromJson('{"arch":"x86_64","extra":{"n":1},"list":[1]}'), {
    host_name: '', intranet_ip: '', public_ip: '', platform: '', arch: 'x86_64', os: '', agent_version: '',
  });
  assert.deepEqual(clientInfoFromJson(JSON.stringify(INFO)), INFO);
  assert.deepEqual(clientInfoFromJson(JSON.stringify({ host_name: 'h'.repeat(4000) })).host_name.length, 4000);
});

test('clientInfoOf: the trailer, else the v5 user property; refusals are MqttError 0x99', () => {
  const base: ConnectWithTrailer = { cmd: 'connect', clientId: 'a', protocolVersion: 5 };
  assert.equal(clientInfoOf(base), null);
  assert.equal(clientInfoOf({ ...base, properties: { userProperties: { other: 'x' } } }), null);
  assert.deepEqual(clientInfoOf({ ...base, properties: { userProperties: { client_info: JSON.stringify(INFO) } } }), INFO);
  assert.deepEqual(clientInfoOf({ ...base, trailer: Buffer.from(mqttString('{"os":"t"}')), properties: { userProperties: { client_info: '{"os":"p"}' } } })?.os, 't');
  const refused = (p: ConnectWithTrailer, why: RegExp): void => {
    assert.throws(() => clientInfoOf(p), (err: unknown) => err instanceof MqttError && err.reasonCode === RC.PAYLOAD_FORMAT_INVALID && why.test(err.message));
  };
  refused({ ...base, properties: { userProperties: { client_info: '{' } } }, /not JSON/);
  refused({ ...base, properties: { userProperties: { client_info: ['{}', '{}'] } } }, /more than once/);
  refused({ ...base, trailer: Buffer.from([0x01]) }, /not an MQTT string/);
});
