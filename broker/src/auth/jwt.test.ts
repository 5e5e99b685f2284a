import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IConnectPacket } from 'mqtt-packet';
import { pino } from 'pino';
import type { ClientInfo } from '../hooks/types.js';
import { RC } from '../protocol/reason-codes.js';
import { JwtAuth, looksLikeJwt, NO_KEYS, parseJwks, verifyJwt, type JwtVerifyOptions } from './jwt.js';

const NOW = 1_700_000_000;
const SECRET = 'hs256-test-secret-of-some-length';
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });

const b64url = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** Signs a token the way a real issuer would; `alg` in the header may differ from the key to forge confusion. */
function token(header: Record<string, unknown>, claims: Record<string, unknown>, key: KeyObject | string | null): string {
  const input = `${b64url(header)}.${b64url(claims)}`;
  const alg = header['alg'];
  let sig = Buffer.alloc(0);
  if (typeof key === 'string') sig = createHmac('sha256', key).update(input).digest();
  else if (key && alg === 'ES256') sig = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  else if (key) sig = sign('sha256', Buffer.from(input), key);
  return `${input}.${sig.toString('base64url')}`;
}

function jwks(keys: Record<string, unknown>[]): string {
  return JSON.stringify({ keys });
}

const rsaJwk = { ...rsa.publicKey.export({ format: 'jwk' }), kid: 'rsa-1', use: 'sig', alg: 'RS256' };
const ecJwk = { ...ec.publicKey.export({ format: 'jwk' }), kid: 'ec-1' };
const keys = parseJwks(jwks([rsaJwk, ecJwk]));

function opts(over: Partial<JwtVerifyOptions> = {}): JwtVerifyOptions {
  return { secret: Buffer.from(SECRET), keys, issuer: '', audience: '', now: NOW, ...over };
}

const valid = { sub: 'dev-1', exp: NOW + 60 };

test('HS256 with the configured secret verifies; another secret or a changed payload does not', () => {
  const t = token({ alg: 'HS256', typ: 'JWT' }, valid, SECRET);
  assert.equal(verifyJwt(t, opts()).ok, true);
  assert.deepEqual(verifyJwt(token({ alg: 'HS256' }, valid, 'other'), opts()), { ok: false, reason: 'bad signature' });
  const [h, , s] = t.split('.');
  assert.deepEqual(verifyJwt(`${h}.${b64url({ ...valid, sub: 'admin' })}.${s}`, opts()), { ok: false, reason: 'bad signature' });
  assert.deepEqual(verifyJwt(t, opts({ secret: null })), { ok: false, reason: 'HS256 is not enabled' });
});

test('RS256 and ES256 verify with the JWKS key named by kid', () => {
  assert.equal(verifyJwt(token({ alg: 'RS256', kid: 'rsa-1' }, valid, rsa.privateKey), opts()).ok, true);
  assert.equal(verifyJwt(token({ alg: 'ES256', kid: 'ec-1' }, valid, ec.privateKey), opts()).ok, true);
  const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  assert.deepEqual(verifyJwt(token({ alg: 'ES256', kid: 'ec-1' }, valid, other.privateKey), opts()), { ok: false, reason: 'bad signature' });
  assert.deepEqual(verifyJwt(token({ alg: 'RS256', kid: 'nope' }, valid, rsa.privateKey), opts()), { ok: false, reason: 'unknown kid' });
  // A DER signature (not IEEE P1363) of the right key is still refused: ES256 signatures are exactly 64 bytes.
  const input = `${b64url({ alg: 'ES256', kid: 'ec-1' })}.${b64url(valid)}`;
  const der = sign('sha256', Buffer.from(input), ec.privateKey).toString('base64url');
  assert.equal(verifyJwt(`${input}.${der}`, opts()).ok, false);
});

test('a token without kid uses the only kid-less key, and none when there are several or none', () => {
  const { kid: _kid, ...bare } = ecJwk;
  const single = parseJwks(jwks([bare, rsaJwk]));
  assert.equal(verifyJwt(token({ alg: 'ES256' }, valid, ec.privateKey), opts({ keys: single })).ok, true);
  const two = parseJwks(jwks([bare, { ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' }) }]));
  assert.deepEqual(verifyJwt(token({ alg: 'ES256' }, valid, ec.privateKey), opts({ keys: two })), { ok: false, reason: 'no key for a token without kid' });
  assert.deepEqual(verifyJwt(token({ alg: 'RS256' }, valid, rsa.privateKey), opts()), { ok: false, reason: 'no key for a token without kid' });
});

test('alg none and unknown algorithms are refused, signed or not', () => {
  for (const alg of ['none', 'None', 'HS512', 'RS384', 'PS256', 'EdDSA', undefined]) {
    const t = token(alg === undefined ? {} : { alg }, valid, null);
    const r = verifyJwt(t, opts());
    assert.equal(r.ok, false, String(alg));
  }
  assert.deepEqual(verifyJwt(token({ alg: 'none' }, valid, null), opts()), { ok: false, reason: 'algorithm none is not accepted' });
});

test('algorithm confusion is refused: HS256 signed with the public key, RS256 against an EC key and the reverse', () => {
  const pem = rsa.publicKey.export({ format: 'pem', type: 'spki' }).toString();
  // The classic attack: HMAC keyed with the RSA public key the verifier is expected to hold.
  assert.equal(verifyJwt(token({ alg: 'HS256', kid: 'rsa-1' }, valid, pem), opts()).ok, false);
  assert.equal(verifyJwt(token({ alg: 'HS256', kid: 'rsa-1' }, valid, pem), opts({ secret: null })).ok, false);
  assert.deepEqual(verifyJwt(token({ alg: 'ES256', kid: 'rsa-1' }, valid, ec.privateKey), opts()), { ok: false, reason: 'ES256 token for a RS256 key' });
  assert.deepEqual(verifyJwt(token({ alg: 'RS256', kid: 'ec-1' }, valid, rsa.privateKey), opts()), { ok: false, reason: 'RS256 token for a ES256 key' });
});

test('time claims: exp is required and enforced, nbf when present', () => {
  const t = (claims: Record<string, unknown>): string => token({ alg: 'HS256' }, claims, SECRET);
  assert.deepEqual(verifyJwt(t({ sub: 'x' }), opts()), { ok: false, reason: 'no exp claim' });
  assert.deepEqual(verifyJwt(t({ exp: String(NOW + 60) }), opts()), { ok: false, reason: 'no exp claim' });
  assert.deepEqual(verifyJwt(t({ exp: NOW }), opts()), { ok: false, reason: 'expired' });
  assert.deepEqual(verifyJwt(t({ exp: NOW - 1 }), opts()), { ok: false, reason: 'expired' });
  assert.equal(verifyJwt(t({ exp: NOW + 1 }), opts()).ok, true);
  assert.deepEqual(verifyJwt(t({ exp: NOW + 60, nbf: NOW + 10 }), opts()), { ok: false, reason: 'not valid yet (nbf)' });
  assert.equal(verifyJwt(t({ exp: NOW + 60, nbf: NOW }), opts()).ok, true);
});

test('issuer and audience when configured; aud as a string or an array', () => {
  const t = (claims: Record<string, unknown>): string => token({ alg: 'HS256' }, { ...valid, ...claims }, SECRET);
  const strict = opts({ issuer: 'https://idp.example', audience: 'smq' });
  assert.equal(verifyJwt(t({ iss: 'https://idp.example', aud: 'smq' }), strict).ok, true);
  assert.equal(verifyJwt(t({ iss: 'https://idp.example', aud: ['other', 'smq'] }), strict).ok, true);
  assert.deepEqual(verifyJwt(t({ iss: 'https://idp.example', aud: 'other' }), strict), { ok: false, reason: 'wrong audience' });
  assert.deepEqual(verifyJwt(t({ iss: 'https://idp.example', aud: ['other'] }), strict), { ok: false, reason: 'wrong audience' });
  assert.deepEqual(verifyJwt(t({ iss: 'https://idp.example' }), strict), { ok: false, reason: 'wrong audience' });
  assert.deepEqual(verifyJwt(t({ iss: 'https://evil.example', aud: 'smq' }), strict), { ok: false, reason: 'wrong issuer' });
  assert.equal(verifyJwt(t({ aud: 'anything' }), opts()).ok, true, 'not configured: any aud');
});

test('malformed tokens and crit headers are refused; non-tokens are recognised as such', () => {
  assert.equal(looksLikeJwt('hunter2'), false);
  assert.equal(looksLikeJwt('a.b'), false);
  assert.equal(looksLikeJwt('a.b.c.d'), false);
  assert.equal(looksLikeJwt('a b.c.d'), false);
  assert.equal(looksLikeJwt('abc.def.ghi'), true);
  assert.deepEqual(verifyJwt('abc.def.ghi', opts()), { ok: false, reason: 'malformed token' });
  assert.deepEqual(verifyJwt(`${b64url('[1]')}.${b64url(valid)}.`, opts()), { ok: false, reason: 'malformed token' });
  assert.deepEqual(verifyJwt(token({ alg: 'HS256', crit: ['exp'] }, valid, SECRET), opts()), { ok: false, reason: 'unsupported crit header' });
});

test('parseJwks: unsupported keys are skipped with a reason; bad keys, weak RSA and duplicate kids are errors', () => {
  const ed = generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' });
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ format: 'jwk' });
  const set = parseJwks(jwks([ed, p384, { ...rsaJwk, kid: 'enc', use: 'enc' }, { ...rsaJwk, kid: 'ps', alg: 'PS256' }, { kty: 'oct', k: 'c2VjcmV0' }, rsaJwk]));
  assert.deepEqual([...set.byKid.keys()], ['rsa-1']);
  assert.equal(set.skipped.length, 5);
  assert.throws(() => parseJwks('{'), /not valid JSON/);
  assert.throws(() => parseJwks('{"keys": 1}'), /"keys" array/);
  assert.throws(() => parseJwks(jwks([rsaJwk, rsaJwk])), /kid "rsa-1" appears twice/);
  assert.throws(() => parseJwks(jwks([{ kty: 'RSA', n: 'AQAB' }])), /not a valid RSA public key/);
  const weak = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
  assert.throws(() => parseJwks(jwks([weak])), /at least 2048 bits/);
  // Private members are ignored: only the public key is kept.
  const priv = parseJwks(jwks([{ ...ec.privateKey.export({ format: 'jwk' }), kid: 'p' }]));
  assert.equal(priv.byKid.get('p')?.key.type, 'public');
  assert.equal(NO_KEYS.byKid.size, 0);
});

function client(clientId: string, username: string | undefined): ClientInfo {
  return { clientId, username, remoteAddress: '127.0.0.1', transport: 'tcp', protocolVersion: 4, certificate: undefined };
}

function connect(clientId: string, username: string | undefined, password: string | undefined): IConnectPacket {
  const p: IConnectPacket = { cmd: 'connect', clientId };
  if (username !== undefined) p.username = username;
  if (password !== undefined) p.password = Buffer.from(password);
  return p;
}

test('JwtAuth: no token abstains, a valid one allows, a bad one is bad username or password; claims bind the CONNECT', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'smq-jwks-'));
  const file = join(dir, 'jwks.json');
  writeFileSync(file, jwks([rsaJwk]));
  const records: string[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void records.push(s) });
  const hook = new JwtAuth({ from: 'password', secret: SECRET, jwksFile: file, issuer: '', audience: 'smq', log, now: () => NOW, intervalMs: 60000 });
  t.after(() => hook.onStop());
  const bad = { ok: false, reasonCode: RC.BAD_USERNAME_OR_PASSWORD };
  const good = token({ alg: 'RS256', kid: 'rsa-1' }, { ...valid, aud: 'smq', clientid: 'c1', username: 'u1' }, rsa.privateKey);
  assert.equal(hook.authenticate(client('c1', 'u1'), connect('c1', 'u1', undefined)), undefined, 'no password: no token');
  assert.equal(hook.authenticate(client('c1', 'u1'), connect('c1', 'u1', 'plain password')), undefined, 'not a token');
  assert.deepEqual(hook.authenticate(client('c1', 'u1'), connect('c1', 'u1', good)), { ok: true, identity: 'u1' });
  assert.deepEqual(hook.authenticate(client('c2', 'u1'), connect('c2', 'u1', good)), bad, 'clientid claim');
  assert.deepEqual(hook.authenticate(client('c1', 'u2'), connect('c1', 'u2', good)), bad, 'username claim');
  const noAud = token({ alg: 'HS256' }, valid, SECRET);
  assert.deepEqual(hook.authenticate(client('c1', undefined), connect('c1', undefined, noAud)), bad, 'audience required');
  assert.ok(records.some((r) => r.includes('"reason":"clientid claim does not match"')));
  assert.ok(!records.some((r) => r.includes(good.split('.')[2] ?? '')), 'the token is never logged');

  // JWKS reload: a new key works after the file changes.
  const rsa2 = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(file, jwks([rsaJwk, { ...rsa2.publicKey.export({ format: 'jwk' }), kid: 'rsa-2' }]));
  await hook.reload();
  assert.ok(records.some((r) => r.includes('"msg":"jwks file reloaded"')));
  const fresh = token({ alg: 'RS256', kid: 'rsa-2' }, { ...valid, aud: 'smq' }, rsa2.privateKey);
  assert.deepEqual(hook.authenticate(client('c9', undefined), connect('c9', undefined, fresh)), { ok: true });
});

test('JwtAuth with from: username reads the token from the username and skips the username claim', (t) => {
  const hook = new JwtAuth({ from: 'username', secret: SECRET, jwksFile: '', issuer: '', audience: '', log: pino({ level: 'silent' }), now: () => NOW });
  t.after(() => hook.onStop());
  const tok = token({ alg: 'HS256' }, { ...valid, username: 'someone' }, SECRET);
  assert.deepEqual(hook.authenticate(client('c1', tok), connect('c1', tok, undefined)), { ok: true, identity: 'someone' });
  assert.equal(hook.authenticate(client('c1', 'alice'), connect('c1', 'alice', tok)), undefined, 'the password is not looked at');
  // The token is the username and changes at every refresh: its subject names the session's owner.
  const bySub = token({ alg: 'HS256' }, { ...valid, sub: 'device-7' }, SECRET);
  assert.deepEqual(hook.authenticate(client('c1', bySub), connect('c1', bySub, undefined)), { ok: true, identity: '\u0000jwt:device-7' });
});

test('JwtAuth with disconnect_on_expiry names when the token expires', (t) => {
  const hook = new JwtAuth({ from: 'password', secret: SECRET, jwksFile: '', issuer: '', audience: '', disconnectOnExpiry: true, log: pino({ level: 'silent' }), now: () => NOW });
  t.after(() => hook.onStop());
  const tok = token({ alg: 'HS256' }, valid, SECRET);
  assert.deepEqual(hook.authenticate(client('c1', 'u'), connect('c1', 'u', tok)), { ok: true, expiresAt: (valid.exp as number) * 1000 });
});
