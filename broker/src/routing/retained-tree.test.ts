import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RetainedTree } from './retained-tree.js';

/** A tree whose values are the topic names themselves, so a match lists topics. */
function treeOf(topics: readonly string[]): RetainedTree<string> {
  const tree = new RetainedTree<string>();
  for (const topic of topics) tree.set(topic, topic);
  return tree;
}

function sorted(values: Iterable<string>): string[] {
  return [...values].sort();
}

const TOPICS = [
  'a',
  'a/',
  'a/b',
  'a//b',
  'a/b/c',
  'a/x/c',
  '/',
  '/a',
  '//',
  'sport',
  'sport/tennis',
  'sport/tennis/player1',
  '$SYS',
  '$SYS/foo',
  '$SYS/foo/bar',
  '$SYS/',
  '$other/x',
  'b/$SYS',
];

/** [filter, retained topics it receives] */
const CASES: readonly (readonly [string, readonly string[]])[] = [
  ['#', ['a', 'a/', 'a/b', 'a//b', 'a/b/c', 'a/x/c', '/', '/a', '//', 'sport', 'sport/tennis', 'sport/tennis/player1', 'b/$SYS']],
  ['+', ['a', 'sport']],
  ['+/+', ['a/', 'a/b', '/', '/a', 'sport/tennis', 'b/$SYS']],
  ['+/#', ['a', 'a/', 'a/b', 'a//b', 'a/b/c', 'a/x/c', '/', '/a', '//', 'sport', 'sport/tennis', 'sport/tennis/player1', 'b/$SYS']],
  ['a/+', ['a/', 'a/b']],
  ['a/+/c', ['a/b/c', 'a/x/c']],
  ['a/#', ['a', 'a/', 'a/b', 'a//b', 'a/b/c', 'a/x/c']],
  ['a//b', ['a//b']],
  ['a/b', ['a/b']],
  ['/', ['/']],
  ['/+', ['/', '/a']],
  ['/#', ['/', '/a', '//']],
  ['+/', ['a/', '/']],
  ['sport/#', ['sport', 'sport/tennis', 'sport/tennis/player1']],
  ['sport/+', ['sport/tennis']],
  ['sport/+/+', ['sport/tennis/player1']],
  ['$SYS/#', ['$SYS', '$SYS/foo', '$SYS/foo/bar', '$SYS/']],
  ['$SYS/+', ['$SYS/foo', '$SYS/']],
  ['$SYS/foo', ['$SYS/foo']],
  ['$SYS', ['$SYS']],
  ['+/foo', []],
  ['+/+/bar', []],
  ['$other/+', ['$other/x']],
  ['nope/#', []],
  ['a/b/c/d', []],
];

describe('RetainedTree.match', () => {
  const tree = treeOf(TOPICS);
  for (const [filter, expected] of CASES) {
    it(`matches ${JSON.stringify(filter)}`, () => {
      assert.deepEqual(sorted(tree.match(filter)), sorted(expected));
    });
  }

  it('has no duplicates for overlapping wildcards', () => {
    const got = tree.match('+/+/#');
    assert.equal(new Set(got).size, got.length);
  });

  it('handles a 500-level topic', () => {
    const levels = Array.from({ length: 500 }, (_, i) => `l${i}`);
    const topic = levels.join('/');
    const t = treeOf([topic, levels.slice(0, 499).join('/')]);
    assert.deepEqual(t.match(topic), [topic]);
    assert.deepEqual(t.match(levels.map(() => '+').join('/')), [topic]);
    assert.equal(t.match(`${levels.slice(0, 10).join('/')}/#`).length, 2);
    assert.equal(t.get(topic), topic);
  });

  it('does not overflow the stack on a 32,768-level filter', () => {
    const topic = '/'.repeat(32_767);
    const t = treeOf([topic]);
    assert.deepEqual(t.match(Array.from({ length: 32_768 }, () => '+').join('/')), [topic]);
    assert.deepEqual(t.match('#'), [topic]);
    assert.equal(t.delete(topic), true);
    assert.equal(t.size, 0);
  });
});

describe('RetainedTree set/get/delete', () => {
  it('replaces values and counts topics once', () => {
    const t = new RetainedTree<number>();
    t.set('a/b', 1);
    t.set('a/b', 2);
    t.set('a', 3);
    assert.equal(t.size, 2);
    assert.equal(t.get('a/b'), 2);
    assert.equal(t.get('a'), 3);
    assert.equal(t.get('a/'), undefined);
    assert.equal(t.get('a/b/c'), undefined);
  });

  it('stores undefined as a value', () => {
    const t = new RetainedTree<string | undefined>();
    t.set('u', undefined);
    assert.equal(t.size, 1);
    assert.deepEqual(t.match('u'), [undefined]);
    assert.equal(t.delete('u'), true);
    assert.equal(t.size, 0);
  });

  it('delete reports removal, prunes, and matches disappear', () => {
    const t = treeOf(['a/b/c', 'a/b', 'x']);
    assert.equal(t.delete('a/b/c/d'), false);
    assert.equal(t.delete('a'), false); // interior node without a value
    assert.equal(t.delete('a/b/c'), true);
    assert.equal(t.delete('a/b/c'), false);
    assert.deepEqual(t.match('a/#'), ['a/b']);
    assert.equal(t.delete('a/b'), true);
    assert.deepEqual(t.match('a/#'), []);
    assert.deepEqual(t.match('#'), ['x']);
    assert.equal(t.size, 1);
    const root = (t as unknown as { root: { children: Map<string, unknown> } }).root;
    assert.deepEqual([...root.children.keys()], ['x']);
  });

  it('values() is a snapshot of everything, $ topics included', () => {
    const t = treeOf(TOPICS);
    assert.deepEqual(sorted(t.values()), sorted(TOPICS));
    for (const v of t.values()) t.delete(v);
    assert.equal(t.size, 0);
  });
});

describe('RetainedTree with 100,000 topics', () => {
  const N = 100_000;
  const t = new RetainedTree<number>();
  for (let i = 0; i < N; i++) t.set(`site/${i % 10}/dev/${i}/state`, i);
  t.set('$SYS/broker/uptime', -1);

  it('counts and looks up every topic', () => {
    assert.equal(t.size, N + 1);
    for (let i = 0; i < N; i += 997) assert.equal(t.get(`site/${i % 10}/dev/${i}/state`), i);
    assert.equal(t.get(`site/0/dev/${N}/state`), undefined);
  });

  const cases: readonly (readonly [string, number])[] = [
    ['#', N],
    ['site/#', N],
    ['site/3/#', N / 10],
    ['site/+/dev/+/state', N],
    ['site/7/dev/+/state', N / 10],
    ['site/7/dev/77/state', 1],
    ['site/8/dev/77/state', 0], // 77 lives under site/7
    ['+/+/dev/12345/state', 1],
    ['site/+/dev/12345/+', 1],
    ['site/+/dev/12345/#', 1],
    ['$SYS/#', 1],
    ['+/broker/uptime', 0],
    ['site/+', 0],
  ];
  for (const [filter, count] of cases) {
    it(`matches ${filter}`, () => {
      const got = t.match(filter);
      assert.equal(got.length, count);
      if (filter === '+/+/dev/12345/state') assert.deepEqual(got, [12345]);
      if (filter === '$SYS/#') assert.deepEqual(got, [-1]);
      if (filter === 'site/7/dev/+/state') assert.ok(got.every((v) => v % 10 === 7));
    });
  }

  it('answers narrow filters exactly among 100,000 topics', () => {
    // Speed is measured in bench/, not here; this checks that narrow walks find exactly their own topic.
    for (let i = 0; i < 1000; i++) {
      const got = t.match(`site/${i % 10}/dev/${i}/+`);
      assert.deepEqual(got, [i]);
    }
  });
});
