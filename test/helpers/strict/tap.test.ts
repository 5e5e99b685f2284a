/**
 * The strict checker's wiring into the test clients (tap.ts): a RawClient, a tapped socket and an MQTT.js client
 * made by strictMqtt, each against a fake server on loopback that answers CONNECT with a CONNACK and then a PUBLISH
 * carrying a Session Expiry Interval (the forwarded-property bug of issue 16). The violation must be recorded
 * with the client's id and reported by assertStrict, and a well-behaved exchange must report nothing.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as netConnect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { RawClient } from '../raw.js';
import { BAD_PUBLISH, bytes, CONNACK_V5, CONNECT_V5 } from './fixtures.js';
import { assertStrict, strictChecker, strictMqtt, takeViolations, tapStream } from './tap.js';

/** What the fake server sends after the client's first bytes. */
let answer: Buffer = CONNACK_V5;

const GOOD_PUBLISH = bytes('30 05 00 01 74 00 78 # PUBLISH QoS 0, topic "t", no properties, payload "x"');

describe('strict checker in the test clients', () => {
  let server: Server;
  let port = 0;
  const sockets = new Set<Socket>();

  before(async () => {
    server = createServer((s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
      s.once('data', () => s.write(answer));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  test('RawClient: both directions are seen, the violation names the client', async () => {
    answer = Buffer.concat([CONNACK_V5, BAD_PUBLISH]);
    const { client } = await RawClient.connected(port, 5, { clientId: 'raw-tapped' });
    await client.next('publish');
    client.destroy();
    assert.throws(() => assertStrict('the RawClient test'), (err: Error) => {
      assert.match(err.message, /1 packet\(s\) that break the MQTT specification \(strict checker, the RawClient test\)/);
      assert.match(err.message, /§2\.2\.2\.2 client "raw-tapped" PUBLISH #2 \(level 5\): Session Expiry Interval \(0x11\) is not a PUBLISH property/);
      assert.match(err.message, /30 0a 00 01 74 05 11 00 00 00 3c 78/);
      return true;
    });
    assert.deepEqual(takeViolations(), [], 'reported once');
  });

  test('MQTT.js through strictMqtt: the CONNECT is seen too (level 5 learnt from it)', async () => {
    answer = Buffer.concat([CONNACK_V5, BAD_PUBLISH]);
    const client = strictMqtt(port, { protocolVersion: 5, clientId: 'js-tapped', reconnectPeriod: 0 });
    const got = new Promise<string>((resolve) => client.once('message', (topic) => resolve(topic)));
    assert.equal(await got, 't');
    client.end(true);
    const found = takeViolations();
    assert.deepEqual(found.map((v) => [v.rule, v.label, v.level]), [['§2.2.2.2', 'client "js-tapped"', 5]]);
  });

  test('tapStream: bytes written by end(chunk) are seen too (Writable.end does not call write())', async () => {
    answer = Buffer.concat([CONNACK_V5, BAD_PUBLISH]);
    const socket = netConnect({ host: '127.0.0.1', port });
    tapStream(socket, strictChecker(4));
    socket.on('data', () => undefined);
    socket.end(CONNECT_V5);
    await once(socket, 'close');
    // Unseen, the CONNECT would leave the checker at 3.1.1, reading the v5 CONNACK as malformed.
    assert.deepEqual(takeViolations().map((v) => [v.rule, v.label, v.level]), [['§2.2.2.2', 'client "c"', 5]]);
  });

  test('a well-formed exchange reports nothing', async () => {
    answer = Buffer.concat([CONNACK_V5, GOOD_PUBLISH]);
    const { client } = await RawClient.connected(port, 5, { clientId: 'raw-clean' });
    await client.next('publish');
    client.destroy();
    assert.doesNotThrow(() => assertStrict('the clean exchange'));
  });
});
