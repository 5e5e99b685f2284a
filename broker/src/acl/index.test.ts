import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULTS } from '../config/defaults.js';
import type { AclConfig, Config } from '../config/types.js';
import type { Hook } from '../hooks/types.js';
import { HookRegistry } from '../hooks/registry.js';
import { Message } from '../message/message.js';
import { RC } from '../protocol/reason-codes.js';
import { AclConfigError, createAclHooks } from './index.js';
import { captureLog, clientInfo } from './testing.js';

function config(acl: Partial<Omit<AclConfig, 'http'>> & { url?: string }): Config {
  const { url, ...rest } = acl;
  return { ...DEFAULTS, acl: { ...DEFAULTS.acl, ...rest, http: { ...DEFAULTS.acl.http, url: url ?? '' } } };
}

function names(hooks: readonly Hook[]): string[] {
  return hooks.map((h) => h.name);
}

function stopAll(hooks: readonly Hook[]): void {
  for (const h of hooks) void h.onStop?.();
}

const file = join(mkdtempSync(join(tmpdir(), 'smq-acl-')), 'acl.yaml');
writeFileSync(file, 'rules:\n  - {permission: allow, action: all, topics: ["open/#"]}\n');

test('createAclHooks: nothing unless acl.enable; the file hook, then the HTTP hook', (t) => {
  const cap = captureLog();
  const cases: [what: string, cfg: Config, expected: string[]][] = [
    ['acl off', config({ enable: false, file }), []],
    ['a file', config({ enable: true, file }), ['acl-file']],
    ['an HTTP backend', config({ enable: true, url: 'http://127.0.0.1:1/acl' }), ['acl-http']],
    ['both', config({ enable: true, file, url: 'http://127.0.0.1:1/acl' }), ['acl-file', 'acl-http']],
    ['neither', config({ enable: true }), ['acl-file']],
  ];
  for (const [what, cfg, expected] of cases) {
    const hooks = createAclHooks(cfg, cap.log);
    t.after(() => stopAll(hooks));
    assert.deepEqual(names(hooks), expected, what);
  }
  const warnings = cap.records.filter((r) => r['level'] === 40).map((r) => String(r['msg']));
  assert.equal(warnings.length, 2);
  assert.match(warnings[0] ?? '', /acl\.enable is false: no access control/);
  assert.match(warnings[1] ?? '', /neither acl\.file nor acl\.http\.url is set: acl\.default \(deny\) applies/);
});

test('createAclHooks: with no backend, acl.default answers through the registry', (t) => {
  for (const def of ['deny', 'allow'] as const) {
    const hooks = createAclHooks(config({ enable: true, default: def }), captureLog().log);
    t.after(() => stopAll(hooks));
    const registry = new HookRegistry(captureLog().log, { authRequired: false, aclRequired: true });
    for (const h of hooks) registry.add(h);
    const m = new Message('a/b', Buffer.from('x'), 1, false, undefined, 'c1', Date.now());
    assert.equal(registry.authorizePublish(clientInfo(), m), def === 'allow' ? RC.SUCCESS : RC.NOT_AUTHORIZED);
  }
});

test('createAclHooks: a rules file decides subscribe and read through the registry', async (t) => {
  const hooks = createAclHooks(config({ enable: true, file }), captureLog().log);
  t.after(() => stopAll(hooks));
  const registry = new HookRegistry(captureLog().log, { authRequired: false, aclRequired: true });
  for (const h of hooks) registry.add(h);
  const who = clientInfo();
  assert.equal(await registry.authorizeSubscribe(who, { filter: 'open/#', qos: 1 }), RC.SUCCESS);
  assert.equal(await registry.authorizeSubscribe(who, { filter: '#', qos: 1 }), RC.NOT_AUTHORIZED);
  assert.equal(registry.authorizeRead(who, new Message('open/x', Buffer.from('x'), 0, false, undefined, 'p', Date.now())), true);
  assert.equal(registry.authorizeRead(who, new Message('closed/x', Buffer.from('x'), 0, false, undefined, 'p', Date.now())), false);
});

test('createAclHooks: an unusable acl.http.url stops the start', () => {
  assert.throws(() => createAclHooks(config({ enable: true, file, url: 'mqtt://x' }), captureLog().log), AclConfigError);
});
