import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HeldQueue, type HeldOwner } from './held.js';

function owner(): HeldOwner & { out: string[]; drained: number; failed: unknown[] } {
  const o = {
    out: [] as string[], drained: 0, failed: [] as unknown[],
    emitHeld: (b: Buffer) => void o.out.push(b.toString()),
    heldFailed: (e: unknown) => void o.failed.push(e),
    heldDrained: () => void o.drained++,
  };
  return o;
}

function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

test('a segment goes out as soon as its own wait and every earlier one are done, not when the newest is', async () => {
  const o = owner();
  const q = new HeldQueue(o);
  const [a, b, c] = [gate(), gate(), gate()];
  q.hold(a.wait, Buffer.from('ack1'));
  q.push(Buffer.from('publish-after-1'));
  q.hold(b.wait, Buffer.from('ack2'));
  q.hold(c.wait, Buffer.from('ack3'));
  b.open();
  await tick();
  assert.deepEqual(o.out, [], 'ack2 waits for ack1');
  a.open();
  await tick();
  assert.deepEqual(o.out, ['ack1', 'publish-after-1', 'ack2'], 'released up to the newest wait that is done, ack3 still waits');
  assert.equal(o.drained, 0);
  c.open();
  await tick();
  assert.deepEqual(o.out, ['ack1', 'publish-after-1', 'ack2', 'ack3']);
  assert.equal(o.drained, 1);
});

test('bytes with nothing to wait for go out at once when nothing is held', () => {
  const o = owner();
  new HeldQueue(o).push(Buffer.from('x'));
  assert.deepEqual(o.out, ['x']);
});

test('a failed wait is reported and nothing behind it goes out', async () => {
  const o = owner();
  const q = new HeldQueue(o);
  q.hold(Promise.reject(new Error('kafka gone')), Buffer.from('ack1'));
  q.push(Buffer.from('later'));
  await tick();
  assert.equal(o.failed.length, 1);
  assert.deepEqual(o.out, []);
});
