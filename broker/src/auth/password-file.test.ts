import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IConnectPacket } from 'mqtt-packet';
import { pino, type Logger } from 'pino';
import type { ClientInfo } from '../hooks/types.js';
import { RC } from '../protocol/reason-codes.js';
import { HashFormatError, hashPassword } from './hash.js';
import { parsePasswordFile, PasswordFileAuth } from './password-file.js';
import { AuthFileError } from './auth-file.js';

/** A logger whose records land in an array, to check what is (and is not) logged. */
function capture(): { log: Logger; records: Record<string, unknown>[]; text: () => string } {
  const records: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void records.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, records, text: () => JSON.stringify(records) };
}

const MOSQ_7 = 'jörg:$7$101$gAW+mdEzuc8zbpfg$2dE9YAmdgQfsoQV+ibRsVnjs2Y1YWx1xR6SDSrJKGmNaJ0gZmjEmY44gRW6jpTFZg3SfuEVi/Yi2ycCFR9MQsA==';
const MOSQ_6 = 'carol:$6$3CpeJy5L08NWlIpt$kZtOvwO7xhuMRrM0Kd4XLYE3XJobG2q4tuUHLjlWijNuu/IIMHHaCLV3lhY0PUWDZNZb43axrkiraIn+RwsJCw==';

function client(username: string | undefined): ClientInfo {
  return { clientId: 'c1', username, remoteAddress: '127.0.0.1', transport: 'tcp', protocolVersion: 5, certificate: undefined };
}

function connect(username: string | undefined, password: string | undefined): IConnectPacket {
  const p: IConnectPacket = { cmd: 'connect', clientId: 'c1' };
  if (username !== undefined) p.username = username;
  if (password !== undefined) p.password = Buffer.from(password);
  return p;
}

async function fileWith(lines: string[]): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'smq-pwfile-'));
  const file = join(dir, 'passwd');
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

test('parsePasswordFile: users, comments, blank lines, CRLF and Mosquitto hashes', async () => {
  const users = parsePasswordFile(['# smq users', '', `alice:${await hashPassword('a')}\r`, MOSQ_7, MOSQ_6, '   '].join('\n'));
  assert.deepEqual([...users.keys()], ['alice', 'jörg', 'carol']);
});

test('parsePasswordFile: a bad line invalidates the file and is named by number, not content', () => {
  const cases: [string, RegExp][] = [
    ['alice', /line 1: expected username:hash/],
    [':$6$x$y', /line 1: expected username:hash/],
    [`${MOSQ_6}\nbob:plain-password`, /line 2: not a hash/],
    [`${MOSQ_6}\n${MOSQ_6}`, /line 2: user "carol" is listed twice/],
  ];
  for (const [text, re] of cases) {
    assert.throws(() => parsePasswordFile(text), (err: unknown) => {
      assert.ok(err instanceof HashFormatError);
      assert.match(err.message, re);
      assert.ok(!err.message.includes('plain-password'));
      return true;
    });
  }
});

test('right password allowed; wrong, missing and unknown refused as bad username or password', async (t) => {
  const { log, text } = capture();
  const file = await fileWith([`alice:${await hashPassword('s3cret')}`, MOSQ_7, MOSQ_6]);
  const hook = new PasswordFileAuth({ file, log, final: true });
  t.after(() => hook.onStop());
  const bad = { ok: false, reasonCode: RC.BAD_USERNAME_OR_PASSWORD };
  assert.deepEqual(await hook.authenticate(client('alice'), connect('alice', 's3cret')), { ok: true });
  assert.deepEqual(await hook.authenticate(client('jörg'), connect('jörg', 'pä$$:wörd')), { ok: true });
  assert.deepEqual(await hook.authenticate(client('carol'), connect('carol', 'c@rol pass')), { ok: true });
  assert.deepEqual(await hook.authenticate(client('alice'), connect('alice', 'S3cret')), bad);
  assert.deepEqual(await hook.authenticate(client('alice'), connect('alice', undefined)), bad);
  assert.deepEqual(await hook.authenticate(client('mallory'), connect('mallory', 's3cret')), bad);
  assert.equal(await hook.authenticate(client(undefined), connect(undefined, undefined)), undefined, 'anonymous: not the file\'s business');
  assert.ok(!text().includes('s3cret'));
});

test('unknown users take as long as a wrong password (a dummy scrypt check), so timing does not reveal users', async (t) => {
  const file = await fileWith([`alice:${await hashPassword('s3cret')}`]);
  const hook = new PasswordFileAuth({ file, log: pino({ level: 'silent' }), final: true });
  t.after(() => hook.onStop());
  const time = async (user: string): Promise<number> => {
    const start = process.hrtime.bigint();
    for (let i = 0; i < 5; i++) await hook.authenticate(client(user), connect(user, 'wrong'));
    return Number(process.hrtime.bigint() - start) / 1e6;
  };
  await time('alice'); // warm up
  const known = await time('alice');
  const unknown = await time('nobody');
  // Both do five scrypt runs; without the dummy check the unknown user would answer in microseconds.
  assert.ok(unknown > known / 3, `unknown user ${unknown.toFixed(1)} ms vs known ${known.toFixed(1)} ms`);
});

test('not the last backend: unknown users abstain so JWT or HTTP can answer; listed users are still decided here', async (t) => {
  const file = await fileWith([`alice:${await hashPassword('s3cret')}`]);
  const hook = new PasswordFileAuth({ file, log: pino({ level: 'silent' }), final: false });
  t.after(() => hook.onStop());
  assert.equal(await hook.authenticate(client('device-7'), connect('device-7', 'eyJ...')), undefined);
  assert.deepEqual(await hook.authenticate(client('alice'), connect('alice', 'nope')), { ok: false, reasonCode: RC.BAD_USERNAME_OR_PASSWORD });
});

test('a missing or invalid file at start-up is an AuthFileError naming the key and the file', async () => {
  const log = pino({ level: 'silent' });
  assert.throws(() => new PasswordFileAuth({ file: '/nonexistent/passwd', log, final: true }), (err: unknown) => {
    assert.ok(err instanceof AuthFileError);
    assert.equal(err.code, 'ERR_AUTH_FILE');
    assert.match(err.message, /^auth\.password_file: \/nonexistent\/passwd: cannot read the file \(ENOENT\)$/);
    return true;
  });
  const file = await fileWith(['alice:nothash']);
  assert.throws(() => new PasswordFileAuth({ file, log, final: true }), /auth\.password_file: .*line 1: not a hash/);
});

test('reload: a changed file is picked up; a broken one keeps the old users and logs an error', async (t) => {
  const { log, records } = capture();
  const file = await fileWith([`alice:${await hashPassword('one')}`]);
  const hook = new PasswordFileAuth({ file, log, final: true, intervalMs: 60000 });
  t.after(() => hook.onStop());
  assert.deepEqual(await hook.authenticate(client('alice'), connect('alice', 'one')), { ok: true });

  // Replaced the way smq passwd does it: a new file renamed over the old one.
  writeFileSync(`${file}.new`, `alice:${await hashPassword('two')}\nbob:${await hashPassword('b')}\n`);
  renameSync(`${file}.new`, file);
  await hook.reload();
  assert.ok(records.some((r) => r['msg'] === 'password file reloaded' && r['file'] === file));
  assert.equal(hook.size, 2);
  assert.deepEqual(await hook.authenticate(client('alice'), connect('alice', 'two')), { ok: true });
  assert.equal((await hook.authenticate(client('alice'), connect('alice', 'one')))?.ok, false);

  writeFileSync(file, 'alice:$7$broken\n');
  await hook.reload();
  assert.ok(records.some((r) => r['level'] === 50 && /^password file not reloaded/.test(String(r['msg']))));
  assert.deepEqual(await hook.authenticate(client('alice'), connect('alice', 'two')), { ok: true }, 'old content kept');

  await hook.reload(); // unchanged since the failure: nothing logged again
  assert.equal(records.filter((r) => r['level'] === 50).length, 1);
});
