import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { parseHash, verifyPassword } from './hash.js';
import { parsePasswordFile } from './password-file.js';
import { parsePasswdArgs, PasswdUsageError, runPasswd, type PasswdInput } from './passwd.js';

const MOSQ_7 = 'jörg:$7$101$gAW+mdEzuc8zbpfg$2dE9YAmdgQfsoQV+ibRsVnjs2Y1YWx1xR6SDSrJKGmNaJ0gZmjEmY44gRW6jpTFZg3SfuEVi/Yi2ycCFR9MQsA==';

/**
 * Fake standard streams. `input` is written one chunk per turn (then ended, unless a terminal); null leaves
 * stdin to the test. `tty` makes stdin look like a terminal that records raw-mode switches.
 */
function io(input: string[] | null = [], tty = false): { io: { stdin: PasswdInput; stdout: PassThrough; stderr: PassThrough }; out: () => string; err: () => string; raw: boolean[] } {
  const stdin = new PassThrough() as PassThrough & { isTTY?: boolean; setRawMode?: (m: boolean) => void };
  const raw: boolean[] = [];
  if (tty) {
    stdin.isTTY = true;
    stdin.setRawMode = (m: boolean) => void raw.push(m);
  }
  // Written one chunk per turn, as a person types, so that the second prompt has its own input.
  let i = 0;
  const feed = (): void => {
    if (input === null) return;
    const next = input[i++];
    if (next === undefined) return void (tty ? undefined : stdin.end());
    stdin.write(next);
    setTimeout(feed, 5);
  };
  setTimeout(feed, 5);
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let o = '';
  let e = '';
  stdout.on('data', (d: Buffer) => { o += d.toString(); });
  stderr.on('data', (d: Buffer) => { e += d.toString(); });
  return { io: { stdin, stdout, stderr }, out: () => o, err: () => e, raw };
}

function dir(): string {
  return mkdtempSync(join(tmpdir(), 'smq-passwd-'));
}

async function verifies(file: string, user: string, password: string): Promise<boolean> {
  const h = parsePasswordFile(readFileSync(file, 'utf8')).get(user);
  return h !== undefined && verifyPassword(Buffer.from(password), h);
}

test('parsePasswdArgs: modes, option order and usage errors', () => {
  assert.deepEqual(parsePasswdArgs(['-c', 'f', 'u']), { action: 'set', file: 'f', username: 'u', password: undefined, create: true });
  assert.deepEqual(parsePasswdArgs(['-b', 'f', 'u', '-p-w-']), { action: 'set', file: 'f', username: 'u', password: '-p-w-', create: false });
  assert.deepEqual(parsePasswdArgs(['-c', '-b', 'f', 'u', 'p']), { action: 'set', file: 'f', username: 'u', password: 'p', create: true });
  assert.deepEqual(parsePasswdArgs(['-D', 'f', 'u']), { action: 'delete', file: 'f', username: 'u' });
  assert.deepEqual(parsePasswdArgs(['--', '-f', 'u']), { action: 'set', file: '-f', username: 'u', password: undefined, create: false });
  assert.deepEqual(parsePasswdArgs(['-h']), { action: 'help' });
  for (const bad of [[], ['f'], ['f', 'u', 'p'], ['-b', 'f', 'u'], ['-x', 'f', 'u'], ['-D', '-c', 'f', 'u'], ['f', 'a:b'], ['f', ''], ['f', '#u']]) {
    assert.throws(() => parsePasswdArgs(bad), PasswdUsageError, JSON.stringify(bad));
  }
});

test('-c -b creates the file with mode 0600 and a verifiable scrypt hash; the password is not printed', async () => {
  const file = join(dir(), 'passwd');
  const t = io();
  assert.equal(await runPasswd(['-c', '-b', file, 'alice', 's3cret'], t.io), 0);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.match(readFileSync(file, 'utf8'), /^alice:\$scrypt\$N=16384,r=8,p=1\$[^\n]+\n$/);
  assert.equal(await verifies(file, 'alice', 's3cret'), true);
  assert.equal(t.out() + t.err(), '');
});

test('updating keeps other users, comments and Mosquitto hashes; -c starts over', async () => {
  const file = join(dir(), 'passwd');
  writeFileSync(file, `# managed by hand\n${MOSQ_7}\nalice:$6$old$old\n`, { mode: 0o644 });
  assert.equal(await runPasswd(['-b', file, 'alice', 'new'], io().io), 0);
  assert.equal(await runPasswd(['-b', file, 'bob', 'b0b'], io().io), 0);
  const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
  assert.equal(lines[0], '# managed by hand');
  assert.equal(lines[1], MOSQ_7);
  assert.match(lines[2] ?? '', /^alice:\$scrypt\$/);
  assert.match(lines[3] ?? '', /^bob:\$scrypt\$/);
  assert.equal(statSync(file).mode & 0o777, 0o600, 'rewritten files are 0600 too');
  assert.equal(await verifies(file, 'alice', 'new'), true);
  assert.equal(await verifies(file, 'jörg', 'pä$$:wörd'), true);
  assert.equal(await runPasswd(['-c', '-b', file, 'carol', 'c'], io().io), 0);
  assert.deepEqual([...parsePasswordFile(readFileSync(file, 'utf8')).keys()], ['carol']);
  assert.deepEqual(readdirSync(join(file, '..')), ['passwd'], 'no temporary file left behind');
});

test('-D deletes a user; deleting an unknown user or using a missing file fails with exit 1', async () => {
  const d = dir();
  const file = join(d, 'passwd');
  await runPasswd(['-c', '-b', file, 'alice', 'a'], io().io);
  await runPasswd(['-b', file, 'bob', 'b'], io().io);
  assert.equal(await runPasswd(['-D', file, 'alice'], io().io), 0);
  assert.deepEqual([...parsePasswordFile(readFileSync(file, 'utf8')).keys()], ['bob']);
  const t = io();
  assert.equal(await runPasswd(['-D', file, 'alice'], t.io), 1);
  assert.match(t.err(), /user "alice" is not in/);
  const m = io();
  assert.equal(await runPasswd(['-b', join(d, 'missing'), 'u', 'p'], m.io), 1);
  assert.match(m.err(), /missing does not exist \(use -c to create it\)/);
  const n = io();
  assert.equal(await runPasswd(['-c', '-b', join(d, 'no-such-dir', 'passwd'), 'u', 'p'], n.io), 1);
  assert.match(n.err(), /cannot write .*ENOENT/);
});

test('usage errors exit 2 with the usage text; -h prints it and exits 0', async () => {
  const t = io();
  assert.equal(await runPasswd(['-b', 'f', 'u'], t.io), 2);
  assert.match(t.err(), /^smq passwd: expected <file> <username> <password>, got 2 arguments\nUsage: smq passwd/);
  const h = io();
  assert.equal(await runPasswd(['-h'], h.io), 0);
  assert.match(h.out(), /^Usage: smq passwd \[-c\] <file> <username>/);
});

test('without -b and without a terminal, the password is the first line of standard input', async () => {
  const file = join(dir(), 'passwd');
  assert.equal(await runPasswd(['-c', file, 'alice'], io(['pässword\r\n', 'ignored\n']).io), 0);
  assert.equal(await verifies(file, 'alice', 'pässword'), true);
  // A final line without a line break counts; a multi-byte character split across chunks survives.
  const euro = Buffer.from('€');
  const split = io(null);
  const stdin = split.io.stdin as PassThrough;
  setTimeout(() => { stdin.write(Buffer.concat([Buffer.from('a'), euro.subarray(0, 1)])); stdin.end(euro.subarray(1)); }, 5);
  assert.equal(await runPasswd([file, 'bob'], split.io), 0);
  assert.equal(await verifies(file, 'bob', 'a€'), true);
  const empty = io([]);
  assert.equal(await runPasswd([file, 'carol'], empty.io), 1);
  assert.match(empty.err(), /no password on standard input/);
});

test('on a terminal the password is asked twice in raw mode, without echo; a mismatch changes nothing', async () => {
  const file = join(dir(), 'passwd');
  const ok = io(['s3cx', '\x7fret\r', 's3cret\r'], true);
  assert.equal(await runPasswd(['-c', file, 'alice'], ok.io), 0);
  assert.equal(ok.err(), 'Password: \nReenter password: \n', 'prompts only: nothing typed is echoed');
  assert.deepEqual(ok.raw, [true, false, true, false]);
  assert.equal(await verifies(file, 'alice', 's3cret'), true);
  const bad = io(['one\r', 'two\r'], true);
  assert.equal(await runPasswd([file, 'alice'], bad.io), 1);
  assert.match(bad.err(), /the passwords do not match/);
  const cancelled = io(['ab\x03'], true);
  assert.equal(await runPasswd([file, 'alice'], cancelled.io), 1);
  assert.equal(await verifies(file, 'alice', 's3cret'), true, 'unchanged');
});

test('a symbolic link is followed: the target is rewritten and the link stays', async () => {
  const d = dir();
  const real = join(d, 'real');
  const link = join(d, 'link');
  await runPasswd(['-c', '-b', real, 'alice', 'a'], io().io);
  symlinkSync(real, link);
  assert.equal(await runPasswd(['-b', link, 'bob', 'b'], io().io), 0);
  assert.equal(await verifies(real, 'bob', 'b'), true);
  assert.ok(readdirSync(d).includes('link'));
});
