import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HttpBackendConfig } from '../config/types.js';
import { Message } from '../message/message.js';
import { FileAcl } from './file-hook.js';
import { AclConfigError, HttpAcl } from './http-hook.js';
import { captureLog, clientInfo } from './testing.js';

/** What the test service was asked. */
interface Question {
  action: string;
  clientid: string;
  username: string | null;
  peerhost: string;
  topic: string;
  cn: string | null;
}

/** A local ACL service: `answer` decides each reply from the question. */
async function service(
  t: { after(fn: () => Promise<void>): void },
  answer: (q: Question, res: ServerResponse) => void,
): Promise<{ url: string; asked: Question[] }> {
  const asked: Question[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => { body += c; });
    req.on('end', () => {
      const q = JSON.parse(body) as Question;
      asked.push(q);
      answer(q, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/acl`, asked };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/** Answers by topic: `allow/...`, `deny/...`, `ignore/...`, `204/...`, `500/...`, `slow/...`, `junk/...`. */
function byTopic(q: Question, res: ServerResponse): void {
  const kind = q.topic.split('/')[0] ?? '';
  if (kind === 'slow') return; // never answers: the request times out
  if (kind === '204') { res.writeHead(204); res.end(); return; }
  if (kind === '500') { json(res, 500, { result: 'allow' }); return; }
  if (kind === 'junk') { res.writeHead(200); res.end('not json'); return; }
  if (kind === 'none') { json(res, 200, { ok: true }); return; }
  json(res, 200, { result: kind });
}

function config(url: string, over: Partial<HttpBackendConfig> = {}): HttpBackendConfig {
  return { url, timeout: 300, cache_ttl: 60, on_error: 'deny', ...over };
}

function msg(topic: string): Message {
  return new Message(topic, Buffer.from('x'), 1, false, undefined, 'p', Date.now());
}

describe('HttpAcl', () => {
  it('asks with the documented body and maps each answer', async (t) => {
    const svc = await service(t, byTopic);
    const cap = captureLog();
    const acl = new HttpAcl(config(svc.url), false, null, cap.log);
    const who = clientInfo({ remoteAddress: '::ffff:10.1.2.3', certificate: { cn: 'dev-1', san: [] } });
    const cases: [topic: string, expected: boolean][] = [
      ['allow/x', true],
      ['deny/x', false],
      ['ignore/x', false], // "ignore" falls to acl.default (deny)
      ['204/x', true],
      ['500/x', false], // on_error deny
      ['slow/x', false], // timeout: on_error deny
      ['junk/x', false],
      ['none/x', false],
    ];
    for (const [topic, expected] of cases) {
      const answer = acl.authorizePublish(who, msg(topic));
      assert.ok(answer instanceof Promise, `${topic}: a cache miss asks the service`);
      assert.equal(await answer, expected, topic);
    }
    assert.deepEqual(svc.asked[0], { action: 'publish', clientid: 'c1', username: 'alice', peerhost: '10.1.2.3', topic: 'allow/x', cn: 'dev-1' });
    const denied = cap.having('acl denied').map((r) => [r['topic'], r['answer']]);
    assert.deepEqual(denied, [['deny/x', 'deny'], ['ignore/x', 'ignore'], ['500/x', 'error'], ['slow/x', 'error'], ['junk/x', 'error'], ['none/x', 'error']]);
    assert.equal(cap.having('acl backend failed').length, 4);
  });

  it('subscribe asks about the filter inside $share, with username null for anonymous clients', async (t) => {
    const svc = await service(t, byTopic);
    const acl = new HttpAcl(config(svc.url), false, null, captureLog().log);
    const anon = clientInfo({ username: undefined });
    assert.equal(await acl.authorizeSubscribe(anon, { filter: '$share/g/allow/#', qos: 1 }), true);
    assert.equal(await acl.authorizeSubscribe(anon, { filter: 'deny/+', qos: 1 }), false);
    assert.deepEqual(svc.asked.map((q) => [q.action, q.topic, q.username, q.cn]), [['subscribe', 'allow/#', null, null], ['subscribe', 'deny/+', null, null]]);
  });

  it('caches answers (not errors) by client and topic: a hit is synchronous and asks nothing', async (t) => {
    const svc = await service(t, byTopic);
    const acl = new HttpAcl(config(svc.url), false, null, captureLog().log);
    const alice = clientInfo();
    assert.equal(await acl.authorizePublish(alice, msg('deny/x')), false);
    assert.equal(acl.authorizePublish(alice, msg('deny/x')), false, 'answered from the cache, synchronously');
    assert.equal(await acl.authorizePublish(alice, msg('allow/x')), true);
    assert.equal(acl.authorizePublish(alice, msg('allow/x')), true);
    assert.equal(svc.asked.length, 2);
    // Another client, and another action, are other questions.
    assert.equal(await acl.authorizePublish(clientInfo({ clientId: 'c2' }), msg('allow/x')), true);
    assert.equal(await acl.authorizeSubscribe(alice, { filter: 'allow/x', qos: 0 }), true);
    assert.equal(svc.asked.length, 4);
    // Errors are asked again.
    assert.equal(await acl.authorizePublish(alice, msg('500/x')), false);
    assert.equal(await acl.authorizePublish(alice, msg('500/x')), false);
    assert.equal(svc.asked.length, 6);
    assert.equal(acl.requests, 6);
  });

  it('a burst of the same question makes one request', async (t) => {
    const svc = await service(t, byTopic);
    const acl = new HttpAcl(config(svc.url), false, null, captureLog().log);
    const answers = await Promise.all([1, 2, 3].map(() => acl.authorizePublish(clientInfo(), msg('allow/x'))));
    assert.deepEqual(answers, [true, true, true]);
    assert.equal(svc.asked.length, 1);
  });

  it('cache_ttl 0 asks every time', async (t) => {
    const svc = await service(t, byTopic);
    const acl = new HttpAcl(config(svc.url, { cache_ttl: 0 }), false, null, captureLog().log);
    await acl.authorizePublish(clientInfo(), msg('allow/x'));
    await acl.authorizePublish(clientInfo(), msg('allow/x'));
    assert.equal(svc.asked.length, 2);
  });

  it('on_error allow, and acl.default allow for "ignore"', async (t) => {
    const svc = await service(t, byTopic);
    const acl = new HttpAcl(config(svc.url, { on_error: 'allow' }), true, null, captureLog().log);
    assert.equal(await acl.authorizePublish(clientInfo(), msg('500/x')), true);
    assert.equal(await acl.authorizePublish(clientInfo(), msg('slow/x')), true);
    assert.equal(await acl.authorizePublish(clientInfo(), msg('ignore/x')), true);
    assert.equal(await acl.authorizePublish(clientInfo(), msg('deny/x')), false);
  });

  it('an unreachable service means on_error', async () => {
    const acl = new HttpAcl(config('http://127.0.0.1:1/acl'), false, null, captureLog().log);
    assert.equal(await acl.authorizePublish(clientInfo(), msg('allow/x')), false);
  });

  it('reads come from the cache only: a cached subscribe denial of that exact topic keeps it away', async (t) => {
    const svc = await service(t, byTopic);
    const acl = new HttpAcl(config(svc.url), false, null, captureLog().log);
    const alice = clientInfo();
    assert.equal(acl.authorizeRead(alice, msg('deny/x')), true, 'nothing cached: allowed, and nothing asked');
    assert.equal(svc.asked.length, 0);
    assert.equal(await acl.authorizeSubscribe(alice, { filter: 'deny/x', qos: 0 }), false);
    assert.equal(acl.authorizeRead(alice, msg('deny/x')), false);
    assert.equal(svc.asked.length, 1);
  });

  it('after a rules file: a matching rule decides and the service is not asked', async (t) => {
    const svc = await service(t, byTopic);
    const file = join(mkdtempSync(join(tmpdir(), 'smq-acl-')), 'acl.yaml');
    writeFileSync(file, 'rules:\n  - {permission: deny, action: all, topics: ["allow/secret"]}\n  - {permission: allow, action: all, topics: ["deny/open"]}\n');
    const log = captureLog().log;
    const first = new FileAcl({ file, defaultAllow: false, fallthrough: true, log });
    t.after(() => first.onStop());
    const acl = new HttpAcl(config(svc.url), false, first, log);
    const alice = clientInfo();
    assert.equal(acl.authorizePublish(alice, msg('allow/secret')), undefined);
    assert.equal(first.authorizePublish(alice, msg('allow/secret')), false);
    assert.equal(acl.authorizeSubscribe(alice, { filter: 'deny/open', qos: 0 }), undefined);
    assert.equal(first.authorizeSubscribe(alice, { filter: 'deny/open', qos: 0 }), true);
    assert.equal(acl.authorizeRead(alice, msg('allow/secret')), undefined);
    assert.equal(svc.asked.length, 0);
    assert.equal(first.authorizePublish(alice, msg('allow/other')), undefined, 'no rule: the file abstains');
    assert.equal(await acl.authorizePublish(alice, msg('allow/other')), true);
    assert.equal(svc.asked.length, 1);
  });

  it('refuses a URL that is not http(s)', () => {
    for (const url of ['ftp://x/acl', 'not a url']) {
      assert.throws(() => new HttpAcl(config(url), false, null, captureLog().log), (err: unknown) => err instanceof AclConfigError && err.code === 'ERR_ACL_CONFIG');
    }
  });
});
