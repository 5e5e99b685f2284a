/**
 * strictConnect on every transport the black-box tests use (mqtt://, mqtts:// with the tests' TLS options, ws://,
 * wss://, reconnects), and StrictRelay for clients in another process. Each fake server answers a client's first
 * MQTT bytes with a CONNACK and a PUBLISH carrying a Session Expiry Interval, which no PUBLISH may carry: the
 * checker must see exactly that PUBLISH (the MQTT bytes, not WebSocket frames or TLS records), at the level the
 * client's CONNECT gave, under the client's id.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer as createHttpsServer } from 'node:https';
import { connect as netConnect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, Server as TlsServer } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { WebSocket, WebSocketServer } from 'ws';
import { makeCertificates, type TestCertificates } from '../certs.js';
import { BAD_PUBLISH, CONNACK_V5, CONNECT_V5 } from './fixtures.js';
import { StrictRelay } from './relay.js';
import { strictChecker, strictConnect, takeViolations, tapWebSocket } from './tap.js';

const ANSWER = Buffer.concat([CONNACK_V5, BAD_PUBLISH]);

/** What every test expects the checker to have found: the one PUBLISH, `times` times. */
function expectBadPublish(clientId: string, times = 1): void {
  const found = takeViolations().map((v) => [v.rule, v.label, v.level, v.packet, v.hex]);
  const one = ['§2.2.2.2', `client "${clientId}"`, 5, 'PUBLISH', '30 0a 00 01 74 05 11 00 00 00 3c 78'];
  assert.deepEqual(found, Array.from({ length: times }, () => one));
}

/** Resolves with the topic of the client's first message. */
function firstMessage(client: MqttClient): Promise<string> {
  return new Promise((resolve) => client.once('message', (topic) => resolve(topic)));
}

/** Closes a node server and every socket it accepted. */
async function closeAll(server: Server, sockets: Set<Socket>): Promise<void> {
  for (const s of sockets) s.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** Makes `server` answer each connection's first bytes with ANSWER, and closes the connection once `hangUp`. */
function answering<S extends Server>(server: S, sockets: Set<Socket>, hangUp = false): S {
  // A TLS server's 'connection' is the raw socket; its clear text comes with 'secureConnection'.
  server.on(server instanceof TlsServer ? 'secureConnection' : 'connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    s.once('data', () => (hangUp ? s.end(ANSWER) : s.write(ANSWER)));
  });
  return server;
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

describe('strictConnect and StrictRelay', () => {
  let certs: TestCertificates;
  before(() => {
    certs = makeCertificates();
  });

  test('mqtt:// URL: host and port from the URL, CONNECT seen, the caller\'s manualConnect left as it was', async () => {
    const sockets = new Set<Socket>();
    const server = answering(createServer(), sockets);
    const port = await listen(server);
    after(() => closeAll(server, sockets));
    const client = strictConnect(`mqtt://127.0.0.1:${port}`, { protocolVersion: 5, clientId: 'tcp-url', reconnectPeriod: 0 });
    assert.equal(client.options.manualConnect, undefined);
    assert.equal(await firstMessage(client), 't');
    client.end(true);
    expectBadPublish('tcp-url');
  });

  test('reconnects are checked too: each new connection gets a checker of its own', async () => {
    const sockets = new Set<Socket>();
    const server = answering(createServer(), sockets, true);
    const port = await listen(server);
    after(() => closeAll(server, sockets));
    const client = strictConnect({ host: '127.0.0.1', port, protocolVersion: 5, clientId: 'again', reconnectPeriod: 20 });
    let messages = 0;
    await new Promise<void>((resolve) => client.on('message', () => ++messages === 2 && resolve()));
    client.end(true);
    expectBadPublish('again', 2);
  });

  test('mqtts:// with ca, cert, key, servername and rejectUnauthorized: the clear text is checked', async () => {
    const sockets = new Set<Socket>();
    const tls = { ca: certs.ca.certPem, cert: certs.server.certPem, key: certs.server.keyPem, requestCert: true };
    const server = answering(createTlsServer(tls), sockets);
    const port = await listen(server);
    after(() => closeAll(server, sockets));
    const client = strictConnect(`mqtts://127.0.0.1:${port}`, {
      protocolVersion: 5, clientId: 'tls', reconnectPeriod: 0, rejectUnauthorized: true, servername: 'localhost',
      ca: certs.ca.certPem, cert: certs.client.certPem, key: certs.client.keyPem,
    });
    assert.equal(await firstMessage(client), 't');
    client.end(true);
    expectBadPublish('tls');
  });

  for (const secure of [false, true]) {
    test(`${secure ? 'wss' : 'ws'}://: the MQTT bytes inside the WebSocket messages are checked, not the frames`, async () => {
      const https = secure ? createHttpsServer({ cert: certs.server.certPem, key: certs.server.keyPem }) : null;
      const wss = https !== null ? new WebSocketServer({ server: https }) : new WebSocketServer({ port: 0, host: '127.0.0.1' });
      let protocol = '';
      wss.on('connection', (ws) => {
        protocol = ws.protocol;
        ws.once('message', () => ws.send(ANSWER));
      });
      if (https !== null) await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve));
      else await once(wss, 'listening');
      const port = ((https ?? wss).address() as AddressInfo).port;
      after(async () => {
        for (const c of wss.clients) c.terminate();
        await new Promise<void>((resolve) => wss.close(() => resolve()));
        if (https !== null) await new Promise<void>((resolve) => https.close(() => resolve()));
      });
      const clientId = secure ? 'wss' : 'ws';
      const client = strictConnect(`${clientId}://127.0.0.1:${port}/mqtt`, { protocolVersion: 5, clientId, reconnectPeriod: 0, ca: certs.ca.certPem });
      assert.equal(await firstMessage(client), 't');
      assert.equal(protocol, 'mqtt', 'the mqtt subprotocol, as MQTT.js asks for it');
      client.end(true);
      expectBadPublish(clientId);
    });
  }

  test('tapWebSocket: a raw ws client\'s binary messages are checked, its text frames are not MQTT', async () => {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    const got: boolean[] = [];
    wss.on('connection', (ws) => ws.on('message', (_data, isBinary) => {
      got.push(isBinary);
      if (isBinary) ws.send(ANSWER);
    }));
    await once(wss, 'listening');
    after(async () => {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    });
    const ws = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}/mqtt`, 'mqtt');
    tapWebSocket(ws, strictChecker(4));
    await once(ws, 'open');
    // A text frame first: were it read as MQTT, the checker would take it for a 3.1.1 CONNECT of client "x".
    ws.send(Buffer.from('100d00044d5154540402003c000178', 'hex'), { binary: false });
    ws.send(CONNECT_V5);
    await once(ws, 'message');
    ws.terminate();
    assert.deepEqual(got, [false, true]);
    expectBadPublish('c');
  });

  test('StrictRelay: forwards both ways unchanged, checks the server side, closes the far side', async () => {
    const sockets = new Set<Socket>();
    let received = Buffer.alloc(0);
    let upstreamClosed!: Promise<unknown>;
    const server = createServer((s) => {
      sockets.add(s);
      upstreamClosed = once(s, 'close');
      s.on('data', (d: Buffer) => {
        received = Buffer.concat([received, d]);
        if (received.length === CONNECT_V5.length) s.write(ANSWER);
      });
    });
    const port = await listen(server);
    const relay = await StrictRelay.start(port);
    after(async () => {
      await relay.close();
      await closeAll(server, sockets);
    });
    const client = netConnect({ host: '127.0.0.1', port: relay.port });
    client.write(CONNECT_V5);
    let got = Buffer.alloc(0);
    await new Promise<void>((resolve) => client.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length >= ANSWER.length) resolve();
    }));
    assert.deepEqual(got, ANSWER);
    assert.deepEqual(received, CONNECT_V5);
    client.destroy();
    await upstreamClosed;
    expectBadPublish('c');
  });
});
