import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ring } from './ring.js';

test('ring keeps FIFO order across growth and wrap-around', () => {
  const r = new Ring<number>(2);
  const seen: number[] = [];
  for (let i = 0; i < 100; i++) {
    r.push(i);
    if (i % 3 === 0) seen.push(r.shift() as number);
  }
  while (r.length) seen.push(r.shift() as number);
  assert.deepEqual(seen, Array.from({ length: 100 }, (_, i) => i));
  assert.equal(r.shift(), undefined);
});

test('ring filter removes matching items and keeps order', () => {
  const r = new Ring<number>(4);
  for (let i = 0; i < 10; i++) r.push(i);
  const removed = r.filter((n) => n % 2 === 0);
  assert.deepEqual(removed, [1, 3, 5, 7, 9]);
  assert.deepEqual([...r], [0, 2, 4, 6, 8]);
});
