import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TopicTree } from './topic-tree.js';

/** Reference matcher, written as directly from the spec as possible, to cross-check the trie. */
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

/** Filters (one subscriber each) whose value is the filter itself, so a match lists filters. */
function treeOf(filters: readonly string[]): TopicTree<string> {
  const tree = new TopicTree<string>();
  for (const filter of filters) tree.set(filter, 'c', filter);
  return tree;
}

function sorted(values: readonly string[]): string[] {
  return [...values].sort();
}

const FILTERS = [
  '#',
  '+',
  '+/+',
  '+/#',
  '/',
  '/+',
  '+/',
  '//',
  '/#',
  'a',
  'a/',
  'a/b',
  'a//b',
  'a/+',
  'a/+/c',
  '+/b/c',
  'a/b/+',
  '+/+/+',
  'a/#',
  'a/b/#',
  'a/b/c/#',
  'sport/#',
  '$SYS/#',
  '$SYS/+',
  '$SYS/foo',
  '$SYS/+/bar',
  '$SYS',
  '$share',
  'a/b/c',
];

/** [topic, filters expected to match] — written out by hand so the reference matcher is checked too. */
const CASES: readonly (readonly [string, readonly string[]])[] = [
  ['a', ['#', '+', '+/#', 'a', 'a/#']], // '+/#': '#' matches the parent level
  ['a/b', ['#', '+/+', '+/#', 'a/b', 'a/+', 'a/#', 'a/b/#']],
  ['a/b/c', ['#', '+/#', 'a/+/c', '+/b/c', 'a/b/+', '+/+/+', 'a/#', 'a/b/#', 'a/b/c/#', 'a/b/c']],
  ['a/', ['#', '+/+', '+/#', '+/', 'a/', 'a/+', 'a/#']],
  ['a//b', ['#', '+/#', 'a//b', '+/+/+', 'a/#']],
  ['/', ['#', '+/+', '+/#', '/', '/+', '+/', '/#']],
  ['/a', ['#', '+/+', '+/#', '/+', '/#']],
  ['//', ['#', '+/#', '//', '/#', '+/+/+']],
  ['sport', ['#', '+', '+/#', 'sport/#']],
  ['sport/', ['#', '+/+', '+/#', '+/', 'sport/#']],
  ['sport/tennis/player1', ['#', '+/#', '+/+/+', 'sport/#']],
  ['$SYS', ['$SYS/#', '$SYS']],
  ['$SYS/foo', ['$SYS/#', '$SYS/+', '$SYS/foo']],
  ['$SYS/foo/bar', ['$SYS/#', '$SYS/+/bar']],
  ['$SYS/', ['$SYS/#', '$SYS/+']],
  ['$share', ['$share']],
  ['$', []],
  ['b/$SYS', ['#', '+/+', '+/#']],
  ['nothing/here/at/all', ['#', '+/#']],
];

describe('TopicTree.match', () => {
  const tree = treeOf(FILTERS);
  for (const [topic, expected] of CASES) {
    it(`matches ${JSON.stringify(topic)}`, () => {
      assert.deepEqual(sorted(tree.match(topic)), sorted(expected));
      assert.deepEqual(sorted(expected), sorted(FILTERS.filter((f) => specMatches(f, topic))));
    });
  }

  it("'+' matches at every position, and only one level", () => {
    const levels = ['a', 'b', 'c', 'd', 'e'];
    const topic = levels.join('/');
    for (let i = 0; i < levels.length; i++) {
      const filter = levels.map((l, j) => (j === i ? '+' : l)).join('/');
      const t = treeOf([filter]);
      assert.deepEqual(t.match(topic), [filter], filter);
      assert.deepEqual(t.match(levels.map((l, j) => (j === i ? '' : l)).join('/')), [filter], `${filter} empty level`);
      assert.deepEqual(t.match(levels.map((l, j) => (j === i ? 'x/y' : l)).join('/')), [], `${filter} two levels`);
      assert.deepEqual(t.match(levels.filter((_, j) => j !== i).join('/')), [], `${filter} missing level`);
    }
  });

  it("'#' after every prefix matches the prefix itself and everything below", () => {
    const levels = ['a', 'b', 'c', 'd'];
    for (let i = 1; i <= levels.length; i++) {
      const prefix = levels.slice(0, i).join('/');
      const t = treeOf([`${prefix}/#`]);
      assert.equal(t.match(prefix).length, 1, prefix);
      assert.equal(t.match(`${prefix}/`).length, 1, `${prefix}/`);
      assert.equal(t.match(`${prefix}/x/y/z`).length, 1, `${prefix}/x/y/z`);
      if (i > 1) assert.equal(t.match(levels.slice(0, i - 1).join('/')).length, 0, 'parent of the prefix');
    }
  });

  it('agrees with the reference matcher on generated topics', () => {
    const parts = ['a', 'b', '', '$SYS', 'c'];
    const topics: string[] = [];
    for (const x of parts) {
      topics.push(x === '' ? '/' : x);
      for (const y of parts) {
        topics.push(`${x}/${y}`);
        for (const z of parts) topics.push(`${x}/${y}/${z}`);
      }
    }
    for (const topic of topics) {
      assert.deepEqual(sorted(tree.match(topic)), sorted(FILTERS.filter((f) => specMatches(f, topic))), topic);
    }
  });

  it('handles very deep topics (500 levels)', () => {
    const levels = Array.from({ length: 500 }, (_, i) => `l${i}`);
    const topic = levels.join('/');
    const allPlus = levels.map(() => '+').join('/');
    const t = treeOf([topic, allPlus, `${levels.slice(0, 250).join('/')}/#`, '#', `${topic}/x`]);
    assert.deepEqual(sorted(t.match(topic)), sorted([topic, allPlus, `${levels.slice(0, 250).join('/')}/#`, '#']));
    assert.deepEqual(sorted(t.match(`${topic}/extra`)), sorted([`${levels.slice(0, 250).join('/')}/#`, '#']));
  });

  it('does not overflow the stack on the deepest legal filter (32,768 levels, 65,535 bytes)', () => {
    const filter = Array.from({ length: 32_768 }, () => '+').join('/');
    assert.equal(filter.length, 65_535);
    const t = treeOf([filter]);
    assert.equal(t.match('/'.repeat(32_767)).length, 1);
    assert.equal(t.match('/'.repeat(32_768)).length, 0);
    assert.deepEqual([...t.entries()].map(([f]) => f), [filter]);
    assert.equal(t.delete(filter, 'c'), true);
    assert.equal(t.size, 0);
  });

  it('returns every subscriber of one filter', () => {
    const t = new TopicTree<number>();
    for (let i = 0; i < 10_000; i++) t.set('fan/out', `client-${i}`, i);
    t.set('fan/+', 'client-0', -1);
    const got = t.match('fan/out');
    assert.equal(got.length, 10_001);
    assert.deepEqual(
      [...got].sort((a, b) => a - b),
      [-1, ...Array.from({ length: 10_000 }, (_, i) => i)],
    );
  });

  it('returns the same cached array for repeated topics', () => {
    const t = treeOf(['a/+']);
    const first = t.match('a/b');
    assert.equal(t.match('a/b'), first);
    assert.equal(t.match('x'), t.match('x'));
    assert.equal(t.match('x').length, 0);
  });
});

describe('TopicTree set/get/delete', () => {
  it('set reports new entries and replaces existing values', () => {
    const t = new TopicTree<{ qos: number }>();
    assert.equal(t.set('a/b', 'c1', { qos: 0 }), true);
    assert.equal(t.set('a/b', 'c2', { qos: 1 }), true);
    assert.equal(t.set('a/b', 'c1', { qos: 2 }), false);
    assert.equal(t.size, 2);
    assert.deepEqual(t.get('a/b', 'c1'), { qos: 2 });
    assert.deepEqual(sorted(t.match('a/b').map((v) => String(v.qos))), ['1', '2']);
  });

  it('keeps filters that differ only in empty levels or slashes apart', () => {
    const t = new TopicTree<number>();
    const filters = ['a/b', 'a//b', '/a/b', 'a/b/', 'a', '/a', 'a/'];
    filters.forEach((f, i) => t.set(f, 'c', i));
    filters.forEach((f, i) => assert.equal(t.get(f, 'c'), i, f));
    assert.equal(t.get('a/b//', 'c'), undefined);
    assert.equal(t.size, filters.length);
  });

  it('get distinguishes wildcard levels from literals and keys from one another', () => {
    const t = new TopicTree<string>();
    t.set('a/+', 'k1', 'plus');
    t.set('a/#', 'k1', 'hash');
    assert.equal(t.get('a/+', 'k1'), 'plus');
    assert.equal(t.get('a/#', 'k1'), 'hash');
    assert.equal(t.get('a/+', 'k2'), undefined);
    assert.equal(t.get('a/x', 'k1'), undefined);
  });

  const deleteCases: readonly (readonly [string, string, boolean])[] = [
    ['a/b', 'c1', true],
    ['a/b', 'c1', false], // already gone
    ['a/b', 'nobody', false],
    ['a/x', 'c1', false],
    ['a', 'c1', false], // a prefix node, not a filter
    ['a/+', 'c1', true],
    ['a/#', 'c1', true],
    ['#', 'c1', true],
  ];
  it('delete reports what it removed', () => {
    const t = new TopicTree<number>();
    for (const f of ['a/b', 'a/+', 'a/#', '#']) t.set(f, 'c1', 1);
    for (const [filter, key, removed] of deleteCases) assert.equal(t.delete(filter, key), removed, `${filter} ${key}`);
    assert.equal(t.size, 0);
  });

  it('delete prunes empty nodes and matches disappear', () => {
    const t = new TopicTree<string>();
    t.set('a/b/c/d', 'c1', 'deep');
    t.set('a/b', 'c1', 'shallow');
    t.set('a/+/c/#', 'c2', 'wild');
    assert.equal(t.size, 3);
    assert.equal(t.delete('a/b/c/d', 'c1'), true);
    assert.deepEqual(t.match('a/b/c/d'), ['wild']);
    assert.equal(t.delete('a/+/c/#', 'c2'), true);
    assert.deepEqual(t.match('a/b/c/d'), []);
    assert.deepEqual(t.match('a/b'), ['shallow']);
    assert.equal(t.delete('a/b', 'c1'), true);
    assert.equal(t.size, 0);
    assert.deepEqual([...t.entries()], []);
    // Internal check that nothing is left behind: the root has no children after the last delete.
    const root = (t as unknown as { root: { children: unknown; plus: unknown; hash: unknown } }).root;
    assert.deepEqual([root.children, root.plus, root.hash], [null, null, null]);
  });

  it('swap-removal keeps the other subscribers of a filter', () => {
    const t = new TopicTree<number>();
    for (let i = 0; i < 5; i++) t.set('t', `c${i}`, i);
    assert.equal(t.delete('t', 'c1'), true);
    assert.equal(t.delete('t', 'c4'), true);
    assert.deepEqual([...t.match('t')].sort(), [0, 2, 3]);
    t.set('t', 'c3', 33);
    assert.deepEqual([...t.match('t')].sort(), [0, 2, 33]);
    assert.equal(t.get('t', 'c2'), 2);
  });
});

describe('TopicTree cache', () => {
  it('is invalidated by set, replace and delete', () => {
    const t = new TopicTree<string>();
    assert.deepEqual(t.match('a/b'), []);
    t.set('a/+', 'c1', 'v1');
    assert.deepEqual(t.match('a/b'), ['v1']);
    t.set('a/+', 'c1', 'v2');
    assert.deepEqual(t.match('a/b'), ['v2']);
    t.set('#', 'c2', 'all');
    assert.deepEqual(sorted(t.match('a/b')), ['all', 'v2']);
    t.delete('a/+', 'c1');
    assert.deepEqual(t.match('a/b'), ['all']);
    t.delete('#', 'c2');
    assert.deepEqual(t.match('a/b'), []);
  });

  it('stays correct past its cap', () => {
    for (const limit of [0, 1, 3]) {
      const t = new TopicTree<string>(limit);
      t.set('d/+', 'c', 'v');
      for (let round = 0; round < 2; round++) {
        for (let i = 0; i < 10; i++) assert.deepEqual(t.match(`d/${i}`), ['v'], `limit ${limit}`);
        assert.deepEqual(t.match('e/1'), []);
      }
    }
  });

  it('keeps caching when it is hit, and pauses while it churns', () => {
    const useful = new TopicTree<string>(2);
    useful.set('#', 'c', 'v');
    for (const topic of ['a', 'a', 'b', 'b', 'c']) useful.match(topic); // full with 2 hits: worth keeping
    assert.equal(useful.match('c'), useful.match('c'));

    const churn = new TopicTree<string>(2);
    churn.set('#', 'c', 'v');
    for (const topic of ['a', 'b', 'c']) churn.match(topic); // full with no hits: bypass 2 * 50 misses
    const first = churn.match('q');
    assert.notEqual(churn.match('q'), first);
    assert.deepEqual(churn.match('q'), ['v']);
    for (let i = 0; i < 97; i++) churn.match(`m/${i}`);
    const resumed = churn.match('r');
    assert.equal(churn.match('r'), resumed);
  });

  it('results taken before a set are not changed by it', () => {
    const t = new TopicTree<string>();
    t.set('a', 'c1', 'v1');
    const before = t.match('a');
    t.set('a', 'c2', 'v2');
    assert.deepEqual(before, ['v1']);
    assert.deepEqual(sorted(t.match('a')), ['v1', 'v2']);
  });
});

describe('TopicTree.entries', () => {
  it('lists every (filter, key, value)', () => {
    const t = new TopicTree<number>();
    const input: [string, string, number][] = [
      ['#', 'a', 1],
      ['/', 'a', 2],
      ['a//b', 'b', 3],
      ['a/+/#', 'a', 4],
      ['a/+/#', 'b', 5],
      ['$SYS/+', 'c', 6],
      ['+', 'c', 7],
    ];
    for (const [f, k, v] of input) t.set(f, k, v);
    const key = (e: readonly [string, string, number]): string => `${e[0]}|${e[1]}|${e[2]}`;
    assert.deepEqual([...t.entries()].map(key).sort(), input.map(key).sort());
  });

  it('is a snapshot, safe to delete from while iterating', () => {
    const t = new TopicTree<number>();
    for (let i = 0; i < 100; i++) t.set(`x/${i}`, 'k', i);
    let seen = 0;
    for (const [f, k] of t.entries()) {
      t.delete(f, k);
      seen++;
    }
    assert.equal(seen, 100);
    assert.equal(t.size, 0);
  });
});
