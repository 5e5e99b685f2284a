import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CodecError, Decoder, Encoder } from './codec.js';
import type { StoredDelivery, StoredMessage } from './types.js';

function message(payload: Buffer, properties?: StoredMessage['properties']): StoredMessage {
  return { topic: 'a/b/🙂', payload, qos: 2, retain: true, properties, origin: 'pub', expiresAt: 1_700_000_000_123 };
}

function delivery(seq: number, payload = Buffer.from('hello')): StoredDelivery {
  return {
    clientId: 'client',
    seq,
    message: message(payload, { userProperties: { k: ['a', 'b'] }, correlationData: Buffer.from([1, 2]), contentType: 'text/plain' }),
    qos: 1,
    retain: false,
    subIds: [3, 4],
    packetId: 65535,
    state: 1,
  };
}

test('every single-bit flip in a value is caught', () => {
  const enc = new Encoder();
  const dec = new Decoder();
  const value = Buffer.from(enc.delivery('client', false, delivery(42)));
  assert.deepStrictEqual(dec.delivery('client', 'client', 42, value), delivery(42));
  for (let i = 0; i < value.length * 8; i++) {
    const bad = Buffer.from(value);
    bad[i >> 3] = (bad[i >> 3] as number) ^ (1 << (i & 7));
    assert.throws(() => dec.delivery('client', 'client', 42, bad), CodecError, `bit ${i}`);
  }
});

test('a value read under another key is caught (the CRC covers the key)', () => {
  const enc = new Encoder();
  const dec = new Decoder();
  const value = Buffer.from(enc.delivery('client', false, delivery(42)));
  assert.throws(() => dec.delivery('client', 'client', 43, value), /checksum mismatch/);
  assert.throws(() => dec.delivery('clienT', 'clienT', 42, value), /checksum mismatch/);
  assert.throws(() => dec.incoming('client', 'client', 42, value), /checksum mismatch/);
  const incoming = Buffer.from(enc.incoming('client', false, 'client', 7));
  assert.equal(dec.incoming('client', 'client', 7, incoming), 'client');
  assert.throws(() => dec.incoming('client', 'client', 8, incoming), CodecError);
});

test('short, empty and other-format values are refused', () => {
  const dec = new Decoder();
  assert.throws(() => dec.retained('t', Buffer.alloc(0)), /too short/);
  assert.throws(() => dec.retained('t', Buffer.from([1, 2, 3])), /too short/);
  const enc = new Encoder();
  const value = Buffer.from(enc.retained('a/b/🙂', message(Buffer.from('x'))));
  assert.throws(() => dec.retained('a/b/🙂', value.subarray(0, value.length - 1)), CodecError);
});

test('numbers the encoding cannot hold are refused when written, not stored wrong', () => {
  const enc = new Encoder();
  for (const expiresAt of [-1, 1.5, Number.NaN, 2 ** 53]) {
    assert.throws(() => enc.retained('t', { ...message(Buffer.alloc(0)), expiresAt }), RangeError, String(expiresAt));
  }
  assert.throws(() => enc.retained('t', message(Buffer.alloc(0), { userProperties: { k: (() => 1) as unknown as string } })), RangeError);
  let deep: unknown = 'x';
  for (let i = 0; i < 20; i++) deep = [deep];
  assert.throws(() => enc.retained('t', message(Buffer.alloc(0), { userProperties: { k: deep as string } })), /nested too deeply/);
  // The largest safe integer and fractional property values are fine.
  const dec = new Decoder();
  const m = { ...message(Buffer.alloc(0)), expiresAt: Number.MAX_SAFE_INTEGER };
  assert.deepStrictEqual(dec.retained('t', Buffer.from(enc.retained('t', m))), m);
});

test('values written earlier stay intact while later ones fill and outgrow the slabs', () => {
  const enc = new Encoder();
  const dec = new Decoder();
  const written: [StoredDelivery, Buffer][] = [];
  for (let seq = 0; seq < 300; seq++) {
    const size = seq % 50 === 0 ? 200_000 : (seq * 977) % 5000;
    const d = delivery(seq, Buffer.alloc(size, seq & 0xff));
    written.push([d, enc.delivery('client', false, d)]);
  }
  for (const [d, v] of written) assert.deepStrictEqual(dec.delivery('client', 'client', d.seq, v), d);
});

test('long strings and ids carried in the value (hashed keys) round-trip', () => {
  const enc = new Encoder();
  const dec = new Decoder();
  const id = '🙂'.repeat(40_000);
  const d = { ...delivery(1), clientId: id };
  const v = enc.delivery('HASH', true, d);
  assert.deepStrictEqual(dec.delivery('HASH', undefined, 1, v), d);
  const s = { clientId: id, username: 'ü', expiryInterval: 0xffffffff, disconnectedAt: 0, subscriptions: [], will: null };
  assert.deepStrictEqual(dec.session('HASH', undefined, enc.session('HASH', true, s)), s);
});

test('a session keeps its owner: the username, or an identity of its own, written only when it differs', () => {
  const enc = new Encoder();
  const dec = new Decoder();
  const base = { clientId: 'x', expiryInterval: 60, disconnectedAt: 1, subscriptions: [], will: null };
  const sameAsUser = { ...base, username: 'alice', owner: 'alice' };
  const plain = enc.session('x', false, sameAsUser);
  assert.deepStrictEqual(dec.session('x', 'x', plain), { ...base, username: 'alice' }, 'no owner: it is the username');
  // What older nodes wrote and read: flag 1 and the username, nothing more.
  assert.deepStrictEqual(Buffer.from(plain), Buffer.from(enc.session('x', false, { ...base, username: 'alice' })));
  const token = { ...base, username: 'eyJ...', owner: '\u0000jwt:device-7' };
  assert.deepStrictEqual(dec.session('x', 'x', enc.session('x', false, token)), token);
  const certificate = { ...base, owner: '\u0000cert:dev-1\u0000' };
  assert.deepStrictEqual(dec.session('x', 'x', enc.session('x', false, certificate)), certificate);
  const anonymous = { ...base };
  assert.deepStrictEqual(dec.session('x', 'x', enc.session('x', false, { ...anonymous, owner: '' })), anonymous);
});

test('a cluster batch round-trips its messages, targets and groups, and is bound to its inbox key', () => {
  const enc = new Encoder();
  const dec = new Decoder();
  const entries = [
    { message: message(Buffer.from('hello')), normal: true, groups: [] },
    { message: { ...message(Buffer.from('xyz')), topic: 'b/c', qos: 1 as const }, normal: false, groups: ['g\u0000b/#', 'h\u0000+/c'] },
  ];
  const value = enc.batch('/smq/c/inbox/n2/n1/1', entries);
  const back = dec.batch('/smq/c/inbox/n2/n1/1', value);
  assert.deepEqual(back.map((e) => [e.message.topic, e.message.qos, e.message.payload.toString(), e.normal, e.groups]), [
    ['a/b/🙂', 2, 'hello', true, []],
    ['b/c', 1, 'xyz', false, ['g\u0000b/#', 'h\u0000+/c']],
  ]);
  assert.throws(() => dec.batch('/smq/c/inbox/n3/n1/1', value), CodecError, 'the same bytes under another key are refused');
});

test('a message identity round-trips where the reader takes it, and is left out for an older one', () => {
  const enc = new Encoder();
  const dec = new Decoder();
  const d = { ...delivery(1), message: { ...message(Buffer.from('x')), qos: 2 as const, id: 'n1:1700000000000001' } };
  assert.deepStrictEqual(dec.delivery('client', 'client', 1, enc.delivery('client', false, d)), d);
  const withoutId = dec.delivery('client', 'client', 1, enc.delivery('client', false, d, false));
  assert.equal(withoutId.message.id, undefined, 'an older node never sees the flag it would refuse');
  const entries = [{ message: d.message, normal: true, groups: [] }];
  assert.equal(dec.batch('/inbox/k', enc.batch('/inbox/k', entries))[0]?.message.id, 'n1:1700000000000001');
  assert.equal(dec.batch('/inbox/k', enc.batch('/inbox/k', entries, false))[0]?.message.id, undefined);
});
