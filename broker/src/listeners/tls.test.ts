/**
 * In-process tests of the certificate store and the TLS/wss listeners with real sockets and real certificates
 * (made by `openssl`, see test/helpers/certs.ts): start-up errors name the key and the file; a rotation reaches
 * new handshakes while an open connection keeps working; a bad rotation keeps the old certificates; the
 * connection is handed the verified client certificate, and only a verified one.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as netConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { pino, type Logger } from 'pino';
import WebSocket from 'ws';
import { makeCertificates, SecretDir, type TestCertificates } from '../../../test/helpers/certs.js';
import { DEFAULTS } from '../config/defaults.js';
import type { TlsConfig } from '../config/types.js';
import type { Peer } from '../connection/connection.js';
import { CertificateStore, TlsConfigError } from './certificates.js';
import { TlsListener, type SecureOptions } from './tls.js';
import { WebSocketListener } from './websocket.js';

let certs: TestCertificates;

before(() => {
  certs = makeCertificates();
});

/** A logger whose records the test can read and wait for. */
function recordingLog(): { log: Logger; records: Record<string, unknown>[]; next(msg: string, timeoutMs?: number): Promise<Record<string, unknown>> } {
  const records: Record<string, unknown>[] = [];
  const waiters: { msg: string; resolve: (r: Record<string, unknown>) => void }[] = [];
  const log = pino({ level: 'debug' }, {
    write(line: string) {
      const rec = JSON.parse(line) as Record<string, unknown>;
      records.push(rec);
      for (const w of [...waiters]) {
        if (w.msg === rec['msg']) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(rec);
        }
      }
    },
  });
  const next = (msg: string, timeoutMs = 5000): Promise<Record<string, unknown>> => new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no "${msg}" record within ${timeoutMs} ms; records: ${JSON.stringify(records.slice(-5))}`)), timeoutMs);
    waiters.push({ msg, resolve: (r) => { clearTimeout(t); resolve(r); } });
  });
  return { log, records, next };
}

function tlsConfig(over: Partial<TlsConfig>): TlsConfig {
  return { ...DEFAULTS.tls, enable: true, cert: certs.server.cert, key: certs.server.key, ...over };
}

/** The error thrown by `fn`, which must be a TlsConfigError. */
function configError(fn: () => unknown): TlsConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof TlsConfigError, `expected TlsConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('no error thrown');
}

describe('CertificateStore at start-up', () => {
  const log = pino({ level: 'silent' });

  test('a missing certificate file names tls.cert, the file and the problem', () => {
    const missing = join(tmpdir(), 'smq-no-such-dir', 'cert.pem');
    const e = configError(() => new CertificateStore(tlsConfig({ cert: missing }), log));
    assert.equal(e.code, 'ERR_TLS_CONFIG');
    assert.equal(e.key, 'tls.cert');
    assert.equal(e.file, missing);
    assert.match(e.message, /key "tls\.cert" \(file .*smq-no-such-dir\/cert\.pem\): file not found/);
  });

  test('a relative path is reported as the absolute path that was tried', () => {
    const e = configError(() => new CertificateStore(tlsConfig({ key: 'ssl/none/key.pem' }), log));
    assert.equal(e.key, 'tls.key');
    assert.equal(e.file, join(process.cwd(), 'ssl/none/key.pem'));
  });

  test('a key path that is a directory says so', () => {
    // (A permission test cannot fail as root, which CI runs as; a directory is unreadable as a file for anyone.)
    const dir = mkdtempSync(join(tmpdir(), 'smq-tls-dir-'));
    const e = configError(() => new CertificateStore(tlsConfig({ key: dir }), log));
    assert.equal(e.key, 'tls.key');
    assert.match(e.message, /is a directory/);
  });

  test('a file that is not PEM, a key of another certificate, an empty CA with verify, a bad cipher list', () => {
    const dir = mkdtempSync(join(tmpdir(), 'smq-tls-bad-'));
    const garbage = join(dir, 'garbage.pem');
    writeFileSync(garbage, 'not a certificate\n');
    let e = configError(() => new CertificateStore(tlsConfig({ cert: garbage }), log));
    assert.equal(e.key, 'tls.cert');
    assert.match(e.message, /no PEM certificate/);

    e = configError(() => new CertificateStore(tlsConfig({ key: garbage }), log));
    assert.equal(e.key, 'tls.key');
    assert.match(e.message, /not a usable unencrypted PEM private key/);

    e = configError(() => new CertificateStore(tlsConfig({ verify: true, ca: garbage }), log));
    assert.equal(e.key, 'tls.ca');

    e = configError(() => new CertificateStore(tlsConfig({ key: certs.server2.key }), log));
    assert.equal(e.key, 'tls.key');
    assert.match(e.message, /does not match the certificate in .*server\.pem/);

    e = configError(() => new CertificateStore(tlsConfig({ verify: true, ca: '' }), log));
    assert.equal(e.key, 'tls.ca');
    assert.match(e.message, /required when tls\.verify is true/);

    e = configError(() => new CertificateStore(tlsConfig({ ciphers: 'NO-SUCH-CIPHER' }), log));
    assert.equal(e.key, 'tls.ciphers');
  });

  test('the options carry min_version, and ciphers only when set', () => {
    const plain = new CertificateStore(tlsConfig({ min_version: 'TLSv1.3' }), log).options;
    assert.equal(plain.minVersion, 'TLSv1.3');
    assert.equal(plain.ciphers, undefined);
    assert.equal(plain.ca, undefined);
    const strict = new CertificateStore(tlsConfig({ ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256', verify: true, ca: certs.ca.cert }), log).options;
    assert.equal(strict.ciphers, 'ECDHE-ECDSA-AES128-GCM-SHA256');
    assert.equal(strict.ca, certs.ca.certPem);
  });
});

/** Opens a TLS connection and resolves once the handshake is done. */
async function tlsOpen(port: number, options: ConnectionOptions = {}): Promise<TLSSocket> {
  const socket = connect({ host: '127.0.0.1', port, ca: certs.ca.certPem, ...options });
  await once(socket, 'secureConnect');
  return socket;
}

/** The fingerprint of the certificate a new TLS connection is given (the probe is closed at once). */
async function servedFingerprint(port: number): Promise<string> {
  const s = await tlsOpen(port);
  const fp = s.getPeerCertificate().fingerprint256;
  s.destroy();
  return fp;
}

/** Collects the streams a listener hands over, and lets a test wait for the next one. */
class Accepted {
  private readonly queue: { stream: Duplex; peer: Peer }[] = [];
  private waiter: ((c: { stream: Duplex; peer: Peer }) => void) | null = null;
  readonly all: { stream: Duplex; peer: Peer }[] = [];

  readonly onConnection = (stream: Duplex, peer: Peer): void => {
    // Read (and drop) until a test attaches its own reader: an unread stream never sees the client's close,
    // and server.close() would wait for it forever.
    stream.resume();
    stream.on('error', () => { /* the tests close sockets abruptly */ });
    const c = { stream, peer };
    this.all.push(c);
    const w = this.waiter;
    this.waiter = null;
    if (w) w(c);
    else this.queue.push(c);
  };

  next(timeoutMs = 5000): Promise<{ stream: Duplex; peer: Peer }> {
    const q = this.queue.shift();
    if (q) return Promise.resolve(q);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs);
      this.waiter = (c) => { clearTimeout(t); resolve(c); };
    });
  }
}

/** Makes the server side echo everything back, so a test can prove a connection still carries data. */
function echo(stream: Duplex): void {
  stream.on('data', (d: Buffer) => stream.write(d));
}

/** Resolves when a socket has closed, whatever error (alert, reset) came before. */
function closed(socket: { once(event: 'close', cb: () => void): unknown; on(event: 'error', cb: () => void): unknown }): Promise<void> {
  socket.on('error', () => { /* a refusal shows up as an alert or a reset, depending on the TLS version */ });
  return new Promise((resolve) => socket.once('close', () => resolve()));
}

async function roundTrip(socket: TLSSocket, text: string): Promise<void> {
  socket.write(text);
  const [data] = (await once(socket, 'data')) as [Buffer];
  assert.equal(data.toString(), text);
}

describe('TlsListener', () => {
  const opened: { close(): Promise<void> }[] = [];
  after(async () => {
    for (const l of opened) await l.close();
  });

  async function listener(tls: Partial<TlsConfig>, log: Logger, accepted: Accepted, timing = { intervalMs: 50, settleMs: 50 }): Promise<{ port: number; store: CertificateStore }> {
    const store = new CertificateStore(tlsConfig(tls), log, timing);
    const secure: SecureOptions = { store, verify: tls.verify ?? false, handshakeTimeoutMs: 1000, log };
    const l = new TlsListener('127.0.0.1', 0, secure, accepted.onConnection);
    const bound = await l.listen();
    assert.equal(bound.transport, 'tls');
    opened.push({ close: async () => { store.close(); await l.close(); } });
    return { port: bound.port, store };
  }

  test('mutual TLS: the connection is handed the verified certificate as {cn, san}', async () => {
    const accepted = new Accepted();
    const { port } = await listener({ verify: true, ca: certs.ca.cert }, pino({ level: 'silent' }), accepted);
    const s = await tlsOpen(port, { cert: certs.client.certPem, key: certs.client.keyPem });
    const { peer } = await accepted.next();
    assert.equal(peer.transport, 'tls');
    assert.equal(peer.remoteAddress, '127.0.0.1');
    assert.deepEqual(peer.certificate, { cn: 'device-1', san: ['device-1.example'] });
    s.destroy();
  });

  test('without verify no certificate is asked for, so none reaches the connection', async () => {
    const accepted = new Accepted();
    const { port } = await listener({}, pino({ level: 'silent' }), accepted);
    const s = await tlsOpen(port, { cert: certs.client.certPem, key: certs.client.keyPem });
    const { peer } = await accepted.next();
    assert.equal(peer.certificate, undefined);
    s.destroy();
  });

  test('refused client certificates never reach the connection; each refusal is logged at debug with its reason', async () => {
    const accepted = new Accepted();
    const rec = recordingLog();
    const { port } = await listener({ verify: true, ca: certs.ca.cert }, rec.log, accepted);
    const tries: [string, ConnectionOptions, string][] = [
      ['no certificate', {}, 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE'],
      ['another CA', { cert: certs.otherClient.certPem, key: certs.otherClient.keyPem }, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'],
      ['expired', { cert: certs.expired.certPem, key: certs.expired.keyPem }, 'CERT_HAS_EXPIRED'],
    ];
    for (const [what, options, code] of tries) {
      const failed = rec.next('tls handshake failed');
      await closed(connect({ host: '127.0.0.1', port, ca: certs.ca.certPem, ...options }));
      const r = await failed;
      assert.equal(r['code'], code, what);
      assert.equal(r['level'], 20, 'debug, not an operator-facing error');
    }
    assert.equal(accepted.all.length, 0);
  });

  test('a handshake that never starts is closed after the handshake timeout', async () => {
    const rec = recordingLog();
    const { port } = await listener({}, rec.log, new Accepted());
    const failed = rec.next('tls handshake failed', 5000);
    await closed(netConnect({ host: '127.0.0.1', port }));
    assert.equal((await failed)['code'], 'ERR_TLS_HANDSHAKE_TIMEOUT');
  });

  test('rotation (Kubernetes symlink swap): new handshakes get the new certificate, an open connection keeps working', async () => {
    const accepted = new Accepted();
    const rec = recordingLog();
    const secret = new SecretDir(certs.server);
    const { port, store } = await listener({ cert: secret.cert, key: secret.key }, rec.log, accepted);
    store.watch();

    const before = await tlsOpen(port);
    echo((await accepted.next()).stream);
    assert.equal(before.getPeerCertificate().fingerprint256, certs.server.fingerprint256);

    const reloaded = rec.next('certificates reloaded');
    secret.rotate(certs.server2);
    const r = await reloaded;
    assert.equal((r['certificate'] as { fingerprint256: string }).fingerprint256, certs.server2.fingerprint256);

    assert.equal(await servedFingerprint(port), certs.server2.fingerprint256);
    await roundTrip(before, 'still here');
    assert.equal(before.getPeerCertificate().fingerprint256, certs.server.fingerprint256, 'the old session is untouched');

    // A rotation to a key that does not match keeps the last good certificates and says why.
    const failed = rec.next('certificate reload failed: keeping the current certificates');
    secret.rotate({ certPem: certs.server.certPem, keyPem: certs.server2.keyPem });
    const f = await failed;
    assert.equal(f['key'], 'tls.key');
    assert.equal(f['level'], 50);
    assert.equal(await servedFingerprint(port), certs.server2.fingerprint256);
    await roundTrip(before, 'and still');
    before.destroy();
  });
});

describe('WebSocketListener in secure mode', () => {
  test('serves wss with the store, hands over the verified certificate, and follows a rotation', async () => {
    const accepted = new Accepted();
    const rec = recordingLog();
    const secret = new SecretDir(certs.server);
    const store = new CertificateStore(tlsConfig({ cert: secret.cert, key: secret.key, verify: true, ca: certs.ca.cert }), rec.log, { intervalMs: 50, settleMs: 50 });
    const secure: SecureOptions = { store, verify: true, handshakeTimeoutMs: 2000, log: rec.log };
    const l = new WebSocketListener('127.0.0.1', 0, '/mqtt', 1024, accepted.onConnection, { secure });
    const bound = await l.listen();
    assert.equal(bound.transport, 'wss');
    store.watch();
    try {
      const open = async (): Promise<WebSocket> => {
        const ws = new WebSocket(`wss://127.0.0.1:${bound.port}/mqtt`, 'mqtt', { ca: certs.ca.certPem, cert: certs.client.certPem, key: certs.client.keyPem });
        await once(ws, 'open');
        return ws;
      };
      const ws = await open();
      const { peer } = await accepted.next();
      assert.equal(peer.transport, 'wss');
      assert.deepEqual(peer.certificate, { cn: 'device-1', san: ['device-1.example'] });

      await closed(new WebSocket(`wss://127.0.0.1:${bound.port}/mqtt`, 'mqtt', { ca: certs.ca.certPem }));

      const reloaded = rec.next('certificates reloaded');
      secret.rotate(certs.server2);
      await reloaded;
      const ws2 = await open();
      await accepted.next();
      const probe = await tlsOpen(bound.port, { cert: certs.client.certPem, key: certs.client.keyPem });
      assert.equal(probe.getPeerCertificate().fingerprint256, certs.server2.fingerprint256);
      probe.destroy();
      ws.close();
      ws2.close();
    } finally {
      store.close();
      await l.close();
    }
    assert.equal(accepted.all.length, 2, 'the client without a certificate never reached the connection code');
  });
});
