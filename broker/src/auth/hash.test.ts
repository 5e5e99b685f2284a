import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dummyHash, HashFormatError, hashPassword, parseHash, verifyPassword } from './hash.js';

const pw = (s: string): Buffer => Buffer.from(s, 'utf8');

// Written by Debian's mosquitto_passwd 2.0.11 (`-b`, and `-H sha512 -b`), kept here so the formats stay
// covered where Mosquitto is not installed.
const MOSQUITTO = {
  pbkdf2: { user: 'jörg', password: 'pä$$:wörd', hash: '$7$101$gAW+mdEzuc8zbpfg$2dE9YAmdgQfsoQV+ibRsVnjs2Y1YWx1xR6SDSrJKGmNaJ0gZmjEmY44gRW6jpTFZg3SfuEVi/Yi2ycCFR9MQsA==' },
  sha512: { user: 'carol', password: 'c@rol pass', hash: '$6$3CpeJy5L08NWlIpt$kZtOvwO7xhuMRrM0Kd4XLYE3XJobG2q4tuUHLjlWijNuu/IIMHHaCLV3lhY0PUWDZNZb43axrkiraIn+RwsJCw==' },
};

test('hashPassword writes a salted, self-describing scrypt hash that verifies', async () => {
  const a = await hashPassword('s3cret');
  const b = await hashPassword('s3cret');
  assert.match(a, /^\$scrypt\$N=16384,r=8,p=1\$[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=$/);
  assert.notEqual(a, b, 'each hash has its own salt');
  assert.equal(await verifyPassword(pw('s3cret'), parseHash(a)), true);
  assert.equal(await verifyPassword(pw('s3cret '), parseHash(a)), false);
  assert.equal(await verifyPassword(pw(''), parseHash(a)), false);
});

test('other scrypt parameters are honoured', async () => {
  const h = await hashPassword('x', { N: 1024, r: 4, p: 2 });
  assert.match(h, /^\$scrypt\$N=1024,r=4,p=2\$/);
  const parsed = parseHash(h);
  assert.equal(parsed.kind, 'scrypt');
  assert.equal(await verifyPassword(pw('x'), parsed), true);
});

test('Mosquitto 2 $7$ (PBKDF2-SHA512) hashes verify, with non-ASCII usernames and passwords', async () => {
  const h = parseHash(MOSQUITTO.pbkdf2.hash);
  assert.equal(h.kind, 'pbkdf2-sha512');
  assert.equal(await verifyPassword(pw(MOSQUITTO.pbkdf2.password), h), true);
  assert.equal(await verifyPassword(pw('pä$$:word'), h), false);
});

test('Mosquitto 1.x $6$ (salted SHA-512) hashes verify', async () => {
  const h = parseHash(MOSQUITTO.sha512.hash);
  assert.equal(h.kind, 'sha512');
  assert.equal(await verifyPassword(pw(MOSQUITTO.sha512.password), h), true);
  assert.equal(await verifyPassword(pw('c@rol pas'), h), false);
});

test('hashes made now by the installed mosquitto_passwd verify', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'smq-hash-'));
  const file = join(dir, 'pw');
  const made = spawnSync('mosquitto_passwd', ['-c', '-b', file, 'dave', 'd4ve!'], { encoding: 'utf8' });
  if (made.error) return t.skip('mosquitto_passwd is not installed');
  assert.equal(made.status, 0, made.stderr);
  assert.equal(spawnSync('mosquitto_passwd', ['-H', 'sha512', '-b', file, 'erin', 'erin pw']).status, 0);
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  const hashOf = (user: string): string => (lines.find((l) => l.startsWith(`${user}:`)) ?? '').slice(user.length + 1);
  assert.equal(await verifyPassword(pw('d4ve!'), parseHash(hashOf('dave'))), true);
  assert.equal(await verifyPassword(pw('d4ve'), parseHash(hashOf('dave'))), false);
  assert.equal(await verifyPassword(pw('erin pw'), parseHash(hashOf('erin'))), true);
});

test('unknown formats and out-of-range parameters are refused without echoing the hash', () => {
  const bad = [
    'plaintext',
    '$1$abc$def',
    '$2b$10$abcdefghijklmnopqrstuv',
    '$7$101$notbase64!$AAAA',
    '$7$0$gAW+mdEzuc8zbpfg$' + 'A'.repeat(88),
    '$7$101$gAW+mdEzuc8zbpfg',
    '$6$3CpeJy5L08NWlIpt$c2hvcnQ=',
    '$scrypt$N=1000,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA==$' + 'A'.repeat(44),
    '$scrypt$N=16384,r=8$AAAAAAAAAAAAAAAAAAAAAA==$' + 'A'.repeat(44),
    '$scrypt$N=16777216,r=64,p=1$AAAAAAAAAAAAAAAAAAAAAA==$' + 'A'.repeat(44),
  ];
  for (const h of bad) {
    assert.throws(() => parseHash(h), (err: unknown) => {
      assert.ok(err instanceof HashFormatError, h);
      assert.equal(err.code, 'ERR_PASSWORD_HASH');
      assert.ok(!err.message.includes('gAW+'), 'the message must not quote the hash');
      return true;
    }, h);
  }
});

test('the dummy hash costs a real scrypt check and matches nothing', async () => {
  const d = dummyHash();
  assert.equal(d.kind, 'scrypt');
  assert.equal(await verifyPassword(pw(''), d), false);
  assert.equal(await verifyPassword(pw('anything'), d), false);
});

test('verification runs off the event loop: timers keep firing during a burst of scrypt checks', async () => {
  const h = parseHash(await hashPassword('x'));
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  const start = Date.now();
  await Promise.all(Array.from({ length: 8 }, () => verifyPassword(pw('y'), h)));
  const elapsed = Date.now() - start;
  clearInterval(timer);
  // A synchronous scrypt would block the loop for the whole burst and let no tick through.
  assert.ok(ticks >= Math.min(5, elapsed / 10), `only ${ticks} ticks in ${elapsed} ms`);
});
