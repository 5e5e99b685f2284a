/**
 * 40: durability. The broker is killed with SIGKILL at random moments, many times in a row, while numbered
 * QoS 1 and QoS 2 messages flow to persistent subscribers that are online, offline, or half-way through the
 * QoS 2 exchange. Afterwards every acknowledged QoS 1 message was delivered at least once, every acknowledged
 * QoS 2 message exactly once, first deliveries in publish order, and retained messages and subscriptions are
 * all there (the subscribers never subscribe again: `resubscribe: false`).
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { reusablePort, startBroker, type RunningBroker } from './helpers/broker.js';
import { report } from './helpers/reliability.js';
import { strictConnect } from './helpers/strict/tap.js';

const ROUNDS = 8;

/** Numbers received per topic, in arrival order. */
class Tally {
  readonly seen = new Map<string, number[]>();

  add(topic: string, n: number): void {
    let list = this.seen.get(topic);
    if (!list) this.seen.set(topic, (list = []));
    list.push(n);
  }

  list(topic: string): number[] {
    return this.seen.get(topic) ?? [];
  }
}

function persistentClient(port: number, clientId: string, version: 4 | 5, tally?: Tally): MqttClient {
  const c = strictConnect(`mqtt://127.0.0.1:${port}`, {
    clientId,
    clean: false,
    protocolVersion: version,
    reconnectPeriod: 100,
    connectTimeout: 2000,
    resubscribe: false, // the broker must remember subscriptions by itself
    ...(version === 5 ? { properties: { sessionExpiryInterval: 3600 } } : {}),
  });
  c.on('error', () => { /* reconnects; failures show up as missing messages */ });
  if (tally) c.on('message', (topic, payload) => tally.add(topic, Number(payload.toString())));
  return c;
}

function connected(c: MqttClient): Promise<void> {
  return c.connected ? Promise.resolve() : new Promise((resolve) => c.once('connect', () => resolve()));
}

/** Resolves when `check` holds, re-checking on every packet the clients receive; rejects after `ms`. */
function until(clients: MqttClient[], check: () => boolean, ms: number, what: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    let finished = false;
    const done = (): void => {
      if (finished || !check()) return;
      finished = true;
      clearTimeout(t);
      for (const c of clients) c.off('packetreceive', later);
      resolve();
    };
    // 'packetreceive' comes before the client's own handling (its 'message' event, its publish callbacks):
    // look once that has run.
    const later = (): void => void setImmediate(done);
    const t = setTimeout(() => {
      finished = true;
      for (const c of clients) c.off('packetreceive', later);
      reject(new Error(`not within ${ms} ms: ${what()}`));
    }, ms);
    for (const c of clients) c.on('packetreceive', later);
    done();
  });
}

test('SIGKILL at random moments loses no acknowledged QoS 1/2 message', { timeout: 180000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'smq-durable-'));
  const port = await reusablePort();
  const config = { port, ws: { enable: false }, sys_interval: 0, store: { dir, durability: 'fsync' } };
  let broker: RunningBroker = await startBroker({ config });

  const online = new Tally();
  const offline = new Tally();
  // Online subscribers: one 3.1.1 at QoS 1, one 5.0 at QoS 2 (the half-way QoS 2 case happens at each kill).
  const sub1 = persistentClient(port, 'durable-sub-1', 4, online);
  const sub2 = persistentClient(port, 'durable-sub-2', 5, online);
  const away = persistentClient(port, 'durable-away', 5, offline);
  await Promise.all([connected(sub1), connected(sub2), connected(away)]);
  await sub1.subscribeAsync('crash/q1', { qos: 1 });
  await sub2.subscribeAsync('crash/q2', { qos: 2 });
  await away.subscribeAsync(['crash/q1', 'crash/q2'], { qos: 2 });
  await away.endAsync(); // its messages queue while it is away, across every crash
  const pub = persistentClient(port, 'durable-pub', 5);
  await connected(pub);
  await pub.publishAsync('crash/retained', 'kept', { qos: 1, retain: true });

  // Publish numbered messages while the broker is killed and restarted.
  const acked = { 'crash/q1': [] as number[], 'crash/q2': [] as number[] };
  let stop = false;
  const publishLoop = async (topic: 'crash/q1' | 'crash/q2', qos: 1 | 2): Promise<void> => {
    for (let n = 1; !stop && n <= 20000; n++) {
      try {
        await pub.publishAsync(topic, String(n), { qos });
        acked[topic].push(n);
      } catch {
        // Not acknowledged: it may or may not arrive, and is never sent again, so a duplicate can only be the
        // broker's doing.
        await connected(pub);
      }
    }
  };
  const loops = [publishLoop('crash/q1', 1), publishLoop('crash/q2', 2)];
  for (let round = 0; round < ROUNDS; round++) {
    const before = acked['crash/q1'].length + acked['crash/q2'].length;
    // Let some traffic through (at least 20 acknowledged messages), then kill at a random moment.
    await until([sub1, sub2, pub], () => acked['crash/q1'].length + acked['crash/q2'].length >= before + 20, 20000,
      () => `round ${round}: acked ${acked['crash/q1'].length}/${acked['crash/q2'].length}`);
    await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 50)));
    await broker.stop('SIGKILL');
    broker = await startBroker({ config });
  }
  stop = true;
  await Promise.all(loops);
  const q1 = acked['crash/q1'];
  const q2 = acked['crash/q2'];
  assert.ok(q1.length > ROUNDS * 5 && q2.length > ROUNDS * 5, `traffic flowed: ${q1.length} QoS 1, ${q2.length} QoS 2`);

  const missing = (got: number[], want: number[]): number[] => {
    const s = new Set(got);
    return want.filter((n) => !s.has(n));
  };
  await until([sub1, sub2], () => missing(online.list('crash/q1'), q1).length === 0 && missing(online.list('crash/q2'), q2).length === 0,
    30000, () => `online missing q1 ${missing(online.list('crash/q1'), q1).slice(0, 10)} q2 ${missing(online.list('crash/q2'), q2).slice(0, 10)}`);

  // QoS 2 exactly once; first deliveries in publish order.
  const got2 = online.list('crash/q2');
  const dup2 = got2.filter((n, i) => got2.indexOf(n) !== i);
  assert.deepEqual(dup2, [], 'no QoS 2 message delivered twice');
  const firsts = (list: number[]): number[] => list.filter((n, i) => list.indexOf(n) === i);
  for (const list of [online.list('crash/q1'), got2]) {
    const f = firsts(list);
    assert.deepEqual(f, [...f].sort((a, b) => a - b), 'first deliveries follow publish order');
  }

  // The subscriber that was away gets everything that queued for it, across every crash.
  const back = persistentClient(port, 'durable-away', 5, offline);
  await until([back], () => missing(offline.list('crash/q1'), q1).length === 0 && missing(offline.list('crash/q2'), q2).length === 0,
    30000, () => `offline missing q1 ${missing(offline.list('crash/q1'), q1).slice(0, 10)} q2 ${missing(offline.list('crash/q2'), q2).slice(0, 10)}`);
  const off2 = offline.list('crash/q2');
  assert.deepEqual(off2.filter((n, i) => off2.indexOf(n) !== i), [], 'no QoS 2 message delivered twice to the returning subscriber');
  const got1 = online.list('crash/q1');
  report('durability: SIGKILL at random moments', {
    load: 'QoS 1 and QoS 2 streams to online (v4, v5) and offline persistent subscribers', faults: `${ROUNDS} SIGKILLs, restart on the same store`,
    acked: 2 * (q1.length + q2.length), received: 2 * (q1.length + q2.length) - missing(online.list('crash/q1'), q1).length - missing(got2, q2).length
      - missing(offline.list('crash/q1'), q1).length - missing(off2, q2).length,
    dup: got1.length - new Set(got1).size,
  });

  // Retained messages survived too.
  const late = strictConnect(`mqtt://127.0.0.1:${port}`, { clientId: 'durable-late', clean: true, reconnectPeriod: 0 });
  const retained = new Promise<string>((resolve) => late.on('message', (_t, p) => resolve(p.toString())));
  await connected(late);
  await late.subscribeAsync('crash/retained', { qos: 1 });
  assert.equal(await retained, 'kept');

  for (const c of [sub1, sub2, back, pub, late]) await c.endAsync(true);
  await broker.stop();
});
