import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Message } from '../message/message.js';
import { CLIENT_CACHE_LIMIT, FileAcl, type FileAclOptions } from './file-hook.js';
import { captureLog, clientInfo } from './testing.js';

function rulesFile(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'smq-acl-')), 'acl.yaml');
  writeFileSync(file, text);
  return file;
}

function msg(topic: string): Message {
  return new Message(topic, Buffer.from('x'), 0, false, undefined, 'p', Date.now());
}

/** A hook on a fresh file; stopped when the test ends. */
function hook(t: { after(fn: () => void): void }, text: string, over: Partial<FileAclOptions> = {}) {
  const file = rulesFile(text);
  const cap = captureLog();
  const acl = new FileAcl({ file, defaultAllow: false, fallthrough: false, log: cap.log, pollMs: 20, ...over });
  t.after(() => acl.onStop());
  return { acl, file, cap };
}

const BASE = `
rules:
  - {permission: deny, action: subscribe, topics: ["secret/#"]}
  - {permission: allow, action: subscribe, topics: ["#"]}
  - {permission: allow, action: publish, topics: ["sensors/%u/#"]}
`;

describe('FileAcl answers', () => {
  it('publish, subscribe and read by the first matching rule; the default for the rest', (t) => {
    const { acl } = hook(t, BASE);
    const alice = clientInfo();
    assert.equal(acl.authorizePublish(alice, msg('sensors/alice/t')), true);
    assert.equal(acl.authorizePublish(alice, msg('sensors/bob/t')), false); // no rule: acl.default deny
    assert.equal(acl.authorizeSubscribe(alice, { filter: 'secret/a', qos: 0 }), false);
    assert.equal(acl.authorizeSubscribe(alice, { filter: '$share/g/secret/a', qos: 0 }), false);
    assert.equal(acl.authorizeSubscribe(alice, { filter: '#', qos: 0 }), true);
    assert.equal(acl.authorizeRead(alice, msg('secret/a')), false);
    assert.equal(acl.authorizeRead(alice, msg('public/a')), true);
    assert.equal(acl.authorizeRead(alice, msg('$SYS/broker/uptime')), false); // '#' does not reach $ topics
  });

  it('acl.default allow applies where no rule matches, but never over a matching deny', (t) => {
    const { acl } = hook(t, BASE, { defaultAllow: true });
    assert.equal(acl.authorizePublish(clientInfo(), msg('elsewhere')), true);
    assert.equal(acl.authorizeRead(clientInfo(), msg('$SYS/x')), true);
    assert.equal(acl.authorizeSubscribe(clientInfo(), { filter: 'secret/#', qos: 0 }), false);
  });

  it('with a later backend, an unmatched question is left to it (and reads are allowed)', (t) => {
    const { acl } = hook(t, BASE, { fallthrough: true });
    const alice = clientInfo();
    assert.equal(acl.authorizePublish(alice, msg('elsewhere')), undefined);
    assert.equal(acl.decides(alice, 'publish', 'elsewhere'), false);
    assert.equal(acl.decides(alice, 'publish', 'sensors/alice/x'), true);
    assert.equal(acl.decides(alice, 'subscribe', 'secret/x'), true);
    assert.equal(acl.decides(alice, 'subscribe', '$SYS/#'), false);
    assert.equal(acl.authorizeRead(alice, msg('$SYS/x')), true);
    assert.equal(acl.authorizeRead(alice, msg('secret/x')), false);
  });

  it('with no file, acl.default answers everything', (t) => {
    const cap = captureLog();
    const deny = new FileAcl({ file: '', defaultAllow: false, fallthrough: false, log: cap.log });
    const allow = new FileAcl({ file: '', defaultAllow: true, fallthrough: false, log: cap.log });
    t.after(() => { deny.onStop(); allow.onStop(); });
    assert.equal(deny.authorizePublish(clientInfo(), msg('a')), false);
    assert.equal(deny.authorizeSubscribe(clientInfo(), { filter: '#', qos: 0 }), false);
    assert.equal(allow.authorizePublish(clientInfo(), msg('a')), true);
    assert.equal(allow.authorizeRead(clientInfo(), msg('a')), true);
  });

  it('logs publish and subscribe denials at info without payloads, read denials at debug, each once per cached topic', (t) => {
    const { acl, cap } = hook(t, BASE);
    const alice = clientInfo();
    acl.authorizePublish(alice, msg('sensors/bob/t'));
    acl.authorizePublish(alice, msg('sensors/bob/t')); // cached: not logged again
    acl.authorizeSubscribe(alice, { filter: 'secret/#', qos: 1 });
    acl.authorizeRead(alice, msg('secret/x'));
    const denied = cap.having('acl denied');
    assert.deepEqual(denied.map((r) => [r['level'], r['clientId'], r['action'], r['topic'], r['rule']]), [
      [30, 'c1', 'publish', 'sensors/bob/t', 'default'],
      [30, 'c1', 'subscribe', 'secret/#', 0],
      [20, 'c1', 'read', 'secret/x', 0],
    ]);
    for (const r of denied) assert.equal(r['payload'], undefined);
  });

  it('keeps each client\'s rules apart: placeholders use that client\'s own identity', (t) => {
    const { acl } = hook(t, BASE);
    const bob = clientInfo({ clientId: 'c2', username: 'bob' });
    assert.equal(acl.authorizePublish(clientInfo(), msg('sensors/alice/t')), true);
    assert.equal(acl.authorizePublish(bob, msg('sensors/alice/t')), false);
    assert.equal(acl.authorizePublish(bob, msg('sensors/bob/t')), true);
  });

  it('stays correct past the per-client cache bound', (t) => {
    const { acl } = hook(t, BASE);
    const alice = clientInfo();
    for (let i = 0; i < CLIENT_CACHE_LIMIT * 2 + 5; i++) {
      assert.equal(acl.authorizeRead(alice, msg(i % 2 ? `secret/${i}` : `public/${i}`)), i % 2 === 0);
    }
  });
});

describe('FileAcl reload', () => {
  it('picks up a changed file, logs "acl reloaded" and forgets cached decisions', async (t) => {
    const { acl, file, cap } = hook(t, BASE);
    const alice = clientInfo();
    assert.equal(acl.authorizeRead(alice, msg('public/x')), true); // now cached
    assert.equal(acl.authorizePublish(alice, msg('sensors/alice/x')), true);
    writeFileSync(file, 'rules:\n  - {permission: deny, action: all, topics: ["#"]}\n');
    const rec = await cap.waitFor('acl reloaded');
    assert.equal(rec['rules'], 1);
    assert.equal(acl.authorizeRead(alice, msg('public/x')), false);
    assert.equal(acl.authorizePublish(alice, msg('sensors/alice/x')), false);
  });

  it('a broken new file keeps the old rules and logs an error naming the rule; fixing it reloads', async (t) => {
    const { acl, file, cap } = hook(t, BASE);
    const alice = clientInfo();
    writeFileSync(file, 'rules:\n  - {permission: maybe, action: all, topics: ["#"]}\n');
    const err = await cap.waitFor('acl file not reloaded: it does not validate; the previous rules stay in force');
    assert.equal(err['level'], 50);
    assert.match(String((err['err'] as Record<string, unknown>)['message']), /rules\[0\], field "permission"/);
    assert.equal(acl.authorizeRead(alice, msg('public/x')), true);
    assert.equal(acl.size, 3);
    writeFileSync(file, 'rules: []\n');
    await cap.waitFor('acl reloaded');
    assert.equal(acl.size, 0);
    assert.equal(acl.authorizeRead(alice, msg('public/x')), false);
  });

  it('a deleted file keeps the old rules; a file renamed over it is read', async (t) => {
    const { acl, file, cap } = hook(t, BASE);
    rmSync(file);
    await cap.waitFor('acl file not reloaded: cannot read it; the previous rules stay in force');
    assert.equal(acl.size, 3);
    const next = `${file}.new`;
    writeFileSync(next, 'rules:\n  - {permission: allow, action: all, topics: ["only/this"]}\n');
    renameSync(next, file);
    await cap.waitFor('acl reloaded');
    assert.equal(acl.size, 1);
  });

  it('reload() itself: the same text is no change', (t) => {
    const { acl, file, cap } = hook(t, BASE);
    writeFileSync(file, BASE);
    assert.equal(acl.reload(), false);
    assert.equal(cap.having('acl reloaded').length, 0);
    writeFileSync(file, 'rules: []\n');
    assert.equal(acl.reload(), true);
  });

  it('a bad file at start-up throws AclFileError naming the file', () => {
    const file = rulesFile('rules:\n  - {permission: allow, action: all, topics: ["a/#/b"]}\n');
    assert.throws(
      () => new FileAcl({ file, defaultAllow: false, fallthrough: false, log: captureLog().log }),
      (err: unknown) => err instanceof Error && 'code' in err && err.code === 'ERR_ACL_FILE' && err.message.includes(file) && err.message.includes('topics[0]'),
    );
  });
});
