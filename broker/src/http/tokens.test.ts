import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { DEFAULTS } from '../config/defaults.js';
import { ApiTokens } from './tokens.js';

test('API tokens: configured and file tokens pass, others fail; failures from one address slow it down', () => {
  const file = join(mkdtempSync(join(tmpdir(), 'smq-tokens-')), 'tokens');
  writeFileSync(file, 'from-file\n\n');
  let now = 1_000;
  const tokens = new ApiTokens({
    ...DEFAULTS,
    http: { ...DEFAULTS.http, tokens: ['a-token'], token_file: file },
    auth: { ...DEFAULTS.auth, max_failures: 2, failure_window: 60, failure_delay: 500 },
  }, () => now);
  assert.deepEqual(tokens.check('10.0.0.1', 'a-token'), { ok: true });
  assert.deepEqual(tokens.check('10.0.0.1', 'from-file'), { ok: true });
  assert.deepEqual(tokens.check('10.0.0.1', 'a-toke'), { ok: false, retryAfterMs: 0 }, 'a prefix is not the token');
  assert.deepEqual(tokens.check('10.0.0.1', ''), { ok: false, retryAfterMs: 0 });
  assert.deepEqual(tokens.check('10.0.0.1', 'a-token'), { ok: false, retryAfterMs: 500 }, 'two failures: even the right token waits');
  assert.deepEqual(tokens.check('10.0.0.2', 'a-token'), { ok: true }, 'another address is not affected');
  now += 200;
  assert.deepEqual(tokens.check('10.0.0.1', 'a-token'), { ok: false, retryAfterMs: 300 }, 'the wait counts from the last failure');
  now += 300;
  assert.deepEqual(tokens.check('10.0.0.1', 'wrong'), { ok: false, retryAfterMs: 0 }, 'once waited, a try is checked');
  assert.deepEqual(tokens.check('10.0.0.1', 'a-token'), { ok: false, retryAfterMs: 1000 }, 'and a third failure doubles the wait');
  now += 1000;
  assert.deepEqual(tokens.check('10.0.0.1', 'a-token'), { ok: true }, 'the right token after the wait gets in and clears the address');
  assert.deepEqual(tokens.check('10.0.0.1', undefined), { ok: false, retryAfterMs: 0 });
});
