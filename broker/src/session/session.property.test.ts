/**
 * Model-based tests of the Session state machine (session.ts, delivery.ts, ring.ts): random sequences of
 * deliveries (QoS 0/1/2, with and without expiry, fitting the client's maximum packet size or not), attaches with
 * a receive maximum, detaches, PUBACK/PUBREC/PUBCOMP of in-flight and unknown ids and clock ticks, run against
 * a reference model written from the spec. After every step the session must agree with the model: same packets
 * on the wire, same in-flight window and queue, same drops (with their reasons), same store contents.
 *
 * Runs are seeded by fast-check; on failure it prints `seed` and `path`. Replay with
 * `FC_SEED=<seed> FC_PATH=<path> FC_REPLAY=<replayPath> node --test dist/broker/src/session/session.property.test.js`
 * (`replayPath` is in the printed counterexample); `FC_RUNS=<n>` runs more (or fewer) cases than the default.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { QoS } from 'mqtt-packet';
import { Message } from '../message/message.js';
import { MemoryStore } from '../store/memory.js';
import type { StoredDelivery } from '../store/types.js';
import { AWAIT_COMP } from './delivery.js';
import { type Outlet, Session, type SessionContext } from './session.js';
import { params } from '../testing/fc-params.js';


// --- The real side: a Session with a fake connection, context and store ----------------------------------

/** A packet as the client would see it. */
type Packet =
  | { readonly kind: 'publish'; readonly msg: number; readonly qos: QoS; readonly pid: number; readonly dup: boolean }
  | { readonly kind: 'pubrel'; readonly pid: number };

/** Messages are named by their topic `m/<n>`, so packets and drops say which one they carry. */
function nameOf(m: Message): number {
  return Number(m.topic.slice(2));
}

/** A connection: records what it writes; refuses PUBLISHes over its maximum packet size [MQTT-3.1.2-25]. */
class FakeOutlet implements Outlet {
  writable: boolean;
  readonly receiveMaximum: number;
  private readonly maxPayload: number;
  private readonly wire: Packet[];

  constructor(wire: Packet[], receiveMaximum: number, writable: boolean, maxPayload: number) {
    this.wire = wire;
    this.receiveMaximum = receiveMaximum;
    this.writable = writable;
    this.maxPayload = maxPayload;
  }

  sendPublish(m: Message, qos: QoS, packetId: number, _retain: boolean, _subIds: number[] | undefined, dup: boolean): boolean {
    if (m.payload.length > this.maxPayload) return false;
    this.wire.push({ kind: 'publish', msg: nameOf(m), qos, pid: packetId, dup });
    return true;
  }

  sendPubrel(packetId: number): void {
    this.wire.push({ kind: 'pubrel', pid: packetId });
  }
}

/** The in-memory store, with its deliveries in view (by seq) to compare with what the session holds. */
class DeliveryStore extends MemoryStore {
  readonly bySeq = new Map<number, StoredDelivery>();

  override putDelivery(d: StoredDelivery): void {
    super.putDelivery(d);
    this.bySeq.set(d.seq, d);
  }

  override deleteDelivery(clientId: string, seq: number): void {
    super.deleteDelivery(clientId, seq);
    this.bySeq.delete(seq);
  }
}

/** The system under test, and everything it did since the last step. */
class Real {
  readonly session: Session;
  readonly store = new DeliveryStore();
  readonly wire: Packet[] = [];
  readonly drops: { msg: number; reason: string }[] = [];
  outlet: FakeOutlet | null = null;
  now = 1_000_000;
  /** Messages whose first (non-DUP) QoS 1/2 PUBLISH has gone out, to see none goes out twice. */
  readonly firstSent = new Set<number>();
  lastFirstSent = -1;

  constructor(maxInflight: number, maxQueued: number, persistent: boolean) {
    const ctx: SessionContext = {
      maxInflight,
      maxQueued,
      store: this.store,
      canRead: null,
      dropped: (_clientId, message, reason) => this.drops.push({ msg: nameOf(message), reason }),
      redispatch: () => assert.fail('no shared groups here'),
      now: () => this.now,
    };
    this.session = new Session('c', ctx);
    this.session.expiryInterval = persistent ? 60 : 0;
  }
}

// --- The reference model ----------------------------------------------------------------------------------

interface Msg {
  readonly qos: QoS;
  readonly size: number;
  /** Epoch ms after which it must not be sent; 0 = never [MQTT-3.3.2-5]. */
  readonly expiresAt: number;
}

interface InFlight {
  readonly msg: number;
  readonly qos: 1 | 2;
  readonly pid: number;
  /** PUBREC received, PUBREL sent: awaiting PUBCOMP. */
  comp: boolean;
  /** The connection (count of attaches) its first PUBLISH went out on. */
  readonly sentOn: number;
  /** Carried over from an earlier connection and not yet sent again on this one (the window was full). */
  held: boolean;
}

/**
 * What the session should do, written plainly: QoS 1/2 messages are sent while the window (the lower of the
 * broker's max in-flight and the client's receive maximum) has room, queued up to the queue limit otherwise,
 * and dropped (counted) beyond it; QoS 0 goes out at once or not at all, and never waits for an absent client.
 * Each step reads the packets and drops the session produced, in order, and fails on any it did not expect.
 */
class Model {
  readonly maxInflight: number;
  readonly maxQueued: number;
  readonly messages: Msg[] = [];
  online = false;
  /** Attaches so far. */
  connection = 0;
  window = 0;
  writable = true;
  maxPayload = 0;
  now = 1_000_000;
  readonly inflight: InFlight[] = [];
  readonly queue: number[] = [];
  readonly acked: number[] = [];
  readonly dropped: number[] = [];
  /** The real side whose output the current step reads, and how far it has read. */
  private real: Real | null = null;
  private wireAt = 0;
  private dropsAt = 0;

  constructor(maxInflight: number, maxQueued: number) {
    this.maxInflight = maxInflight;
    this.maxQueued = maxQueued;
  }

  /** Starts reading what `real` does from now on. */
  watch(real: Real): void {
    this.real = real;
    this.wireAt = real.wire.length;
    this.dropsAt = real.drops.length;
  }

  /** Everything the real side did in this step was expected. */
  done(): void {
    const real = this.real as Real;
    assert.deepEqual(real.wire.slice(this.wireAt), [], 'unexpected packets');
    assert.deepEqual(real.drops.slice(this.dropsAt), [], 'unexpected drops');
  }

  private expired(msg: number): boolean {
    const e = (this.messages[msg] as Msg).expiresAt;
    return e !== 0 && this.now >= e;
  }

  private tooLarge(msg: number): boolean {
    return (this.messages[msg] as Msg).size > this.maxPayload;
  }

  private expectDrop(msg: number, reason: string): void {
    const got = (this.real as Real).drops[this.dropsAt++];
    assert.deepEqual(got, { msg, reason }, `expected drop of ${msg} (${reason})`);
    this.dropped.push(msg);
  }

  private expectPacket(p: Packet): Packet {
    const got = (this.real as Real).wire[this.wireAt++];
    if (p.kind === 'publish' && !p.dup && p.qos > 0 && got?.kind === 'publish') {
      // A new packet id is the session's choice; it must be free [MQTT-2.2.1-3].
      assert.ok(got.pid >= 1 && got.pid <= 65535, `packet id ${got.pid}`);
      assert.ok(!this.inflight.some((d) => d.pid === got.pid), `packet id ${got.pid} is still in flight`);
      assert.deepEqual(got, { ...p, pid: got.pid }, `expected first PUBLISH of ${p.msg}`);
      return got;
    }
    assert.deepEqual(got, p, `expected ${JSON.stringify(p)}`);
    return p;
  }

  /** Puts a QoS 1/2 message in flight: a new PUBLISH, or a drop when the client cannot take its size. */
  private sendNew(msg: number): void {
    assert.ok(this.inflight.length < this.window, 'a new PUBLISH only while the window has room [MQTT-3.3.4-9]');
    if (this.tooLarge(msg)) return this.expectDrop(msg, 'too_large'); // [MQTT-3.1.2-25]
    const qos = (this.messages[msg] as Msg).qos as 1 | 2;
    const sent = this.expectPacket({ kind: 'publish', msg, qos, pid: 0, dup: false });
    this.inflight.push({ msg, qos, pid: sent.pid, comp: false, sentOn: this.connection, held: false });
  }

  /** Queued messages move into the window while it has room; expired ones are dropped on the way. */
  private drain(): void {
    if (!this.online) return;
    while (this.queue.length > 0 && this.inflight.length < this.window) {
      const msg = this.queue.shift() as number;
      if (this.expired(msg)) this.expectDrop(msg, 'expired');
      else this.sendNew(msg);
    }
  }

  deliver(msg: number): void {
    const m = this.messages[msg] as Msg;
    if (m.qos === 0) {
      if (!this.online) return; // not queued for an absent client, by design (as Mosquitto's default)
      if (!this.writable) return this.expectDrop(msg, 'slow_consumer');
      if (this.tooLarge(msg)) return this.expectDrop(msg, 'too_large');
      this.expectPacket({ kind: 'publish', msg, qos: 0, pid: 0, dup: false });
      return;
    }
    if (this.online && this.queue.length === 0 && this.inflight.length < this.window) return this.sendNew(msg);
    if (this.queue.length >= this.maxQueued) return this.expectDrop(msg, 'queue_full');
    this.queue.push(msg);
  }

  /**
   * A connection attaches: in-flight messages again, in order (PUBLISH with DUP, or PUBREL) [MQTT-4.4.0-1], then
   * the queue. No more unacknowledged PUBLISHes than the new receive maximum allows [MQTT-3.3.4-9]: the rest are
   * held, keep their ids, and go out again one per acknowledgement (complete).
   */
  attach(receiveMaximum: number, writable: boolean, maxPayload: number): void {
    this.online = true;
    this.connection++;
    this.window = Math.min(this.maxInflight, receiveMaximum);
    this.writable = writable;
    this.maxPayload = maxPayload;
    let sent = 0;
    for (const d of [...this.inflight]) {
      if (d.comp) {
        this.expectPacket({ kind: 'pubrel', pid: d.pid });
        sent++;
      } else if (this.expired(d.msg)) {
        this.inflight.splice(this.inflight.indexOf(d), 1);
        this.expectDrop(d.msg, 'expired');
      } else if (sent >= this.window) {
        d.held = true; // its size is checked when its turn comes (complete)
      } else if (this.tooLarge(d.msg)) {
        this.inflight.splice(this.inflight.indexOf(d), 1);
        this.expectDrop(d.msg, 'too_large');
      } else {
        this.expectPacket({ kind: 'publish', msg: d.msg, qos: d.qos, pid: d.pid, dup: true });
        sent++;
      }
    }
    this.drain();
  }

  detach(): void {
    this.online = false;
    for (const d of this.inflight) d.held = false;
  }

  /** PUBACK, PUBCOMP or a refusing PUBREC: the message is done and its id free; the queue moves up. */
  complete(pid: number): void {
    const i = this.inflight.findIndex((d) => d.pid === pid);
    const d = this.inflight[i] as InFlight;
    this.inflight.splice(i, 1);
    this.acked.push(d.msg);
    if (d.held) return; // acknowledged before it went out again on this connection: no slot came free
    // Held messages go out again, oldest first, while fewer than the window are unacknowledged on this
    // connection (PUBREL-stage ones included); one too large for this client is dropped instead.
    const held = (): number => this.inflight.filter((h) => h.held).length;
    for (const h of [...this.inflight]) {
      if (held() === 0 || this.inflight.length - held() >= this.window) break;
      if (!h.held) continue;
      h.held = false;
      if (this.tooLarge(h.msg)) {
        this.inflight.splice(this.inflight.indexOf(h), 1);
        this.expectDrop(h.msg, 'too_large');
        continue;
      }
      this.expectPacket({ kind: 'publish', msg: h.msg, qos: h.qos, pid: h.pid, dup: true });
    }
    this.drain();
  }
}

// --- Commands -----------------------------------------------------------------------------------------------

type Cmd = fc.Command<Model, Real>;

/** After every step: the session's state is the model's, and what it stored is what it holds. */
function verify(m: Model, r: Real): void {
  m.done();
  const s = r.session;
  assert.equal(s.online, m.online);
  const inflight = [...s.inflight.values()].map((d) => ({ msg: nameOf(d.message), qos: d.qos, pid: d.packetId, comp: d.state === AWAIT_COMP }));
  assert.deepEqual(inflight, m.inflight.map(({ msg, qos, pid, comp }) => ({ msg, qos, pid, comp })), 'in flight');
  // The window holds for what is on the wire to this connection [MQTT-3.3.4-9]; held messages wait outside it.
  if (m.online) {
    const onWire = [...s.inflight.values()].filter((d) => !d.held && d.state !== AWAIT_COMP).length;
    assert.ok(onWire <= m.window, `${onWire} PUBLISH unacknowledged on this connection, window ${m.window}`);
    assert.deepEqual([...s.inflight.values()].map((d) => d.held), m.inflight.map((d) => d.held), 'held');
  }
  for (const [pid, d] of s.inflight) assert.equal(d.packetId, pid);
  assert.deepEqual([...s.queue].map((d) => nameOf(d.message)), m.queue, 'queue');
  assert.ok(s.queued <= m.maxQueued, 'queue bound');
  // Every QoS 1/2 message is in exactly one place: in flight, queued, done, or dropped (and counted).
  const qos12 = m.messages.flatMap((msg, i) => (msg.qos > 0 ? [i] : []));
  const places = [...m.inflight.map((d) => d.msg), ...m.queue, ...m.acked, ...m.dropped.filter((i) => (m.messages[i] as Msg).qos > 0)];
  assert.deepEqual(places.sort((a, b) => a - b), qos12, 'each QoS 1/2 message exactly once');
  // The store holds exactly the session's deliveries, with the packet id and state a restart resumes from.
  const expected = new Map<number, { pid: number; state: number }>();
  if (s.expiryInterval > 0) {
    for (const d of s.inflight.values()) expected.set(d.seq, { pid: d.packetId, state: d.state });
    for (const d of s.queue) expected.set(d.seq, { pid: d.packetId, state: d.state });
  }
  const stored = new Map([...r.store.bySeq].map(([seq, d]) => [seq, { pid: d.packetId, state: d.state }]));
  assert.deepEqual(stored, expected, 'store');
}

/** Runs one step on both sides, then compares them. */
function step(m: Model, r: Real, realStep: () => void, modelStep: () => void): void {
  m.watch(r);
  const from = r.wire.length;
  realStep();
  modelStep();
  verify(m, r);
  // QoS 1/2 go out first in the order they were delivered, each once; later copies only as DUP resends.
  for (const p of r.wire.slice(from)) {
    if (p.kind !== 'publish' || p.qos === 0 || p.dup) continue;
    assert.ok(!r.firstSent.has(p.msg), `message ${p.msg} sent twice without DUP`);
    assert.ok(p.msg > r.lastFirstSent, `message ${p.msg} sent after ${r.lastFirstSent}`);
    r.firstSent.add(p.msg);
    r.lastFirstSent = p.msg;
  }
}

class Deliver implements Cmd {
  constructor(readonly qos: QoS, readonly size: number, readonly ttl: number) {}
  check(): boolean {
    return true;
  }
  run(m: Model, r: Real): void {
    const msg = m.messages.length;
    const props = this.ttl > 0 ? { messageExpiryInterval: this.ttl } : undefined;
    const message = new Message(`m/${msg}`, Buffer.alloc(this.size), this.qos, false, props, 'p', r.now);
    m.messages.push({ qos: this.qos, size: this.size, expiresAt: message.expiresAt });
    step(m, r, () => r.session.deliver(message, this.qos, false, undefined, null), () => m.deliver(msg));
  }
  toString(): string {
    return `deliver(qos ${this.qos}, ${this.size} B${this.ttl > 0 ? `, expiry ${this.ttl} s` : ''})`;
  }
}

class Attach implements Cmd {
  constructor(readonly receiveMaximum: number, readonly writable: boolean, readonly maxPayload: number) {}
  check(m: Readonly<Model>): boolean {
    return !m.online;
  }
  run(m: Model, r: Real): void {
    step(
      m,
      r,
      () => {
        r.outlet = new FakeOutlet(r.wire, this.receiveMaximum, this.writable, this.maxPayload);
        r.session.attach(r.outlet);
      },
      () => m.attach(this.receiveMaximum, this.writable, this.maxPayload),
    );
  }
  toString(): string {
    return `attach(receive max ${this.receiveMaximum}, ${this.writable ? 'writable' : 'congested'}, max payload ${this.maxPayload})`;
  }
}

class Detach implements Cmd {
  check(m: Readonly<Model>): boolean {
    return m.online;
  }
  run(m: Model, r: Real): void {
    step(m, r, () => r.session.detach(), () => m.detach());
    r.outlet = null;
  }
  toString(): string {
    return 'detach';
  }
}

/** The connection's output buffer goes over (or back under) its bound: QoS 0 is dropped meanwhile. */
class Congest implements Cmd {
  constructor(readonly writable: boolean) {}
  check(m: Readonly<Model>): boolean {
    return m.online;
  }
  run(m: Model, r: Real): void {
    step(m, r, () => ((r.outlet as FakeOutlet).writable = this.writable), () => (m.writable = this.writable));
  }
  toString(): string {
    return this.writable ? 'writable' : 'congested';
  }
}

class Tick implements Cmd {
  constructor(readonly ms: number) {}
  check(): boolean {
    return true;
  }
  run(m: Model, r: Real): void {
    step(m, r, () => (r.now += this.ms), () => (m.now += this.ms));
  }
  toString(): string {
    return `tick(${this.ms} ms)`;
  }
}

/** PUBACK for the `i`-th QoS 1 message in flight. */
class Puback implements Cmd {
  constructor(readonly i: number) {}
  check(m: Readonly<Model>): boolean {
    return m.online && m.inflight.some((d) => d.qos === 1);
  }
  run(m: Model, r: Real): void {
    const candidates = m.inflight.filter((d) => d.qos === 1);
    const pid = (candidates[this.i % candidates.length] as InFlight).pid;
    step(m, r, () => assert.equal(r.session.complete(pid), true), () => m.complete(pid));
  }
  toString(): string {
    return `puback(#${this.i})`;
  }
}

/** PUBREC for the `i`-th message in flight: QoS 2 moves on to PUBREL (again, if repeated); QoS 1 is not known. */
class Pubrec implements Cmd {
  constructor(readonly i: number, readonly refused: boolean) {}
  check(m: Readonly<Model>): boolean {
    return m.online && m.inflight.length > 0;
  }
  run(m: Model, r: Real): void {
    const d = m.inflight[this.i % m.inflight.length] as InFlight;
    if (this.refused && d.qos === 2 && !d.comp) {
      // v5 PUBREC with a reason code >= 0x80 ends the exchange (section 4.3.3); the handler calls complete().
      step(m, r, () => assert.equal(r.session.complete(d.pid), true), () => m.complete(d.pid));
      return;
    }
    step(
      m,
      r,
      () => assert.equal(r.session.received(d.pid), d.qos === 2),
      () => {
        if (d.qos === 2) {
          d.comp = true;
          d.held = false; // the client had it from an earlier connection: nothing left to send again
        }
      },
    );
  }
  toString(): string {
    return `pubrec(#${this.i}${this.refused ? ', refused' : ''})`;
  }
}

/** PUBCOMP for the `i`-th QoS 2 message awaiting it. */
class Pubcomp implements Cmd {
  constructor(readonly i: number) {}
  check(m: Readonly<Model>): boolean {
    return m.online && m.inflight.some((d) => d.comp);
  }
  run(m: Model, r: Real): void {
    const candidates = m.inflight.filter((d) => d.comp);
    const pid = (candidates[this.i % candidates.length] as InFlight).pid;
    step(m, r, () => assert.equal(r.session.complete(pid), true), () => m.complete(pid));
  }
  toString(): string {
    return `pubcomp(#${this.i})`;
  }
}

/** An acknowledgement with an id that is not in flight: refused, and nothing changes. */
class UnknownAck implements Cmd {
  constructor(readonly kind: 'puback' | 'pubrec' | 'pubcomp', readonly pid: number) {}
  check(m: Readonly<Model>): boolean {
    return m.online && !m.inflight.some((d) => d.pid === this.pid);
  }
  run(m: Model, r: Real): void {
    const call = this.kind === 'pubrec' ? () => r.session.received(this.pid) : () => r.session.complete(this.pid);
    step(m, r, () => assert.equal(call(), false), () => undefined);
  }
  toString(): string {
    return `${this.kind}(unknown id ${this.pid})`;
  }
}

const commands = [
  fc
    .record({ qos: fc.constantFrom<QoS>(0, 1, 1, 2, 2), big: fc.boolean(), ttl: fc.constantFrom(0, 0, 1, 2) })
    .map(({ qos, big, ttl }) => new Deliver(qos, big ? 200 : 10, ttl)),
  fc
    .record({ rm: fc.constantFrom(1, 2, 3, 65535), writable: fc.boolean(), maxPayload: fc.constantFrom(100, 1000) })
    .map(({ rm, writable, maxPayload }) => new Attach(rm, writable, maxPayload)),
  fc.constant(new Detach()),
  fc.boolean().map((w) => new Congest(w)),
  fc.constantFrom(100, 1000, 1500).map((ms) => new Tick(ms)),
  fc.nat().map((i) => new Puback(i)),
  fc.tuple(fc.nat(), fc.boolean()).map(([i, refused]) => new Pubrec(i, refused)),
  fc.nat().map((i) => new Pubcomp(i)),
  fc
    .tuple(fc.constantFrom('puback' as const, 'pubrec' as const, 'pubcomp' as const), fc.oneof(fc.integer({ min: 1, max: 8 }), fc.constant(65535)))
    .map(([kind, pid]) => new UnknownAck(kind, pid)),
];

describe('Session against a reference model (property)', () => {
  it('window, queue, ids, order, resends, drops and store agree with the model', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 0, max: 4 }),
        fc.boolean(),
        // The command list's own replayPath (printed in the counterexample) goes in FC_REPLAY, with FC_SEED/FC_PATH.
        fc.commands(commands, { maxCommands: 80, size: 'max', ...(process.env.FC_REPLAY ? { replayPath: process.env.FC_REPLAY } : {}) }),
        (maxInflight, maxQueued, persistent, cmds) => {
          fc.modelRun(() => ({ model: new Model(maxInflight, maxQueued), real: new Real(maxInflight, maxQueued, persistent) }), cmds);
        },
      ),
      params(1000),
    );
  });
});

describe('Session packet ids (property)', () => {
  it('stay unique among in-flight messages across the wrap from 65535 to 1 [MQTT-2.2.1-3]', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 6 }), fc.uniqueArray(fc.nat({ max: 70_000 }), { maxLength: 5 }), (window, churnAt) => {
        const r = new Real(window, 0, false);
        r.session.attach(new FakeOutlet(r.wire, 65535, true, 1000));
        let n = 0;
        const deliver = (): number => {
          const busy = new Set(r.session.inflight.keys());
          r.wire.length = 0;
          r.session.deliver(new Message(`m/${n}`, Buffer.alloc(1), 1, false, undefined, 'p', r.now), 1, false, undefined, null);
          const p = r.wire[0];
          assert.ok(p?.kind === 'publish' && p.msg === n, `message ${n} not sent`);
          assert.ok(p.pid >= 1 && p.pid <= 65535 && !busy.has(p.pid), `packet id ${p.pid} of message ${n} is taken`);
          n++;
          return p.pid;
        };
        // window - 1 messages stay in flight (long unacknowledged) while ids cycle through the last slot.
        const held = Array.from({ length: window - 1 }, deliver);
        for (let i = 0; i < 70_000; i++) {
          assert.equal(r.session.complete(deliver()), true);
          if (churnAt.includes(i)) {
            assert.equal(r.session.complete(held.shift() as number), true);
            held.push(deliver());
          }
          assert.equal(r.session.inflightCount, window - 1);
        }
      }),
      { ...params(4), numRuns: 4 }, // 70,000 steps a run: FC_RUNS does not scale this one
    );
  });
});

describe('Session: counterexamples the model found', () => {
  it('counts a QoS 1 message dropped when its resend on attach is too large for the new connection', () => {
    const r = new Real(1, 0, true);
    r.session.attach(new FakeOutlet(r.wire, 1, true, 1000));
    r.session.deliver(new Message('m/0', Buffer.alloc(200), 1, false, undefined, 'p', r.now), 1, false, undefined, null);
    r.session.detach();
    r.session.attach(new FakeOutlet(r.wire, 1, true, 100)); // this connection's maximum packet size is smaller
    assert.deepEqual(r.drops, [{ msg: 0, reason: 'too_large' }]);
    assert.equal(r.session.inflightCount, 0);
    assert.equal(r.store.bySeq.size, 0);
  });

  it('counts a QoS 0 message dropped as too large for the connection', () => {
    const r = new Real(1, 0, false);
    r.session.attach(new FakeOutlet(r.wire, 1, true, 100));
    r.session.deliver(new Message('m/0', Buffer.alloc(200), 0, false, undefined, 'p', r.now), 0, false, undefined, null);
    assert.deepEqual(r.wire, []);
    assert.deepEqual(r.drops, [{ msg: 0, reason: 'too_large' }]);
  });
});
