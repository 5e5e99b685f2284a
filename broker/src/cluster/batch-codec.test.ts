import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { StoredDelivery } from '../store/types.js';
import { BatchCodec } from './batch-codec.js';
import { type MovingSession, SessionCodec } from './session-codec.js';

const delivery = (clientId: string, seq: number): StoredDelivery => ({
  clientId, seq, qos: 1, retain: false, subIds: undefined, packetId: 0, state: 0,
  message: { topic: `t/${clientId}`, payload: Buffer.from(`p${seq}`), qos: 1, retain: false, properties: undefined, origin: 'pub', expiresAt: 0 },
});
const moving = (clientId: string): MovingSession => ({
  session: {
    clientId, username: undefined, expiryInterval: 3600, disconnectedAt: 1_700_000_000_000, will: null,
    subscriptions: [{ raw: `t/${clientId}`, qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0, id: 0 }],
  },
  deliveries: [delivery(clientId, 1)],
  incoming: [],
  mark: 1,
  seen: [`n1:${clientId}`],
});
const single = new SessionCodec();
const snapshots = (ids: string[]): Buffer => new BatchCodec().encode('snapshots', 'n1', ids.map((clientId) => ({
  clientId, frame: single.encode(clientId, { kind: 'snapshot', from: 'n1', moving: moving(clientId) }),
})));

test('a batch carries many sessions\' snapshots, each as a single move would, and their deltas', () => {
  const codec = new BatchCodec();
  const ids = ['c1', 'ü/2', 'c3'];
  const batch = codec.decode('b1', snapshots(ids));
  assert.equal(batch.kind, 'snapshots');
  assert.equal(batch.from, 'n1');
  assert.deepEqual(batch.items.map((i) => i.clientId), ids);
  for (const { clientId, frame } of batch.items) {
    assert.ok(frame.kind === 'snapshot');
    assert.equal(frame.moving.session.clientId, clientId);
    assert.deepEqual(frame.moving.deliveries.map((d) => d.message.payload.toString()), ['p1']);
    assert.deepEqual(frame.moving.seen, [`n1:${clientId}`]);
  }
  const deltas = codec.decode('b1.0', codec.encode('deltas', 'n1', ids.map((clientId, i) => ({
    clientId, frame: single.encode(clientId, { kind: 'delta', from: 'n1', mark: 1, deliveries: [delivery(clientId, 2 + i)] }),
  }))));
  assert.equal(deltas.kind, 'deltas');
  assert.deepEqual(deltas.items.map((i) => i.frame.kind === 'delta' && [i.clientId, i.frame.mark, i.frame.deliveries.map((d) => d.seq)]),
    [['c1', 1, [2]], ['ü/2', 1, [3]], ['c3', 1, [4]]]);
  assert.deepEqual(codec.decode('empty', codec.encode('deltas', 'n1', [])), { kind: 'deltas', from: 'n1', items: [] });
});

test('a batch with one damaged session, cut, or with bytes past its count is refused whole', () => {
  const codec = new BatchCodec();
  const bytes = snapshots(['c1', 'c2', 'c3']);
  const flipped = Buffer.from(bytes);
  const at = bytes.indexOf(Buffer.from('p1'), bytes.indexOf(Buffer.from('t/c2')));
  flipped[at] = (flipped[at] as number) ^ 0xff; // c2's queued message: its CRC no longer matches
  assert.throws(() => codec.decode('b', flipped));
  for (const cut of [bytes.length - 1, 40, 8, 2]) assert.throws(() => codec.decode('b', bytes.subarray(0, cut)), /damaged/);
  assert.throws(() => codec.decode('b', Buffer.concat([bytes, Buffer.from([0])])), /damaged session batch frame/);
  const fewer = Buffer.from(bytes);
  fewer.writeUInt32BE(2, 5); // after [kind][u16 2]['n1']: the count
  assert.throws(() => codec.decode('b', fewer), /damaged session batch frame/);
});

test('a batch\'s sessions must be of its kind and from its sender', () => {
  const codec = new BatchCodec();
  const delta = single.encode('c1', { kind: 'delta', from: 'n1', mark: 1, deliveries: [] });
  assert.throws(() => codec.decode('b', codec.encode('snapshots', 'n1', [{ clientId: 'c1', frame: delta }])), /damaged session batch frame/);
  const other = single.encode('c1', { kind: 'snapshot', from: 'n9', moving: moving('c1') });
  assert.throws(() => codec.decode('b', codec.encode('snapshots', 'n1', [{ clientId: 'c1', frame: other }])), /damaged session batch frame/);
});

test('unknown kinds are refused both ways: a batch by the single-session decoder (an older node), a single frame by the batch decoder', () => {
  assert.throws(() => single.decode('c1', snapshots(['c1'])), /unknown session move frame 0x42/);
  const frame = single.encode('c1', { kind: 'snapshot', from: 'n1', moving: moving('c1') });
  assert.throws(() => new BatchCodec().decode('b', frame), /unknown session batch frame 0x53/);
  assert.throws(() => new BatchCodec().decode('b', Buffer.alloc(0)), /unknown session batch frame/);
});
