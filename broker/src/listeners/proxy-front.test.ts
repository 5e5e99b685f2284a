/**
 * In-process tests of the PROXY front door on real loopback sockets: the client's address reaches the
 * connection code, the bytes after the header are not lost (MQTT, a TLS ClientHello, an HTTP upgrade sent in
 * the same write), an untrusted peer is served as a direct client, and every way of failing the header ends
 * the connection with a counted reason and never reaches the connection code.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as netConnect, type Server, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { makeCertificates, type TestCertificates } from '../../../test/helpers/certs.js';
import { DEFAULTS } from '../config/defaults.js';
import type { Peer } from '../connection/connection.js';
import { CertificateStore } from './certificates.js';
import type { ProxyOptions, ProxyRefusal } from './proxy-front.js';
import { V2_SIGNATURE } from './proxy-protocol.js';
import { TcpListener } from './tcp.js';
import { TlsListener } from './tls.js';
import { TrustedProxies } from './trusted-proxies.js';
import type { Listener } from './types.js';
import { WebSocketListener } from './websocket.js';

const CONNECT = Buffer.from([0x10, 0x0d, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3c, 0x00, 0x01, 0x61]);
const V1 = Buffer.from('PROXY TCP4 192.0.2.10 127.0.0.1 51000 1883\r\n');
const LOCAL = Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);

let certs: TestCertificates;
const listeners: Listener[] = [];
before(() => {
  certs = makeCertificates();
});
after(async () => {
  for (const l of listeners) await l.close();
});

/** Records what a listener hands over and what its front refuses. */
class Recorder {
  readonly refused: ProxyRefusal[] = [];
  readonly logs: Record<string, unknown>[] = [];
  private readonly accepted: { stream: Duplex; peer: Peer }[] = [];
  private wake: (() => void) | null = null;

  options(timeoutMs = 2000): ProxyOptions {
    const log = pino({ level: 'debug' }, { write: (line: string) => this.logs.push(JSON.parse(line) as Record<string, unknown>) });
    return {
      trusted: new TrustedProxies(['127.0.0.1/32']), protocol: true, headerTimeoutMs: timeoutMs, log,
      refused: (reason) => this.refused.push(reason),
    };
  }

  readonly onConnection = (stream: Duplex, peer: Peer): void => {
    this.accepted.push({ stream, peer });
    this.wake?.();
  };

  async next(timeoutMs = 5000): Promise<{ stream: Duplex; peer: Peer }> {
    const deadline = Date.now() + timeoutMs;
    while (this.accepted.length === 0) {
      if (Date.now() > deadline) throw new Error('no connection handed over');
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 50);
      });
    }
    return this.accepted.shift() as { stream: Duplex; peer: Peer };
  }

  get handedOver(): number {
    return this.accepted.length;
  }
}

async function tcpListener(rec: Recorder, timeoutMs?: number): Promise<number> {
  const l = new TcpListener('127.0.0.1', 0, rec.onConnection, rec.options(timeoutMs));
  listeners.push(l);
  return (await l.listen()).port;
}

async function open(port: number, localAddress = '127.0.0.1'): Promise<Socket> {
  const s = netConnect({ port, host: '127.0.0.1', localAddress });
  s.on('error', () => undefined);
  await once(s, 'connect');
  return s;
}

/** Resolves when the socket has closed, however (a reset is an 'error' first, which once() would reject on). */
function closeOf(s: Socket): Promise<void> {
  return new Promise((resolve) => s.once('close', () => resolve()));
}

/** Reads `n` bytes from a stream handed to the connection code. */
async function read(stream: Duplex, n: number): Promise<Buffer> {
  let got = Buffer.alloc(0);
  while (got.length < n) got = Buffer.concat([got, (await once(stream, 'data'))[0] as Buffer]);
  return got;
}

describe('ProxyFront on the TCP listener', () => {
  test('a header and MQTT in one write: the source address reaches the connection, the CONNECT intact', async () => {
    const rec = new Recorder();
    const s = await open(await tcpListener(rec));
    s.write(Buffer.concat([V1, CONNECT]));
    const { stream, peer } = await rec.next();
    assert.deepEqual(peer, { transport: 'tcp', remoteAddress: '192.0.2.10' });
    assert.deepEqual(await read(stream, CONNECT.length), CONNECT);
    s.destroy();
  });

  test('a header dribbled a byte at a time, then MQTT', async () => {
    const rec = new Recorder();
    const s = await open(await tcpListener(rec));
    s.setNoDelay(true);
    for (const b of V1) {
      s.write(Buffer.from([b]));
      await new Promise((r) => setImmediate(r));
    }
    s.write(CONNECT);
    const { stream, peer } = await rec.next();
    assert.equal(peer.remoteAddress, '192.0.2.10');
    assert.deepEqual(await read(stream, CONNECT.length), CONNECT);
    s.destroy();
  });

  test('v2 LOCAL (a health check) keeps the peer address', async () => {
    const rec = new Recorder();
    const s = await open(await tcpListener(rec));
    s.write(Buffer.concat([LOCAL, CONNECT]));
    const { stream, peer } = await rec.next();
    assert.equal(peer.remoteAddress, '127.0.0.1');
    assert.deepEqual(await read(stream, CONNECT.length), CONNECT);
    s.destroy();
  });

  test('an untrusted peer is a direct client: its header is not read, it is the first bytes of its stream', async () => {
    const rec = new Recorder();
    const s = await open(await tcpListener(rec), '127.0.0.2');
    s.write(V1);
    const { stream, peer } = await rec.next();
    assert.equal(peer.remoteAddress, '127.0.0.2');
    assert.deepEqual(await read(stream, V1.length), V1);
    assert.deepEqual(rec.refused, []);
    s.destroy();
  });

  const failures: [ProxyRefusal, (s: Socket) => void][] = [
    ['missing', (s) => s.write(CONNECT)],
    ['malformed', (s) => s.write('PROXY TCP4 192.0.2.10 127.0.0.1 51000\r\n')],
    ['too_long', (s) => s.write(`PROXY UNKNOWN ${'f'.repeat(120)}`)],
    ['timeout', (s) => s.write(V1.subarray(0, 10))],
    ['closed', (s) => s.end(V1.subarray(0, 10))],
  ];
  test('a missing, malformed, endless, too slow or abandoned header closes the connection and is counted', async () => {
    const rec = new Recorder();
    const port = await tcpListener(rec, 300);
    for (const [reason, send] of failures) {
      const s = await open(port);
      const closed = closeOf(s);
      send(s);
      await closed;
      assert.equal(rec.refused.at(-1), reason);
    }
    assert.deepEqual(rec.refused, failures.map(([r]) => r));
    assert.equal(rec.handedOver, 0, 'no refused connection reached the connection code');
    // Logged at info once, then at debug: a broken proxy must not flood the log.
    const logged = rec.logs.filter((r) => String(r['msg']).startsWith('proxy header refused'));
    assert.deepEqual(logged.map((r) => [r['level'], r['reason']]), [[30, 'missing'], [20, 'malformed'], [20, 'too_long'], [20, 'timeout'], [20, 'closed']]);
  });

  test('closing the listener closes connections still owing their header', async () => {
    const rec = new Recorder();
    const l = new TcpListener('127.0.0.1', 0, rec.onConnection, rec.options(60_000));
    const s = await open((await l.listen()).port);
    s.write(V1.subarray(0, 5));
    const closed = closeOf(s);
    // Wait until the front has accepted the socket, so the close below is what ends it.
    const server = (l as unknown as { server: Server }).server;
    while (await new Promise<number>((r) => server.getConnections((_e, n) => r(n))) === 0) await new Promise((r) => setImmediate(r));
    await l.close();
    await closed;
  });
});

/** A client-side stream whose first write goes out glued to `header`: one TCP write, header and ClientHello. */
function gluedTo(header: Buffer, port: number): Duplex {
  const raw = netConnect({ port, host: '127.0.0.1' });
  let first = true;
  const d = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      raw.write(first ? Buffer.concat([header, chunk]) : chunk, cb);
      first = false;
    },
    final(cb) {
      raw.end();
      cb();
    },
    destroy(err, cb) {
      raw.destroy();
      cb(err);
    },
  });
  raw.on('data', (c: Buffer) => d.push(c));
  raw.on('end', () => d.push(null));
  raw.on('error', (e) => d.destroy(e));
  return d;
}

describe('ProxyFront before TLS and HTTP', () => {
  test('TLS: a header glued to the ClientHello; mutual TLS still identifies the client', async () => {
    const rec = new Recorder();
    const log = pino({ level: 'silent' });
    const store = new CertificateStore({ ...DEFAULTS.tls, enable: true, cert: certs.server.cert, key: certs.server.key, verify: true, ca: certs.ca.cert }, log);
    const l = new TlsListener('127.0.0.1', 0, { store, verify: true, handshakeTimeoutMs: 2000, log }, rec.onConnection, rec.options());
    listeners.push({ listen: () => l.listen(), close: async () => { store.close(); await l.close(); } });
    const { port } = await l.listen();
    const c = tlsConnect({ socket: gluedTo(V1, port), ca: certs.ca.certPem, cert: certs.client.certPem, key: certs.client.keyPem, servername: 'localhost' });
    await once(c, 'secureConnect');
    c.write(CONNECT);
    const { stream, peer } = await rec.next();
    assert.deepEqual(peer, { transport: 'tls', remoteAddress: '192.0.2.10', certificate: { cn: 'device-1', san: ['device-1.example'] } });
    assert.deepEqual(await read(stream, CONNECT.length), CONNECT);
    c.destroy();
  });

  test('ws: a header and the HTTP upgrade in one write; X-Forwarded-For from the relayed (untrusted) client is ignored', async () => {
    const rec = new Recorder();
    const l = new WebSocketListener('127.0.0.1', 0, '/mqtt', 1024, rec.onConnection, { proxy: rec.options() });
    listeners.push(l);
    const s = await open((await l.listen()).port);
    const upgrade = ['GET /mqtt HTTP/1.1', 'Host: x', 'Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
      'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Protocol: mqtt', 'X-Forwarded-For: 10.6.6.6', '', ''].join('\r\n');
    s.write(Buffer.concat([V1, Buffer.from(upgrade)]));
    const [answer] = (await once(s, 'data')) as [Buffer];
    assert.match(answer.toString(), /^HTTP\/1\.1 101 /);
    const { peer } = await rec.next();
    assert.deepEqual(peer, { transport: 'ws', remoteAddress: '192.0.2.10', certificate: undefined });
    s.destroy();
  });
});
