/**
 * `$SYS/broker/...` statistics, published every `sys_interval` seconds (1 here): the topics a monitoring
 * tool expects (Mosquitto's names), a client count that follows connections, `$SYS` kept out of `#`
 * [MQTT-4.7.2-1], and clients unable to overwrite the broker's own values.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { IClientOptions, IPublishPacket, MqttClient } from 'mqtt';
import { startBroker, type RunningBroker } from './helpers/broker.js';
import { strictConnect } from './helpers/strict/tap.js';

const AGAINST_MOSQUITTO = process.env['SMQ_TEST_AGAINST'] === 'mosquitto';
/** Mosquitto ignores our config and keeps its default sys_interval of 10 s. */
const INTERVAL_MS = AGAINST_MOSQUITTO ? 10000 : 1000;
/** Long enough for a few updates. */
const WAIT_MS = 3 * INTERVAL_MS + 2000;
const PRODUCT = AGAINST_MOSQUITTO ? 'mosquitto' : 'smq';

const COUNTERS = [
  '$SYS/broker/clients/connected',
  '$SYS/broker/messages/received',
  '$SYS/broker/messages/sent',
  '$SYS/broker/bytes/received',
  '$SYS/broker/bytes/sent',
  '$SYS/broker/subscriptions/count',
  '$SYS/broker/retained messages/count',
];

/** One received message. */
interface Received {
  topic: string;
  payload: string;
  retain: boolean;
}

/** Records what a client receives; `until` waits for a condition, re-checked on every message. */
class Watcher {
  readonly all: Received[] = [];
  readonly latest = new Map<string, string>();
  private readonly listeners = new Set<() => void>();

  constructor(readonly client: MqttClient) {
    client.on('message', (topic: string, payload: Buffer, packet: IPublishPacket) => {
      const m = { topic, payload: payload.toString(), retain: packet.retain };
      this.all.push(m);
      this.latest.set(topic, m.payload);
      for (const l of this.listeners) l();
    });
  }

  until(cond: () => boolean, timeoutMs: number, why: () => string): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!cond()) return;
        clearTimeout(t);
        this.listeners.delete(check);
        resolve();
      };
      const t = setTimeout(() => {
        this.listeners.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms: ${why()}`));
      }, timeoutMs);
      this.listeners.add(check);
    });
  }

  /** Waits for `n` more live (non-retained) updates of `topic` than seen so far. */
  async liveUpdates(topic: string, n: number): Promise<void> {
    const live = (): number => this.all.filter((m) => m.topic === topic && !m.retain).length;
    const target = live() + n;
    await this.until(() => live() >= target, WAIT_MS + n * INTERVAL_MS, () => `${n} live updates of ${topic}`);
  }
}

let broker: RunningBroker;
const clients = new Set<MqttClient>();

function open(options: IClientOptions = {}): Promise<Watcher> {
  const client = strictConnect(`mqtt://127.0.0.1:${broker.port}`, {
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 5000,
    clientId: `sys-${Math.random().toString(16).slice(2, 10)}`,
    ...options,
  });
  clients.add(client);
  const w = new Watcher(client);
  return new Promise((resolve, reject) => {
    client.once('error', reject);
    client.once('connect', () => {
      client.off('error', reject);
      resolve(w);
    });
  });
}

async function close(w: Watcher): Promise<void> {
  await w.client.endAsync();
  clients.delete(w.client);
}

before(async () => {
  broker = await startBroker({ config: { sys_interval: 1 } });
});

after(async () => {
  for (const c of clients) c.end(true);
  await broker?.stop();
});

describe('$SYS topics', () => {
  let sys: Watcher;

  before(async () => {
    sys = await open();
    await sys.client.subscribeAsync('$SYS/#', { qos: 0 });
  });

  test('a $SYS/# subscriber receives the broker statistics', async () => {
    const expected = ['$SYS/broker/version', '$SYS/broker/uptime', ...COUNTERS];
    await sys.until(() => expected.every((t) => sys.latest.has(t)), WAIT_MS,
      () => `missing ${expected.filter((t) => !sys.latest.has(t)).join(', ')}; got ${[...sys.latest.keys()].join(', ')}`);
    assert.ok(sys.latest.get('$SYS/broker/version')!.toLowerCase().includes(PRODUCT), `version: ${sys.latest.get('$SYS/broker/version')}`);
    assert.match(sys.latest.get('$SYS/broker/uptime')!, /^\d+( seconds?)?$/);
    for (const t of COUNTERS) assert.match(sys.latest.get(t)!, /^\d+$/, `${t} = ${sys.latest.get(t)}`);
    // The first values may be retained from before this subscriber came; within a few intervals the
    // counts include its own connection and subscription.
    for (const t of ['$SYS/broker/subscriptions/count', '$SYS/broker/clients/connected', '$SYS/broker/messages/sent']) {
      await sys.until(() => Number(sys.latest.get(t)) >= 1, WAIT_MS, () => `${t} stayed ${sys.latest.get(t)}`);
    }
  });

  test('uptime is republished every interval', async () => {
    await sys.liveUpdates('$SYS/broker/uptime', 2);
  });

  test('clients/connected follows a second client connecting and leaving', async () => {
    const topic = '$SYS/broker/clients/connected';
    // Two ticks after subscribing, the value reflects the current connections (this subscriber included).
    await sys.liveUpdates('$SYS/broker/uptime', 2);
    await sys.until(() => sys.latest.has(topic), WAIT_MS, () => `no ${topic}`);
    const baseline = Number(sys.latest.get(topic));
    assert.ok(baseline >= 1, `clients/connected = ${baseline} with a subscriber connected`);

    const second = await open();
    await sys.until(() => Number(sys.latest.get(topic)) === baseline + 1, WAIT_MS,
      () => `${topic} stayed ${sys.latest.get(topic)}, expected ${baseline + 1}`);
    await close(second);
    await sys.until(() => Number(sys.latest.get(topic)) === baseline, WAIT_MS,
      () => `${topic} stayed ${sys.latest.get(topic)}, expected ${baseline} after the disconnect`);
  });

  test('# and +/... subscriptions do not receive $SYS topics [MQTT-4.7.2-1]', async () => {
    const all = await open();
    await all.client.subscribeAsync(['#', '+/broker/#', '+/+/uptime'], { qos: 0 });
    // Let the broker publish fresh statistics while the wildcard subscriber is there.
    await sys.liveUpdates('$SYS/broker/uptime', 1);
    // A marker published after those updates: once it has arrived, any leaked $SYS message would have too.
    await all.client.publishAsync('sys-test/marker', 'm', { qos: 1 });
    await all.until(() => all.all.some((m) => m.topic === 'sys-test/marker'), 5000, () => 'marker not received');
    const leaked = all.all.filter((m) => m.topic.startsWith('$'));
    assert.deepEqual(leaked, [], 'wildcards at the first level must not match topics starting with $');
    await close(all);
  });

  test('a client cannot overwrite $SYS/broker/version', async () => {
    const intruder = await open();
    // The broker may drop the publish or close the connection; either way the value must not change.
    await intruder.client.publishAsync('$SYS/broker/version', 'fake', { qos: 1, retain: true }).catch(() => undefined);
    await intruder.client.publishAsync('$SYS/broker/version', 'fake-live', { qos: 0 }).catch(() => undefined);
    intruder.client.end(true);
    clients.delete(intruder.client);

    const fresh = await open();
    await fresh.client.subscribeAsync('$SYS/broker/version', { qos: 0 });
    await fresh.until(() => fresh.latest.has('$SYS/broker/version'), WAIT_MS, () => 'no retained version for a new subscriber');
    const version = fresh.latest.get('$SYS/broker/version')!;
    assert.ok(version.toLowerCase().includes(PRODUCT), `version after the overwrite attempt: ${version}`);
    // Proving an absence: the fakes never reached the long-lived $SYS/# subscriber either.
    await new Promise((r) => setTimeout(r, 500));
    const fakes = sys.all.filter((m) => m.topic === '$SYS/broker/version' && m.payload.startsWith('fake'));
    assert.deepEqual(fakes, []);
    await close(fresh);
  });
});
