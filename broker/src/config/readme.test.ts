import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { SCHEMA } from './schema.js';

test('README configuration reference lists every configuration key', () => {
  const readme = readFileSync(new URL('../../../../README.md', import.meta.url), 'utf8');
  const missing = SCHEMA.filter((k) => !readme.includes(`| \`${k.path}\` |`)).map((k) => k.path);
  assert.deepEqual(missing, [], 'run `node scripts/config-table.mjs` and update README.md');
});
