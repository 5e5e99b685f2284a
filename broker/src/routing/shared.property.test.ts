/**
 * Property tests: shared subscriptions (`$share/<group>/<filter>`, `$queue/<filter>`) through the Router, for
 * every `mqtt.shared_strategy`, against a model of groups and members: one member per matching group, every
 * ordinary subscriber, fair round robin, stable hashing, nothing after leaving, nothing lost when a member goes.
 *
 * Runs are seeded by fast-check; on failure it prints `seed` and `path`. Replay with
 * `FC_SEED=<seed> FC_PATH=<path> node --test dist/broker/src/routing/shared.property.test.js`;
 * `FC_RUNS=<n>` runs more (or fewer) cases than the default.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { QoS } from 'mqtt-packet';
import type { SharedStrategy } from '../config/types.js';
import { Message } from '../message/message.js';
import { type Outlet, Session, type SessionContext } from '../session/session.js';
import { Router } from './router.js';
import type { SharedGroup } from './shared.js';
import { Subscription } from './subscription.js';
import { params } from '../testing/fc-params.js';


const STRATEGIES: readonly SharedStrategy[] = ['round_robin', 'random', 'hash_clientid', 'hash_topic'];

/** Few filters and topics: the trie is tested on its own; here they only decide which groups a message is for. */
const FILTERS = ['a/b', 'a/+', '#', 'a/#', '+/b', '$SYS/#'];
const TOPICS = ['a/b', 'a/c', 'x/b', 'a', '$SYS/x'];
/** `$queue` is the group of `$queue/<filter>`. */
const GROUPS = ['g1', 'g2', '$queue'];
const CLIENTS = 5;

/** Topic matching as MQTT 5 section 4.7 reads (see topic-tree.property.test.ts for the trie against it). */
function specMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false; // [MQTT-4.7.2-1]
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/** Runs `body` with Math.random replaced by a seeded generator, so the 'random' strategy replays from a seed. */
function withRandom<T>(seed: number, body: () => T): T {
  const saved = Math.random;
  let s = seed >>> 0;
  // mulberry32: tiny, and good enough to spread picks over a handful of members.
  Math.random = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  try {
    return body();
  } finally {
    Math.random = saved;
  }
}

/** An outlet that takes everything: online routing sessions need one, but their deliveries are recorded. */
const anyOutlet: Outlet = { sendPublish: () => true, sendPubrel: () => undefined, writable: true, receiveMaximum: 65535 };

const unusedContext: SessionContext = {
  maxInflight: 10,
  maxQueued: 10,
  store: null,
  dropped: () => undefined,
  canRead: null,
  redispatch: () => false,
  now: () => 0,
};

/** One hand-over from the router: which message, and through which group (`name` NUL `filter`), or none. */
interface Handed {
  readonly message: number;
  readonly group: string | null;
}

/** A real Session (the router reads its `online` and merge fields) whose deliveries are recorded, not sent. */
class RecordingSession extends Session {
  readonly handed: Handed[] = [];

  override deliver(m: Message, _qos: QoS, _retain: boolean, _ids: number[] | undefined, group: SharedGroup | null): void {
    this.handed.push({ message: Number(m.payload.toString()), group: group === null ? null : `${group.name}\u0000${group.filter}` });
  }
}

const SUB_OPTIONS = { noLocal: false, retainAsPublished: false, retainHandling: 0 as const, id: 0 };

/**
 * The routing side of sessions, driven as the SUBSCRIBE/UNSUBSCRIBE handlers drive the router, with a model of
 * who is subscribed to what: ordinary filters per client, and each group's members in joining order.
 */
class Fixture {
  readonly router: Router;
  readonly sessions: RecordingSession[];
  /** Ordinary subscriptions: client -> filter -> Subscription. */
  readonly ordinary = new Map<number, Map<string, Subscription>>();
  /** Shared memberships: `name` NUL `filter` -> client -> Subscription, in joining order (as the group keeps them). */
  readonly groups = new Map<string, Map<number, Subscription>>();
  private published = 0;

  constructor(strategy: SharedStrategy) {
    this.router = new Router(strategy);
    this.sessions = Array.from({ length: CLIENTS }, (_, i) => new RecordingSession(`c${i}`, unusedContext));
  }

  session(c: number): RecordingSession {
    return this.sessions[c] as RecordingSession;
  }

  subscribe(c: number, filter: string): void {
    const sub = new Subscription(this.session(c), filter, filter, 1, SUB_OPTIONS, null);
    this.router.add(sub);
    const mine = this.ordinary.get(c) ?? new Map<string, Subscription>();
    mine.set(filter, sub);
    this.ordinary.set(c, mine);
  }

  unsubscribe(c: number, filter: string): void {
    const sub = this.ordinary.get(c)?.get(filter);
    if (sub === undefined) return;
    this.router.remove(sub);
    this.ordinary.get(c)?.delete(filter);
  }

  join(c: number, name: string, filter: string): void {
    const raw = name === '$queue' ? `$queue/${filter}` : `$share/${name}/${filter}`;
    const sub = new Subscription(this.session(c), raw, filter, 1, SUB_OPTIONS, this.router.group(name, filter));
    this.router.add(sub);
    const key = `${name}\u0000${filter}`;
    const members = this.groups.get(key) ?? new Map<number, Subscription>();
    members.set(c, sub); // a second SUBSCRIBE replaces the member in place
    this.groups.set(key, members);
  }

  leave(c: number, name: string, filter: string): void {
    const key = `${name}\u0000${filter}`;
    const sub = this.groups.get(key)?.get(c);
    if (sub === undefined) return;
    this.router.remove(sub);
    this.groups.get(key)?.delete(c);
    if (this.groups.get(key)?.size === 0) this.groups.delete(key);
  }

  setOnline(c: number, online: boolean): void {
    this.session(c).outlet = online ? anyOutlet : null;
  }

  /** Publishes and returns what each client was handed by it. */
  publish(topic: string, origin: number): Handed[][] {
    for (const s of this.sessions) s.handed.length = 0;
    const n = this.published++;
    this.router.publish(new Message(topic, Buffer.from(String(n)), 1, false, undefined, `c${origin}`, 0));
    return this.sessions.map((s) => [...s.handed]);
  }
}

// --- Operations -------------------------------------------------------------------------------------------

type Op =
  | { readonly op: 'sub' | 'unsub'; readonly c: number; readonly f: number }
  | { readonly op: 'join' | 'leave'; readonly c: number; readonly g: number; readonly f: number }
  | { readonly op: 'online' | 'offline'; readonly c: number }
  | { readonly op: 'pub'; readonly t: number; readonly origin: number };

const client = fc.nat({ max: CLIENTS - 1 });
const filterIndex = fc.nat({ max: FILTERS.length - 1 });
const groupIndex = fc.nat({ max: GROUPS.length - 1 });

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 1, arbitrary: fc.record({ op: fc.constantFrom('sub' as const, 'unsub' as const), c: client, f: filterIndex }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constantFrom('join' as const, 'leave' as const), c: client, g: groupIndex, f: filterIndex }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constantFrom('online' as const, 'offline' as const), c: client }) },
  // origin CLIENTS: a publisher that subscribes to nothing
  { weight: 6, arbitrary: fc.record({ op: fc.constant('pub' as const), t: fc.nat({ max: TOPICS.length - 1 }), origin: fc.nat({ max: CLIENTS }) }) },
);

/** Applies a non-publish operation to the fixture. */
function apply(fx: Fixture, o: Exclude<Op, { op: 'pub' }>): void {
  switch (o.op) {
    case 'sub':
      return fx.subscribe(o.c, FILTERS[o.f] as string);
    case 'unsub':
      return fx.unsubscribe(o.c, FILTERS[o.f] as string);
    case 'join':
      return fx.join(o.c, GROUPS[o.g] as string, FILTERS[o.f] as string);
    case 'leave':
      return fx.leave(o.c, GROUPS[o.g] as string, FILTERS[o.f] as string);
    case 'online':
      return fx.setOnline(o.c, true);
    case 'offline':
      return fx.setOnline(o.c, false);
  }
}

/** Picks of one group since its membership or its members' presence last changed. */
interface Epoch {
  receivers: number[];
  /** Receiver by hash key (client id or topic), for the hash strategies. */
  byKey: Map<string, number>;
}

describe('shared subscriptions through the Router (property)', () => {
  for (const strategy of STRATEGIES) {
    it(`${strategy}: one member per matching group, every ordinary subscriber, nobody else`, () => {
      fc.assert(
        fc.property(fc.array(op, { maxLength: 60, size: 'max' }), fc.integer(), (ops, randomSeed) =>
          withRandom(randomSeed, () => {
            const fx = new Fixture(strategy);
            const epochs = new Map<string, Epoch>();
            for (const o of ops) {
              if (o.op !== 'pub') {
                apply(fx, o);
                // Any change of membership or presence starts new epochs (ordinary subscriptions do not matter).
                if (o.op !== 'sub' && o.op !== 'unsub') epochs.clear();
                continue;
              }
              const topic = TOPICS[o.t] as string;
              const handed = fx.publish(topic, o.origin);

              // Every ordinary subscriber with a matching filter gets exactly one copy; nobody else gets one.
              for (let c = 0; c < CLIENTS; c++) {
                const wanted = [...(fx.ordinary.get(c)?.keys() ?? [])].some((f) => specMatches(f, topic));
                const got = (handed[c] as Handed[]).filter((h) => h.group === null).length;
                assert.equal(got, wanted ? 1 : 0, `c${c} ordinary copies of ${topic}`);
              }

              // Every group on a matching filter hands the message to exactly one of its current members.
              const viaGroups = new Map<string, number[]>();
              handed.forEach((list, c) => {
                for (const h of list) if (h.group !== null) viaGroups.set(h.group, [...(viaGroups.get(h.group) ?? []), c]);
              });
              for (const [key, members] of fx.groups) {
                const filter = key.split('\u0000')[1] as string;
                const receivers = viaGroups.get(key) ?? [];
                viaGroups.delete(key);
                if (!specMatches(filter, topic)) {
                  assert.deepEqual(receivers, [], `${key} is not for ${topic}`);
                  continue;
                }
                assert.equal(receivers.length, 1, `${key} copies of ${topic}`);
                const r = receivers[0] as number;
                assert.ok(members.has(r), `c${r} got ${topic} from ${key} without being a member`);
                const online = [...members.keys()].filter((c) => fx.session(c).online);
                // A member with a connection is preferred, so messages do not wait on an absent one.
                if (online.length > 0) assert.ok(fx.session(r).online, `offline c${r} picked over ${online}`);

                const epoch = epochs.get(key) ?? { receivers: [], byKey: new Map<string, number>() };
                epochs.set(key, epoch);
                if (strategy === 'round_robin') {
                  // Fair: the picks cycle through the online members (all members when none is online).
                  const m = online.length > 0 ? online.length : members.size;
                  const h = epoch.receivers;
                  if (h.length >= m) assert.equal(r, h[h.length - m], `round robin period ${m}: ${h} then ${r}`);
                  else assert.ok(!h.includes(r), `round robin repeated c${r} before all had one: ${h}`);
                } else if (strategy !== 'random') {
                  // Stable: the same key goes to the same member while nothing changes.
                  const hashKey: string = strategy === 'hash_clientid' ? `c${o.origin}` : topic;
                  const before = epoch.byKey.get(hashKey);
                  if (before !== undefined) assert.equal(r, before, `${strategy} moved ${hashKey}`);
                  epoch.byKey.set(hashKey, r);
                }
                epoch.receivers.push(r);
              }
              // Groups with no member left are gone: nothing arrives through them [left members get nothing].
              assert.deepEqual([...viaGroups.keys()], [], 'deliveries through groups without members');
            }
          }),
        ),
        params(500),
      );
    });
  }

  it('round_robin: after any churn, k·n messages give each of n online members exactly k', () => {
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 40, size: 'max' }),
        fc.integer({ min: 1, max: CLIENTS }),
        fc.integer({ min: 1, max: 4 }),
        (churn, n, k) => {
          const fx = new Fixture('round_robin');
          for (const o of churn) {
            if (o.op === 'pub') fx.publish(TOPICS[o.t] as string, o.origin);
            else apply(fx, o);
          }
          // Then n clients are online members of g1 on 'a/#' (whatever they were before), the rest leave it.
          for (let c = 0; c < CLIENTS; c++) {
            if (c < n) fx.join(c, 'g1', 'a/#');
            else fx.leave(c, 'g1', 'a/#');
            fx.setOnline(c, c < n);
          }
          const counts = new Array<number>(CLIENTS).fill(0);
          for (let i = 0; i < k * n; i++) {
            fx.publish('a/b', CLIENTS).forEach((list, c) => {
              counts[c] = (counts[c] ?? 0) + list.filter((h) => h.group === 'g1\u0000a/#').length;
            });
          }
          assert.deepEqual(counts, Array.from({ length: CLIENTS }, (_, c) => (c < n ? k : 0)));
        },
      ),
      params(200),
    );
  });

  for (const strategy of ['hash_clientid', 'hash_topic'] as const) {
    it(`${strategy}: a key goes to the same member on any router with the same members, whatever came before`, () => {
      fc.assert(
        fc.property(
          fc.uniqueArray(client, { minLength: 1 }),
          fc.array(fc.record({ t: fc.nat({ max: TOPICS.length - 1 }), origin: fc.nat({ max: CLIENTS }) }), { maxLength: 10 }),
          fc.array(fc.record({ t: fc.nat({ max: TOPICS.length - 1 }), origin: fc.nat({ max: CLIENTS }) }), { minLength: 1, maxLength: 10 }),
          (members, warmup, probes) => {
            // Two routers (two nodes, or before and after a restart) with the same members in the same order.
            const a = new Fixture(strategy);
            const b = new Fixture(strategy);
            for (const fx of [a, b]) {
              for (const c of members) {
                fx.join(c, 'g1', '#');
                fx.setOnline(c, true);
              }
            }
            for (const w of warmup) a.publish(TOPICS[w.t] as string, w.origin);
            const receiver = (handed: Handed[][]): number => handed.findIndex((list) => list.length > 0);
            for (const p of probes) {
              const topic = TOPICS[p.t] as string;
              const first = receiver(a.publish(topic, p.origin));
              assert.equal(receiver(a.publish(topic, p.origin)), first, 'same router, same key');
              assert.equal(receiver(b.publish(topic, p.origin)), first, 'other router, same key');
            }
          },
        ),
        params(200),
      );
    });
  }
});

// --- Members going away with messages in hand -------------------------------------------------------------

/** Records what a connection was sent. */
class Wire implements Outlet {
  readonly sent: number[] = [];
  readonly writable = true;
  readonly receiveMaximum = 65535;

  sendPublish(m: Message): boolean {
    this.sent.push(Number(m.payload.toString()));
    return true;
  }

  sendPubrel(): void {}
}

/** The messages a session holds: in flight or queued. */
function holding(s: Session): number[] {
  return [...s.inflight.values(), ...s.queue].map((d) => Number(d.message.payload.toString()));
}

type MemberOp =
  | { readonly op: 'pub' }
  | { readonly op: 'attach' | 'detach' | 'join' | 'leave'; readonly c: number }
  | { readonly op: 'ack'; readonly c: number; readonly i: number };

const memberOp: fc.Arbitrary<MemberOp> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('pub' as const) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constantFrom('attach' as const, 'detach' as const), c: fc.nat({ max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constantFrom('join' as const, 'leave' as const), c: fc.nat({ max: 3 }) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('ack' as const), c: fc.nat({ max: 3 }), i: fc.nat() }) },
);

describe('shared members leaving with messages in hand (property)', () => {
  for (const strategy of STRATEGIES) {
    it(`${strategy}: a QoS 1 message is held by exactly one member, acknowledged or counted as dropped`, () => {
      fc.assert(
        fc.property(fc.array(memberOp, { maxLength: 60, size: 'max' }), fc.integer({ min: 1, max: 4 }), fc.integer(), (ops, maxInflight, seed) =>
          withRandom(seed, () => {
            const router = new Router(strategy);
            const dropped: number[] = [];
            const ctx: SessionContext = {
              maxInflight,
              maxQueued: 3, // small, so redispatched messages also meet full queues
              store: null,
              canRead: null,
              dropped: (_id, m) => dropped.push(Number(m.payload.toString())),
              redispatch: (g, m, qos, leaving) => router.redispatch(g, m, qos, leaving),
              now: () => 0,
            };
            const sessions = [0, 1, 2, 3].map((i) => new Session(`c${i}`, ctx));
            const subs = new Map<number, Subscription>();
            const acked: number[] = [];
            /** What each member that left held at that moment. */
            const heldAtLeave = new Map<number, Set<number>>();
            /** Messages the group took (router.publish counted a delivery). */
            const taken: number[] = [];
            let n = 0;
            for (const o of ops) {
              const s = o.op === 'pub' ? undefined : (sessions[o.c] as Session);
              switch (o.op) {
                case 'pub': {
                  const m = new Message('jobs/1', Buffer.from(String(n)), 1, false, undefined, 'p', 0);
                  if (router.publish(m) === 1) taken.push(n);
                  n++;
                  break;
                }
                case 'join':
                  if (!subs.has(o.c)) {
                    const sub = new Subscription(s as Session, '$share/w/jobs/+', 'jobs/+', 1, SUB_OPTIONS, router.group('w', 'jobs/+'));
                    router.add(sub);
                    subs.set(o.c, sub);
                  }
                  break;
                case 'leave': {
                  const sub = subs.get(o.c);
                  if (sub) router.remove(sub);
                  if (sub) heldAtLeave.set(o.c, new Set(holding(s as Session)));
                  subs.delete(o.c);
                  break;
                }
                case 'attach':
                  if (s && !s.online) s.attach(new Wire());
                  break;
                case 'detach':
                  if (s && s.online) {
                    s.detach();
                    // What it held through a group went to another member of that group, if one is online.
                    for (const d of [...s.inflight.values(), ...s.queue]) {
                      const taker: Subscription | undefined = d.group?.members.find((m) => m.session !== s && m.session.online);
                      assert.equal(taker, undefined, `c${o.c} kept ${d.message.payload} though ${taker?.session.clientId} is online`);
                    }
                  }
                  break;
                case 'ack': {
                  const ids = [...(s as Session).inflight.keys()];
                  if (ids.length > 0) {
                    const id = ids[o.i % ids.length] as number;
                    acked.push(Number((s as Session).inflight.get(id)?.message.payload.toString()));
                    (s as Session).complete(id);
                  }
                  break;
                }
              }
              // Conservation: every message the group took is in exactly one member's hands, acknowledged, or dropped.
              const held = sessions.flatMap(holding);
              assert.deepEqual([...held, ...acked, ...dropped].sort((p, q) => p - q), taken, 'held + acked + dropped');
              // A member that left is given nothing new: it only works off what it had then.
              for (const [c, before] of heldAtLeave) {
                if (subs.has(c)) continue;
                for (const x of holding(sessions[c] as Session)) assert.ok(before.has(x), `c${c} got ${x} after leaving`);
              }
            }
          }),
        ),
        params(300),
      );
    });
  }
});
