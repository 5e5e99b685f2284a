import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileReadError, WatchedFiles, type WatchTiming } from './watched-files.js';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'smq-watch-'));
}

/** A number file: digits only, anything else is refused. */
function parseNumber(text: string): number {
  if (!/^[0-9]+$/.test(text)) throw new Error('expected a number');
  return Number(text);
}

/** Watches `files` as numbers (a pair must agree), recording what the callbacks are told. */
function watchNumbers(files: string[], timing: WatchTiming = { intervalMs: 60000 }) {
  const events: string[] = [];
  const errors: unknown[] = [];
  const w = new WatchedFiles<number>({
    files,
    parse: (texts) => {
      const [first, ...rest] = texts.map(parseNumber);
      if (rest.some((n) => n !== first)) throw new Error('the files disagree');
      return first ?? 0;
    },
    onReload: (value, previous) => events.push(`reload ${previous}->${value}`),
    onError: (err) => { errors.push(err); events.push('error'); },
    onRestore: () => events.push('restore'),
    ...timing,
  });
  return { w, events, errors };
}

/** Resolves once `cond` holds, polling every few milliseconds; fails after `ms`. */
async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('a deleted file keeps the last value, is reported once, and is picked up again when it returns', async (t) => {
  const file = join(tempDir(), 'n.txt');
  writeFileSync(file, '1');
  const { w, events, errors } = watchNumbers([file]);
  t.after(() => w.close());
  assert.equal(w.value, 1);
  unlinkSync(file);
  assert.equal(await w.check(), false);
  assert.equal(await w.check(), false);
  assert.deepEqual(events, ['error'], 'one report per change, not one per look');
  assert.ok(errors[0] instanceof FileReadError);
  assert.equal(errors[0].file, file);
  assert.equal((errors[0].cause as NodeJS.ErrnoException).code, 'ENOENT');
  assert.equal(w.value, 1);
  writeFileSync(file, '22');
  assert.equal(await w.check(), true);
  assert.equal(w.value, 22);
  assert.deepEqual(events, ['error', 'reload 1->22']);
});

test('a broken file keeps the value; touched but unchanged is no reload; put back as it was is a restore', async (t) => {
  const file = join(tempDir(), 'n.txt');
  writeFileSync(file, '5');
  const { w, events } = watchNumbers([file]);
  t.after(() => w.close());
  utimesSync(file, new Date(), new Date(Date.now() + 10000));
  assert.equal(await w.check(), false);
  assert.deepEqual(events, []);
  writeFileSync(file, 'five');
  await w.check();
  assert.equal(w.value, 5);
  writeFileSync(file, '5');
  await w.check();
  assert.deepEqual(events, ['error', 'restore']);
  assert.equal(w.reload(), false, 'reload() reads regardless of the stat');
  writeFileSync(file, '6');
  assert.equal(w.reload(), true);
  assert.equal(w.value, 6);
});

test('the poll timer finds a change by itself, and stops after close()', async (t) => {
  const file = join(tempDir(), 'n.txt');
  writeFileSync(file, '1');
  const { w, events } = watchNumbers([file], { intervalMs: 20, settleMs: 20 });
  t.after(() => w.close());
  w.watch();
  w.watch(); // idempotent
  writeFileSync(file, '333');
  // The interval is unref'd, so a pending timer alone would let the test process end: `until` holds it open.
  await until(() => w.value === 333);
  w.close();
  writeFileSync(file, '4444');
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(w.value, 333);
  assert.equal(await w.check(), false, 'closed for good');
  assert.deepEqual(events, ['reload 1->333']);
});

test('several files: a change is read once they have all stayed still, so a pair lands together', async (t) => {
  const dir = tempDir();
  const [a, b] = [join(dir, 'a'), join(dir, 'b')];
  writeFileSync(a, '1');
  writeFileSync(b, '1');
  const { w, events } = watchNumbers([a, b], { intervalMs: 10, settleMs: 300 });
  t.after(() => w.close());
  w.watch();
  writeFileSync(a, '2');
  await new Promise((r) => setTimeout(r, 30)); // well inside the settle time of the look that saw `a` change
  writeFileSync(b, '2');
  await until(() => w.value === 2);
  assert.deepEqual(events, ['reload 1->2'], 'the half-done pair was never read');
});

test('a Kubernetes ..data symlink swap is seen through the links', async (t) => {
  // The layout of a mounted Secret: file -> ..data/file, ..data -> ..<timestamp>/, swapped by a rename.
  const dir = tempDir();
  const version = (name: string, text: string): void => {
    mkdirSync(join(dir, name));
    writeFileSync(join(dir, name, 'n.txt'), text);
  };
  version('..v1', '1');
  symlinkSync('..v1', join(dir, '..data'));
  symlinkSync(join('..data', 'n.txt'), join(dir, 'n.txt'));
  const { w } = watchNumbers([join(dir, 'n.txt')]);
  t.after(() => w.close());
  version('..v2', '2'); // same size, a new inode
  symlinkSync('..v2', join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  assert.equal(await w.check(), true);
  assert.equal(w.value, 2);
});

test('at start-up, an unreadable file is a FileReadError naming it; a bad one throws what parse threw', () => {
  const dir = tempDir();
  const missing = join(dir, 'missing');
  assert.throws(() => watchNumbers([missing]), (err: unknown) => {
    assert.ok(err instanceof FileReadError);
    assert.equal(err.code, 'ERR_FILE_READ');
    assert.equal(err.file, missing);
    assert.equal(err.message, `${missing}: cannot read it (ENOENT)`);
    return true;
  });
  const bad = join(dir, 'bad');
  writeFileSync(bad, 'x');
  assert.throws(() => watchNumbers([bad]), /^Error: expected a number$/);
});
