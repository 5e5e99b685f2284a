import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { StoredDelivery } from '../store/types.js';
import { type MovingSession, SessionCodec } from './session-codec.js';

const message = (n: number): StoredDelivery['message'] => ({
  topic: `a/${n}`, payload: Buffer.from(`p${n}`), qos: 1, retain: false, properties: undefined, origin: 'pub', expiresAt: 0,
});
const delivery = (seq: number, packetId: number): StoredDelivery => ({
  clientId: 'c1', seq, message: message(seq), qos: 1, retain: false, subIds: undefined, packetId, state: 0,
});
const moving: MovingSession = {
  session: {
    clientId: 'c1', username: 'u', expiryInterval: 600, disconnectedAt: 1_700_000_000_000, will: null,
    subscriptions: [{ raw: 'a/#', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0, id: 0 }],
  },
  deliveries: [delivery(3, 7), delivery(4, 0)],
  incoming: [9, 12],
  mark: 5,
};

test('a session move frame carries the session, its deliveries, incoming ids and mark, and its sender', () => {
  const codec = new SessionCodec();
  const frame = codec.decode('c1', codec.encode('c1', { kind: 'snapshot', from: 'node-a', moving }));
  assert.equal(frame.kind, 'snapshot');
  assert.equal(frame.from, 'node-a');
  if (frame.kind !== 'snapshot') return;
  assert.equal(frame.moving.mark, 5);
  assert.deepEqual(frame.moving.incoming, [9, 12]);
  assert.deepEqual(frame.moving.deliveries.map((d) => [d.seq, d.packetId, d.message.topic, d.message.payload.toString()]),
    [[3, 7, 'a/3', 'p3'], [4, 0, 'a/4', 'p4']]);
  assert.equal(frame.moving.session.username, 'u');
  assert.deepEqual(frame.moving.session.subscriptions.map((s) => s.raw), ['a/#']);
});

test('a delta frame carries its mark and deliveries; answers carry only their kind and sender', () => {
  const codec = new SessionCodec();
  const delta = codec.decode('c1', codec.encode('c1', { kind: 'delta', from: 'n', mark: 5, deliveries: [delivery(6, 0)] }));
  assert.deepEqual(delta.kind === 'delta' && [delta.mark, delta.deliveries.map((d) => d.seq)], [5, [6]]);
  assert.deepEqual(codec.decode('c1', codec.encode('c1', { kind: 'none', from: 'n' })), { kind: 'none', from: 'n' });
  assert.deepEqual(codec.decode('c1', codec.encode('c1', { kind: 'redirect', from: 'n' })), { kind: 'redirect', from: 'n' });
});

test('a damaged or cut frame is refused, never half-installed', () => {
  const codec = new SessionCodec();
  const bytes = codec.encode('c1', { kind: 'snapshot', from: 'node-a', moving });
  const flipped = Buffer.from(bytes);
  flipped.writeUInt8(flipped.readUInt8(flipped.length - 30) ^ 0xff, flipped.length - 30);
  assert.throws(() => codec.decode('c1', flipped));
  assert.throws(() => codec.decode('c1', bytes.subarray(0, bytes.length - 5)), /damaged session move frame/);
  assert.throws(() => codec.decode('c1', Buffer.from([0x58, 0, 0])), /unknown session move frame 0x58/);
});

test('a snapshot carries the session\'s recent message identities, in the mark\'s bytes that older nodes pass over', () => {
  const codec = new SessionCodec();
  const seen = ['n1:1796706620973001', 'n2:17', 'ü:é'];
  const bytes = codec.encode('c1', { kind: 'snapshot', from: 'node-a', moving: { ...moving, seen } });
  const frame = codec.decode('c1', bytes);
  assert.deepEqual(frame.kind === 'snapshot' && frame.moving.seen, seen);
  // For a node that does not read identities, none go: its frame is the older format exactly.
  const older = codec.encode('c1', { kind: 'snapshot', from: 'node-a', moving: { ...moving, seen } }, false);
  const plain = codec.encode('c1', { kind: 'snapshot', from: 'node-a', moving }, false);
  assert.deepEqual(older, plain);
  assert.deepEqual(codec.decode('c1', older).kind === 'snapshot' && (codec.decode('c1', older) as { moving: MovingSession }).moving.seen, []);
  // The identities' own bytes are checked: a count beyond them is damage, not a half-read list.
  const at = bytes.indexOf(Buffer.from('n1:1796706620973001')) - 7;
  const cut = Buffer.from(bytes);
  cut.writeUInt32BE(99, at + 1);
  assert.throws(() => codec.decode('c1', cut), /damaged message identities/);
});
