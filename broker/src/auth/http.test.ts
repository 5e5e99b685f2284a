import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { IConnectPacket } from 'mqtt-packet';
import { pino } from 'pino';
import type { ClientInfo } from '../hooks/types.js';
import { RC } from '../protocol/reason-codes.js';
import { AuthBackendError, HttpAuth, type HttpAuthOptions, type HttpAuthRequest } from './http.js';

/** Requests the test service received, by username. */
const received: HttpAuthRequest[] = [];
const hanging: ServerResponse[] = [];
let server: Server;
let url = '';

/** The service's behaviour is chosen by the username, so every case can share one server. */
function handle(req: IncomingMessage, res: ServerResponse): void {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (d: string) => { body += d; });
  req.on('end', () => {
    const r = JSON.parse(body) as HttpAuthRequest;
    received.push(r);
    const json = (status: number, v: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(v));
    };
    switch (r.username) {
      case 'allow': return json(200, { result: 'allow' });
      case 'deny': return json(200, { result: 'deny' });
      case 'ignore': return json(200, { result: 'ignore' });
      case 'nocontent': res.writeHead(204); return void res.end();
      case 'error': return json(500, { result: 'allow' });
      case 'garbage': res.writeHead(200); return void res.end('<html>');
      case 'noresult': return json(200, { ok: true });
      case 'hang': return void hanging.push(res);
      default: return json(200, { result: r.password === 'right' ? 'allow' : 'deny' });
    }
  });
}

before(async () => {
  server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/auth`;
});

after(async () => {
  for (const res of hanging) res.destroy();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

function client(username: string | undefined, clientId = 'c1'): ClientInfo {
  return { clientId, username, remoteAddress: '203.0.113.9', transport: 'ws', protocolVersion: 5, certificate: undefined };
}

function connect(username: string | undefined, password: string | undefined): IConnectPacket {
  const p: IConnectPacket = { cmd: 'connect', clientId: 'c1' };
  if (username !== undefined) p.username = username;
  if (password !== undefined) p.password = Buffer.from(password);
  return p;
}

function hook(over: Partial<HttpAuthOptions> = {}): { hook: HttpAuth; logs: string[] } {
  const logs: string[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void logs.push(s) });
  return { hook: new HttpAuth({ url, timeoutMs: 2000, cacheTtlMs: 0, onError: 'deny', log, ...over }), logs };
}

const count = (username: string): number => received.filter((r) => r.username === username).length;

test('the request carries the contract fields, the password as sent in UTF-8', async () => {
  const { hook: h } = hook();
  await h.authenticate(client('someone'), connect('someone', 'pässword'));
  assert.deepEqual(received.at(-1), { clientid: 'c1', username: 'someone', password: 'pässword', peerhost: '203.0.113.9', protocol: 5, transport: 'ws' });
  await h.authenticate(client(undefined), connect(undefined, undefined));
  assert.deepEqual(received.at(-1), { clientid: 'c1', username: null, password: null, peerhost: '203.0.113.9', protocol: 5, transport: 'ws' });
});

test('answers: allow, 204, deny (bad username or password), ignore (abstain)', async () => {
  const { hook: h } = hook();
  assert.deepEqual(await h.authenticate(client('allow'), connect('allow', 'x')), { ok: true });
  assert.deepEqual(await h.authenticate(client('nocontent'), connect('nocontent', 'x')), { ok: true });
  assert.deepEqual(await h.authenticate(client('deny'), connect('deny', 'x')), { ok: false, reasonCode: RC.BAD_USERNAME_OR_PASSWORD });
  assert.equal(await h.authenticate(client('ignore'), connect('ignore', 'x')), undefined);
});

test('errors apply on_error: deny answers Not authorized, allow lets the client in; the password is never logged', async () => {
  const { hook: deny, logs } = hook();
  for (const u of ['error', 'garbage', 'noresult']) {
    assert.deepEqual(await deny.authenticate(client(u), connect(u, 'top-secret')), { ok: false, reasonCode: RC.NOT_AUTHORIZED }, u);
  }
  assert.ok(logs.some((l) => l.includes('"err":"HTTP 500"')));
  assert.ok(logs.some((l) => l.includes('"err":"answer is not JSON"')));
  const { hook: allow } = hook({ onError: 'allow' });
  assert.deepEqual(await allow.authenticate(client('error'), connect('error', 'x')), { ok: true });
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as AddressInfo).port;
  await new Promise((resolve) => closed.close(resolve));
  const down = hook({ url: `http://127.0.0.1:${port}/auth` });
  assert.deepEqual(await down.hook.authenticate(client('a'), connect('a', 'top-secret')), { ok: false, reasonCode: RC.NOT_AUTHORIZED });
  assert.ok(down.logs.some((l) => l.includes('ECONNREFUSED')), down.logs.join());
  assert.ok(![...logs, ...down.logs].some((l) => l.includes('top-secret')));
});

test('a service that never answers is given up after the timeout; others are answered meanwhile', async () => {
  const { hook: h, logs } = hook({ timeoutMs: 300 });
  const start = performance.now();
  const slow = h.authenticate(client('hang'), connect('hang', 'x')).then((r) => ({ r, ms: performance.now() - start }));
  const fast = await h.authenticate(client('allow', 'c2'), connect('allow', 'x'));
  const fastMs = performance.now() - start;
  assert.deepEqual(fast, { ok: true });
  const { r, ms } = await slow;
  assert.deepEqual(r, { ok: false, reasonCode: RC.NOT_AUTHORIZED });
  assert.ok(ms >= 290 && ms < 5000, `gave up after ${ms} ms`);
  assert.ok(fastMs < ms, 'the second client did not wait for the first');
  assert.ok(logs.some((l) => l.includes('"err":"timed out"')));
});

test('answers are cached per (client id, username, password digest, address) until the TTL; errors are not', async () => {
  let now = 1_000_000;
  const { hook: h } = hook({ cacheTtlMs: 60000, now: () => now });
  const before = count('allow');
  await h.authenticate(client('allow'), connect('allow', 'p'));
  await h.authenticate(client('allow'), connect('allow', 'p'));
  assert.equal(count('allow') - before, 1, 'second answer from the cache');
  await h.authenticate(client('allow'), connect('allow', 'other'));
  await h.authenticate(client('allow', 'c2'), connect('allow', 'p'));
  assert.equal(count('allow') - before, 3, 'another password or client id is asked again');
  now += 60001;
  await h.authenticate(client('allow'), connect('allow', 'p'));
  assert.equal(count('allow') - before, 4, 'expired');

  const denied = count('deny');
  await h.authenticate(client('deny'), connect('deny', 'p'));
  assert.deepEqual(await h.authenticate(client('deny'), connect('deny', 'p')), { ok: false, reasonCode: RC.BAD_USERNAME_OR_PASSWORD });
  assert.equal(count('deny') - denied, 1, 'deny answers are cached too');

  const errors = count('error');
  await h.authenticate(client('error'), connect('error', 'p'));
  await h.authenticate(client('error'), connect('error', 'p'));
  assert.equal(count('error') - errors, 2, 'errors are never cached');
});

test('the cache is bounded, oldest answers first out', async () => {
  const { hook: h } = hook({ cacheTtlMs: 60000, maxCacheEntries: 3 });
  for (let i = 0; i < 5; i++) await h.authenticate(client('allow', `k${i}`), connect('allow', 'p'));
  assert.equal(h.cached, 3);
  const before = count('allow');
  await h.authenticate(client('allow', 'k4'), connect('allow', 'p'));
  assert.equal(count('allow'), before, 'newest still cached');
  await h.authenticate(client('allow', 'k0'), connect('allow', 'p'));
  assert.equal(count('allow'), before + 1, 'oldest was evicted');
});

test('a URL that is not http(s) stops the start', () => {
  for (const bad of ['', 'localhost:8080/auth', 'ftp://x/auth']) {
    assert.throws(() => hook({ url: bad }), (err: unknown) => err instanceof AuthBackendError && /auth\.http\.url/.test(err.message));
  }
});
