/**
 * 70 http: the HTTP service on the built broker: probes, Prometheus metrics and the token-guarded API.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request as httpRequest } from 'node:http';
import { after, before, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { startBroker, type RunningBroker, httpBase } from './helpers/broker.js';
import { connectMqtt } from './helpers/mqtt.js';

let broker: RunningBroker;
let base: string;
const tokenFile = join(mkdtempSync(join(tmpdir(), 'smq-http-')), 'tokens');
const clients: MqttClient[] = [];

before(async () => {
  writeFileSync(tokenFile, 'from-file-1\n');
  broker = await startBroker({ config: { http: { enable: true, host: '127.0.0.1', port: 0, tokens: ['t0ken'], token_file: tokenFile } } });
  base = await httpBase(broker);
});

after(async () => {
  for (const c of clients) c.end(true);
  await broker.stop();
});

async function mqttClient(clientId: string): Promise<MqttClient> {
  return connectMqtt(broker.port, { protocolVersion: 5, clientId }, clients);
}

test('/healthz and /readyz answer for Kubernetes probes', async () => {
  assert.deepEqual(await (await fetch(`${base}/healthz`)).json(), { status: 'ok' });
  const ready = await fetch(`${base}/readyz`);
  assert.equal(ready.status, 200);
  assert.deepEqual(await ready.json(), { status: 'ready' });
});

test('/metrics is Prometheus text with smq_ counters that follow the traffic', async () => {
  const c = await mqttClient('metrics-1');
  await c.publishAsync('m/t', 'x', { qos: 1 });
  const res = await fetch(`${base}/metrics`);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
  const text = await res.text();
  assert.match(text, /^# TYPE smq_messages_received_total counter$/m);
  assert.match(text, /^# TYPE smq_connections gauge$/m);
  const received = Number(/^smq_messages_received_total\{qos="1"\} (\d+)$/m.exec(text)?.[1]);
  assert.ok(received >= 1, `smq_messages_received_total{qos="1"} is ${received}`);
  assert.match(text, /^smq_messages_sent_total\{qos="0"\} \d+$/m, 'messages out by QoS');
  for (const reason of ['queue_full', 'slow_consumer', 'expired', 'too_large']) {
    assert.match(text, new RegExp(`^smq_messages_dropped_total\\{reason="${reason}"\\} 0$`, 'm'), `drops by reason ${reason}`);
  }
  assert.match(text, /^smq_acl_denials_total\{action="subscribe"\} 0$/m);
  assert.match(text, /^smq_inflight_messages \d+$/m);
  assert.match(text, /^smq_queued_messages \d+$/m);
  assert.match(text, /^smq_auth_failures_total \d+$/m);
  assert.ok(Number(/^smq_connections (\d+)$/m.exec(text)?.[1]) >= 1);
  assert.match(text, /^smq_process_cpu_seconds_total /m, 'process metrics');
  assert.match(text, /^smq_nodejs_eventloop_lag_seconds /m, 'event-loop metrics');
});

test('the API refuses a missing or wrong x-token with 401 and a JSON error, and takes http.tokens and http.token_file', async () => {
  for (const headers of [{}, { 'x-token': 'wrong' }, { 'x-token': '' }] as Record<string, string>[]) {
    const res = await fetch(`${base}/api/v1/stats`, { headers });
    assert.equal(res.status, 401);
    assert.deepEqual(await res.json(), { code: 'UNAUTHORIZED', message: 'a valid x-token header is required' });
  }
  const ok = await fetch(`${base}/api/v1/stats`, { headers: { 'x-token': 't0ken' } });
  assert.equal(ok.status, 200);
  const stats = (await ok.json()) as Record<string, unknown>;
  assert.equal(typeof stats['connections'], 'number');
  assert.equal((await fetch(`${base}/api/v1/stats`, { headers: { 'x-token': 'from-file-1' } })).status, 200);
  // A rotated Secret applies at once: the old token goes, the new one works.
  writeFileSync(tokenFile, 'from-file-2\n');
  assert.equal((await fetch(`${base}/api/v1/stats`, { headers: { 'x-token': 'from-file-1' } })).status, 401);
  assert.equal((await fetch(`${base}/api/v1/stats`, { headers: { 'x-token': 'from-file-2' } })).status, 200);
});

/** GET /api/v1/stats from a chosen local address (127.0.0.x): the status, Retry-After and the error code. */
function statsFrom(localAddress: string, token: string): Promise<{ status: number; retryAfter: string | undefined; code: unknown }> {
  const url = new URL(`${base}/api/v1/stats`);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, path: url.pathname, localAddress, headers: { 'x-token': token } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], code: (JSON.parse(body) as { code?: unknown }).code }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('an address that keeps sending wrong tokens is told to wait (429, Retry-After); other addresses are not', async () => {
  const guesser = '127.0.0.7';
  // auth.max_failures (5) wrong tokens are refused with 401 ...
  for (let i = 0; i < 5; i++) assert.equal((await statsFrom(guesser, `guess-${i}`)).status, 401);
  // ... then every call from that address waits its delay, even with the right token: guessing gains nothing.
  const slowed = await statsFrom(guesser, 't0ken');
  assert.deepEqual([slowed.status, slowed.retryAfter, slowed.code], [429, '1', 'TOO_MANY_FAILURES']);
  assert.equal((await statsFrom('127.0.0.1', 't0ken')).status, 200, 'another address is not affected');
});

test('clients are listed, filtered and kicked (v5 DISCONNECT 0x98 administrative action)', async () => {
  const c = await mqttClient('api-kick-me');
  const list = (await (await fetch(`${base}/api/v1/clients?clientid=api-kick-me`, { headers: { 'x-token': 't0ken' } })).json()) as {
    total: number;
    clients: { clientid: string; proto_ver: number }[];
  };
  assert.equal(list.total, 1);
  assert.deepEqual([list.clients[0]?.clientid, list.clients[0]?.proto_ver], ['api-kick-me', 5]);
  const disconnected = new Promise<number | undefined>((resolve) => c.once('disconnect', (p) => resolve(p.reasonCode)));
  const res = await fetch(`${base}/api/v1/clients/api-kick-me`, { method: 'DELETE', headers: { 'x-token': 't0ken' } });
  assert.equal(res.status, 204);
  const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
  assert.equal(await disconnected, 0x98);
  await closed;
  // The broker lets go of the connection when its socket has closed: ask until it has.
  let gone = await fetch(`${base}/api/v1/clients/api-kick-me`, { headers: { 'x-token': 't0ken' } });
  for (const deadline = Date.now() + 5000; gone.status === 200 && Date.now() < deadline; ) {
    await new Promise((r) => setTimeout(r, 20));
    gone = await fetch(`${base}/api/v1/clients/api-kick-me`, { headers: { 'x-token': 't0ken' } });
  }
  assert.equal(gone.status, 404);
  assert.equal(((await gone.json()) as { code: string }).code, 'CLIENT_NOT_FOUND');
});

test('the OpenAPI document and Swagger UI at /api/v1/swagger/index.html are served without a token', async () => {
  const doc = (await (await fetch(`${base}/api/v1/openapi.json`)).json()) as { openapi: string; paths: Record<string, unknown> };
  assert.equal(doc.openapi, '3.0.3');
  assert.ok(['/stats', '/nodes', '/clients', '/clients/{id}'].every((p) => p in doc.paths));
  const ui = await fetch(`${base}/api/v1/swagger/index.html`);
  assert.equal(ui.status, 200);
  const html = await ui.text();
  assert.match(html, /swagger-ui/);
  const init = await fetch(`${base}/api/v1/swagger/swagger-ui-init.js`);
  assert.equal(init.status, 200);
  assert.match(await init.text(), /"\/clients\/\{id\}"/, 'the UI is set up with our document');
});

test('publish through the API reaches a subscriber; its subscriptions are listed; retained messages are listed, read and cleared', async () => {
  const h = { 'x-token': 't0ken', 'content-type': 'application/json' };
  const sub = await mqttClient('api-sub');
  const got = new Promise<string>((resolve) => sub.once('message', (_t, p) => resolve(p.toString())));
  await sub.subscribeAsync('api/+/in', { qos: 1 });
  const stats = (await (await fetch(`${base}/api/v1/stats`, { headers: h })).json()) as { node: string };
  const subs = (await (await fetch(`${base}/api/v1/clients/api-sub/subscriptions`, { headers: h })).json()) as { topic: string; qos: number }[];
  assert.deepEqual(subs, [{ clientid: 'api-sub', node: stats.node, topic: 'api/+/in', qos: 1 }]);
  const pub = await fetch(`${base}/api/v1/publish`, { method: 'POST', headers: h, body: JSON.stringify({ topic: 'api/x/in', payload: 'aGk=', encoding: 'base64', qos: 1, retain: true }) });
  assert.equal(pub.status, 204);
  assert.equal(await got, 'hi');
  const bad = await fetch(`${base}/api/v1/publish`, { method: 'POST', headers: h, body: JSON.stringify({ topic: 'api/#', payload: 'x' }) });
  assert.equal(bad.status, 400);
  assert.equal(((await bad.json()) as { code: string }).code, 'BAD_TOPIC');
  // The limits a client's PUBLISH meets (default limits.max_topic_levels 128) hold for the API too.
  const deep = await fetch(`${base}/api/v1/publish`, { method: 'POST', headers: h, body: JSON.stringify({ topic: 'api/x/in' + '/l'.repeat(126), payload: 'x' }) });
  assert.equal(deep.status, 400);
  assert.equal(((await deep.json()) as { code: string }).code, 'BAD_TOPIC');
  const list = (await (await fetch(`${base}/api/v1/retained?topic=api/%23`, { headers: h })).json()) as { total: number; messages: { topic: string; payload: string }[] };
  assert.equal(list.total, 1);
  assert.deepEqual([list.messages[0]?.topic, list.messages[0]?.payload], ['api/x/in', 'aGk=']);
  assert.equal((await fetch(`${base}/api/v1/retained/api/x/in`, { headers: h })).status, 200);
  assert.equal((await fetch(`${base}/api/v1/retained/api/x/in`, { method: 'DELETE', headers: h })).status, 204);
  assert.equal((await fetch(`${base}/api/v1/retained/api/x/in`, { headers: h })).status, 404);
});

test('bridge mappings: the seed\'s curl (no JSON content type) adds one; listed, read, idempotent, removed; bad ones get 400', async () => {
  const h = { 'x-token': 't0ken' };
  // curl -X POST .../api/v1/bridge/ -H 'accept: application/json' -H 'x-token: ...' -d '{"topic": "event", "queue": "event"}'
  const added = await fetch(`${base}/api/v1/bridge/`, {
    method: 'POST',
    headers: { ...h, accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded' },
    body: '{"topic": "event", "queue": "event"}',
  });
  assert.equal(added.status, 201);
  const mapping = (await added.json()) as { id: string; topic: string; queue: string };
  assert.deepEqual([mapping.topic, mapping.queue], ['event', 'event']);
  const again = await fetch(`${base}/api/v1/bridge`, { method: 'POST', headers: { ...h, 'content-type': 'application/json' }, body: '{"topic": "event", "queue": "event"}' });
  assert.equal(again.status, 200, 'adding the same mapping again changes nothing');
  assert.equal(((await again.json()) as { id: string }).id, mapping.id);
  const list = (await (await fetch(`${base}/api/v1/bridge/`, { headers: h })).json()) as { total: number; mappings: { id: string }[] };
  assert.deepEqual(list.mappings.map((m) => m.id), [mapping.id]);
  assert.equal((await fetch(`${base}/api/v1/bridge/${mapping.id}`, { headers: h })).status, 200);
  for (const body of ['{"topic": "a/#/b", "queue": "q"}', '{"topic": "a", "queue": "no spaces"}', '{"topic": "a"}']) {
    const bad = await fetch(`${base}/api/v1/bridge/`, { method: 'POST', headers: { ...h, 'content-type': 'application/json' }, body });
    assert.equal(bad.status, 400, body);
    assert.match(((await bad.json()) as { code: string }).code, /^BAD_(TOPIC|QUEUE)$/);
  }
  assert.equal((await fetch(`${base}/api/v1/bridge/${mapping.id}`, { method: 'DELETE', headers: h })).status, 204);
  const gone = await fetch(`${base}/api/v1/bridge/${mapping.id}`, { method: 'DELETE', headers: h });
  assert.equal(gone.status, 404);
  assert.equal(((await gone.json()) as { code: string }).code, 'MAPPING_NOT_FOUND');
});

test('bridge mappings survive a restart (kept in store.dir)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'smq-http-store-'));
  const config = { store: { dir }, http: { enable: true, host: '127.0.0.1', port: 0, tokens: ['k'] } };
  const apiOf = async (b: RunningBroker): Promise<string> => `${await httpBase(b)}/api/v1/bridge/`;
  const first = await startBroker({ config });
  const url = await apiOf(first);
  assert.equal((await fetch(url, { method: 'POST', headers: { 'x-token': 'k' }, body: '{"topic": "sensors/#", "queue": "sensors"}' })).status, 201);
  await first.stop('SIGKILL');
  const second = await startBroker({ config });
  try {
    const list = (await (await fetch(await apiOf(second), { headers: { 'x-token': 'k' } })).json()) as { mappings: { topic: string; queue: string }[] };
    assert.deepEqual(list.mappings.map((m) => [m.topic, m.queue]), [['sensors/#', 'sensors']]);
  } finally {
    await second.stop();
  }
});
