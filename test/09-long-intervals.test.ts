/**
 * 09 long intervals: intervals a v5 client may choose go up to 2^32-1 seconds, but Node's timers take at most
 * 2^31-1 ms (24.8 days) and fire at once beyond (TimeoutOverflowWarning). A Session Expiry Interval of 30 days
 * used to end the session, and every message queued for it, the moment its client disconnected; a Will Delay
 * Interval of 30 days published the will at once. Each is honoured here, also across a restart from the store.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import type mqtt from 'mqtt-packet';
import { startBroker, type RunningBroker } from './helpers/broker.js';
import { ClientPool, pid, receive, subscribe, text, uid } from './helpers/c1.js';
import type { RawClient } from './helpers/raw.js';

const T = { timeout: 30000 };
const DAY = 86400;

/** Publishes at QoS 1 from a fresh client and waits for the PUBACK. */
async function publish(pool: ClientPool, port: number, topic: string, payload: string): Promise<void> {
  const { client } = await pool.connect(port, 5);
  const messageId = pid();
  client.send({ cmd: 'publish', topic, payload, qos: 1, messageId, dup: false, retain: false });
  assert.equal(((await client.next('puback')) as mqtt.IPubackPacket).messageId, messageId);
}

/** Ends a connection without DISCONNECT (the will goes) and waits until the broker has noticed. */
async function drop(broker: RunningBroker, c: RawClient, clientId: string): Promise<void> {
  const since = broker.logs.length;
  c.socket.destroy();
  await broker.waitForLog((r) => r['msg'] === 'client disconnected' && r['clientId'] === clientId && broker.logs.indexOf(r) >= since);
}

describe('09 long intervals', () => {
  const dir = mkdtempSync(join(tmpdir(), 'smq-09-'));
  let broker: RunningBroker;
  const pool = new ClientPool();

  before(async () => { broker = await startBroker({ config: { store: { dir } } }); });
  after(async () => { await broker?.stop(); });
  afterEach(() => pool.closeAll());

  /** A persistent session with a subscription, left with a QoS 1 message queued; returns its topic. */
  async function away(clientId: string, connectExpiry: number, disconnectExpiry?: number): Promise<string> {
    const topic = uid('long');
    const { client, connack } = await pool.connect(broker.port, 5, { clientId, clean: true, properties: { sessionExpiryInterval: connectExpiry } });
    assert.equal(connack.properties?.sessionExpiryInterval, undefined, 'the broker keeps the interval asked for');
    await subscribe(client, [{ topic, qos: 1 }]);
    client.send({ cmd: 'disconnect', ...(disconnectExpiry === undefined ? {} : { properties: { sessionExpiryInterval: disconnectExpiry } }) });
    await client.closed;
    await publish(pool, broker.port, topic, 'queued');
    return topic;
  }

  /** The client comes back: its session is there, with the queued message. */
  async function back(clientId: string): Promise<void> {
    const { client, connack } = await pool.connect(broker.port, 5, { clientId, clean: false, properties: { sessionExpiryInterval: 60 } });
    assert.equal(connack.sessionPresent, true, 'the session outlived its disconnect');
    assert.equal(text(await receive(client)), 'queued');
  }

  it('a Session Expiry Interval of 30 days keeps the session and its queue', T, async () => {
    const id = uid('s30');
    await away(id, 30 * DAY);
    await back(id);
  });

  it('1 day at CONNECT, then 999,999,999 s at DISCONNECT, keeps the session', T, async () => {
    const id = uid('s999');
    await away(id, DAY, 999_999_999);
    await back(id);
  });

  it('the largest interval below "never" (2^32-2 s) keeps the session, also after a restart from the store', T, async () => {
    const id = uid('smax');
    await away(id, 0xfffffffe);
    assert.equal(await broker.stop('SIGKILL'), null);
    broker = await startBroker({ config: { store: { dir } } });
    await back(id);
  });

  it('a Will Delay Interval of 30 days is not published when the connection drops', T, async () => {
    const topic = uid('will');
    const { client: watcher } = await pool.connect(broker.port, 5);
    await subscribe(watcher, [{ topic, qos: 1 }]);
    const id = uid('w30');
    const { client } = await pool.connect(broker.port, 5, {
      clientId: id,
      properties: { sessionExpiryInterval: 40 * DAY },
      will: { topic, payload: Buffer.from('will'), qos: 1, retain: false, properties: { willDelayInterval: 30 * DAY } },
    });
    await drop(broker, client, id);
    await publish(pool, broker.port, topic, 'marker');
    assert.equal(text(await receive(watcher)), 'marker', 'no will before the marker');
    // The client's return within the delay cancels the will for good [MQTT-3.1.3-9].
    const { connack } = await pool.connect(broker.port, 5, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } });
    assert.equal(connack.sessionPresent, true);
  });
});
