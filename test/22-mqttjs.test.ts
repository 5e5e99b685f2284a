/**
 * Interoperability with MQTT.js (the `mqtt` npm package, v5) for MQTT 3.1.1 and 5: QoS 0/1/2 round trips,
 * 1,000 QoS 1 messages delivered complete and in order, a persistent session picked up after a reconnect,
 * and `$share` groups next to each other.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { IClientOptions, IConnackPacket, IPublishPacket, MqttClient } from 'mqtt';
import { startBroker, type RunningBroker } from './helpers/broker.js';
import { strictConnect } from './helpers/strict/tap.js';

/** One received message, as the test compares it. */
interface Received {
  topic: string;
  payload: string;
  qos: number;
  retain: boolean;
}

/** Collects every message a client receives and lets a test wait for a condition on them. */
class Inbox {
  readonly messages: Received[] = [];
  private readonly listeners = new Set<() => void>();

  constructor(client: MqttClient) {
    client.on('message', (topic: string, payload: Buffer, packet: IPublishPacket) => {
      this.messages.push({ topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain });
      for (const l of this.listeners) l();
    });
  }

  /** Resolves once `cond` holds over the messages received so far. */
  until(cond: (msgs: readonly Received[]) => boolean, timeoutMs = 5000, what = 'messages'): Promise<void> {
    return untilAny([this], () => cond(this.messages), timeoutMs, () => `${what}; got ${this.messages.length}: ${JSON.stringify(this.messages.slice(-5))}`);
  }

  /** Calls `l` after every message (used by {@link untilAny}). */
  listen(l: () => void): void {
    this.listeners.add(l);
  }

  unlisten(l: () => void): void {
    this.listeners.delete(l);
  }

  /** Waits until `n` messages were received and returns them. */
  async count(n: number, timeoutMs = 5000): Promise<Received[]> {
    await this.until((m) => m.length >= n, timeoutMs, `${n} messages`);
    return this.messages.slice();
  }
}

/** Resolves once `cond()` holds, re-checking it whenever one of `inboxes` receives a message. */
function untilAny(inboxes: readonly Inbox[], cond: () => boolean, timeoutMs: number, why: () => string): Promise<void> {
  if (cond()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (!cond()) return;
      stop();
      resolve();
    };
    const stop = (): void => {
      clearTimeout(t);
      for (const i of inboxes) i.unlisten(check);
    };
    const t = setTimeout(() => {
      stop();
      reject(new Error(`not received within ${timeoutMs} ms: ${why()}`));
    }, timeoutMs);
    for (const i of inboxes) i.listen(check);
  });
}

/** A connected client with its inbox and the CONNACK it got. */
interface Connected {
  client: MqttClient;
  inbox: Inbox;
  connack: IConnackPacket;
}

let broker: RunningBroker;
let seq = 0;
const clients = new Set<MqttClient>();

function uniqueTopic(name: string): string {
  seq += 1;
  return `mqttjs/${process.pid}/${seq}/${name}`;
}

/**
 * Connects a client. The inbox is attached before the connection opens, so messages a persistent session
 * delivers right after CONNACK are not missed.
 */
function open(protocolVersion: 4 | 5, options: IClientOptions = {}): Promise<Connected> {
  const client = strictConnect(`mqtt://127.0.0.1:${broker.port}`, {
    protocolVersion,
    reconnectPeriod: 0,
    connectTimeout: 5000,
    clientId: `mqttjs-${Math.random().toString(16).slice(2, 10)}`,
    ...options,
  });
  clients.add(client);
  const inbox = new Inbox(client);
  return new Promise((resolve, reject) => {
    const onError = (e: Error): void => { client.end(true); reject(e); };
    client.once('error', onError);
    client.once('close', () => reject(new Error('connection closed before CONNACK')));
    client.once('connect', (connack: IConnackPacket) => {
      client.off('error', onError);
      client.removeAllListeners('close');
      resolve({ client, inbox, connack });
    });
  });
}

async function close(c: Connected): Promise<void> {
  await c.client.endAsync();
  clients.delete(c.client);
}

before(async () => {
  broker = await startBroker();
});

after(async () => {
  for (const c of clients) c.end(true);
  await broker?.stop();
});

for (const version of [4, 5] as const) {
  describe(`MQTT.js, protocol ${version}`, () => {
    for (const qos of [0, 1, 2] as const) {
      test(`QoS ${qos} round trip`, async () => {
        const topic = uniqueTopic(`qos${qos}`);
        const sub = await open(version);
        const pub = await open(version);
        const granted = await sub.client.subscribeAsync(topic, { qos });
        assert.deepEqual(granted.map((g) => g.qos), [qos]);
        await pub.client.publishAsync(topic, `hello-${qos}`, { qos });
        const [m] = await sub.inbox.count(1);
        assert.deepEqual(m, { topic, payload: `hello-${qos}`, qos, retain: false });
        await Promise.all([close(sub), close(pub)]);
      });
    }

    test('1,000 QoS 1 messages arrive complete and in order', async () => {
      const topic = uniqueTopic('ordered');
      const sub = await open(version);
      const pub = await open(version);
      await sub.client.subscribeAsync(topic, { qos: 1 });
      const n = 1000;
      // A sliding window of 10 unacknowledged publishes stays within any Receive Maximum the broker
      // announces while keeping the pipe full. MQTT.js sends in call order, so the wire order is 0..n-1.
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < n) {
          const i = next++;
          await pub.client.publishAsync(topic, String(i), { qos: 1 });
        }
      };
      await Promise.all(Array.from({ length: 10 }, worker));
      const got = await sub.inbox.count(n, 20000);
      assert.equal(got.length, n);
      // Ordered topic delivery for one publisher at one QoS [MQTT-4.6.0-6].
      assert.deepEqual(got.map((m) => m.payload), Array.from({ length: n }, (_, i) => String(i)));
      assert.ok(got.every((m) => m.qos === 1 && m.topic === topic));
      await Promise.all([close(sub), close(pub)]);
    });

    test('persistent session: messages published while offline arrive after the reconnect', async () => {
      const topic = uniqueTopic('persistent');
      const clientId = `mqttjs-persist-${version}-${process.pid}`;
      // v5: clean start off with a session expiry; v3.1.1: clean session off.
      const persistent: IClientOptions = version === 5
        ? { clientId, clean: false, properties: { sessionExpiryInterval: 300 } }
        : { clientId, clean: false };

      // Start from no session at all.
      await close(await open(version, { clientId, clean: true }));

      const first = await open(version, persistent);
      assert.equal(first.connack.sessionPresent, false);
      await first.client.subscribeAsync(topic, { qos: 1 });
      await close(first);

      const pub = await open(version);
      for (let i = 0; i < 5; i++) await pub.client.publishAsync(topic, `offline-${i}`, { qos: 1 });
      await close(pub);

      const second = await open(version, persistent);
      assert.equal(second.connack.sessionPresent, true);
      const got = await second.inbox.count(5);
      assert.deepEqual(got.map((m) => m.payload), ['offline-0', 'offline-1', 'offline-2', 'offline-3', 'offline-4']);
      assert.ok(got.every((m) => m.qos === 1 && m.topic === topic));

      // Still subscribed without subscribing again.
      const pub2 = await open(version);
      await pub2.client.publishAsync(topic, 'online', { qos: 1 });
      await second.inbox.until((m) => m.some((x) => x.payload === 'online'), 5000, 'online message');
      await Promise.all([close(second), close(pub2)]);
      await close(await open(version, { clientId, clean: true }));
    });

    test('$share groups: one member per group gets each message', async () => {
      const topic = uniqueTopic('shared');
      const g1 = [await open(version), await open(version), await open(version)];
      const g2 = [await open(version), await open(version)];
      for (const c of g1) await c.client.subscribeAsync(`$share/g1/${topic}`, { qos: 1 });
      for (const c of g2) await c.client.subscribeAsync(`$share/g2/${topic}`, { qos: 1 });
      const pub = await open(version);
      const payloads = Array.from({ length: 30 }, (_, i) => `s${i}`);
      for (const p of payloads) await pub.client.publishAsync(topic, p, { qos: 1 });

      const total = (group: readonly Connected[]): Received[] => group.flatMap((c) => c.inbox.messages);
      for (const [name, group] of [['g1', g1], ['g2', g2]] as const) {
        await untilAny(group.map((c) => c.inbox), () => total(group).length >= payloads.length, 5000, () => `group ${name}: ${total(group).length} messages`);
      }
      // Proving an absence: no duplicate may turn up a little later either.
      await new Promise((r) => setTimeout(r, 300));
      for (const [name, group] of [['g1', g1], ['g2', g2]] as const) {
        const got = total(group).map((m) => m.payload).sort();
        assert.deepEqual(got, [...payloads].sort(), `group ${name} must receive each message exactly once`);
        for (const m of total(group)) assert.equal(m.topic, topic, 'shared deliveries carry the original topic');
      }
      await Promise.all([...g1, ...g2, pub].map(close));
    });
  });
}
