/**
 * The WebSocket listener in process: what reaches the connection code. A text frame never does (its bytes
 * are not pushed into the MQTT stream, which is closed); binary frames do; an upgrade without the `mqtt`
 * subprotocol never gets a connection at all.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import type { Peer } from '../connection/connection.js';
import { WebSocketListener } from './websocket.js';

const accepted: { stream: Duplex; peer: Peer; data: Buffer[]; closed: Promise<void> }[] = [];
let listener: WebSocketListener;
let url = '';

before(async () => {
  listener = new WebSocketListener('127.0.0.1', 0, '/mqtt', 1024, (stream, peer) => {
    const data: Buffer[] = [];
    stream.on('data', (d: Buffer) => data.push(d));
    stream.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => stream.once('close', () => resolve()));
    accepted.push({ stream, peer, data, closed });
  });
  url = `ws://127.0.0.1:${(await listener.listen()).port}/mqtt`;
});

after(async () => {
  await listener.close();
});

async function open(protocols: string[]): Promise<WebSocket> {
  const ws = new WebSocket(url, protocols);
  ws.on('error', () => undefined);
  await once(ws, 'open');
  return ws;
}

test('binary frames reach the stream; a text frame does not, and closes it', async () => {
  const ws = await open(['mqtt']);
  ws.send(Buffer.from([0xc0, 0x00]));
  const server = accepted.at(-1);
  assert.ok(server);
  while (server.data.length === 0) await once(server.stream, 'data');
  ws.send(Buffer.from('text after binary'), { binary: false });
  await server.closed;
  assert.deepEqual(Buffer.concat(server.data), Buffer.from([0xc0, 0x00]), 'the text frame reached the MQTT stream');
});

test('an upgrade offering no mqtt subprotocol gets 400 and no connection', async () => {
  const before = accepted.length;
  const ws = new WebSocket(url, ['foo']);
  ws.on('error', () => undefined); // terminate() before an open reports one
  const [, res] = (await once(ws, 'unexpected-response')) as [unknown, { statusCode: number }];
  assert.equal(res.statusCode, 400);
  ws.terminate();
  assert.equal(accepted.length, before);
});
