import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IConnectPacket } from 'mqtt-packet';
import { pino } from 'pino';
import { DEFAULTS } from '../config/defaults.js';
import type { Config } from '../config/types.js';
import { HookRegistry } from '../hooks/registry.js';
import type { ClientInfo, Hook, PeerCertificate } from '../hooks/types.js';
import { RC } from '../protocol/reason-codes.js';
import { CertificateAuth } from './certificate.js';
import { hashPassword } from './hash.js';
import { createAuthHooks, createLoginGate } from './index.js';
import { AuthFileError } from './auth-file.js';

const log = pino({ level: 'silent' });

function config(auth: Partial<Config['auth']>, certUsername: Config['tls']['cert_username'] = 'none'): Config {
  const base = DEFAULTS;
  return { ...base, auth: { ...base.auth, ...auth }, tls: { ...base.tls, cert_username: certUsername } };
}

function client(username: string | undefined, certificate?: PeerCertificate): ClientInfo {
  return { clientId: 'c1', username, remoteAddress: '127.0.0.1', transport: 'tls', protocolVersion: 5, certificate };
}

function connect(username: string | undefined, password: string | undefined): IConnectPacket {
  const p: IConnectPacket = { cmd: 'connect', clientId: 'c1' };
  if (username !== undefined) p.username = username;
  if (password !== undefined) p.password = Buffer.from(password);
  return p;
}

function hs256(claims: Record<string, unknown>, secret: string): string {
  const enc = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
  const input = `${enc({ alg: 'HS256' })}.${enc(claims)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

test('certificate identity: a verified certificate with the configured identity is enough; otherwise abstain', () => {
  const cn = new CertificateAuth('cn');
  assert.deepEqual(cn.authenticate(client('dev-1', { cn: 'dev-1', san: [] })), { ok: true });
  assert.equal(cn.authenticate(client('dev-1', { cn: '', san: ['dev-1.example'] })), undefined);
  assert.equal(cn.authenticate(client('dev-1')), undefined, 'no certificate');
  const san = new CertificateAuth('san');
  assert.deepEqual(san.authenticate(client('x', { cn: '', san: ['dev-1.example'] })), { ok: true });
  assert.deepEqual(san.authenticate(client('x', { cn: '', san: ['10.0.0.7', 'dev-1.example'] })), { ok: true });
  assert.equal(san.authenticate(client('x', { cn: 'dev-1', san: ['10.0.0.7', '::1'] })), undefined, 'IP addresses are not identities');
  assert.equal(san.authenticate(client('x', { cn: 'dev-1', san: [] })), undefined);
});

/** The hooks for a configuration, with its throttle. */
function hooksFor(cfg: Config): Hook[] {
  return createAuthHooks(cfg, log, createLoginGate(cfg).throttle);
}

test('order: failures/throttle, certificate, password file, JWT, HTTP; only what is configured', async (t) => {
  const d = mkdtempSync(join(tmpdir(), 'smq-authidx-'));
  const file = join(d, 'passwd');
  writeFileSync(file, `alice:${await hashPassword('a')}\n`);
  const jwks = join(d, 'jwks.json');
  writeFileSync(jwks, '{"keys": []}');
  const all = hooksFor(config({
    password_file: file,
    jwt: { ...DEFAULTS.auth.jwt, secret: 's', jwks_file: jwks },
    http: { ...DEFAULTS.auth.http, url: 'http://127.0.0.1:1/auth' },
  }, 'cn'));
  t.after(() => all.forEach((h) => void h.onStop?.()));
  assert.deepEqual(all.map((h) => h.name), ['auth-failures', 'certificate', 'password-file', 'jwt', 'auth-http']);
  assert.equal(typeof all[0]?.onConnected, 'function', 'the throttle is on with the defaults (5 failures, 1 s)');
  assert.equal(all[0]?.authenticate, undefined, 'the throttle waits in the LoginGate, not in a worker slot');
  const none = hooksFor(config({ max_failures: 0 }));
  assert.deepEqual(none.map((h) => h.name), ['auth-failures']);
  assert.equal(none[0]?.onConnected, undefined, 'nothing on the CONNECT path when nothing is configured');
});

test('combined: a listed user is decided by the file; an unknown user with a token reaches JWT; no credentials follow auth.enable', async (t) => {
  const d = mkdtempSync(join(tmpdir(), 'smq-authidx-'));
  const file = join(d, 'passwd');
  writeFileSync(file, `alice:${await hashPassword('a')}\n`);
  const cfg = config({ enable: true, max_failures: 0, password_file: file, jwt: { ...DEFAULTS.auth.jwt, secret: 'jwt-secret' } });
  const hooks = hooksFor(cfg);
  t.after(() => hooks.forEach((h) => void h.onStop?.()));
  const registry = new HookRegistry(log, { authRequired: true, aclRequired: false });
  for (const h of hooks) registry.add(h);
  const token = hs256({ exp: Date.now() / 1000 + 60 }, 'jwt-secret');
  assert.equal((await registry.authenticate(client('alice'), connect('alice', 'a'))).rc, RC.SUCCESS);
  assert.equal((await registry.authenticate(client('alice'), connect('alice', token))).rc, RC.BAD_USERNAME_OR_PASSWORD, 'alice belongs to the file');
  assert.equal((await registry.authenticate(client('device-1'), connect('device-1', token))).rc, RC.SUCCESS);
  assert.equal((await registry.authenticate(client('device-1'), connect('device-1', 'plain'))).rc, RC.NOT_AUTHORIZED, 'nobody answered');
  assert.equal((await registry.authenticate(client(undefined), connect(undefined, undefined))).rc, RC.NOT_AUTHORIZED);
});

test('a missing password or JWKS file stops the start with ERR_AUTH_FILE', () => {
  for (const auth of [{ password_file: '/nonexistent/passwd' }, { jwt: { ...DEFAULTS.auth.jwt, jwks_file: '/nonexistent/jwks.json' } }]) {
    assert.throws(() => hooksFor(config(auth)), (err: unknown) => err instanceof AuthFileError && err.code === 'ERR_AUTH_FILE');
  }
});
