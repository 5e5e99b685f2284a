/**
 * MQTT over WebSocket (`ws.path`, default /mqtt): MQTT.js over ws:// exchanges messages with a TCP client
 * both ways for protocol 4 and 5; the `mqtt` subprotocol is echoed in the handshake (`mqttv3.1` for MQTT 3.1
 * clients); an upgrade that does not offer either, or on another path, is refused; MQTT in a text frame
 * closes the connection unanswered.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { IClientOptions, IPublishPacket, MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import WebSocket from 'ws';
import { startBroker, type RunningBroker } from './helpers/broker.js';
import { strictChecker, strictConnect, tapWebSocket } from './helpers/strict/tap.js';

const AGAINST_MOSQUITTO = process.env['SMQ_TEST_AGAINST'] === 'mosquitto';

/** One received message. */
interface Received {
  topic: string;
  payload: string;
  qos: number;
}

let broker: RunningBroker;
let wsUrl: string;
let seq = 0;
const clients = new Set<MqttClient>();

function uniqueTopic(name: string): string {
  seq += 1;
  return `ws/${process.pid}/${seq}/${name}`;
}

/** A connected MQTT.js client with the messages it received and a way to wait for the next one. */
interface Opened {
  client: MqttClient;
  received: Received[];
  next(timeoutMs?: number): Promise<Received>;
}

function open(url: string, options: IClientOptions): Promise<Opened> {
  const client = strictConnect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options });
  clients.add(client);
  const received: Received[] = [];
  const waiters: ((m: Received) => void)[] = [];
  client.on('message', (topic: string, payload: Buffer, packet: IPublishPacket) => {
    const m = { topic, payload: payload.toString(), qos: packet.qos };
    const w = waiters.shift();
    if (w) w(m);
    else received.push(m);
  });
  const next = (timeoutMs = 5000): Promise<Received> => {
    const queued = received.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        waiters.splice(waiters.indexOf(w), 1);
        reject(new Error(`no message within ${timeoutMs} ms`));
      }, timeoutMs);
      const w = (m: Received): void => { clearTimeout(t); resolve(m); };
      waiters.push(w);
    });
  };
  return new Promise((resolve, reject) => {
    client.once('error', reject);
    client.once('connect', () => {
      client.off('error', reject);
      resolve({ client, received, next });
    });
  });
}

/** Opens a raw WebSocket; resolves with the socket once open, or with the HTTP status if the upgrade is refused. */
function rawWs(url: string, protocols: string | string[]): Promise<{ ws?: WebSocket; status?: number; error?: Error }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, protocols);
    tapWebSocket(ws, strictChecker(4));
    const t = setTimeout(() => { ws.terminate(); resolve({ error: new Error('no answer to the upgrade within 5 s') }); }, 5000);
    ws.once('open', () => { clearTimeout(t); resolve({ ws }); });
    ws.once('unexpected-response', (_req, res) => {
      clearTimeout(t);
      res.resume();
      ws.terminate();
      resolve({ status: res.statusCode ?? 0 });
    });
    ws.once('error', (error) => { clearTimeout(t); resolve({ error }); });
  });
}

/** `promise`, or a rejection naming `what` after `ms`: a broker that never closes fails the test, not hangs it. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what} not within ${ms} ms`)), ms); });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

before(async () => {
  broker = await startBroker({ config: { ws: { enable: true, port: 0, path: '/mqtt' } } });
  assert.ok(broker.wsPort, 'the broker reported no ws listener');
  wsUrl = `ws://127.0.0.1:${broker.wsPort}/mqtt`;
});

after(async () => {
  for (const c of clients) c.end(true);
  await broker?.stop();
});

for (const protocolVersion of [4, 5] as const) {
  describe(`MQTT over WebSocket, protocol ${protocolVersion}`, () => {
    test('WebSocket subscriber receives from a TCP publisher', async () => {
      const topic = uniqueTopic('to-ws');
      const ws = await open(wsUrl, { protocolVersion });
      const tcp = await open(`mqtt://127.0.0.1:${broker.port}`, { protocolVersion });
      await ws.client.subscribeAsync(topic, { qos: 1 });
      await tcp.client.publishAsync(topic, 'from tcp', { qos: 1 });
      assert.deepEqual(await ws.next(), { topic, payload: 'from tcp', qos: 1 });
      // A 100 KB packet goes out in several writes and must still arrive whole. (Mosquitto's
      // libwebsockets takes seconds over it, hence the long wait.)
      const big = 'x'.repeat(100_000);
      await tcp.client.publishAsync(topic, big, { qos: 0 });
      const m = await ws.next(15000);
      assert.equal(m.payload.length, big.length);
      await Promise.all([ws.client.endAsync(), tcp.client.endAsync()]);
    });

    test('TCP subscriber receives from a WebSocket publisher', async () => {
      const topic = uniqueTopic('to-tcp');
      const ws = await open(wsUrl, { protocolVersion });
      const tcp = await open(`mqtt://127.0.0.1:${broker.port}`, { protocolVersion });
      await tcp.client.subscribeAsync(topic, { qos: 2 });
      await ws.client.publishAsync(topic, 'from ws', { qos: 2 });
      assert.deepEqual(await tcp.next(), { topic, payload: 'from ws', qos: 2 });
      await Promise.all([ws.client.endAsync(), tcp.client.endAsync()]);
    });
  });
}

describe('WebSocket handshake', () => {
  test('the mqtt subprotocol is echoed, and MQTT flows in binary frames', async () => {
    const { ws, status, error } = await rawWs(wsUrl, 'mqtt');
    assert.ok(ws, `upgrade refused: status ${status}, ${error?.message}`);
    assert.equal(ws.protocol, 'mqtt');
    const connack = new Promise<mqttPacket.Packet>((resolve, reject) => {
      const parser = mqttPacket.parser({ protocolVersion: 4 });
      parser.once('packet', resolve);
      parser.once('error', reject);
      ws.on('message', (data: Buffer) => parser.parse(data));
      setTimeout(() => reject(new Error('no CONNACK within 5 s')), 5000).unref();
    });
    ws.send(mqttPacket.generate({
      cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: `ws-raw-${process.pid}`, clean: true, keepalive: 30,
    }));
    const p = await connack;
    assert.equal(p.cmd, 'connack');
    assert.equal((p as mqttPacket.IConnackPacket).returnCode, 0);
    ws.close();
  });

  for (const offered of [['mqttv3.1'], ['foo', 'mqttv3.1', 'mqtt']]) {
    test(`offering ${offered.join(', ')}: the server selects ${offered.includes('mqtt') ? 'mqtt' : 'mqttv3.1'}`, async () => {
      const { ws, status, error } = await rawWs(wsUrl, offered);
      assert.ok(ws, `upgrade refused: status ${status}, ${error?.message}`);
      assert.equal(ws.protocol, offered.includes('mqtt') ? 'mqtt' : 'mqttv3.1'); // [MQTT-6.0.0-4]
      ws.close();
    });
  }

  // [MQTT-6.0.0-3] a client must offer "mqtt"; one that offers only others, or none, is not an MQTT client.
  for (const offered of [['foo'], []]) {
    test(`an upgrade offering ${offered.length === 0 ? 'no subprotocol' : 'only "foo"'} is refused with an HTTP error`, async () => {
      const { ws, status, error } = await rawWs(wsUrl, offered);
      ws?.terminate();
      assert.equal(ws, undefined, 'the upgrade was accepted');
      assert.equal(status, 400, `status ${status}, error ${error?.message}`);
    });
  }

  for (const protocolVersion of [4, 5] as const) {
    test(`a CONNECT in a text frame closes the connection unanswered, protocol ${protocolVersion}`, async () => {
      const { ws, status, error } = await rawWs(wsUrl, 'mqtt');
      assert.ok(ws, `upgrade refused: status ${status}, ${error?.message}`);
      const answers: Buffer[] = [];
      ws.on('message', (data: Buffer) => answers.push(data));
      const closed = new Promise<number>((resolve) => ws.once('close', (code: number) => resolve(code)));
      const connect = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion, clientId: `ws-text-${protocolVersion}`, clean: true, keepalive: 30 });
      ws.send(connect, { binary: false }); // [MQTT-6.0.0-1] only binary frames carry MQTT
      const code = await within(closed, 5000, 'the close');
      assert.deepEqual(answers, [], 'the broker answered a CONNECT sent in a text frame');
      assert.ok(code === 1003 || code === 1006, `close code ${code}`);
    });
  }

  test('a text frame after a binary CONNECT closes the connection too', async () => {
    const { ws, status, error } = await rawWs(wsUrl, 'mqtt');
    assert.ok(ws, `upgrade refused: status ${status}, ${error?.message}`);
    const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
    const connack = new Promise<void>((resolve) => ws.once('message', () => resolve()));
    ws.send(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: `ws-text-late-${process.pid}`, clean: true, keepalive: 30 }));
    await within(connack, 5000, 'the CONNACK');
    // A QoS 0 PUBLISH whose bytes are all ASCII: valid UTF-8, so only the frame type can close the connection.
    const publish = mqttPacket.generate({ cmd: 'publish', topic: 't', payload: Buffer.from('x'), qos: 0, retain: false, dup: false });
    assert.ok(publish.every((b) => b < 0x80));
    ws.send(publish, { binary: false });
    await within(closed, 5000, 'the close');
  });

  test('an upgrade on another path is refused', { skip: AGAINST_MOSQUITTO && 'mosquitto serves MQTT on every path' }, async () => {
    const { ws, status, error } = await rawWs(`ws://127.0.0.1:${broker.wsPort}/not-mqtt`, 'mqtt');
    ws?.terminate();
    assert.equal(ws, undefined, 'the upgrade on /not-mqtt was accepted');
    // Either an HTTP error status (404 is usual) or a dropped connection.
    assert.ok((status !== undefined && status >= 400) || error !== undefined, `status ${status}, error ${error?.message}`);
  });
});
