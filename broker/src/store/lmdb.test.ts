import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { type Durability, LmdbStore } from './lmdb.js';
import { delivery, LMDB_URL, log, OPEN_SCRIPT, PINO_URL, runNode, tempDir, withStore } from './lmdb-testing.js';
import { StoreError } from './errors.js';
import { storeSuite } from './suite.js';

for (const durability of ['fsync', 'write', 'none'] as Durability[]) {
  storeSuite(`lmdb (durability ${durability})`, async () => {
    const dir = await tempDir();
    return {
      open: async () => new LmdbStore({ dir, durability, log }),
      cleanup: () => rm(dir, { recursive: true, force: true }),
      commits: durability !== 'none',
    };
  });
}

/** Writes N deliveries from START, flushes, says so, then keeps writing until it is killed. */
const WRITE_SCRIPT = `
const { LmdbStore } = await import(process.env.LMDB_URL);
const { pino } = await import(process.env.PINO_URL);
const store = new LmdbStore({ dir: process.env.DIR, durability: process.env.DURABILITY, log: pino({ level: 'silent' }) });
await store.open();
const start = Number(process.env.START), n = Number(process.env.N);
const put = (seq) => store.putDelivery({ clientId: 'c' + (seq % 7), seq, message: { topic: 't/' + seq, payload: Buffer.from('payload-' + seq), qos: 1, retain: false, properties: undefined, origin: 'p', expiresAt: 0 }, qos: 1, retain: false, subIds: undefined, packetId: 0, state: 0 });
for (let i = 0; i < n; i++) {
  put(start + i);
  if (i % 100 === 99) await new Promise((r) => setImmediate(r));
}
store.putRetained({ topic: 'r/' + start, payload: Buffer.from('kept'), qos: 1, retain: true, properties: undefined, origin: 'p', expiresAt: 0 });
await store.flush();
console.log('flushed');
// More writes and commits in flight when the kill lands: they may or may not survive, the flushed ones must.
let seq = 1e9 + start;
setInterval(() => { for (let i = 0; i < 200; i++) put(seq++); }, 1);
`;

describe('lmdb store: flush and durability modes', () => {
  test('flush returns one promise per commit (group commit)', async () => {
    const dir = await tempDir();
    try {
      await withStore(dir, async (s) => {
        s.putDelivery(delivery('a', 1));
        const f1 = s.flush();
        s.putDelivery(delivery('b', 1));
        const f2 = s.flush();
        assert.equal(f1, f2, 'writes of one turn share a commit and its promise');
        await f2;
        s.putDelivery(delivery('a', 2));
        const f3 = s.flush();
        assert.notEqual(f3, f1, 'a later write waits on a later commit');
        await f3;
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  for (const durability of ['fsync', 'write'] as Durability[]) {
    test(`${durability}: once flush resolves, another process reads every record`, async () => {
      const dir = await tempDir();
      try {
        await withStore(dir, async (s) => {
          for (let i = 1; i <= 500; i++) s.putDelivery(delivery(`c${i % 5}`, i));
          assert.equal(s.dirty, true);
          await s.flush();
          const r = await runNode(OPEN_SCRIPT, { LMDB_URL, PINO_URL, DIR: dir });
          assert.equal(r.code, 0, r.out);
          assert.deepEqual(JSON.parse(r.out), { ok: true, deliveries: 500, retained: 0, bytes: sumPayloads(1, 500) });
        }, durability);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }

  test('none: flush resolves at once and dirty stays false; close commits everything', async () => {
    const dir = await tempDir();
    try {
      await withStore(dir, async (s) => {
        for (let i = 1; i <= 100; i++) s.putDelivery(delivery('c', i));
        assert.equal(s.dirty, false);
        let resolved = false;
        void s.flush().then(() => (resolved = true));
        await Promise.resolve();
        assert.equal(resolved, true, 'resolved within a microtask, before any commit');
      }, 'none');
      await withStore(dir, async (_s, snap) => assert.equal(snap.deliveries.length, 100));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('the store refuses writes before open and after close, with a StoreError', async () => {
    const dir = await tempDir();
    try {
      const s = new LmdbStore({ dir, log });
      assert.throws(() => s.putIncoming('c', 1), (e: unknown) => e instanceof StoreError && e.code === 'ERR_STORE' && /not open/.test(e.message));
      await s.open();
      await assert.rejects(s.open(), /already open/);
      await s.close();
      assert.throws(() => s.deleteRetained('t'), StoreError);
      await s.close(); // twice: nothing to do
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  for (const durability of ['fsync', 'write'] as Durability[]) {
    test(`${durability}: a process SIGKILLed after flush loses nothing it flushed (3 rounds)`, async () => {
      const dir = await tempDir();
      const n = 3000;
      try {
        for (let round = 0; round < 3; round++) {
          let flushed = false;
          const r = await runNode(WRITE_SCRIPT, { LMDB_URL, PINO_URL, DIR: dir, DURABILITY: durability, START: String(round * n), N: String(n) }, (line, kill) => {
            if (line === 'flushed') {
              flushed = true;
              // Let the next commits get under way, so the kill lands in the middle of one.
              setTimeout(kill, 5 + round * 10);
            }
          });
          assert.ok(flushed, r.out);
          assert.equal(r.signal, 'SIGKILL');
          await withStore(dir, async (_s, snap) => {
            const seqs = new Set(snap.deliveries.map((d) => d.seq));
            for (let seq = 0; seq < (round + 1) * n; seq++) assert.ok(seqs.has(seq), `round ${round}: delivery ${seq} was flushed and is gone`);
            for (const d of snap.deliveries) assert.equal(d.message.payload.toString(), `payload-${d.seq}`);
            assert.equal(snap.retained.length, round + 1);
          });
        }
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
});

function sumPayloads(from: number, to: number): number {
  let n = 0;
  for (let i = from; i <= to; i++) n += `payload-${i}`.length;
  return n;
}
