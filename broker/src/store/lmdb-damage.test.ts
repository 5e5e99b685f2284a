import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, open as openFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { open as openLmdb } from 'lmdb';
import { StoreError } from './errors.js';
import { LmdbStore } from './lmdb.js';
import { checkDataFile } from './lmdb-file.js';
import { delivery, LMDB_URL, log, OPEN_SCRIPT, PINO_URL, recordingLog, runNode, tempDir, withStore } from './lmdb-testing.js';

/** Makes a store with two commits (the second one adds pages at the end) and closes it. */
async function twoCommits(dir: string): Promise<void> {
  await withStore(dir, async (s) => {
    for (let i = 0; i < 200; i++) s.putDelivery(delivery('first', i, Buffer.alloc(300, 1)));
    await s.flush();
    for (let i = 0; i < 200; i++) s.putDelivery(delivery('second', i, Buffer.alloc(300, 2)));
    s.putDelivery(delivery('marked', 1, Buffer.from('<<MARK-0123456789>>')));
  });
}

async function overwrite(file: string, at: number, bytes: Buffer): Promise<void> {
  const fh = await openFile(file, 'r+');
  try {
    await fh.write(bytes, 0, bytes.length, at);
  } finally {
    await fh.close();
  }
}

/** Asserts a StoreError naming the directory and matching `what`. */
function isStoreError(dir: string, what: RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof StoreError, `expected a StoreError, got ${String(e)}`);
    assert.equal(e.code, 'ERR_STORE');
    assert.ok(e.message.includes(dir), `the message names the directory: ${e.message}`);
    assert.match(e.message, what);
    return true;
  };
}

describe('lmdb store: damage gives a clear error or recovers what is intact', () => {
  test('a path that is a file, or a directory that cannot be created', async () => {
    const dir = await tempDir();
    try {
      const file = join(dir, 'not-a-dir');
      await writeFile(file, 'x');
      await assert.rejects(new LmdbStore({ dir: file, log }).open(), isStoreError(file, /is a file, not a directory/));
      const under = join(file, 'store');
      await assert.rejects(new LmdbStore({ dir: under, log }).open(), isStoreError(under, /a part of the path is a file, not a directory/));
      const proc = '/proc/smq-store-test/data';
      await assert.rejects(new LmdbStore({ dir: proc, log }).open(), isStoreError(proc, /cannot create the directory/));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a directory that is not writable', async () => {
    const dir = await tempDir();
    try {
      await chmod(dir, 0o555);
      if (process.getuid?.() !== 0) {
        await assert.rejects(new LmdbStore({ dir, log }).open(), isStoreError(dir, /not writable/));
        return;
      }
      // Root may write anywhere: open it from a child without the capability that allows that.
      const r = await runNode(OPEN_SCRIPT, { LMDB_URL, PINO_URL, DIR: dir }, undefined, true);
      assert.equal(r.code, 0, r.out);
      const res = JSON.parse(r.out) as { ok: boolean; code: string; message: string };
      assert.equal(res.code, 'ERR_STORE', r.out);
      assert.ok(res.message.includes(dir) && /not writable by this process: .*EACCES/.test(res.message), res.message);
    } finally {
      await chmod(dir, 0o700);
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('no false alarms: a store churned through many commits and reopens passes the check every time', async () => {
    const dir = await tempDir();
    try {
      let seed = 99;
      const random = (n: number): number => {
        seed = (seed * 1103515245 + 12345) % 2147483648;
        return seed % n;
      };
      const live = new Map<string, number>();
      for (let cycle = 0; cycle < 15; cycle++) {
        await withStore(dir, async (s, snap) => {
          assert.equal(snap.deliveries.length, live.size, `cycle ${cycle}`);
          for (let turn = 0; turn < 8; turn++) {
            for (let i = 0; i < 150; i++) {
              const client = `c${random(40)}`;
              const seq = random(400);
              const key = `${client}/${seq}`;
              if (random(3) === 0) {
                s.deleteDelivery(client, seq);
                live.delete(key);
              } else {
                // Mostly small values, now and then one that needs overflow pages.
                const size = random(20) === 0 ? 5000 + random(20000) : random(600);
                s.putDelivery(delivery(client, seq, Buffer.alloc(size, seq & 0xff)));
                live.set(key, size);
              }
            }
            if (random(10) === 0) {
              const client = `c${random(40)}`;
              s.deleteSession(client);
              for (const k of [...live.keys()]) if (k.startsWith(`${client}/`)) live.delete(k);
            }
            await s.flush();
          }
        }, cycle % 2 === 0 ? 'fsync' : 'write');
        assert.doesNotThrow(() => checkDataFile(dir, false));
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('the meta-page reading agrees with LMDB', async () => {
    const dir = await tempDir();
    try {
      await twoCommits(dir);
      const state = checkDataFile(dir, false);
      const db = openLmdb({ path: dir, readOnly: true });
      try {
        const stats = db.getStats() as { pageSize: number; lastPageNumber: number; lastTxnId: number; entryCount: number };
        assert.equal(state.newest?.pageSize, stats.pageSize);
        assert.equal(state.newest?.lastPage, stats.lastPageNumber);
        assert.equal(state.newest?.txnId, stats.lastTxnId);
        assert.equal(state.newest?.main.entries, stats.entryCount);
        assert.equal(state.newest?.txnId, (state.previous?.txnId ?? 0) + 1);
      } finally {
        await db.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a commit that numbers pages past the end of the file, none of them in use, opens: LMDB leaves such pages unwritten', async () => {
    // A drained node was refused at its restart: LMDB counts in a commit's last page the pages it allocated and freed
    // again in that commit, and never writes them, so the file may end before that page. Only pages the trees use
    // must be in the file.
    const dir = await tempDir();
    try {
      await twoCommits(dir);
      const state = checkDataFile(dir, false);
      const newest = state.newest;
      assert.ok(newest !== null);
      const metaAt = newest.txnId % 2 === 0 ? 0 : newest.pageSize; // LMDB alternates the two meta pages
      const lastPage = Buffer.alloc(8);
      lastPage.writeBigUInt64LE(BigInt(newest.lastPage + 2));
      await overwrite(state.file, metaAt + 144, lastPage);
      assert.equal(checkDataFile(dir, false).newest?.lastPage, newest.lastPage + 2, 'the fixture moved the last page past the end');
      await withStore(dir, async (_s, snap) => assert.equal(snap.deliveries.length, 401));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a truncated data file', async () => {
    const dir = await tempDir();
    try {
      await twoCommits(dir);
      const file = join(dir, 'data.mdb');
      await truncate(file, Math.floor((await stat(file)).size / 2));
      await assert.rejects(new LmdbStore({ dir, log }).open(), isStoreError(dir, /data\.mdb is damaged: .* \(truncated\)/));
      // Recovery cannot help when both commits are cut, and says so.
      await truncate(file, 3 * 4096);
      await assert.rejects(new LmdbStore({ dir, log, recover: true }).open(), isStoreError(dir, /truncated.*and in the commit before it/));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a data file cut to 0 bytes: an error, or with recovery an empty store and a log line', async () => {
    const dir = await tempDir();
    try {
      await twoCommits(dir);
      await truncate(join(dir, 'data.mdb'), 0);
      await assert.rejects(new LmdbStore({ dir, log }).open(), isStoreError(dir, /empty \(0 bytes\)/));
      const rec = recordingLog();
      const s = new LmdbStore({ dir, log: rec.log, recover: true });
      const snap = await s.open();
      await s.close();
      assert.equal(snap.deliveries.length, 0);
      assert.ok(rec.records.some((r) => /store recovery: the data file is empty/.test(r.msg)), JSON.stringify(rec.records));
      // A data file removed outright (lock file left behind) starts empty too, and says so.
      await rm(join(dir, 'data.mdb'));
      const rec2 = recordingLog();
      const s2 = new LmdbStore({ dir, log: rec2.log });
      assert.equal((await s2.open()).deliveries.length, 0);
      await s2.close();
      assert.ok(rec2.records.some((r) => /data\.mdb is missing while lock\.mdb is there/.test(r.msg)), JSON.stringify(rec2.records));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a last commit cut off: an error naming recovery; with recovery, the commit before it', async () => {
    const dir = await tempDir();
    try {
      await twoCommits(dir);
      const state = checkDataFile(dir, false);
      const prev = state.previous;
      assert.ok(prev !== null);
      const keep = (prev.lastPage + 1) * prev.pageSize;
      assert.ok(keep < state.size, 'the second commit added pages');
      await truncate(state.file, keep);
      await assert.rejects(new LmdbStore({ dir, log }).open(), isStoreError(dir, /truncated.*store recovery would open it/));
      const rec = recordingLog();
      const s = new LmdbStore({ dir, log: rec.log, recover: true });
      const snap = await s.open();
      assert.deepEqual(new Set(snap.deliveries.map((d) => d.clientId)), new Set(['first']));
      assert.equal(snap.deliveries.length, 200);
      s.putDelivery(delivery('after', 1));
      await s.close();
      assert.ok(rec.records.some((r) => /the last commit is lost/.test(r.msg)));
      // The recovered store is whole again: it opens without recovery, with the write made after it.
      await withStore(dir, async (_s, again) => assert.equal(again.deliveries.length, 201));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('zeroed meta pages', async () => {
    const dir = await tempDir();
    try {
      await twoCommits(dir);
      await overwrite(join(dir, 'data.mdb'), 0, Buffer.alloc(8192));
      await assert.rejects(new LmdbStore({ dir, log, recover: true }).open(), isStoreError(dir, /meta page 0 has no LMDB signature/));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("a damaged value: an error naming the record; with recovery it alone is dropped, and logged", async () => {
    const dir = await tempDir();
    try {
      await twoCommits(dir);
      const file = join(dir, 'data.mdb');
      const { readFile } = await import('node:fs/promises');
      const at = (await readFile(file)).indexOf('<<MARK-0123456789>>');
      assert.ok(at > 0);
      await overwrite(file, at + 7, Buffer.from('X'));
      await assert.rejects(new LmdbStore({ dir, log }).open(), isStoreError(dir, /1 of \d+ records are damaged \(\["d","marked",1\]: checksum mismatch\)/));
      const rec = recordingLog();
      const s = new LmdbStore({ dir, log: rec.log, recover: true });
      const snap = await s.open();
      await s.close();
      assert.equal(snap.deliveries.length, 400);
      assert.ok(!snap.deliveries.some((d) => d.clientId === 'marked'));
      assert.ok(rec.records.some((r) => r.msg === 'store: dropping a damaged record' && JSON.stringify(r['key']) === '["d","marked",1]'));
      await withStore(dir, async (_s, again) => assert.equal(again.deliveries.length, 400));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a damaged B-tree page', async () => {
    const dir = await tempDir();
    try {
      await twoCommits(dir);
      const state = checkDataFile(dir, false);
      const root = state.newest?.main.root;
      assert.ok(root !== undefined && root !== null);
      await overwrite(state.file, root * 4096 + 24, Buffer.alloc(64, 0xee));
      await assert.rejects(new LmdbStore({ dir, log }).open(), isStoreError(dir, /damaged: in its last commit \(transaction \d+\) the record tree: page \d+/));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('random damage never crashes the process: each open, in a child, gives the data or a StoreError', async () => {
    const dir = await tempDir();
    const work = await tempDir();
    try {
      await twoCommits(dir);
      const { cp, readFile } = await import('node:fs/promises');
      const size = (await readFile(join(dir, 'data.mdb'))).length;
      let seed = 12345;
      const random = (n: number): number => {
        seed = (seed * 1103515245 + 12345) % 2147483648;
        return seed % n;
      };
      const outcomes = new Map<string, number>();
      for (let i = 0; i < 24; i++) {
        await rm(work, { recursive: true, force: true });
        await cp(dir, work, { recursive: true });
        const page = 2 + random(size / 4096 - 2);
        const garbage = Buffer.from(Array.from({ length: i % 2 === 0 ? 4096 : 16 }, () => random(256)));
        await overwrite(join(work, 'data.mdb'), page * 4096 + (i % 2 === 0 ? 0 : random(4080)), garbage);
        const r = await runNode(OPEN_SCRIPT, { LMDB_URL, PINO_URL, DIR: work });
        assert.equal(r.signal, null, `damage at page ${page} killed the process: ${r.out}`);
        assert.equal(r.code, 0, r.out);
        const res = JSON.parse(r.out) as { ok: boolean; code?: string; deliveries?: number };
        if (res.ok) assert.equal(res.deliveries, 401, 'an open that succeeds has every record');
        else assert.equal(res.code, 'ERR_STORE', r.out);
        const key = res.ok ? 'intact' : 'error';
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
      }
      assert.ok((outcomes.get('error') ?? 0) > 0, 'some damage hit live pages');
    } finally {
      await rm(dir, { recursive: true, force: true });
      await rm(work, { recursive: true, force: true });
    }
  });

  test('a store of another format, or not an smq store at all', async () => {
    const dir = await tempDir();
    try {
      const db = openLmdb({ path: dir });
      await db.put('someone else', { data: 1 });
      await db.close();
      await assert.rejects(new LmdbStore({ dir, log }).open(), isStoreError(dir, /not an smq store/));
      await rm(dir, { recursive: true, force: true });
      await withStore(dir, async (s) => s.putIncoming('c', 1));
      const raw = openLmdb({ path: dir, encoding: 'binary' });
      await raw.put(['m', 'format'], Buffer.from('smq-store/9'));
      await raw.close();
      await assert.rejects(new LmdbStore({ dir, log }).open(), isStoreError(dir, /format 'smq-store\/9'.*reads 'smq-store\/1'/));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
