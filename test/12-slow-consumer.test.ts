/**
 * Slow consumers (`mqtt.max_output_buffer`, `mqtt.slow_consumer_timeout`): a subscriber that stops reading
 * while a publisher floods its topic is disconnected once its output buffer has stayed full for the timeout,
 * instead of the broker buffering without bound; the publisher, a normal subscriber and new clients are not
 * affected, and the broker's memory stays bounded.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { startBroker, type RunningBroker } from './helpers/broker.js';
import { RawClient } from './helpers/raw.js';
import { strictConnect } from './helpers/strict/tap.js';

const AGAINST_MOSQUITTO = process.env['SMQ_TEST_AGAINST'] === 'mosquitto';

/** Flood bounds: at most this many 10 KB messages (200 MB), and at most this long. */
const MAX_MESSAGES = 20_000;
const MAX_FLOOD_MS = 15_000;
const PAYLOAD_BYTES = 10 * 1024;
/** Messages written per pacing step, and the pause between steps (about 20 MB/s). */
const BATCH = 20;
const STEP_MS = 10;
/** The broker may hold well under this much while one client is stuck (its own footprint included). */
const RSS_LIMIT_BYTES = 256 * 1024 * 1024;

/** Resident set size of a process, from /proc (Linux). */
function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

/** Waits for 'drain' on a socket whose write() returned false; fails if it does not come in time. */
function drained(socket: Socket, timeoutMs: number, why: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      socket.off('drain', done);
      reject(new Error(why()));
    }, timeoutMs);
    const done = (): void => {
      clearTimeout(t);
      resolve();
    };
    socket.once('drain', done);
  });
}

function pause(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

let broker: RunningBroker;

before(async () => {
  if (AGAINST_MOSQUITTO) return;
  broker = await startBroker({ config: { mqtt: { max_output_buffer: 65536, slow_consumer_timeout: 1 } } });
});

after(async () => {
  await broker?.stop();
});

describe('slow consumer', { skip: AGAINST_MOSQUITTO && 'smq-specific: mosquitto has no slow-consumer timeout' }, () => {
  test('a subscriber that stops reading is disconnected; everyone else keeps working', async () => {
    const topic = `slow/${process.pid}/flood`;
    const slowId = `slow-consumer-${process.pid}`;

    // The slow subscriber: subscribes, then stops reading from its socket.
    const { client: slow } = await RawClient.connected(broker.port, 4, { clientId: slowId });
    slow.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 0 }] });
    await slow.next('suback');
    slow.socket.pause();

    // A normal subscriber to the same topic, counting what it receives without keeping it.
    const normal: MqttClient = strictConnect(`mqtt://127.0.0.1:${broker.port}`, { protocolVersion: 4, reconnectPeriod: 0, clientId: `normal-${process.pid}` });
    let normalCount = 0;
    let normalClosed = false;
    const endSeen = new Promise<void>((resolve) => {
      normal.on('message', (t: string) => {
        if (t === `${topic}/end`) resolve();
        else if (t === topic) normalCount++;
      });
    });
    normal.on('close', () => { normalClosed = true; });
    await new Promise<void>((resolve, reject) => { normal.once('connect', () => resolve()); normal.once('error', reject); });
    // `topic/#` matches the flood topic itself and its `/end` marker.
    await normal.subscribeAsync(`${topic}/#`, { qos: 0 });

    // The publisher writes one pre-encoded 10 KB QoS 0 PUBLISH over and over, honouring backpressure.
    const { client: pub } = await RawClient.connected(broker.port, 4, { clientId: `flooder-${process.pid}` });
    const publish = mqttPacket.generate({ cmd: 'publish', topic, payload: Buffer.alloc(PAYLOAD_BYTES, 0x61), qos: 0, retain: false, dup: false });

    // A paused socket never sees the broker's FIN (it waits behind the unread data), so the flood stops on
    // the broker's log record; the socket is then resumed to see the close itself.
    const slowRecord = (r: Record<string, unknown>): boolean => /slow/i.test(String(r['msg'])) && JSON.stringify(r).includes(slowId);
    const pid = broker.proc.pid!;
    const baseRss = rssBytes(pid);
    let maxRss = baseRss;
    let sent = 0;
    const started = Date.now();
    while (!broker.logs.some(slowRecord) && sent < MAX_MESSAGES && Date.now() - started < MAX_FLOOD_MS) {
      for (let i = 0; i < BATCH && sent < MAX_MESSAGES; i++) {
        sent++;
        if (!pub.socket.write(publish)) await drained(pub.socket, 10_000, () => `publisher blocked: the broker stopped reading it (sent ${sent})`);
      }
      maxRss = Math.max(maxRss, rssBytes(pid));
      // Pacing, not hoping: it spreads the flood over time so the timeout can pass mid-flood.
      await pause(STEP_MS);
    }
    const floodMs = Date.now() - started;
    const diag = `sent ${sent} in ${floodMs} ms; normal got ${normalCount}; rss ${Math.round(baseRss / 1e6)} → max ${Math.round(maxRss / 1e6)} MB`;

    // The broker says why it dropped the client (if the flood ended first, the timeout still runs out)...
    await broker.waitForLog(slowRecord, 10_000).catch((e: Error) => { throw new Error(`no slow-consumer log record: ${e.message}; ${diag}`); });
    // ...and the slow client's connection is closed: reading again, it gets the backlog and then the end.
    slow.socket.resume();
    await slow.expectClosed(10_000).catch((e: Error) => { throw new Error(`slow client not closed: ${e.message}; ${diag}`); });

    // The broker is alive, its memory stayed bounded, and it still accepts new connections.
    assert.equal(broker.proc.exitCode, null, 'broker exited');
    assert.ok(maxRss < RSS_LIMIT_BYTES, `broker RSS grew too much: ${diag}`);
    const { client: fresh, connack } = await RawClient.connected(broker.port, 5);
    assert.equal(connack.reasonCode ?? 0, 0);
    fresh.destroy();

    // The publisher and the normal subscriber kept working: a QoS 1 marker goes through end to end.
    assert.ok(pub.isOpen, `publisher was disconnected; ${diag}`);
    pub.send({ cmd: 'publish', topic: `${topic}/end`, payload: Buffer.from('end'), qos: 1, messageId: 7, retain: false, dup: false });
    const ack = await pub.next('puback', 10_000);
    assert.equal(ack.cmd, 'puback');
    let t: NodeJS.Timeout | undefined;
    await Promise.race([endSeen, new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`normal subscriber never got the end marker; ${diag}`)), 10_000); })]);
    clearTimeout(t);
    assert.equal(normalClosed, false, `normal subscriber was disconnected; ${diag}`);
    assert.ok(normalCount > 0, diag);

    pub.destroy();
    await normal.endAsync();
  });
});
