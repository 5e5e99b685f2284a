/**
 * Fault injection (issue 10): reconnect storms. Rounds of 500 connections at once over 250 client ids, two per
 * id in each round so that every id is taken over (MQTT-3.1.4-3), half of the ids persistent (v3.1.1 clean
 * session off, v5 with a session expiry) and subscribing, the rest clean; each connection ends by DISCONNECT, by
 * a dropped socket or by being taken over. The store is on, so the churn goes through it. Afterwards what a user
 * checks: the broker is up, its open file descriptors are back to where they were, /metrics counts no
 * connection and exactly one session and one subscription per persistent id, and each persistent session still
 * works: a QoS 1 message published to it while it is away is delivered when it comes back, once.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import type { IConnectPacket } from 'mqtt-packet';
import { httpBase, startBroker, type RunningBroker } from './helpers/broker.js';
import { sample } from './helpers/bridge.js';
import { fdCount, Ledger, since, waitFor } from './helpers/faults.js';
import { RawClient } from './helpers/raw.js';
import { report } from './helpers/reliability.js';
import { strictConnect } from './helpers/strict/tap.js';

const IDS = 250;
const PERSISTENT = 125;
const ROUNDS = 6;
let broker: RunningBroker;
const clients: MqttClient[] = [];

before(async () => {
  broker = await startBroker({
    config: { ws: { enable: false }, http: { enable: true, host: '127.0.0.1', port: 0 }, store: { dir: mkdtempSync(join(tmpdir(), 'smq-storm-')) } },
  });
});

after(async () => {
  for (const c of clients) c.end(true);
  await broker?.stop();
});

type Ending = 'disconnect' | 'drop' | 'linger';

/** What happened to one connection of the storm. */
type Fate = 'done' | 'taken over' | 'refused' | 'failed';

/** One connection's life: connect, subscribe when persistent, then end as told (or be taken over first). */
async function life(n: number, round: number): Promise<Fate> {
  const id = n % IDS;
  const persistent = id < PERSISTENT;
  const version = (id + round) % 2 === 0 ? 4 : 5;
  const ending: Ending = (['disconnect', 'drop', 'linger'] as const)[(n + round) % 3] as Ending;
  const connectFields: Partial<IConnectPacket> = {
    clientId: `storm-${id}`, clean: !persistent,
    ...(version === 5 && persistent ? { properties: { sessionExpiryInterval: 600 } } : {}),
  };
  let client: RawClient;
  try {
    const c = await RawClient.connected(broker.port, version, connectFields);
    client = c.client;
    const rc = c.connack.reasonCode ?? c.connack.returnCode ?? 0;
    if (rc !== 0) {
      client.destroy();
      return 'refused';
    }
  } catch {
    return 'failed';
  }
  try {
    if (persistent) {
      client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `storm/${id}`, qos: 1 }] });
      await client.next('suback', 10_000);
    }
    if (ending === 'disconnect') {
      client.send({ cmd: 'disconnect' });
      client.socket.end();
    } else if (ending === 'drop') {
      client.destroy();
    } else {
      // Stays until the other connection of its id takes it over, or the round ends.
      return await Promise.race([client.closed.then((): Fate => 'taken over'), new Promise<Fate>((r) => setTimeout(() => r('done'), 200))]);
    }
    return 'done';
  } catch {
    return 'taken over';
  } finally {
    client.destroy();
  }
}

async function metrics(): Promise<string> {
  return (await fetch(`${await httpBase(broker)}/metrics`)).text();
}

test('rounds of 500 connections over 250 client ids with takeovers: the broker stays up, descriptors return to baseline, and every persistent session is intact', { timeout: 90_000 }, async () => {
  const started = performance.now();
  const pid = broker.proc.pid as number;
  const baseFds = fdCount(pid);
  const fates = new Map<Fate, number>();
  let maxFds = baseFds;
  const sampler = setInterval(() => {
    maxFds = Math.max(maxFds, fdCount(pid));
  }, 10);
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const lives = Array.from({ length: 2 * IDS }, (_, n) => life(n, round));
      for (const f of await Promise.all(lives)) fates.set(f, (fates.get(f) ?? 0) + 1);
      assert.equal(broker.proc.exitCode, null, `the broker is running after round ${round}`);
    }
  } finally {
    clearInterval(sampler);
  }
  const stormMs = since(started);
  assert.equal(fates.get('refused') ?? 0, 0, 'no connection refused');
  assert.equal(fates.get('failed') ?? 0, 0, 'every connection got its CONNACK');
  // Closing sockets settle within the broker's 2 s half-close bound: the descriptors come back.
  const fds = await waitFor('descriptors back to the baseline', () => {
    const n = fdCount(pid);
    return n <= baseFds + 2 ? n : false;
  }, 15_000, () => `${fdCount(pid)} open, baseline ${baseFds}`);
  const m = await waitFor('no connection left', async () => {
    const text = await metrics();
    return sample(text, 'smq_connections') === 0 ? text : false;
  }, 10_000);
  assert.equal(sample(m, 'smq_sessions'), PERSISTENT, 'one session per persistent id');
  assert.equal(sample(m, 'smq_subscriptions'), PERSISTENT, 'one subscription per persistent id');

  // Every persistent session works: a message queued while it is away is delivered when it comes back.
  const ledger = new Ledger();
  const pub = strictConnect({ host: '127.0.0.1', port: broker.port, clientId: 'storm-publisher', reconnectPeriod: 0 });
  clients.push(pub);
  await new Promise<void>((resolve) => pub.once('connect', () => resolve()));
  for (let id = 0; id < PERSISTENT; id++) {
    await pub.publishAsync(`storm/${id}`, `q${id}`, { qos: 1 });
    ledger.ack(`q${id}`);
  }
  let present = 0;
  for (let id = 0; id < PERSISTENT; id++) {
    const c = strictConnect({
      host: '127.0.0.1', port: broker.port, clientId: `storm-${id}`, clean: false, reconnectPeriod: 0,
      protocolVersion: 5, properties: { sessionExpiryInterval: 600 },
    });
    clients.push(c);
    c.on('message', (t, p) => {
      if (t === `storm/${id}`) ledger.receive(p.toString());
    });
    const connack = await new Promise<{ sessionPresent: boolean }>((resolve, reject) => {
      c.once('connect', (p) => resolve(p));
      c.once('error', reject);
    });
    if (connack.sessionPresent) present++;
  }
  await waitFor('every persistent session got its queued message', () => ledger.complete(), 10_000, () => `missing ${ledger.missing(5).join(',')}`);
  assert.equal(present, PERSISTENT, 'every persistent session present');
  assert.equal(ledger.dup, 0);

  report('reconnect storm with takeovers', {
    load: `${ROUNDS} rounds of ${2 * IDS} simultaneous connections over ${IDS} client ids (${PERSISTENT} persistent, v3.1.1/v5), ending by DISCONNECT, dropped socket or takeover; store on`,
    faults: `${[...fates].map(([f, n]) => `${n} ${f}`).join(', ')} in ${stormMs} ms; fds ${baseFds} -> max ${maxFds} -> ${fds}; afterwards 0 connections, ${PERSISTENT} sessions, ${PERSISTENT} subscriptions, ${present}/${PERSISTENT} sessions present with their queued message`,
    acked: ledger.acked.size,
    received: ledger.received,
    dup: ledger.dup,
  });
});
