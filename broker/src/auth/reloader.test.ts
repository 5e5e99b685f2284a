import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { AuthFileError, FileReloader } from './reloader.js';

function setup(): { file: string; records: Record<string, unknown>[]; reloader: FileReloader<number> } {
  const file = join(mkdtempSync(join(tmpdir(), 'smq-reload-')), 'n.txt');
  writeFileSync(file, '1');
  const records: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void records.push(JSON.parse(s) as Record<string, unknown>) });
  const parse = (text: string): number => {
    if (!/^[0-9]+$/.test(text)) throw new Error('expected a number');
    return Number(text);
  };
  return { file, records, reloader: new FileReloader({ key: 'test.file', file, what: 'number file', parse, log, intervalMs: 60000 }) };
}

test('a deleted file keeps the last content, says so once, and is picked up again when it returns', async (t) => {
  const { file, records, reloader } = setup();
  t.after(() => reloader.stop());
  assert.equal(reloader.value, 1);
  unlinkSync(file);
  await reloader.poll();
  await reloader.poll();
  const errors = records.filter((r) => r['level'] === 50);
  assert.equal(errors.length, 1, 'one error per change, not one per poll');
  assert.equal(errors[0]?.['err'], 'ENOENT');
  assert.equal(reloader.value, 1);
  writeFileSync(file, '22');
  await reloader.poll();
  assert.equal(reloader.value, 22);
  assert.ok(records.some((r) => r['msg'] === 'number file reloaded'));
});

test('the poll timer itself finds a change', async (t) => {
  const file = join(mkdtempSync(join(tmpdir(), 'smq-reload-')), 'n.txt');
  writeFileSync(file, '1');
  let reloaded: () => void = () => undefined;
  const seen = new Promise<void>((resolve) => { reloaded = resolve; });
  const log = pino({ level: 'info' }, { write: (s: string) => { if (s.includes('"msg":"n reloaded"')) reloaded(); } });
  const r = new FileReloader({ key: 'k', file, what: 'n', parse: Number, log, intervalMs: 20 });
  t.after(() => r.stop());
  writeFileSync(file, '333');
  // The interval is unref'd, so a pending timer alone would let the test process end: hold it open until seen.
  const guard = setTimeout(() => undefined, 5000);
  await seen;
  clearTimeout(guard);
  assert.equal(r.value, 333);
});

test('start-up failures name the key and the file', () => {
  assert.throws(
    () => new FileReloader({ key: 'test.file', file: '/nonexistent/x', what: 'x', parse: Number, log: pino({ level: 'silent' }) }),
    (err: unknown) => err instanceof AuthFileError && err.key === 'test.file' && err.file === '/nonexistent/x' && err.code === 'ERR_AUTH_FILE',
  );
});
