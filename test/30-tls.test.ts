/**
 * 30 tls: MQTT over TLS and secure WebSocket on the built broker, with certificates made by `openssl`
 * (test/helpers/certs.ts), for MQTT 3.1.1 and 5.0:
 * - mosquitto_sub/mosquitto_pub with `--cafile` (and `--cert/--key` for mutual TLS), MQTT.js over mqtts:// and wss://;
 * - mutual TLS: no certificate, a certificate from another CA and an expired one are refused during the
 *   handshake (no CONNACK is ever sent, and the broker logs the reason at debug); a valid one is accepted;
 * - a plain MQTT client on the TLS port is dropped without hurting other clients; TLS 1.1 is refused, 1.2 works;
 * - rotation: the files are swapped the way Kubernetes swaps a Secret's `..data` link; after the broker logs
 *   'certificates reloaded', new connections get the new certificate while a connection opened before keeps
 *   publishing and receiving;
 * - a missing certificate file stops the start with a message naming `tls.cert` and the file.
 *
 * Refusals are checked from both sides: the client never gets a CONNACK, and the broker's debug record says why.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import type { IClientOptions, MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { BIN, ROOT, startBroker, writeConfig, type RunningBroker } from './helpers/broker.js';
import { closeMqtt, Inbox, stopBroker, uniq, withTimeout, type Version } from './helpers/c2.js';
import { makeCertificates, SecretDir, type KeyPair, type TestCertificates } from './helpers/certs.js';
import { runToEnd } from './helpers/process.js';
import { RawClient } from './helpers/raw.js';
import { strictChecker, strictConnect, tapStream } from './helpers/strict/tap.js';

const AGAINST_MOSQUITTO = process.env['SMQ_TEST_AGAINST'] === 'mosquitto';
const T = { timeout: 30000, skip: AGAINST_MOSQUITTO && 'the mosquitto harness sets up plain listeners only' };

let certs: TestCertificates;
const clients = new Set<MqttClient>();
const processes = new Set<ChildProcess>();

before(() => {
  certs = makeCertificates();
});

after(async () => {
  await Promise.all([...clients].map((c) => closeMqtt(c)));
  for (const p of processes) p.kill('SIGKILL');
});

/** TLS settings of a broker under test (port 0: the ready record says which port was bound). */
function tlsBlock(over: Record<string, unknown> = {}): Record<string, unknown> {
  return { enable: true, port: 0, cert: certs.server.cert, key: certs.server.key, ...over };
}

/** A TLS-enabled broker logging at debug, so handshake failures can be waited for. */
async function tlsBroker(tls: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<RunningBroker> {
  const broker = await startBroker({ config: { log: { level: 'debug' }, tls, wss: { enable: true, port: 0 }, ...extra } });
  assert.ok(broker.tlsPort, 'the broker reported no tls listener');
  assert.ok(broker.wssPort, 'the broker reported no wss listener');
  return broker;
}

/** Connects MQTT.js and resolves once CONNACK arrives; the client is closed after the suite. */
async function mqttOpen(url: string, options: IClientOptions): Promise<{ client: MqttClient; inbox: Inbox }> {
  const client = strictConnect(url, { reconnectPeriod: 0, connectTimeout: 5000, clientId: uniq('tls'), ca: certs.ca.certPem, ...options });
  clients.add(client);
  const inbox = new Inbox(client);
  await withTimeout(new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
    client.once('close', () => reject(new Error(`${url}: closed before CONNACK`)));
  }), 6000, `${url} CONNACK`);
  client.on('error', () => { /* later errors end the test through missing messages */ });
  return { client, inbox };
}

/** A pair of MQTT.js clients exchanging one QoS 1 message each way. */
async function exchange(a: { client: MqttClient; inbox: Inbox }, b: { client: MqttClient; inbox: Inbox }, label: string): Promise<void> {
  const ta = `tls/${uniq(label)}/a`;
  const tb = `tls/${uniq(label)}/b`;
  await a.client.subscribeAsync(ta, { qos: 1 });
  await b.client.subscribeAsync(tb, { qos: 1 });
  await b.client.publishAsync(ta, `to a ${label}`, { qos: 1 });
  await a.client.publishAsync(tb, `to b ${label}`, { qos: 1 });
  const ma = await a.inbox.next(5000);
  const mb = await b.inbox.next(5000);
  assert.deepEqual([ma.topic, ma.payload.toString()], [ta, `to a ${label}`]);
  assert.deepEqual([mb.topic, mb.payload.toString()], [tb, `to b ${label}`]);
}

/**
 * What one attempt to speak MQTT over TLS got: whether the handshake completed on the client's side (with TLS
 * 1.3 it does before the server has checked the client's certificate), the first packet the broker sent, and
 * the error the socket ended with.
 */
interface Attempt {
  secure: boolean;
  protocol: string | null;
  packet: mqttPacket.Packet | undefined;
  error: string | undefined;
}

/** Opens TLS, sends CONNECT once secure, and waits for a packet or the end of the connection. */
function attempt(port: number, options: ConnectionOptions): Promise<Attempt> {
  return withTimeout(new Promise<Attempt>((resolve) => {
    const result: Attempt = { secure: false, protocol: null, packet: undefined, error: undefined };
    const socket = tlsConnect({ host: '127.0.0.1', port, ca: certs.ca.certPem, ...options });
    tapStream(socket, strictChecker(4));
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.once('packet', (p: mqttPacket.Packet) => {
      result.packet = p;
      socket.destroy();
    });
    socket.on('data', (d: Buffer) => parser.parse(d));
    socket.once('secureConnect', () => {
      result.secure = true;
      result.protocol = socket.getProtocol();
      socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: uniq('probe'), clean: true, keepalive: 30 }));
    });
    socket.on('error', (e: NodeJS.ErrnoException) => { result.error ??= e.code ?? e.message; });
    socket.once('close', () => resolve(result));
  }), 8000, 'TLS attempt');
}

/** The next 'tls handshake failed' record the broker writes from now on. */
function nextHandshakeFailure(broker: RunningBroker): Promise<Record<string, unknown>> {
  const earlier = new Set(broker.logs);
  return broker.waitForLog((r) => r['msg'] === 'tls handshake failed' && !earlier.has(r), 8000);
}

/** The fingerprint of the certificate a new TLS connection is given. */
async function servedFingerprint(port: number, options: ConnectionOptions = {}): Promise<string> {
  const socket = tlsConnect({ host: '127.0.0.1', port, ca: certs.ca.certPem, ...options });
  await withTimeout(once(socket, 'secureConnect'), 5000, 'TLS handshake');
  const fp = socket.getPeerCertificate().fingerprint256;
  socket.destroy();
  return fp;
}

/** mosquitto_sub as a child process; its debug output tells when the subscription is in place. */
class MosquittoSub {
  readonly proc: ChildProcess;
  readonly lines: string[] = [];
  readonly closed: Promise<number | null>;
  private stderr = '';
  private readonly waiters = new Set<() => void>();

  constructor(args: readonly string[]) {
    // mosquitto_sub block-buffers its output into a pipe; stdbuf makes it line-buffered.
    this.proc = spawn('stdbuf', ['-oL', 'mosquitto_sub', '-d', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    processes.add(this.proc);
    let buf = '';
    this.proc.stdout!.setEncoding('utf8');
    this.proc.stdout!.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        this.lines.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        for (const w of [...this.waiters]) w();
      }
    });
    this.proc.stderr!.setEncoding('utf8');
    this.proc.stderr!.on('data', (c: string) => { this.stderr += c; });
    this.closed = new Promise((resolve) => this.proc.once('close', (code) => {
      processes.delete(this.proc);
      for (const w of [...this.waiters]) w();
      resolve(code);
    }));
  }

  /** Resolves with the first line matching `re`; fails if the process ends first or after `timeoutMs`. */
  waitForLine(re: RegExp, timeoutMs = 8000): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const line = this.lines.find((l) => re.test(l));
        if (line !== undefined) done(() => resolve(line));
        else if (this.proc.exitCode !== null || this.proc.signalCode !== null) done(() => reject(new Error(`mosquitto_sub ended before ${String(re)}; ${this.describe()}`)));
      };
      const done = (f: () => void): void => { clearTimeout(t); this.waiters.delete(check); f(); };
      const t = setTimeout(() => done(() => reject(new Error(`${String(re)} not printed within ${timeoutMs} ms; ${this.describe()}`))), timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  describe(): string {
    return `stdout: ${JSON.stringify(this.lines.slice(-10))}; stderr: ${JSON.stringify(this.stderr)}`;
  }
}

/** Arguments for mosquitto clients to reach a TLS port, optionally with a client certificate. */
function mosquittoTls(port: number, version: string, client?: KeyPair): string[] {
  return ['-h', '127.0.0.1', '-p', String(port), '-V', version, '--cafile', certs.ca.cert,
    ...(client ? ['--cert', client.cert, '--key', client.key] : [])];
}

/** A mosquitto_sub → mosquitto_pub round trip at QoS 1 through a TLS port. */
async function mosquittoRoundTrip(port: number, version: string, client?: KeyPair): Promise<void> {
  const topic = `tls/${uniq('mosq')}`;
  const sub = new MosquittoSub([...mosquittoTls(port, version, client), '-i', uniq('msub'), '-q', '1', '-t', topic, '-C', '1', '-W', '10', '-F', 'MSG %t %p']);
  await sub.waitForLine(/received SUBACK/i);
  const pub = await runToEnd('mosquitto_pub', [...mosquittoTls(port, version, client), '-i', uniq('mpub'), '-q', '1', '-t', topic, '-m', `over tls ${version}`, '-d']);
  assert.equal(pub.code, 0, `mosquitto_pub failed: ${pub.stdout} ${pub.stderr}`);
  assert.match(pub.stdout, /received PUBACK/i);
  assert.equal(await withTimeout(sub.closed, 10000, 'mosquitto_sub exit'), 0, sub.describe());
  assert.deepEqual(sub.lines.filter((l) => l.startsWith('MSG ')), [`MSG ${topic} over tls ${version}`]);
}

describe('MQTT over TLS, server certificate only', T, () => {
  let broker: RunningBroker;

  before(async () => {
    broker = await tlsBroker(tlsBlock(), { mqtt: { connect_timeout: 2 } });
  });
  after(async () => {
    await stopBroker(broker);
  });

  test('the ready record lists the tls and wss listeners with host and port', () => {
    const ready = broker.logs.find((r) => r['msg'] === 'broker ready')!;
    const listeners = ready['listeners'] as { transport: string; host: string; port: number }[];
    assert.deepEqual(listeners.find((l) => l.transport === 'tls'), { transport: 'tls', host: '127.0.0.1', port: broker.tlsPort });
    assert.deepEqual(listeners.find((l) => l.transport === 'wss'), { transport: 'wss', host: '127.0.0.1', port: broker.wssPort });
  });

  for (const version of ['mqttv311', 'mqttv5']) {
    test(`mosquitto_sub and mosquitto_pub with --cafile, ${version}`, async () => {
      await mosquittoRoundTrip(broker.tlsPort!, version);
    });
  }

  for (const protocolVersion of [4, 5] as Version[]) {
    test(`MQTT.js over mqtts:// and wss:// exchange messages, protocol ${protocolVersion}`, async () => {
      const mqtts = await mqttOpen(`mqtts://127.0.0.1:${broker.tlsPort}`, { protocolVersion });
      const wss = await mqttOpen(`wss://127.0.0.1:${broker.wssPort}/mqtt`, { protocolVersion });
      const tcp = await mqttOpen(`mqtt://127.0.0.1:${broker.port}`, { protocolVersion });
      await exchange(mqtts, wss, `v${protocolVersion}-tls-wss`);
      await exchange(wss, tcp, `v${protocolVersion}-wss-tcp`);
      await Promise.all([closeMqtt(mqtts.client), closeMqtt(wss.client), closeMqtt(tcp.client)]);
    });
  }

  test('a client that checks the name gets a certificate for localhost and 127.0.0.1', async () => {
    const fp = await servedFingerprint(broker.tlsPort!, { servername: 'localhost' });
    assert.equal(fp, certs.server.fingerprint256);
  });

  test('a plain MQTT client on the TLS port is dropped without a CONNACK; other clients carry on', async () => {
    const a = await mqttOpen(`mqtts://127.0.0.1:${broker.tlsPort}`, { protocolVersion: 5 });
    const b = await mqttOpen(`mqtts://127.0.0.1:${broker.tlsPort}`, { protocolVersion: 4 });
    const failed = nextHandshakeFailure(broker);
    const plain = await RawClient.open(broker.tlsPort!, 4);
    plain.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: uniq('plain'), clean: true, keepalive: 30 });
    assert.deepEqual(await plain.expectClosed(5000), [], 'no MQTT packet comes back on a TLS port');
    const rec = await failed;
    assert.equal(rec['level'], 20, 'logged at debug');
    assert.equal(rec['transport'], 'tls');
    assert.equal(broker.proc.exitCode, null, 'the broker is still running');
    await exchange(a, b, 'after-plain');
    const c = await mqttOpen(`mqtts://127.0.0.1:${broker.tlsPort}`, { protocolVersion: 4 });
    await exchange(c, a, 'new-after-plain');
    await Promise.all([closeMqtt(a.client), closeMqtt(b.client), closeMqtt(c.client)]);
  });

  test('a client that never starts the handshake is closed after mqtt.connect_timeout', async () => {
    const failed = nextHandshakeFailure(broker);
    const silent = await RawClient.open(broker.tlsPort!, 4);
    await silent.expectClosed(6000);
    assert.equal((await failed)['code'], 'ERR_TLS_HANDSHAKE_TIMEOUT');
  });

  test('TLS 1.1 is refused by the server; TLS 1.2 and 1.3 are accepted', async () => {
    const failed = nextHandshakeFailure(broker);
    // SECLEVEL=0 lets this client offer TLS 1.1 at all, so the refusal seen is the broker's, not our own.
    const old = await attempt(broker.tlsPort!, { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' });
    assert.equal(old.secure, false);
    assert.equal(old.packet, undefined);
    assert.equal(old.error, 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', 'the server answered with a protocol_version alert');
    assert.equal((await failed)['code'], 'ERR_SSL_UNSUPPORTED_PROTOCOL');

    for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
      const ok = await attempt(broker.tlsPort!, { minVersion: version, maxVersion: version });
      assert.equal(ok.protocol, version);
      assert.equal(ok.packet?.cmd, 'connack', `MQTT works over ${version}`);
    }
    // MQTT.js hands every option to tls.connect, though its typings name only a few of them.
    const tls12: Pick<ConnectionOptions, 'maxVersion'> = { maxVersion: 'TLSv1.2' };
    const m = await mqttOpen(`mqtts://127.0.0.1:${broker.tlsPort}`, { protocolVersion: 5, ...tls12 });
    assert.equal((m.client.stream as unknown as TLSSocket).getProtocol(), 'TLSv1.2');
    await closeMqtt(m.client);
  });
});

describe('mutual TLS (tls.verify: true)', T, () => {
  let broker: RunningBroker;

  before(async () => {
    broker = await tlsBroker(tlsBlock({ verify: true, ca: certs.ca.cert }));
  });
  after(async () => {
    await stopBroker(broker);
  });

  for (const version of ['mqttv311', 'mqttv5']) {
    test(`mosquitto clients with --cafile --cert --key, ${version}`, async () => {
      await mosquittoRoundTrip(broker.tlsPort!, version, certs.client);
    });
  }

  test('mosquitto_pub without a client certificate is refused', async () => {
    const failed = nextHandshakeFailure(broker);
    const pub = await runToEnd('mosquitto_pub', [...mosquittoTls(broker.tlsPort!, 'mqttv311'), '-t', 'tls/refused', '-m', 'x', '-d']);
    assert.notEqual(pub.code, 0, `mosquitto_pub should fail: ${pub.stdout}`);
    assert.doesNotMatch(pub.stdout, /received CONNACK/i);
    assert.equal((await failed)['code'], 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE');
  });

  const refusals: [string, () => ConnectionOptions, string][] = [
    ['no client certificate', () => ({}), 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE'],
    ['a certificate from another CA', () => ({ cert: certs.otherClient.certPem, key: certs.otherClient.keyPem }), 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'],
    ['an expired certificate', () => ({ cert: certs.expired.certPem, key: certs.expired.keyPem }), 'CERT_HAS_EXPIRED'],
  ];
  for (const [what, options, code] of refusals) {
    for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
      test(`${what} is refused in the handshake (${version})`, async () => {
        const failed = nextHandshakeFailure(broker);
        const r = await attempt(broker.tlsPort!, { ...options(), minVersion: version, maxVersion: version });
        assert.equal(r.packet, undefined, 'no CONNACK for a refused client');
        const rec = await failed;
        assert.equal(rec['code'], code);
        assert.equal(rec['level'], 20);
      });
    }
  }

  test('a valid client certificate is accepted over mqtts:// and wss://', async () => {
    const r = await attempt(broker.tlsPort!, { cert: certs.client.certPem, key: certs.client.keyPem });
    assert.equal(r.packet?.cmd, 'connack');
    assert.equal((r.packet as mqttPacket.IConnackPacket).returnCode, 0);
    const mine = { cert: certs.client.certPem, key: certs.client.keyPem };
    for (const protocolVersion of [4, 5] as Version[]) {
      const a = await mqttOpen(`mqtts://127.0.0.1:${broker.tlsPort}`, { protocolVersion, ...mine });
      const b = await mqttOpen(`wss://127.0.0.1:${broker.wssPort}/mqtt`, { protocolVersion, ...mine });
      await exchange(a, b, `mtls-v${protocolVersion}`);
      await Promise.all([closeMqtt(a.client), closeMqtt(b.client)]);
    }
  });

  test('wss:// without a client certificate is refused too', async () => {
    const failed = nextHandshakeFailure(broker);
    const client = strictConnect(`wss://127.0.0.1:${broker.wssPort}/mqtt`, { reconnectPeriod: 0, connectTimeout: 5000, ca: certs.ca.certPem });
    clients.add(client);
    client.on('error', () => { /* expected */ });
    let connected = false;
    client.once('connect', () => { connected = true; });
    await withTimeout(new Promise<void>((resolve) => client.once('close', () => resolve())), 6000, 'wss close');
    assert.equal(connected, false);
    const rec = await failed;
    assert.equal(rec['transport'], 'wss');
    assert.equal(rec['code'], 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE');
  });
});

describe('certificate rotation', T, () => {
  test('swapping the Secret\'s files: new connections get the new certificate, open ones keep working', async () => {
    const secret = new SecretDir(certs.server);
    const broker = await tlsBroker(tlsBlock({ cert: secret.cert, key: secret.key }));
    try {
      const tlsUrl = `mqtts://127.0.0.1:${broker.tlsPort}`;
      const old = await mqttOpen(tlsUrl, { protocolVersion: 5 });
      const oldWss = await mqttOpen(`wss://127.0.0.1:${broker.wssPort}/mqtt`, { protocolVersion: 4 });
      assert.equal((old.client.stream as unknown as TLSSocket).getPeerCertificate().fingerprint256, certs.server.fingerprint256);
      assert.equal(await servedFingerprint(broker.tlsPort!), certs.server.fingerprint256);

      const earlier = new Set(broker.logs);
      secret.rotate(certs.server2);
      const reloaded = await broker.waitForLog((r) => r['msg'] === 'certificates reloaded' && !earlier.has(r), 10000);
      assert.equal((reloaded['certificate'] as { fingerprint256: string }).fingerprint256, certs.server2.fingerprint256);

      assert.equal(await servedFingerprint(broker.tlsPort!), certs.server2.fingerprint256, 'tls listener');
      assert.equal(await servedFingerprint(broker.wssPort!), certs.server2.fingerprint256, 'wss listener');
      const fresh = await mqttOpen(tlsUrl, { protocolVersion: 5 });
      assert.equal((fresh.client.stream as unknown as TLSSocket).getPeerCertificate().fingerprint256, certs.server2.fingerprint256);

      // Connections opened before the rotation were not dropped: they still publish and receive.
      assert.equal(old.client.connected, true);
      await exchange(old, fresh, 'rotated-tls');
      await exchange(oldWss, fresh, 'rotated-wss');

      // A broken rotation (key of another certificate) is refused and the last good certificate stays.
      const before = new Set(broker.logs);
      secret.rotate({ certPem: certs.server.certPem, keyPem: certs.server2.keyPem });
      const failed = await broker.waitForLog((r) => String(r['msg']).startsWith('certificate reload failed') && !before.has(r), 10000);
      assert.equal(failed['level'], 50);
      assert.equal(failed['key'], 'tls.key');
      assert.equal(await servedFingerprint(broker.tlsPort!), certs.server2.fingerprint256);
      await exchange(old, fresh, 'after-bad-rotation');
      await Promise.all([closeMqtt(old.client), closeMqtt(oldWss.client), closeMqtt(fresh.client)]);
    } finally {
      await stopBroker(broker);
    }
  });
});

describe('start-up errors', T, () => {
  test('a missing certificate file stops the start, naming tls.cert, the file and the problem', async () => {
    const missing = join(certs.dir, 'no-such-cert.pem');
    const file = writeConfig({ host: '127.0.0.1', port: 0, ws: { enable: false }, http: { enable: false }, tls: tlsBlock({ cert: missing }) });
    const r = await runToEnd(process.execPath, [BIN, '-c', file], { cwd: ROOT });
    assert.notEqual(r.code, 0);
    assert.ok(r.stderr.includes(`key "tls.cert" (file ${missing}): file not found`), r.stderr);
    assert.doesNotMatch(r.stdout, /broker ready/);
  });

  test('tls.verify without tls.ca stops the start', async () => {
    const file = writeConfig({ host: '127.0.0.1', port: 0, ws: { enable: false }, http: { enable: false }, tls: tlsBlock({ verify: true }) });
    const r = await runToEnd(process.execPath, [BIN, '-c', file], { cwd: ROOT });
    assert.notEqual(r.code, 0);
    // The configuration loader catches this one before the certificate store would.
    assert.match(r.stderr, /key "tls\.ca"/);
  });
});
