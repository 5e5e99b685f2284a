/**
 * Black-box tests, feature 32: access control (`acl.*`) on the built broker, for MQTT 3.1.1 (v4) and 5.0 (v5).
 * A refused subscription fails its own SUBACK entry (3.1.1 0x80, 5.0 0x87 Not authorized); a refused publish
 * gets PUBACK/PUBREC 0x87 in v5 and, since 3.1.1 has no refusal code, a normal acknowledgement in v4
 * [MQTT-3.3.5-2] — either way nobody receives it. Reads are filtered too: retained messages on subscribe and
 * live deliveries. Absence is always proven after a positive control message that was sent later, with only a
 * short bounded silence check after it.
 */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as mqttPacket from 'mqtt-packet';
import { startBroker, type RunningBroker } from './helpers/broker.js';
import {
  VERSIONS, brokerFor, clientsFor, delay, rawPublish, rawSubscribe, stopBroker, text, uniq,
  type Clients, type Inbox, type Version,
} from './helpers/c2.js';
import type { RawClient } from './helpers/raw.js';

const T = { timeout: 30000 };
const NOT_AUTHORIZED = 0x87;
const V4_FAILURE = 0x80;

/** Writes a rules file into a fresh directory and returns its path. */
function rulesFile(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'smq-acl-')), 'acl.yaml');
  writeFileSync(file, text);
  return file;
}

/**
 * The rules of the shared broker. `watcher` may do anything; `reader` may subscribe to everything but
 * secret/#; everyone may publish open/# and secret/#, subscribe open/#, and use users/<own username>/# and
 * devices/<own client id>/#; address rules gate lan/# and local/#. Nothing else matches: acl.default (deny).
 */
const RULES = `
rules:
  - {permission: allow, action: all, username: watcher, topics: ["#", "$SYS/#"]}
  - {permission: deny, action: subscribe, username: reader, topics: ["secret/#"]}
  - {permission: allow, action: subscribe, username: reader, topics: ["#"]}
  - {permission: allow, action: all, topics: ["users/%u/#", "devices/%c/#"]}
  - {permission: allow, action: publish, topics: ["open/#", "secret/#"]}
  - {permission: allow, action: subscribe, topics: ["open/#"]}
  - {permission: allow, action: publish, address: 10.0.0.0/8, topics: ["lan/#"]}
  - {permission: allow, action: publish, address: [127.0.0.0/8, "::1"], topics: ["local/#"]}
  - {permission: deny, action: publish, topics: ["will/#"]}
`;

let broker: RunningBroker;

before(async () => {
  broker = await startBroker({ config: { acl: { enable: true, file: rulesFile(RULES) } } });
});

after(async () => {
  await stopBroker(broker);
});

/** The SUBACK code of a refusal for this protocol version. */
function refused(v: Version): number {
  return v === 5 ? NOT_AUTHORIZED : V4_FAILURE;
}

/** Topics received so far that contain `tag`, in arrival order (other tests' traffic is left out). */
function tagged(inbox: Inbox, tag: string): string[] {
  return inbox.all.filter((m) => m.topic.includes(tag)).map((m) => m.topic);
}

/** Resolves once the inbox holds a message on `topic`; rejects after `timeoutMs`. */
function arrival(inbox: Inbox, topic: string, timeoutMs = 5000): Promise<void> {
  if (inbox.all.some((m) => m.topic === topic)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      stop();
      reject(new Error(`${topic} not received within ${timeoutMs} ms; got ${JSON.stringify(inbox.all.map((m) => m.topic).slice(-10))}`));
    }, timeoutMs);
    const stop = inbox.onMessage(() => {
      if (!inbox.all.some((m) => m.topic === topic)) return;
      clearTimeout(t);
      stop();
      resolve();
    });
  });
}

/**
 * Proves that exactly `expected` (topics containing `tag`) arrived: `sendControl` sends a message on `control`
 * after everything under test, the control must arrive, the tagged topics up to it must be `expected` then
 * the control, and nothing more may follow within a short bounded wait.
 */
async function expectOnly(inbox: Inbox, tag: string, control: string, sendControl: () => Promise<unknown>, expected: readonly string[]): Promise<void> {
  await sendControl();
  await arrival(inbox, control);
  assert.deepEqual(tagged(inbox, tag), [...expected, control]);
  await delay(200);
  assert.deepEqual(tagged(inbox, tag), [...expected, control], 'nothing else arrives after the control message');
}

/** A watcher with full rights subscribed to `#` (QoS 1), to see whatever is really routed. */
async function watcher(c: Clients, v: Version): Promise<Inbox> {
  const w = await c.mqtt(v, { username: 'watcher' });
  const granted = await w.client.subscribeAsync('#', { qos: 1 });
  assert.equal(granted[0]?.qos, 1, 'the watcher may subscribe to #');
  return w.inbox;
}

/** PUBACK/PUBREC code of a QoS 1/2 publish (0 when the packet carries none, as in v4). */
function ackCode(p: mqttPacket.Packet | undefined): number {
  return (p as { reasonCode?: number } | undefined)?.reasonCode ?? 0;
}

let nextMessageId = 1000;

/**
 * Publishes and returns the acknowledgement code (0 for QoS 0). A PUBREC of 0x80 or more ends a v5 QoS 2 flow
 * (MQTT 5 section 4.3.3), so PUBREL is sent only after a positive one.
 */
async function publishCode(client: RawClient, topic: string, payload: string, qos: 0 | 1 | 2): Promise<number> {
  if (qos !== 2) return ackCode(await rawPublish(client, topic, payload, { qos }));
  const messageId = ++nextMessageId;
  client.send({ cmd: 'publish', topic, payload, qos: 2, messageId, retain: false, dup: false });
  const rec = await client.next('pubrec');
  if (ackCode(rec) < 0x80) {
    client.send({ cmd: 'pubrel', messageId });
    await client.next('pubcomp');
  }
  return ackCode(rec);
}

/** The acknowledgement code a refused QoS 1/2 publish gets in this version. */
function refusedAck(v: Version): number {
  return v === 5 ? NOT_AUTHORIZED : 0;
}

for (const v of VERSIONS) {
  test(`[v${v}] a refused filter fails only its own SUBACK entry`, T, async (t) => {
    const c = clientsFor(t, broker.port);
    const cases: [who: string | undefined, filter: string, allowed: boolean][] = [
      ['reader', 'open/#', true],
      ['reader', 'secret/#', false],
      ['reader', 'secret/a/+', false],
      ['reader', '$share/g/secret/x', false], // the filter inside $share is judged
      ['reader', '$queue/secret/y', false],
      ['reader', '#', true], // secret/* is then filtered on delivery (see the read tests)
      ['reader', '+/x', true],
      ['reader', '$SYS/#', false], // '#' rules do not reach $ topics
      [undefined, 'open/+/x', true],
      [undefined, 'open', true],
      [undefined, '$share/g/open/#', true],
      [undefined, '#', false],
      [undefined, 'users/#', false],
      [undefined, 'secret/#', false], // publish rights do not grant subscriptions
    ];
    for (const who of ['reader', undefined]) {
      const rows = cases.filter((r) => r[0] === who);
      const raw = await c.raw(v, who === undefined ? {} : { username: who });
      const ack = await rawSubscribe(raw.client, rows.map(([, topic]) => ({ topic, qos: 1 })));
      assert.deepEqual(ack.granted, rows.map(([, , ok]) => (ok ? 1 : refused(v))), `SUBACK for ${who ?? 'an anonymous client'}`);
      assert.ok(raw.client.isOpen, 'refusals do not close the connection');
    }
  });

  test(`[v${v}] a refused publish gets the version's acknowledgement and reaches nobody (QoS 0, 1, 2)`, T, async (t) => {
    const c = clientsFor(t, broker.port);
    const tag = uniq('pub');
    const w = await watcher(c, v);
    const pub = await c.raw(v);
    for (const qos of [0, 1, 2] as const) {
      const code = await publishCode(pub.client, `forbidden/${tag}/q${qos}`, 'no', qos);
      if (qos > 0) assert.equal(code, refusedAck(v), `QoS ${qos} acknowledgement`);
    }
    for (const qos of [0, 1, 2] as const) {
      assert.equal(await publishCode(pub.client, `open/${tag}/q${qos}`, 'yes', qos), 0, `allowed QoS ${qos}`);
    }
    const control = `open/${tag}/control`;
    await expectOnly(w, tag, control, () => rawPublish(pub.client, control, 'c', { qos: 1 }), [`open/${tag}/q0`, `open/${tag}/q1`, `open/${tag}/q2`]);
  });

  test(`[v${v}] %u, %c and address rules; identities with '+', '#' or '/' never widen a placeholder rule`, T, async (t) => {
    const c = clientsFor(t, broker.port);
    const tag = uniq('id');
    const w = await watcher(c, v);
    const device = uniq('dev');
    const cases: [who: Partial<mqttPacket.IConnectPacket>, topic: string, allowed: boolean][] = [
      [{ username: 'bob' }, `users/bob/${tag}`, true],
      [{ username: 'bob' }, `users/alice/${tag}`, false],
      [{}, `users//${tag}`, false], // no username: the %u rule never applies
      [{ username: '' }, `users//${tag}/e`, false],
      [{ clientId: device }, `devices/${device}/${tag}`, true],
      [{ clientId: device }, `devices/other/${tag}`, false],
      [{}, `local/${tag}`, true], // the test connects from 127.0.0.1
      [{}, `lan/${tag}`, false], // only 10.0.0.0/8 may
    ];
    const expected: string[] = [];
    for (const [who, topic, allowed] of cases) {
      const raw = await c.raw(v, who);
      assert.equal(await publishCode(raw.client, topic, 'x', 1), allowed ? 0 : refusedAck(v), `${JSON.stringify(who)} publishing ${topic}`);
      if (allowed) expected.push(topic);
    }
    const pub = await c.raw(v);
    const control = `open/${tag}/control`;
    await expectOnly(w, tag, control, () => rawPublish(pub.client, control, 'c', { qos: 1 }), expected);

    // Subscriptions: the same placeholders, and injection attempts through the identity.
    const subs: [who: Partial<mqttPacket.IConnectPacket>, filter: string, allowed: boolean][] = [
      [{ username: 'bob' }, 'users/bob/#', true],
      [{ username: 'bob' }, 'users/+/x', false],
      [{ username: 'a/#' }, 'users/a/#', false],
      [{ username: '#' }, 'users/#', false],
      [{ username: '+' }, 'users/+/x', false],
      [{ clientId: `x/${tag}` }, `devices/x/${tag}`, false],
      [{ clientId: `+` }, 'devices/+', false],
      [{ clientId: device }, `devices/${device}/#`, true],
    ];
    for (const [who, filter, allowed] of subs) {
      const raw = await c.raw(v, who);
      const ack = await rawSubscribe(raw.client, [{ topic: filter, qos: 1 }]);
      assert.deepEqual(ack.granted, [allowed ? 1 : refused(v)], `${JSON.stringify(who)} subscribing ${filter}`);
    }
  });

  test(`[v${v}] a will on a refused topic is not published`, T, async (t) => {
    const c = clientsFor(t, broker.port);
    const tag = uniq('will');
    const w = await watcher(c, v);
    const denied = `will/${tag}`;
    const raw = await c.raw(v, { will: { topic: denied, payload: Buffer.from('gone'), qos: 1, retain: false } });
    raw.client.destroy();
    await broker.waitForLog((r) => r['msg'] === 'acl denied' && r['topic'] === denied && r['action'] === 'publish');
    // An allowed will, published the same way, is the positive control.
    const control = `open/${tag}/will`;
    const ok = await c.raw(v, { will: { topic: control, payload: Buffer.from('gone'), qos: 1, retain: false } });
    await expectOnly(w, tag, control, async () => { ok.client.destroy(); }, []);
  });

  test(`[v${v}] retained messages under a refused read are not sent on subscribe to #; allowed ones are`, T, async (t) => {
    const c = clientsFor(t, broker.port);
    const tag = uniq('ret');
    const pub = await c.raw(v);
    for (const topic of [`secret/${tag}/r`, `open/${tag}/r`]) {
      assert.equal(ackCode(await rawPublish(pub.client, topic, 'kept', { qos: 1, retain: true })), 0, topic);
    }
    const reader = await c.mqtt(v, { username: 'reader' });
    const granted = await reader.client.subscribeAsync('#', { qos: 1 });
    assert.equal(granted[0]?.qos, 1);
    const control = `open/${tag}/control`;
    await expectOnly(reader.inbox, tag, control, () => rawPublish(pub.client, control, 'c', { qos: 1 }), [`open/${tag}/r`]);
    const kept = reader.inbox.all.find((m) => m.topic === `open/${tag}/r`);
    assert.equal(kept?.packet.retain, true);
    assert.equal(text(kept.payload), 'kept');

    // The secret one is really retained: a client allowed to read it gets it.
    const w = await watcher(c, v);
    await arrival(w, `secret/${tag}/r`);
  });

  test(`[v${v}] live messages on a refused topic do not reach a broader subscriber`, T, async (t) => {
    const c = clientsFor(t, broker.port);
    const tag = uniq('live');
    const reader = await c.mqtt(v, { username: 'reader' });
    await reader.client.subscribeAsync(['#', '+/+/x'], { qos: 1 });
    const w = await watcher(c, v);
    const pub = await c.raw(v);
    for (const topic of [`secret/${tag}/x`, `open/${tag}/x`, `secret/${tag}/y`]) {
      for (const qos of [0, 1] as const) await rawPublish(pub.client, topic, 'm', { qos });
    }
    const control = `open/${tag}/control`;
    await expectOnly(reader.inbox, tag, control, () => rawPublish(pub.client, control, 'c', { qos: 1 }), [`open/${tag}/x`, `open/${tag}/x`]);
    // The watcher proves the secret messages were routed, only not to the reader.
    await arrival(w, control);
    assert.deepEqual(tagged(w, tag).filter((x) => x.startsWith('secret/')).length, 4);
  });

  test(`[v${v}] an edited rules file applies after "acl reloaded"; a broken edit keeps the rules`, T, async (t) => {
    const file = rulesFile('rules:\n  - {permission: allow, action: all, username: watcher, topics: ["#"]}\n');
    const { broker: b, clients: c } = await brokerFor(t, { config: { acl: { enable: true, file } } });
    const tag = uniq('reload');
    const w = await watcher(c, v);
    const pub = await c.raw(v);
    const topic = `reload/${tag}`;
    assert.equal(await publishCode(pub.client, topic, 'before', 1), refusedAck(v));

    writeFileSync(file, 'rules:\n  - {permission: allow, action: all, username: watcher, topics: ["#"]}\n  - {permission: allow, action: publish, topics: ["reload/#"]}\n');
    await b.waitForLog((r) => r['msg'] === 'acl reloaded', 10000);
    // Same connection and topic: the refusal it got before must not be remembered.
    assert.equal(await publishCode(pub.client, topic, 'after', 1), 0);
    await arrival(w, topic);
    assert.deepEqual(w.all.filter((m) => m.topic === topic).map((m) => text(m.payload)), ['after']);

    writeFileSync(file, 'rules:\n  - {permission: allow, action: everything, topics: ["#"]}\n');
    const err = await b.waitForLog((r) => typeof r['msg'] === 'string' && r['msg'].startsWith('acl file not reloaded'), 10000);
    assert.match(JSON.stringify(err), /rules\[0\], field \\"action\\"/);
    assert.equal(await publishCode(pub.client, topic, 'still', 1), 0, 'the previous rules stay in force');
  });
}

test('a rules file that does not validate stops the start, naming the file, the rule and the field', T, async () => {
  const file = rulesFile('rules:\n  - {permission: allow, action: all, topics: ["ok"]}\n  - {permission: allow, action: read, topics: ["a"]}\n');
  await assert.rejects(startBroker({ config: { acl: { enable: true, file } } }), (err: Error) => {
    assert.match(err.message, /broker exited/);
    assert.ok(err.message.includes(`acl file error in ${file}: rules[1], field "action"`), err.message);
    return true;
  });
});

test('acl.enable without a rules file or HTTP backend: a warning, and acl.default (deny) answers everything', T, async (t) => {
  const { broker: b, clients: c } = await brokerFor(t, { config: { acl: { enable: true } } });
  const warning = await b.waitForLog((r) => typeof r['msg'] === 'string' && r['msg'].includes('neither acl.file nor acl.http.url'));
  assert.equal(warning['level'], 40);
  for (const v of VERSIONS) {
    const raw = await c.raw(v);
    assert.deepEqual((await rawSubscribe(raw.client, [{ topic: '#', qos: 0 }])).granted, [refused(v)]);
    assert.equal(await publishCode(raw.client, 'a', 'x', 1), refusedAck(v));
  }
});

/** What the test ACL service was asked. */
interface Question {
  action: string;
  clientid: string;
  username: string | null;
  peerhost: string;
  topic: string;
  cn: string | null;
}

/**
 * A local HTTP ACL service. Subscriptions by `watcher` are allowed; otherwise the first topic level says what
 * to answer: allow, deny, ignore (200 with that result), 204, 500, or slow (never answers: a timeout).
 */
async function aclService(t: TestContext): Promise<{ url: string; asked: Question[] }> {
  const asked: Question[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => { body += chunk; });
    req.on('end', () => {
      const q = JSON.parse(body) as Question;
      asked.push(q);
      const kind = q.action === 'subscribe' && q.username === 'watcher' ? 'allow' : q.topic.split('/')[0];
      if (kind === 'slow') return;
      if (kind === '204' || kind === '500') {
        res.writeHead(Number(kind));
        res.end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ result: kind }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mqtt/acl`, asked };
}

test('HTTP backend: allow, 204, deny, ignore, 500 and timeout, for v4 and v5; answers are cached, errors are not', T, async (t) => {
  const svc = await aclService(t);
  const { clients: c } = await brokerFor(t, { config: { acl: { enable: true, http: { url: svc.url, timeout: 300, cache_ttl: 60 } } } });
  for (const v of VERSIONS) {
    const tag = uniq(`http${v}`);
    const w = await watcher(c, v);
    const pub = await c.raw(v, { username: 'pat' });
    const cases: [kind: string, allowed: boolean][] = [
      ['allow', true], ['204', true], ['deny', false], ['ignore', false], ['500', false], ['slow', false],
    ];
    const expected: string[] = [];
    for (const [kind, allowed] of cases) {
      const topic = `${kind}/${tag}`;
      // Twice each: the second answer comes from the cache, unless the first was an error.
      for (let i = 0; i < 2; i++) {
        assert.equal(await publishCode(pub.client, topic, 'x', 1), allowed ? 0 : refusedAck(v), `${topic} #${i + 1}`);
        if (allowed) expected.push(topic);
      }
    }
    const control = `allow/${tag}/control`;
    await expectOnly(w, tag, control, () => rawPublish(pub.client, control, 'c', { qos: 1 }), expected);

    const count = (topic: string): number => svc.asked.filter((q) => q.action === 'publish' && q.topic === topic).length;
    for (const [kind] of cases) assert.equal(count(`${kind}/${tag}`), kind === '500' || kind === 'slow' ? 2 : 1, `requests for ${kind}`);
    const q = svc.asked.find((x) => x.topic === `allow/${tag}`);
    assert.equal(q?.username, 'pat');
    assert.equal(q?.peerhost, '127.0.0.1');
    assert.equal(q?.cn, null);

    const sub = await c.raw(v);
    const ack = await rawSubscribe(sub.client, [{ topic: `allow/${tag}/#`, qos: 1 }, { topic: `deny/${tag}/#`, qos: 1 }, { topic: `$share/g/deny/${tag}`, qos: 1 }]);
    assert.deepEqual(ack.granted, [1, refused(v), refused(v)]);
    assert.ok(svc.asked.some((x) => x.action === 'subscribe' && x.topic === `deny/${tag}`), 'the filter inside $share is asked about');
  }
});
