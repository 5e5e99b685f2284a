import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DeliveryQueue, type DropReason, type QueueOptions, type Scheduler } from './queue.js';

/** A clock that moves only when the test says so. */
class FakeClock implements Scheduler {
  now = 0;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private next = 1;
  /** Delays asked for, in order. */
  readonly delays: number[] = [];

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.next++;
    this.delays.push(ms);
    this.timers.push({ at: this.now + ms, fn, id });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((t) => t.id !== handle);
  }

  get pending(): number {
    return this.timers.length;
  }

  /** Moves time forward, firing due timers in order (and letting promises settle between them). */
  async advance(ms: number): Promise<void> {
    const end = this.now + ms;
    for (;;) {
      await settle();
      this.timers.sort((a, b) => a.at - b.at);
      const t = this.timers[0];
      if (t === undefined || t.at > end) break;
      this.timers.shift();
      this.now = t.at;
      t.fn();
    }
    this.now = end;
    await settle();
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
}

interface Item {
  key: string;
  n: number;
}

/** A send function the test answers call by call. */
class Server {
  readonly calls: { item: Item; resolve: () => void; reject: (e: Error) => void }[] = [];
  readonly delivered: string[] = [];
  send = (item: Item): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      this.calls.push({ item, resolve: () => { this.delivered.push(`${item.key}${item.n}`); resolve(); }, reject });
    });

  /** Answers every call waiting now. */
  answerAll(ok: boolean): void {
    for (const c of this.calls.splice(0)) {
      if (ok) c.resolve();
      else c.reject(new Error('down'));
    }
  }
}

function makeQueue(options: Partial<QueueOptions>, server: Server, clock: FakeClock) {
  const seen = { sent: 0, failed: 0, dropped: [] as [string, DropReason][] };
  const q = new DeliveryQueue<Item>(
    { capacity: 100, concurrency: 4, retries: 3, backoff: 100, backoffMax: 1000, ...options },
    server.send,
    {
      sent: () => { seen.sent++; },
      failed: () => { seen.failed++; },
      dropped: (item, reason) => { seen.dropped.push([`${item.key}${item.n}`, reason]); },
    },
    clock,
  );
  return { q, seen };
}

test('one key at a time, in order; different keys in parallel up to the concurrency', async () => {
  const server = new Server();
  const clock = new FakeClock();
  const { q, seen } = makeQueue({ concurrency: 2 }, server, clock);
  for (const key of ['a', 'b', 'c']) for (let n = 1; n <= 3; n++) q.push(key, { key, n });
  assert.equal(q.size, 9);
  assert.deepEqual(server.calls.map((c) => `${c.item.key}${c.item.n}`), ['a1', 'b1'], 'two slots, one item per key');
  while (server.calls.length > 0) {
    server.answerAll(true);
    await settle();
  }
  assert.equal(seen.sent, 9);
  assert.equal(q.size, 0);
  for (const key of ['a', 'b', 'c']) {
    assert.deepEqual(server.delivered.filter((d) => d.startsWith(key)), [`${key}1`, `${key}2`, `${key}3`]);
  }
});

test('bounded: beyond the capacity the newest item is dropped as queue_full, the queued ones keep their order', async () => {
  const server = new Server();
  const clock = new FakeClock();
  const { q, seen } = makeQueue({ capacity: 3, concurrency: 1 }, server, clock);
  for (let n = 1; n <= 5; n++) q.push('a', { key: 'a', n });
  assert.equal(q.size, 3);
  assert.deepEqual(seen.dropped, [['a4', 'queue_full'], ['a5', 'queue_full']]);
  while (server.calls.length > 0) {
    server.answerAll(true);
    await settle();
  }
  assert.deepEqual(server.delivered, ['a1', 'a2', 'a3']);
  assert.equal(q.push('a', { key: 'a', n: 6 }), true, 'room again once sent');
});

test('a failed call is retried with doubling, capped backoff, and later items of its key wait behind it', async () => {
  const server = new Server();
  const clock = new FakeClock();
  const { q, seen } = makeQueue({ retries: 5, backoff: 100, backoffMax: 300 }, server, clock);
  q.push('a', { key: 'a', n: 1 });
  q.push('a', { key: 'a', n: 2 });
  for (let i = 0; i < 4; i++) {
    assert.equal(server.calls.length, 1);
    assert.equal(server.calls[0]?.item.n, 1, 'the second item never overtakes the first');
    server.answerAll(false);
    await clock.advance(1000);
  }
  assert.deepEqual(clock.delays, [100, 200, 300, 300], 'doubling, capped at backoffMax');
  server.answerAll(true);
  await settle();
  server.answerAll(true);
  await settle();
  assert.deepEqual(server.delivered, ['a1', 'a2']);
  assert.equal(seen.failed, 4);
  assert.equal(seen.sent, 2);
  assert.deepEqual(seen.dropped, []);
});

test('after the retry budget an item is dropped as retries_exhausted and the next one of its key goes', async () => {
  const server = new Server();
  const clock = new FakeClock();
  const { q, seen } = makeQueue({ retries: 2 }, server, clock);
  q.push('a', { key: 'a', n: 1 });
  q.push('a', { key: 'a', n: 2 });
  for (let i = 0; i < 3; i++) {
    server.answerAll(false);
    await clock.advance(10_000);
  }
  assert.deepEqual(seen.dropped, [['a1', 'retries_exhausted']]);
  assert.equal(seen.failed, 3, 'the first attempt and two retries');
  assert.equal(server.calls[0]?.item.n, 2);
  server.answerAll(true);
  await settle();
  assert.deepEqual(server.delivered, ['a2']);
  assert.equal(q.size, 0);
});

test('a send function that throws counts as a failed attempt', async () => {
  const clock = new FakeClock();
  let calls = 0;
  const dropped: DropReason[] = [];
  const q = new DeliveryQueue<Item>({ capacity: 10, concurrency: 1, retries: 1, backoff: 10, backoffMax: 10 }, () => {
    calls++;
    throw new Error('sync');
  }, { sent: () => undefined, failed: () => undefined, dropped: (_i, r) => { dropped.push(r); } }, clock);
  q.push('a', { key: 'a', n: 1 });
  await clock.advance(100);
  assert.equal(calls, 2);
  assert.deepEqual(dropped, ['retries_exhausted']);
});

test('stop: what is queued goes out within the deadline; then what is left is dropped as shutdown', async () => {
  const server = new Server();
  const clock = new FakeClock();
  const { q, seen } = makeQueue({ concurrency: 1, retries: 10, backoff: 100 }, server, clock);
  q.push('a', { key: 'a', n: 1 });
  q.push('b', { key: 'b', n: 1 });
  const stopping = q.stop(500);
  server.answerAll(true);
  await settle();
  server.answerAll(true);
  assert.equal(await stopping, 0, 'everything was sent before the deadline');
  assert.equal(seen.sent, 2);
  assert.equal(q.push('c', { key: 'c', n: 1 }), false, 'nothing is taken after stop');

  const server2 = new Server();
  const clock2 = new FakeClock();
  const second = makeQueue({ concurrency: 1, retries: 10, backoff: 100 }, server2, clock2);
  second.q.push('a', { key: 'a', n: 1 });
  second.q.push('a', { key: 'a', n: 2 });
  server2.answerAll(false); // a1 waits to retry
  const stopped = second.q.stop(250);
  await clock2.advance(300); // the server stays down past the deadline
  assert.equal(await stopped, 1, 'a2 dropped at the deadline; a1 (in flight again) counts itself');
  server2.answerAll(false);
  await settle();
  assert.deepEqual(second.seen.dropped.map(([, r]) => r), ['shutdown', 'shutdown']);
  assert.equal(second.q.size, 0);
  assert.equal(clock2.pending, 0, 'no timer left behind');
});
