/**
 * 31 auth: authentication on the built broker with real clients, for MQTT 3.1.1 (v4) and 5.0 (v5): a password
 * file made by `smq passwd` and changed while the broker runs, one made by `mosquitto_passwd`, client
 * certificates (mutual TLS), JWTs from MQTT.js, the HTTP backend against a real local service, and the
 * failed-login throttle (timed from the client's side). Refusals: v3.1.1 CONNACK 4 (bad username or password) / 5 (not authorized), v5 0x86 / 0x87.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHmac, generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect as netConnect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqttPacket from 'mqtt-packet';
import type { IConnackPacket } from 'mqtt';
import { BIN, ROOT, startBroker, type RunningBroker } from './helpers/broker.js';
import { AGAINST_MOSQUITTO, Clients, closeMqtt, stopBroker, uniq, VERSIONS, withTimeout, type Version } from './helpers/c2.js';
import { makeCertificates } from './helpers/certs.js';
import { runToEnd } from './helpers/process.js';
import { strictChecker, strictConnect, tapStream } from './helpers/strict/tap.js';

const T = { timeout: 20000 };
/** What a refusal looks like on the wire, per protocol level. */
const BAD_CREDENTIALS = { 4: 4, 5: 0x86 } as const;
const NOT_AUTHORIZED = { 4: 5, 5: 0x87 } as const;

function code(p: mqttPacket.IConnackPacket): number {
  return p.reasonCode ?? p.returnCode ?? -1;
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'smq-31-'));
}

/** Runs `smq passwd` as a user would; fails the test unless it exits 0. */
async function smqPasswd(...args: string[]): Promise<void> {
  const r = await runToEnd(process.execPath, [BIN, 'passwd', ...args], { cwd: ROOT });
  assert.equal(r.code, 0, `smq passwd ${args.slice(0, -1).join(' ')} failed: ${r.stderr}`);
}

/** A record logged after the `since`-th one: waits only for what happens from now on. */
function newLog(broker: RunningBroker, since: number, msg: string): (r: Record<string, unknown>) => boolean {
  return (r) => r['msg'] === msg && broker.logs.indexOf(r) >= since;
}

/** CONNECT from a chosen local address (127.0.0.x), returning the CONNACK and how long it took. */
function connectFrom(port: number, localAddress: string, version: Version, fields: Partial<mqttPacket.IConnectPacket>): Promise<{ connack: mqttPacket.IConnackPacket; ms: number }> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ port, host: '127.0.0.1', localAddress });
    tapStream(socket, strictChecker(version));
    const parser = mqttPacket.parser({ protocolVersion: version });
    let start = 0;
    const t = setTimeout(() => { socket.destroy(); reject(new Error('no CONNACK within 15000 ms')); }, 15000);
    parser.on('packet', (p: mqttPacket.Packet) => {
      if (p.cmd !== 'connack') return;
      clearTimeout(t);
      const ms = performance.now() - start;
      socket.destroy();
      resolve({ connack: p, ms });
    });
    socket.on('data', (d: Buffer) => parser.parse(d));
    socket.once('error', (e) => { clearTimeout(t); reject(e); });
    socket.once('connect', () => {
      start = performance.now();
      socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clientId: uniq('thr'), clean: true, keepalive: 30, ...fields }, { protocolVersion: version }));
    });
  });
}

const pw = (s: string): Buffer => Buffer.from(s, 'utf8');

describe('31 auth', { skip: AGAINST_MOSQUITTO ? 'smq configuration' : false }, () => {
  describe('password file made by smq passwd', () => {
    let broker: RunningBroker;
    let clients: Clients;
    let file: string;

    before(async () => {
      file = join(tempDir(), 'passwd');
      await smqPasswd('-c', '-b', file, 'alice', 'first-Pass');
      await smqPasswd('-b', file, 'bob', 'bobs password');
      broker = await startBroker({ config: { auth: { enable: true, password_file: file, max_failures: 0 } } });
      clients = new Clients(broker.port);
    });
    after(async () => {
      await clients?.closeAll();
      if (broker) await stopBroker(broker);
    });

    for (const v of VERSIONS) {
      it(`[v${v}] the right password connects`, T, async () => {
        const { connack } = await clients.raw(v, { username: 'bob', password: pw('bobs password') });
        assert.equal(code(connack), 0);
      });

      it(`[v${v}] a wrong password and an unknown user get the same refusal: bad username or password`, T, async () => {
        const wrong = await clients.raw(v, { username: 'bob', password: pw('bobs passwort') });
        assert.equal(code(wrong.connack), BAD_CREDENTIALS[v]);
        await wrong.client.closed;
        const unknown = await clients.raw(v, { username: 'mallory', password: pw('bobs password') });
        assert.equal(code(unknown.connack), BAD_CREDENTIALS[v]);
        const noPassword = await clients.raw(v, { username: 'bob' });
        assert.equal(code(noPassword.connack), BAD_CREDENTIALS[v]);
      });

      it(`[v${v}] anonymous clients are refused with auth.enable: not authorized`, T, async () => {
        const { client, connack } = await clients.raw(v);
        assert.equal(code(connack), NOT_AUTHORIZED[v]);
        await client.closed;
      });
    }

    it('refusals are logged as authentication failed with the username and address, never the password', T, async () => {
      const since = broker.logs.length;
      const id = uniq('logged');
      await clients.raw(5, { clientId: id, username: 'bob', password: pw('Secret-Guess-42') });
      const rec = await broker.waitForLog((r) => newLog(broker, since, 'authentication failed')(r) && r['clientId'] === id);
      assert.equal(rec['username'], 'bob');
      assert.equal(rec['remote'], '127.0.0.1');
      assert.ok(!JSON.stringify(broker.logs).includes('Secret-Guess-42'));
      assert.ok(!JSON.stringify(broker.logs).includes('bobs password'));
    });

    it('a password changed with smq passwd while the broker runs works after the reload; the old one stops working', T, async () => {
      const since = broker.logs.length;
      await smqPasswd('-b', file, 'alice', 'second-Pass');
      await broker.waitForLog(newLog(broker, since, 'password file reloaded'), 10000);
      assert.equal(code((await clients.raw(4, { username: 'alice', password: pw('second-Pass') })).connack), 0);
      assert.equal(code((await clients.raw(5, { username: 'alice', password: pw('first-Pass') })).connack), 0x86);
    });

    it('a broken file is not taken: the error is logged and the previous users keep working', T, async () => {
      const since = broker.logs.length;
      writeFileSync(file, 'alice:this is not a hash\n');
      const rec = await broker.waitForLog(newLog(broker, since, 'password file not reloaded: it is not valid; keeping the previous content'), 10000);
      assert.equal(rec['level'], 50);
      assert.equal(code((await clients.raw(5, { username: 'bob', password: pw('bobs password') })).connack), 0);
      // Put a good file back for any test that follows.
      const again = broker.logs.length;
      await smqPasswd('-c', '-b', file, 'bob', 'bobs password');
      await broker.waitForLog(newLog(broker, again, 'password file reloaded'), 10000);
    });
  });

  it('a password file made by mosquitto_passwd ($7$ PBKDF2 and $6$ SHA-512) works unchanged', T, async (t) => {
    const file = join(tempDir(), 'mosquitto.passwd');
    const made = spawnSync('mosquitto_passwd', ['-c', '-b', file, 'mosq-user', 'mosq pass 1']);
    if (made.error) return t.skip('mosquitto_passwd is not installed');
    assert.equal(made.status, 0, String(made.stderr));
    assert.equal(spawnSync('mosquitto_passwd', ['-H', 'sha512', '-b', file, 'legacy', 'old-style']).status, 0);
    const broker = await startBroker({ config: { auth: { enable: true, password_file: file, max_failures: 0 } } });
    const clients = new Clients(broker.port);
    t.after(async () => {
      await clients.closeAll();
      await stopBroker(broker);
    });
    for (const v of VERSIONS) {
      assert.equal(code((await clients.raw(v, { username: 'mosq-user', password: pw('mosq pass 1') })).connack), 0);
      assert.equal(code((await clients.raw(v, { username: 'legacy', password: pw('old-style') })).connack), 0);
      assert.equal(code((await clients.raw(v, { username: 'mosq-user', password: pw('mosq pass 2') })).connack), BAD_CREDENTIALS[v]);
    }
  });

  it('a verified client certificate authenticates (tls.cert_username), whatever the password; plain TCP still needs one', T, async (t) => {
    const certs = makeCertificates();
    const file = join(tempDir(), 'passwd');
    await smqPasswd('-c', '-b', file, 'device-1', 'device password');
    const broker = await startBroker({ config: {
      tls: { enable: true, port: 0, verify: true, cert: certs.server.cert, key: certs.server.key, ca: certs.ca.cert, cert_username: 'cn' },
      auth: { enable: true, max_failures: 0, password_file: file },
    } });
    const clients = new Clients(broker.port);
    t.after(async () => {
      await clients.closeAll();
      await stopBroker(broker);
    });
    assert.ok(broker.tlsPort, 'the broker reported a TLS listener');
    for (const v of VERSIONS) {
      for (const creds of [{}, { username: 'device-1', password: 'not the password' }]) {
        const client = strictConnect({
          protocol: 'mqtts', host: '127.0.0.1', port: broker.tlsPort, protocolVersion: v, clientId: uniq('mtls'), reconnectPeriod: 0,
          ca: certs.ca.certPem, cert: certs.client.certPem, key: certs.client.keyPem, servername: 'localhost', ...creds,
        });
        client.on('error', () => undefined);
        const connack = await withTimeout(new Promise<IConnackPacket>((resolve, reject) => {
          client.once('connect', resolve);
          client.once('error', reject);
        }), 5000, 'mTLS CONNACK');
        assert.equal(connack.reasonCode ?? connack.returnCode ?? 0, 0, `[v${v}] ${JSON.stringify(creds)}`);
        await closeMqtt(client);
      }
      assert.equal(code((await clients.raw(v)).connack), NOT_AUTHORIZED[v], 'no certificate, no credentials');
      assert.equal(code((await clients.raw(v, { username: 'device-1', password: pw('not the password') })).connack), BAD_CREDENTIALS[v]);
    }
  });

  describe('JWT from MQTT.js', () => {
    const SECRET = 'a-long-random-hs256-secret';
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    let broker: RunningBroker;
    let clients: Clients;

    const enc = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
    function jwt(header: Record<string, unknown>, claims: Record<string, unknown>): string {
      const input = `${enc(header)}.${enc(claims)}`;
      const data = Buffer.from(input);
      let sig: Buffer;
      if (header['alg'] === 'HS256') sig = createHmac('sha256', SECRET).update(data).digest();
      else if (header['alg'] === 'ES256') sig = sign('sha256', data, { key: ec.privateKey, dsaEncoding: 'ieee-p1363' });
      else if (header['alg'] === 'RS256') sig = sign('sha256', data, rsa.privateKey);
      else sig = Buffer.alloc(0);
      return `${input}.${sig.toString('base64url')}`;
    }
    const exp = (): number => Math.floor(Date.now() / 1000) + 300;

    before(async () => {
      const jwks = join(tempDir(), 'jwks.json');
      writeFileSync(jwks, JSON.stringify({ keys: [
        { ...ec.publicKey.export({ format: 'jwk' }), kid: 'ec-1', use: 'sig' },
        { ...rsa.publicKey.export({ format: 'jwk' }), kid: 'rsa-1', alg: 'RS256' },
      ] }));
      broker = await startBroker({ config: { auth: { enable: true, max_failures: 0, jwt: { secret: SECRET, jwks_file: jwks, audience: 'smq' } } } });
      clients = new Clients(broker.port);
    });
    after(async () => {
      await clients?.closeAll();
      if (broker) await stopBroker(broker);
    });

    /** The CONNACK code MQTT.js saw: 0, or the code of the 'error' it raised for a refusal. */
    async function attempt(v: Version, username: string | undefined, password: string | undefined, clientId = uniq('jwt')): Promise<number> {
      try {
        const { connack } = await clients.mqtt(v, { clientId, ...(username === undefined ? {} : { username }), ...(password === undefined ? {} : { password }) });
        return connack.reasonCode ?? connack.returnCode ?? 0;
      } catch (err) {
        const c = (err as { code?: unknown }).code;
        if (typeof c !== 'number') throw err;
        return c;
      }
    }

    for (const v of VERSIONS) {
      it(`[v${v}] HS256, ES256 and RS256 tokens in the password connect`, T, async () => {
        assert.equal(await attempt(v, 'device-1', jwt({ alg: 'HS256', typ: 'JWT' }, { aud: 'smq', exp: exp() })), 0);
        assert.equal(await attempt(v, 'device-1', jwt({ alg: 'ES256', kid: 'ec-1' }, { aud: ['x', 'smq'], exp: exp() })), 0);
        assert.equal(await attempt(v, 'device-2', jwt({ alg: 'RS256', kid: 'rsa-1' }, { aud: 'smq', exp: exp() })), 0);
      });

      it(`[v${v}] expired, unsigned (alg none), wrong-audience and confused tokens: bad username or password`, T, async () => {
        const refused = BAD_CREDENTIALS[v];
        assert.equal(await attempt(v, 'd', jwt({ alg: 'HS256' }, { aud: 'smq', exp: Math.floor(Date.now() / 1000) - 1 })), refused);
        assert.equal(await attempt(v, 'd', jwt({ alg: 'none' }, { aud: 'smq', exp: exp() })), refused);
        assert.equal(await attempt(v, 'd', jwt({ alg: 'HS256' }, { aud: 'other', exp: exp() })), refused);
        assert.equal(await attempt(v, 'd', jwt({ alg: 'RS256', kid: 'ec-1' }, { aud: 'smq', exp: exp() })), refused);
      });

      it(`[v${v}] a connection ends when its token expires${v === 5 ? ' (DISCONNECT 0xA0, maximum connect time)' : ''}`, T, async () => {
        const expiresIn = 2;
        const token = jwt({ alg: 'HS256' }, { aud: 'smq', exp: Math.floor(Date.now() / 1000) + expiresIn });
        const { client: c } = await clients.mqtt(v, { username: 'short-lived', password: token });
        const reason = new Promise<number | undefined>((resolve) => {
          c.once('disconnect', (p: { reasonCode?: number }) => resolve(p.reasonCode));
          c.once('close', () => resolve(undefined));
        });
        assert.equal(await withTimeout(reason, (expiresIn + 3) * 1000, 'the broker closed the connection'), v === 5 ? 0xa0 : undefined);
      });

      it(`[v${v}] a clientid claim binds the token to that client id; no token at all is not authorized`, T, async () => {
        const id = uniq('bound');
        const token = jwt({ alg: 'HS256' }, { aud: 'smq', exp: exp(), clientid: id });
        assert.equal(await attempt(v, 'd', token, id), 0);
        assert.equal(await attempt(v, 'd', token, uniq('other')), BAD_CREDENTIALS[v]);
        assert.equal(await attempt(v, 'd', undefined), NOT_AUTHORIZED[v]);
      });
    }
  });

  describe('HTTP backend', () => {
    let broker: RunningBroker;
    let clients: Clients;
    let server: Server;
    const bodies: Record<string, unknown>[] = [];
    const hanging: ServerResponse[] = [];
    const asked = (username: string): number => bodies.filter((b) => b['username'] === username).length;

    /** Answers by username, so each case is one line here. */
    function handle(req: IncomingMessage, res: ServerResponse): void {
      let raw = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => { raw += d; });
      req.on('end', () => {
        const body = JSON.parse(raw) as Record<string, unknown>;
        bodies.push(body);
        const reply = (status: number, json?: unknown): void => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(json === undefined ? undefined : JSON.stringify(json));
        };
        const user = String(body['username']);
        if (user === 'hang') return void hanging.push(res);
        if (user === 'broken') return reply(500, { result: 'allow' });
        if (user === 'nocontent') return reply(204);
        if (user.startsWith('deny')) return reply(200, { result: 'deny' });
        if (user.startsWith('ignore')) return reply(200, { result: 'ignore' });
        reply(200, { result: body['password'] === 'letmein' ? 'allow' : 'deny' });
      });
    }

    before(async () => {
      server = createServer(handle);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mqtt/auth`;
      broker = await startBroker({ config: { auth: { enable: true, max_failures: 0, http: { url, timeout: 1500, cache_ttl: 60 } } } });
      clients = new Clients(broker.port);
    });
    after(async () => {
      await clients?.closeAll();
      if (broker) await stopBroker(broker);
      for (const res of hanging) res.destroy();
      server?.closeAllConnections();
      await new Promise((resolve) => server?.close(resolve));
    });

    for (const v of VERSIONS) {
      it(`[v${v}] allow and 204 connect; deny is bad username or password; ignore and 500 are not authorized`, T, async () => {
        assert.equal(code((await clients.raw(v, { username: `user-${v}`, password: pw('letmein') })).connack), 0);
        assert.equal(code((await clients.raw(v, { username: 'nocontent', password: pw('x') })).connack), 0);
        assert.equal(code((await clients.raw(v, { username: `user-${v}`, password: pw('wrong') })).connack), BAD_CREDENTIALS[v]);
        assert.equal(code((await clients.raw(v, { username: `deny-${v}`, password: pw('letmein') })).connack), BAD_CREDENTIALS[v]);
        // ignore abstains; with auth.enable and nobody else to ask, the client is not authorized.
        assert.equal(code((await clients.raw(v, { username: `ignore-${v}`, password: pw('letmein') })).connack), NOT_AUTHORIZED[v]);
        assert.equal(code((await clients.raw(v, { username: 'broken', password: pw('letmein') })).connack), NOT_AUTHORIZED[v]);
      });
    }

    it('the service receives the documented JSON body', T, async () => {
      const id = uniq('body');
      await clients.raw(5, { clientId: id, username: 'user-body', password: pw('letmein') });
      const body = bodies.find((b) => b['clientid'] === id);
      assert.deepEqual(body, { clientid: id, username: 'user-body', password: 'letmein', peerhost: '127.0.0.1', protocol: 5, transport: 'tcp' });
    });

    it('a service that never answers means not authorized after the timeout, and other clients are answered meanwhile', T, async () => {
      const start = performance.now();
      const slow = clients.raw(5, { username: 'hang', password: pw('letmein') }).then((r) => ({ rc: code(r.connack), ms: performance.now() - start }));
      const fast = await clients.raw(4, { username: 'user-fast', password: pw('letmein') });
      const fastMs = performance.now() - start;
      assert.equal(code(fast.connack), 0);
      const { rc, ms } = await slow;
      assert.equal(rc, 0x87);
      assert.ok(ms >= 1450 && ms < 10000, `refused after ${ms.toFixed(0)} ms; timeout is 1500 ms`);
      assert.ok(fastMs < 1450, `the second client waited ${fastMs.toFixed(0)} ms`);
      await broker.waitForLog((r) => r['msg'] === 'authentication backend failed' && r['err'] === 'timed out' && r['username'] === 'hang');
    });

    it('answers are cached (the service is asked once for a repeated login); errors are not', T, async () => {
      const id = uniq('cached');
      for (let i = 0; i < 3; i++) {
        assert.equal(code((await clients.raw(4, { clientId: id, username: 'user-cached', password: pw('letmein') })).connack), 0);
      }
      assert.equal(asked('user-cached'), 1);
      const before = asked('broken');
      for (let i = 0; i < 2; i++) await clients.raw(4, { clientId: id, username: 'broken', password: pw('letmein') });
      assert.equal(asked('broken') - before, 2);
      assert.ok(!broker.logs.some((r) => JSON.stringify(r).includes('letmein')), 'the password is never logged');
    });
  });

  describe('failed-login throttle', () => {
    const DELAY = 800;
    let broker: RunningBroker;

    before(async () => {
      const file = join(tempDir(), 'passwd');
      await smqPasswd('-c', '-b', file, 'alice', 'right');
      broker = await startBroker({ config: { auth: { enable: true, password_file: file, max_failures: 2, failure_window: 60, failure_delay: DELAY } } });
    });
    after(async () => { if (broker) await stopBroker(broker); });

    it('after max_failures failures an address waits failure_delay, doubling; other addresses do not; a success resets it', T, async () => {
      const from = (addr: string, v: Version, password: string) => connectFrom(broker.port, addr, v, { username: 'alice', password: pw(password) });
      for (let i = 0; i < 2; i++) {
        const r = await from('127.0.0.1', 4, 'wrong');
        assert.equal(code(r.connack), 4);
        assert.ok(r.ms < DELAY, `failure ${i + 1} took ${r.ms.toFixed(0)} ms: slowed too early`);
      }
      const other = await from('127.0.0.2', 5, 'right');
      assert.equal(code(other.connack), 0);
      assert.ok(other.ms < DELAY, `another address waited ${other.ms.toFixed(0)} ms`);

      const third = await from('127.0.0.1', 5, 'wrong');
      assert.equal(code(third.connack), 0x86);
      assert.ok(third.ms >= DELAY && third.ms < DELAY + 5000, `third attempt answered after ${third.ms.toFixed(0)} ms`);
      await broker.waitForLog((r) => r['msg'] === 'login attempts from this address are slowed down' && r['delayMs'] === 2 * DELAY);

      const fourth = await from('127.0.0.1', 4, 'right');
      assert.equal(code(fourth.connack), 0, 'a right password still gets in, after the wait');
      assert.ok(fourth.ms >= 2 * DELAY && fourth.ms < 2 * DELAY + 5000, `fourth attempt answered after ${fourth.ms.toFixed(0)} ms`);

      const afterSuccess = await from('127.0.0.1', 4, 'wrong');
      assert.ok(afterSuccess.ms < DELAY, `after a success the address still waited ${afterSuccess.ms.toFixed(0)} ms`);
      // Logs travel on stdout, CONNACKs on the socket: wait for the fourth record rather than assume it is there.
      const failed = (r: Record<string, unknown>): boolean => r['msg'] === 'authentication failed' && r['username'] === 'alice';
      await broker.waitForLog((r) => failed(r) && broker.logs.filter(failed).length === 4);
      assert.deepEqual(broker.logs.filter(failed).map((r) => r['remote']), ['127.0.0.1', '127.0.0.1', '127.0.0.1', '127.0.0.1']);
    });
  });
});
