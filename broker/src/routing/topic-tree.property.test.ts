/**
 * Property tests: the subscription trie, the retained-message trie and the router's per-session merge, each
 * against a reference written plainly from MQTT section 4.7 over random sequences of operations.
 *
 * Runs are seeded by fast-check; on failure it prints `seed` and `path`. Replay with
 * `FC_SEED=<seed> FC_PATH=<path> node --test dist/broker/src/routing/topic-tree.property.test.js`;
 * `FC_RUNS=<n>` runs more (or fewer) cases than the default.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { QoS } from 'mqtt-packet';
import { Message } from '../message/message.js';
import { Session, type SessionContext } from '../session/session.js';
import type { SharedGroup } from './shared.js';
import { RetainedTree } from './retained-tree.js';
import { Router } from './router.js';
import { Subscription } from './subscription.js';
import { TopicTree } from './topic-tree.js';
import { params } from '../testing/fc-params.js';


/** Does `filter` match `topic`? Level by level, as MQTT 5 section 4.7 reads; the trie must agree. */
function specMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  // Topics starting with '$' are not matched by a first-level wildcard [MQTT-4.7.2-1].
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true; // the rest, and the parent level itself when nothing is left
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false; // '+' takes exactly one level, an empty one too
  }
  return f.length === t.length;
}

// --- Generators --------------------------------------------------------------------------------------------

/** Topic levels, the tricky ones included: empty, '$'-prefixed, a space, non-ASCII. */
const level = fc.constantFrom('a', 'b', 'c', '', 'sport', '$SYS', '$', 'x y', 'ü');

/** Topic names as level lists: mostly short, sometimes very deep. Never '' (not a valid topic name). */
const topicName = fc
  .oneof(
    { weight: 8, arbitrary: fc.array(level, { minLength: 1, maxLength: 6 }) },
    { weight: 1, arbitrary: fc.array(fc.constantFrom('a', 'b', ''), { minLength: 30, maxLength: 120 }) },
  )
  .map((levels) => levels.join('/'))
  .filter((t) => t.length > 0);

/** Filters written from scratch: literal and '+' levels, maybe ending in '#', and the classic edge cases. */
const freeFilter = fc.oneof(
  { weight: 1, arbitrary: fc.constantFrom('#', '+', '+/+', '+/#', '/', '//', '/#', '+/', '$SYS/#', '$SYS/+', '$SYS', '$') },
  {
    weight: 4,
    arbitrary: fc
      .tuple(fc.array(fc.oneof(level, fc.constant('+')), { maxLength: 6 }), fc.boolean())
      .map(([levels, hash]) => (hash ? [...levels, '#'] : levels).join('/'))
      .filter((f) => f.length > 0),
  },
);

/**
 * A filter made from one of the run's topics, so that matches are frequent even for deep topics: level i becomes
 * '+' when `plus[i % plus.length]`, and with `hash` the filter is cut after `cut` levels and ends in '#'.
 */
interface Derived {
  readonly topic: number;
  readonly plus: readonly boolean[];
  readonly cut: number;
  readonly hash: boolean;
}

const derived: fc.Arbitrary<Derived> = fc.record({
  topic: fc.nat(),
  plus: fc.array(fc.boolean(), { maxLength: 6 }),
  cut: fc.nat(),
  hash: fc.boolean(),
});

function derive(d: Derived, topics: readonly string[]): string {
  let levels = (topics[d.topic % topics.length] as string).split('/');
  levels = levels.map((l, i) => (d.plus.length > 0 && d.plus[i % d.plus.length] ? '+' : l));
  if (d.hash) levels = [...levels.slice(0, d.cut % (levels.length + 1)), '#'];
  const filter = levels.join('/');
  return filter === '' ? '/' : filter;
}

/** A run's pools: operations name topics and filters by index, so the same ones come back (repeats, removals). */
const pools = fc.record({
  topics: fc.array(topicName, { minLength: 1, maxLength: 8 }),
  filters: fc.array(fc.oneof(freeFilter, derived), { minLength: 1, maxLength: 10 }),
});

function resolveFilters(filters: readonly (string | Derived)[], topics: readonly string[]): string[] {
  return filters.map((f) => (typeof f === 'string' ? f : derive(f, topics)));
}

function at<T>(list: readonly T[], i: number): T {
  return list[i % list.length] as T;
}

function sorted<T>(values: readonly T[]): T[] {
  return [...values].sort();
}

// --- TopicTree ---------------------------------------------------------------------------------------------

/** Keys as the router uses them: client ids, and a shared group's NUL-prefixed name. */
const key = fc.constantFrom('c1', 'c2', 'c3', '\u0000g');

type TreeOp =
  | { readonly op: 'set'; readonly filter: number; readonly key: string }
  | { readonly op: 'delete'; readonly filter: number; readonly key: string }
  | { readonly op: 'match'; readonly topic: number };

const treeOp: fc.Arbitrary<TreeOp> = fc.oneof(
  fc.record({ op: fc.constant('set' as const), filter: fc.nat(), key }),
  fc.record({ op: fc.constant('delete' as const), filter: fc.nat(), key }),
  fc.record({ op: fc.constant('match' as const), topic: fc.nat() }),
);

describe('TopicTree against the spec matcher (property)', () => {
  it('set/delete/match/get/size/entries agree with a map of (filter, key) -> value', () => {
    fc.assert(
      fc.property(
        pools,
        fc.array(treeOp, { maxLength: 80, size: 'max' }),
        // 0 disables the match cache; 1 and 2 make it fill, clear and go into bypass within one run.
        fc.constantFrom(0, 1, 2, 10_000),
        ({ topics, filters: rawFilters }, ops, cacheLimit) => {
          const filters = resolveFilters(rawFilters, topics);
          const tree = new TopicTree<number>(cacheLimit);
          const model = new Map<string, Map<string, number>>();
          let size = 0;
          ops.forEach((op, value) => {
            if (op.op === 'match') {
              const topic = at(topics, op.topic);
              const expected: number[] = [];
              for (const [filter, byKey] of model) if (specMatches(filter, topic)) expected.push(...byKey.values());
              assert.deepEqual(sorted(tree.match(topic)), sorted(expected), `match ${JSON.stringify(topic)}`);
              return;
            }
            const filter = at(filters, op.filter);
            const byKey = model.get(filter);
            if (op.op === 'set') {
              const isNew = byKey?.has(op.key) !== true;
              assert.equal(tree.set(filter, op.key, value), isNew, `set ${filter} ${op.key}`);
              if (isNew) size++;
              if (byKey) byKey.set(op.key, value);
              else model.set(filter, new Map([[op.key, value]]));
            } else {
              const had = byKey?.delete(op.key) === true;
              assert.equal(tree.delete(filter, op.key), had, `delete ${filter} ${op.key}`);
              if (had) size--;
              if (byKey?.size === 0) model.delete(filter);
            }
            assert.equal(tree.get(filter, op.key), model.get(filter)?.get(op.key));
            assert.equal(tree.size, size);
          });
          const listed = [...tree.entries()].map(([f, k, v]) => `${f}\u0001${k}\u0001${v}`);
          const expected: string[] = [];
          for (const [f, byKey] of model) for (const [k, v] of byKey) expected.push(`${f}\u0001${k}\u0001${v}`);
          assert.deepEqual(sorted(listed), sorted(expected));
        },
      ),
      params(1000),
    );
  });
});

// --- RetainedTree ------------------------------------------------------------------------------------------

type RetainedOp =
  | { readonly op: 'set'; readonly topic: number }
  | { readonly op: 'delete'; readonly topic: number }
  | { readonly op: 'match'; readonly filter: number };

const retainedOp: fc.Arbitrary<RetainedOp> = fc.oneof(
  fc.record({ op: fc.constant('set' as const), topic: fc.nat() }),
  fc.record({ op: fc.constant('delete' as const), topic: fc.nat() }),
  fc.record({ op: fc.constant('match' as const), filter: fc.nat() }),
);

describe('RetainedTree against the spec matcher (property)', () => {
  it('set/delete/get/match/size/values agree with a map of topic -> value', () => {
    fc.assert(
      fc.property(pools, fc.array(retainedOp, { maxLength: 80, size: 'max' }), ({ topics, filters: rawFilters }, ops) => {
        const filters = resolveFilters(rawFilters, topics);
        const tree = new RetainedTree<number>();
        const model = new Map<string, number>();
        ops.forEach((op, value) => {
          if (op.op === 'match') {
            const filter = at(filters, op.filter);
            const expected = [...model].filter(([topic]) => specMatches(filter, topic)).map(([, v]) => v);
            assert.deepEqual(sorted(tree.match(filter)), sorted(expected), `match ${JSON.stringify(filter)}`);
            return;
          }
          const topic = at(topics, op.topic);
          if (op.op === 'set') {
            tree.set(topic, value);
            model.set(topic, value);
          } else {
            assert.equal(tree.delete(topic), model.delete(topic), `delete ${JSON.stringify(topic)}`);
          }
          assert.equal(tree.get(topic), model.get(topic));
          assert.equal(tree.size, model.size);
        });
        assert.deepEqual(sorted([...tree.values()]), sorted([...model.values()]));
      }),
      params(1000),
    );
  });
});

// --- Router.publish ----------------------------------------------------------------------------------------

/** What a session was handed by the router. */
interface Handed {
  readonly qos: QoS;
  readonly retain: boolean;
  readonly subIds: readonly number[];
}

/** A real Session (the router uses its merge fields) whose deliveries are recorded instead of sent. */
class RecordingSession extends Session {
  readonly handed: Handed[] = [];

  override deliver(_m: Message, qos: QoS, retain: boolean, subIds: number[] | undefined, _g: SharedGroup | null): void {
    this.handed.push({ qos, retain, subIds: subIds === undefined ? [] : [...subIds] });
  }
}

const unusedContext: SessionContext = {
  maxInflight: 10,
  maxQueued: 10,
  store: null,
  dropped: () => undefined,
  canRead: null,
  redispatch: () => false,
  now: () => 0,
};

/** One subscription of the run: which client, which filter (from the pool), and its options. */
const subscribe = fc.record({
  client: fc.nat({ max: 3 }),
  filter: fc.nat(),
  qos: fc.constantFrom<QoS>(0, 1, 2),
  noLocal: fc.boolean(),
  rap: fc.boolean(),
  id: fc.nat({ max: 3 }),
});

const publish = fc.record({
  topic: fc.nat(),
  qos: fc.constantFrom<QoS>(0, 1, 2),
  retain: fc.boolean(),
  origin: fc.nat({ max: 4 }), // 4 is a client with no subscriptions
});

describe('Router.publish merges overlapping subscriptions (property)', () => {
  it('each session with a matching subscription gets one copy: max QoS, every id, No Local honoured', () => {
    fc.assert(
      fc.property(pools, fc.array(subscribe, { maxLength: 12, size: 'max' }), fc.array(publish, { minLength: 1, maxLength: 8, size: 'max' }), (p, subs, pubs) => {
        const filters = resolveFilters(p.filters, p.topics);
        const router = new Router('round_robin');
        const sessions = [0, 1, 2, 3].map((i) => new RecordingSession(`c${i}`, unusedContext));
        // The session's subscription per filter: a second SUBSCRIBE to the same filter replaces the first.
        const model = new Map<string, Subscription>();
        for (const s of subs) {
          const session = sessions[s.client] as RecordingSession;
          const filter = at(filters, s.filter);
          const sub = new Subscription(session, filter, filter, s.qos, { noLocal: s.noLocal, retainAsPublished: s.rap, retainHandling: 0, id: s.id }, null);
          router.add(sub);
          model.set(`${s.client}\u0001${filter}`, sub);
        }
        for (const pub of pubs) {
          const topic = at(p.topics, pub.topic);
          const origin = `c${pub.origin}`;
          for (const s of sessions) s.handed.length = 0;
          const m = new Message(topic, Buffer.from('x'), pub.qos, pub.retain, undefined, origin, 0);
          const count = router.publish(m);
          let expectedCount = 0;
          for (const session of sessions) {
            const matching = [...model.values()].filter(
              (sub) => sub.session === session && specMatches(sub.filter, topic) && !(sub.noLocal && session.clientId === origin),
            );
            if (matching.length === 0) {
              assert.deepEqual(session.handed, [], `${session.clientId} got ${topic}`);
              continue;
            }
            expectedCount++;
            const maxQos = Math.max(...matching.map((sub) => sub.qos));
            const expected: Handed = {
              qos: Math.min(pub.qos, maxQos) as QoS, // [MQTT-3.3.5-1]
              retain: pub.retain && matching.some((sub) => sub.retainAsPublished),
              subIds: sorted(matching.map((sub) => sub.id).filter((id) => id !== 0)),
            };
            assert.equal(session.handed.length, 1, `${session.clientId} copies of ${topic}`);
            const got = session.handed[0] as Handed;
            assert.deepEqual({ ...got, subIds: sorted(got.subIds) }, expected, `${session.clientId} on ${topic}`);
          }
          assert.equal(count, expectedCount);
        }
      }),
      params(1000),
    );
  });
});
