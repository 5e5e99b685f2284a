import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WorkQueue } from './queue.js';

test('a key added many times while waiting is worked on once', async () => {
  const seen: string[] = [];
  const q = new WorkQueue(async (k) => void seen.push(k), () => undefined, 1);
  q.add('a');
  q.add('b');
  q.add('b');
  q.add('b');
  await q.idle();
  assert.deepEqual(seen.sort(), ['a', 'b']);
});

test('one key is never worked on twice at once; an add during its run runs it again afterwards', async () => {
  let inside = 0;
  let most = 0;
  let runs = 0;
  let release!: () => void;
  const q = new WorkQueue(async () => {
    inside++;
    most = Math.max(most, inside);
    runs++;
    if (runs === 1) await new Promise<void>((r) => (release = r));
    inside--;
  }, () => undefined, 4);
  q.add('k');
  await new Promise((r) => setImmediate(r));
  q.add('k');
  q.add('k');
  release();
  await q.idle();
  assert.equal(most, 1);
  assert.equal(runs, 2);
});

test('a failure comes back after a growing backoff; a success resets it', async () => {
  const delays: number[] = [];
  let calls = 0;
  const q = new WorkQueue(async () => {
    calls++;
    if (calls < 3) throw new Error('conflict');
  }, (_k, _e, d) => delays.push(d), 1, 5, 1000);
  q.add('x');
  while (calls < 3) await new Promise((r) => setTimeout(r, 5));
  await q.idle();
  assert.deepEqual(delays, [5, 10]);
  q.stop();
});
