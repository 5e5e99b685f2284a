import assert from 'node:assert/strict';
import { test } from 'node:test';
import { planDrain } from './batch-moves.js';

test('a drain sends batches only to nodes that announce move-batch; an older node gets single moves', () => {
  const target: Record<string, string> = { a: 'new', b: 'old', c: 'new', d: 'old', e: 'other-new' };
  const reads = (node: string): boolean => node !== 'old';
  const plan = planDrain(Object.keys(target), (id) => target[id] ?? null, reads);
  assert.deepEqual([...plan.batches], [['new', ['a', 'c']], ['other-new', ['e']]]);
  assert.deepEqual(plan.single, ['b', 'd']);
});

test('a session with no node to go to takes the single path (which keeps it here)', () => {
  const plan = planDrain(['a', 'b'], () => null, () => true);
  assert.deepEqual(plan, { batches: new Map(), single: ['a', 'b'] });
});
