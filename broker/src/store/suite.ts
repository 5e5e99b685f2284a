import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { QoS } from 'mqtt-packet';
import type { MessageProperties } from '../message/message.js';
import type { Snapshot, Store, StoredDelivery, StoredMessage, StoredSession } from './types.js';

/**
 * What a store implementation gives the suite. `open()` returns a Store (not yet opened) over the same
 * underlying data each time: for a durable store a new instance over the same directory, so the reopen cases
 * prove that data survives a close and a new process's open. The memory store can only return the same
 * instance, so for it those cases prove nothing about persistence; they are what the durable engine must pass.
 */
export interface StoreHarness {
  open(): Promise<Store>;
  cleanup(): Promise<void>;
  /**
   * False for a store that never makes a caller wait (memory, or a durable store with durability 'none'):
   * `dirty` then stays false after writes. Default true: a write makes the store dirty until `flush()`.
   */
  readonly commits?: boolean;
}

/**
 * The suite every Store implementation must pass (the aedes habit: one abstract suite for every persistence
 * backend). Call it from the implementation's test file with a factory that makes an empty store each time.
 */
export function storeSuite(name: string, factory: () => Promise<StoreHarness>): void {
  /** Runs `fn` with a fresh harness and an opened store; closes and cleans up whatever happens. */
  async function withStore(fn: (ctx: Ctx) => Promise<void>): Promise<void> {
    const harness = await factory();
    const ctx = new Ctx(harness);
    try {
      ctx.snapshot = await (ctx.store = await harness.open()).open();
      await fn(ctx);
    } finally {
      try {
        await ctx.store?.close();
      } finally {
        await harness.cleanup();
      }
    }
  }

  describe(`store suite: ${name}`, () => {
    test('a new store opens empty', () =>
      withStore(async (c) => {
        assertSnapshot(c.snapshot, new Model());
        assert.equal(c.store.dirty, false, 'nothing written yet');
        await c.store.flush();
        assertSnapshot(await c.reopen(), new Model());
      }));

    test('retained messages: put, overwrite, delete', () =>
      withStore(async (c) => {
        const m = new Model();
        m.putRetained(c.store, msg('a/b', 'one'));
        m.putRetained(c.store, msg('a/c', 'two', { qos: 1 }));
        m.putRetained(c.store, msg('a/b', 'one again', { qos: 2 }));
        m.putRetained(c.store, msg('x', 'gone'));
        m.deleteRetained(c.store, 'x');
        m.deleteRetained(c.store, 'never/there');
        assertSnapshot(await c.reopen(), m);
        m.deleteRetained(c.store, 'a/b');
        assertSnapshot(await c.reopen(), m);
      }));

    test('sessions with subscriptions, a will and a username; overwrite and delete', () =>
      withStore(async (c) => {
        const m = new Model();
        m.putSession(c.store, session('c1', { username: 'alice', will: { message: msg('wills/c1', 'bye', { qos: 1, retain: true }), at: 1_700_000_123_456 } }));
        m.putSession(c.store, session('c2', { subscriptions: [] }));
        m.putSession(c.store, session('c3', { expiryInterval: 0xffffffff, disconnectedAt: 0 }));
        assertSnapshot(await c.reopen(), m);
        m.putSession(c.store, session('c1', { subscriptions: [sub('only/this', 0)], will: null }));
        m.deleteSession(c.store, 'c3');
        assertSnapshot(await c.reopen(), m);
      }));

    test('deliveries come back in seq order per client, across many clients', () =>
      withStore(async (c) => {
        const m = new Model();
        const clients = ['zeta', 'alpha', 'mid', 'alpha2', 'b'];
        // Seqs that sort differently as text and as numbers, put in a shuffled order.
        const seqs = [100, 2, 10, 1, 2 ** 32 + 1, 9, 11, 2 ** 40];
        for (const seq of seqs) for (const id of clients) m.putDelivery(c.store, delivery(id, seq));
        const snap = await c.reopen();
        assertSnapshot(snap, m);
        assert.deepEqual([...new Set(snap.deliveries.map((d) => d.clientId))], [...clients].sort(), 'clients in id order');
        assert.deepEqual(snap.deliveries.filter((d) => d.clientId === 'b').map((d) => d.seq), [...seqs].sort((a, b) => a - b));
      }));

    test('a delivery re-put with a packet id and then state 1 replaces the stored one', () =>
      withStore(async (c) => {
        const m = new Model();
        m.putDelivery(c.store, delivery('c', 1));
        m.putDelivery(c.store, delivery('c', 2));
        assertSnapshot(await c.reopen(), m);
        m.putDelivery(c.store, delivery('c', 1, { packetId: 7 }));
        assertSnapshot(await c.reopen(), m);
        m.putDelivery(c.store, delivery('c', 1, { packetId: 7, state: 1 }));
        m.deleteDelivery(c.store, 'c', 2);
        m.deleteDelivery(c.store, 'c', 99);
        const snap = await c.reopen();
        assertSnapshot(snap, m);
        assert.equal(snap.deliveries.length, 1);
        assert.equal(snap.deliveries[0]?.packetId, 7);
        assert.equal(snap.deliveries[0]?.state, 1);
      }));

    test('incoming QoS 2 packet ids: put, delete, come back sorted', () =>
      withStore(async (c) => {
        const m = new Model();
        for (const id of [300, 1, 65535, 2]) m.putIncoming(c.store, 'a', id);
        m.putIncoming(c.store, 'b', 9);
        m.putIncoming(c.store, 'a', 2); // twice: still once
        assertSnapshot(await c.reopen(), m);
        m.deleteIncoming(c.store, 'a', 300);
        m.deleteIncoming(c.store, 'b', 9);
        const snap = await c.reopen();
        assertSnapshot(snap, m);
        assert.deepEqual(snap.incoming.get('a'), [1, 2, 65535]);
      }));

    test('consumed inbox batches: put, delete, long keys, committed with the deliveries before them', () =>
      withStore(async (c) => {
        const long = `smq/c/inbox/n1/${'n'.repeat(400)}/00001796706620973`;
        c.store.putDelivery(delivery('a', 1));
        c.store.putConsumed('smq/c/inbox/n1/n2/00001796706620973');
        c.store.putConsumed('smq/c/inbox/n1/n2/00001796706620974');
        c.store.putConsumed(long);
        c.store.deleteConsumed('smq/c/inbox/n1/n2/00001796706620973');
        c.store.deleteConsumed('never/put'); // nothing to delete: no harm
        const snap = await c.reopen();
        assert.deepEqual([...snap.consumed].sort(), ['smq/c/inbox/n1/n2/00001796706620974', long].sort());
        assert.equal(snap.deliveries.length, 1, 'the delivery the batch brought');
        c.store.deleteConsumed(long);
        assert.deepEqual([...(await c.reopen()).consumed], ['smq/c/inbox/n1/n2/00001796706620974']);
      }));

    test("deleteSession removes its deliveries and incoming ids, not those of a client whose id it prefixes ('a' vs 'ab')", () =>
      withStore(async (c) => {
        const m = new Model();
        const long = 'L'.repeat(400);
        const mid = 'p'.repeat(64);
        for (const id of ['a', 'ab', 'a/', 'a:b', 'b', long, `${long}x`, mid, `${mid}\u0000\u0010x`, `${mid}\u0000`]) {
          m.putSession(c.store, session(id));
          for (let seq = 1; seq <= 3; seq++) m.putDelivery(c.store, delivery(id, seq));
          m.putIncoming(c.store, id, 5);
        }
        assertSnapshot(await c.reopen(), m);
        m.deleteSession(c.store, 'a');
        m.deleteSession(c.store, long);
        const snap = await c.reopen();
        assertSnapshot(snap, m);
        m.deleteSession(c.store, mid);
        assertSnapshot(await c.reopen(), m);
        assert.deepEqual(new Set(snap.sessions.map((s) => s.clientId)), new Set(['ab', 'a/', 'a:b', 'b', `${long}x`, mid, `${mid}\u0000\u0010x`, `${mid}\u0000`]));
      }));

    test('deleteSession applies in call order with the writes of the same turn', () =>
      withStore(async (c) => {
        const m = new Model();
        m.putSession(c.store, session('c'));
        m.putDelivery(c.store, delivery('c', 1));
        await c.store.flush();
        // A clean-start reconnect: the old session goes, a new one starts, all before the next commit.
        m.putDelivery(c.store, delivery('c', 2));
        m.putIncoming(c.store, 'c', 4);
        m.deleteSession(c.store, 'c');
        m.putSession(c.store, session('c', { subscriptions: [sub('new/#', 1)] }));
        m.putDelivery(c.store, delivery('c', 1, { message: msg('new/1', 'fresh') }));
        m.putIncoming(c.store, 'c', 5);
        assertSnapshot(await c.reopen(), m);
      }));

    test('binary and empty payloads, UTF-8 topics and client ids with /, : and emoji', () =>
      withStore(async (c) => {
        const m = new Model();
        const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
        const topic = 'sensors/🌡️/température:1/数据';
        const id = 'client:1/🚀/ünïcødé';
        m.putRetained(c.store, msg(topic, all));
        m.putRetained(c.store, msg('empty', Buffer.alloc(0)));
        m.putRetained(c.store, msg('/', Buffer.from([0, 0, 0])));
        m.putSession(c.store, session(id, { subscriptions: [sub('sensors/🌡️/#', 2), sub('$share/g:1/a/+', 1)] }));
        m.putDelivery(c.store, delivery(id, 1, { message: msg(topic, all, { origin: id }) }));
        m.putDelivery(c.store, delivery(id, 2, { message: msg(topic, Buffer.alloc(0)) }));
        m.putDelivery(c.store, delivery(id, 3, { message: msg('big', Buffer.alloc(256 * 1024, 0xa5)) }));
        m.putIncoming(c.store, id, 1);
        const snap = await c.reopen();
        assertSnapshot(snap, m);
        for (const d of snap.deliveries) assert.ok(Buffer.isBuffer(d.message.payload), 'payloads come back as Buffers');
        const r = snap.retained.find((x) => x.topic === topic);
        assert.ok(r !== undefined && Buffer.isBuffer(r.payload) && r.payload.equals(all));
      }));

    test('long client ids and topics (beyond any key size limit) round-trip', () =>
      withStore(async (c) => {
        const m = new Model();
        const id = `c-${'é'.repeat(5000)}`;
        const topic = `t/${'x'.repeat(65000)}`;
        m.putRetained(c.store, msg(topic, 'long'));
        m.putSession(c.store, session(id));
        m.putDelivery(c.store, delivery(id, 1, { message: msg(topic, 'p') }));
        m.putIncoming(c.store, id, 3);
        assertSnapshot(await c.reopen(), m);
        m.deleteRetained(c.store, topic);
        m.deleteDelivery(c.store, id, 1);
        m.deleteIncoming(c.store, id, 3);
        assertSnapshot(await c.reopen(), m);
      }));

    test('message properties round-trip exactly (user properties with arrays, correlation data, content type)', () =>
      withStore(async (c) => {
        const m = new Model();
        const properties: MessageProperties = {
          payloadFormatIndicator: true,
          messageExpiryInterval: 3600,
          responseTopic: 'reply/🙂',
          correlationData: Buffer.from([0, 1, 2, 0xfe, 0xff]),
          userProperties: { single: 'v', many: ['a', 'b', ''], 'é/:': '🙂', ['__proto__']: 'p' },
          contentType: 'application/json; charset=utf-8',
        };
        m.putRetained(c.store, msg('props', '{}', { properties }));
        m.putDelivery(c.store, delivery('c', 1, { message: msg('props', '{}', { properties, expiresAt: 1_700_000_000_000 }), subIds: [1, 268435455] }));
        m.putDelivery(c.store, delivery('c', 2, { subIds: [] }));
        m.putSession(c.store, session('c', { will: { message: msg('w', 'x', { properties }), at: 5 } }));
        const snap = await c.reopen();
        assertSnapshot(snap, m);
        const p = snap.deliveries[0]?.message.properties;
        assert.ok(p !== undefined && Buffer.isBuffer(p.correlationData), 'correlation data comes back as a Buffer');
        assert.deepEqual(p.userProperties?.many, ['a', 'b', '']);
      }));

    test('dirty after a write, clear after flush; flush resolves', () =>
      withStore(async (c) => {
        const commits = c.harness.commits ?? true;
        c.store.putRetained(msg('t', 'x'));
        assert.equal(c.store.dirty, commits, commits ? 'a write makes the store dirty' : 'this store never waits');
        const f = c.store.flush();
        assert.equal(c.store.dirty, false, 'flush begins the commit');
        await f;
        assert.equal(c.store.dirty, false);
        c.store.putIncoming('c', 1);
        c.store.deleteIncoming('c', 1);
        assert.equal(c.store.dirty, commits);
        await Promise.all([c.store.flush(), c.store.flush()]);
        await c.store.flush(); // nothing pending: resolves too
      }));

    test('after flush, close and reopen everything is there', () =>
      withStore(async (c) => {
        const m = new Model();
        m.putRetained(c.store, msg('r/1', 'one'));
        m.putSession(c.store, session('s1', { username: 'bob' }));
        m.putDelivery(c.store, delivery('s1', 1));
        m.putDelivery(c.store, delivery('s1', 2, { packetId: 1 }));
        m.putIncoming(c.store, 's1', 10);
        await c.store.flush();
        assertSnapshot(await c.reopen(), m);
        // And once more, so a store opened over existing data writes and reopens correctly too.
        m.putDelivery(c.store, delivery('s1', 3));
        m.deleteDelivery(c.store, 's1', 1);
        assertSnapshot(await c.reopen(), m);
      }));

    test('many writes without awaiting, over several turns, then one flush', () =>
      withStore(async (c) => {
        const m = new Model();
        for (let turn = 0; turn < 5; turn++) {
          for (let i = 0; i < 400; i++) {
            const id = `c${i % 17}`;
            const seq = turn * 400 + i;
            m.putDelivery(c.store, delivery(id, seq));
            if (i % 3 === 0) m.deleteDelivery(c.store, id, seq);
            if (i % 50 === 0) m.putRetained(c.store, msg(`r/${i}`, `turn ${turn}`));
            if (i % 7 === 0) m.putIncoming(c.store, id, (i % 65535) + 1);
          }
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
        await c.store.flush();
        assertSnapshot(await c.reopen(), m);
      }));

    test('10,000 deliveries for 100 clients come back in order', () =>
      withStore(async (c) => {
        const m = new Model();
        for (let seq = 1; seq <= 100; seq++) {
          for (let k = 0; k < 100; k++) m.putDelivery(c.store, delivery(`client-${String(k).padStart(3, '0')}`, seq, { message: msg(`t/${k}`, `m${seq}`, { qos: 1 }) }));
        }
        await c.store.flush();
        const snap = await c.reopen();
        assert.equal(snap.deliveries.length, 10_000);
        assertSnapshot(snap, m);
      }));
  });
}

/** One test's harness and its current store, with the snapshot it opened with. */
class Ctx {
  readonly harness: StoreHarness;
  store!: Store;
  snapshot!: Snapshot;

  constructor(harness: StoreHarness) {
    this.harness = harness;
  }

  /** Flushes and closes the store, opens a new one over the same data and returns what it read. */
  async reopen(): Promise<Snapshot> {
    await this.store.flush();
    await this.store.close();
    this.store = await this.harness.open();
    this.snapshot = await this.store.open();
    return this.snapshot;
  }
}

/** What a store should hold after the operations made through it. */
class Model {
  readonly retained = new Map<string, StoredMessage>();
  readonly sessions = new Map<string, StoredSession>();
  readonly deliveries = new Map<string, StoredDelivery>();
  readonly incoming = new Map<string, Set<number>>();

  putRetained(s: Store, m: StoredMessage): void {
    s.putRetained(m);
    this.retained.set(m.topic, m);
  }

  deleteRetained(s: Store, topic: string): void {
    s.deleteRetained(topic);
    this.retained.delete(topic);
  }

  putSession(s: Store, session: StoredSession): void {
    s.putSession(session);
    this.sessions.set(session.clientId, session);
  }

  deleteSession(s: Store, clientId: string): void {
    s.deleteSession(clientId);
    this.sessions.delete(clientId);
    for (const [k, d] of this.deliveries) if (d.clientId === clientId) this.deliveries.delete(k);
    this.incoming.delete(clientId);
  }

  putDelivery(s: Store, d: StoredDelivery): void {
    s.putDelivery(d);
    this.deliveries.set(JSON.stringify([d.clientId, d.seq]), d);
  }

  deleteDelivery(s: Store, clientId: string, seq: number): void {
    s.deleteDelivery(clientId, seq);
    this.deliveries.delete(JSON.stringify([clientId, seq]));
  }

  putIncoming(s: Store, clientId: string, packetId: number): void {
    s.putIncoming(clientId, packetId);
    let ids = this.incoming.get(clientId);
    if (ids === undefined) this.incoming.set(clientId, (ids = new Set()));
    ids.add(packetId);
  }

  deleteIncoming(s: Store, clientId: string, packetId: number): void {
    s.deleteIncoming(clientId, packetId);
    this.incoming.get(clientId)?.delete(packetId);
  }
}

const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Compares a snapshot with the model. Retained messages and sessions may come in any order; deliveries must be
 * grouped by client and in seq order within each; incoming ids sorted. A client without incoming ids may be
 * absent or have an empty list.
 */
function assertSnapshot(snap: Snapshot, m: Model): void {
  const sortedRetained = [...snap.retained].sort((a, b) => byString(a.topic, b.topic));
  assert.deepStrictEqual(sortedRetained, [...m.retained.values()].sort((a, b) => byString(a.topic, b.topic)), 'retained messages');
  const sortedSessions = [...snap.sessions].sort((a, b) => byString(a.clientId, b.clientId));
  assert.deepStrictEqual(sortedSessions, [...m.sessions.values()].sort((a, b) => byString(a.clientId, b.clientId)), 'sessions');

  const seen = new Set<string>();
  let prev: StoredDelivery | null = null;
  for (const d of snap.deliveries) {
    if (prev === null || prev.clientId !== d.clientId) {
      assert.ok(!seen.has(d.clientId), `deliveries of ${d.clientId.slice(0, 40)} are not together`);
      seen.add(d.clientId);
    } else assert.ok(d.seq > prev.seq, `deliveries of ${d.clientId.slice(0, 40)} out of seq order: ${prev.seq} then ${d.seq}`);
    prev = d;
  }
  const order = (a: StoredDelivery, b: StoredDelivery): number => byString(a.clientId, b.clientId) || a.seq - b.seq;
  assert.deepStrictEqual([...snap.deliveries].sort(order), [...m.deliveries.values()].sort(order), 'deliveries');

  const incoming = new Map<string, number[]>();
  for (const [id, ids] of snap.incoming) {
    assert.deepStrictEqual(ids, [...ids].sort((a, b) => a - b), `incoming ids of ${id.slice(0, 40)} sorted`);
    if (ids.length > 0) incoming.set(id, ids);
  }
  const want = new Map<string, number[]>();
  for (const [id, ids] of m.incoming) if (ids.size > 0) want.set(id, [...ids].sort((a, b) => a - b));
  assert.deepStrictEqual(incoming, want, 'incoming ids');
}

function msg(
  topic: string,
  payload: string | Buffer,
  o: { qos?: QoS; retain?: boolean; properties?: MessageProperties; origin?: string; expiresAt?: number } = {},
): StoredMessage {
  return {
    topic,
    payload: typeof payload === 'string' ? Buffer.from(payload) : payload,
    qos: o.qos ?? 0,
    retain: o.retain ?? false,
    properties: o.properties,
    origin: o.origin ?? 'publisher-1',
    expiresAt: o.expiresAt ?? 0,
  };
}

function sub(raw: string, qos: QoS, id = 0): StoredSession['subscriptions'][number] {
  return { raw, qos, noLocal: qos === 1, retainAsPublished: qos === 2, retainHandling: (qos % 3) as 0 | 1 | 2, id };
}

function session(clientId: string, o: Partial<Omit<StoredSession, 'clientId'>> = {}): StoredSession {
  const s: StoredSession = {
    clientId,
    expiryInterval: o.expiryInterval ?? 3600,
    disconnectedAt: o.disconnectedAt ?? 1_700_000_000_000,
    subscriptions: o.subscriptions ?? [sub('a/+', 1, 7), sub('b/#', 2), sub('$share/g/c', 0, 268435455)],
    will: o.will ?? null,
  };
  return o.username === undefined ? s : { ...s, username: o.username };
}

function delivery(clientId: string, seq: number, o: Partial<Omit<StoredDelivery, 'clientId' | 'seq'>> = {}): StoredDelivery {
  return {
    clientId,
    seq,
    message: o.message ?? msg(`t/${clientId.slice(0, 20)}`, `payload ${seq}`, { qos: 1 }),
    qos: o.qos ?? 1,
    retain: o.retain ?? false,
    subIds: 'subIds' in o ? o.subIds : [seq % 5 + 1],
    packetId: o.packetId ?? 0,
    state: o.state ?? 0,
  };
}
