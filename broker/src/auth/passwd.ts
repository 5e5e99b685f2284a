/**
 * `smq passwd`: adds, changes and deletes users of a password file, like `mosquitto_passwd`. The file is
 * rewritten atomically (a temporary file renamed over it) with mode 0600, so the broker's reload never sees a
 * half-written file and other local users never see the hashes. Lines of other users, comments and
 * Mosquitto hashes are kept as they are.
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, realpath, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { SmqError } from '../errors.js';
import { hashPassword } from './hash.js';

/** Usage of `smq passwd`, printed by `-h` and after a usage error. */
export const PASSWD_USAGE = [
  'Usage: smq passwd [-c] <file> <username>',
  '       smq passwd [-c] -b <file> <username> <password>',
  '       smq passwd -D <file> <username>',
  'Options:',
  '    -b   batch mode: take the password from the command line (other local users may see it)',
  '    -c   create a new password file; an existing one is overwritten',
  '    -D   delete the user',
  '    -h   show this message',
  'Without -b the password is asked twice on a terminal, or read as one line from standard input.',
].join('\n');

/** A command line `smq passwd` cannot act on (exit code 2). */
export class PasswdUsageError extends SmqError {
  constructor(message: string) {
    super('ERR_PASSWD_USAGE', message);
  }
}

/** `smq passwd` could not do what was asked (exit code 1). */
export class PasswdError extends SmqError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_PASSWD', message, options);
  }
}

/** What the command line asks for. */
export type PasswdCommand =
  | { readonly action: 'help' }
  | { readonly action: 'set'; readonly file: string; readonly username: string; readonly password: string | undefined; readonly create: boolean }
  | { readonly action: 'delete'; readonly file: string; readonly username: string };

/**
 * Parses the arguments after `passwd`. Options come first (as for mosquitto_passwd); the first argument that
 * is not an option, or `--`, ends them, so a password starting with `-` can be given in batch mode.
 */
export function parsePasswdArgs(args: readonly string[]): PasswdCommand {
  let batch = false;
  let create = false;
  let del = false;
  let i = 0;
  for (; i < args.length; i++) {
    const a = args[i] ?? '';
    if (a === '--') {
      i++;
      break;
    }
    if (!a.startsWith('-') || a === '-') break;
    if (a === '-h' || a === '--help') return { action: 'help' };
    if (a === '-b') batch = true;
    else if (a === '-c') create = true;
    else if (a === '-D') del = true;
    else throw new PasswdUsageError(`unknown option "${a}"`);
  }
  const rest = args.slice(i);
  if (del && (create || batch)) throw new PasswdUsageError('-D cannot be combined with -c or -b');
  const wanted = batch ? 3 : 2;
  if (rest.length !== wanted) {
    throw new PasswdUsageError(`expected ${batch ? '<file> <username> <password>' : '<file> <username>'}, got ${rest.length} argument${rest.length === 1 ? '' : 's'}`);
  }
  const [file = '', username = '', password] = rest;
  if (file === '') throw new PasswdUsageError('the file name is empty');
  checkUsername(username);
  if (del) return { action: 'delete', file, username };
  return { action: 'set', file, username, password, create };
}

function checkUsername(username: string): void {
  if (username === '') throw new PasswdUsageError('the username is empty');
  if (username.includes(':')) throw new PasswdUsageError('the username must not contain ":"');
  if (/[\r\n]/.test(username)) throw new PasswdUsageError('the username must not contain a line break');
  if (username.startsWith('#')) throw new PasswdUsageError('the username must not start with "#" (that line would be a comment)');
  if (Buffer.byteLength(username) > 65535) throw new PasswdUsageError('the username is longer than MQTT allows (65535 bytes)');
}

function checkPassword(password: string): void {
  if (password === '') throw new PasswdError('the password is empty');
  if (/[\r\n]/.test(password)) throw new PasswdError('the password must not contain a line break');
  if (Buffer.byteLength(password) > 65535) throw new PasswdError('the password is longer than MQTT allows (65535 bytes)');
}

/** Standard input as `smq passwd` needs it: a terminal (raw mode, no echo) or a pipe. */
export interface PasswdInput extends NodeJS.ReadableStream {
  readonly isTTY?: boolean;
  setRawMode?(mode: boolean): unknown;
}

/** Where `smq passwd` reads and writes; `process` streams by default, fakes in tests. */
export interface PasswdIo {
  readonly stdin: PasswdInput;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

/**
 * Runs `smq passwd` with the arguments after `passwd`; resolves with the exit code: 0 done, 1 failed, 2 usage
 * error. Messages go to `io.stderr`; the password is never printed.
 */
export async function runPasswd(args: readonly string[], io: PasswdIo = process): Promise<number> {
  let command: PasswdCommand;
  try {
    command = parsePasswdArgs(args);
  } catch (err) {
    if (!(err instanceof PasswdUsageError)) throw err;
    io.stderr.write(`smq passwd: ${err.message}\n${PASSWD_USAGE}\n`);
    return 2;
  }
  if (command.action === 'help') {
    io.stdout.write(`${PASSWD_USAGE}\n`);
    return 0;
  }
  try {
    if (command.action === 'delete') {
      await deleteUser(command.file, command.username);
    } else {
      const password = command.password ?? (await askPassword(io));
      checkPassword(password);
      await setUser(command.file, command.username, await hashPassword(password), command.create);
    }
    return 0;
  } catch (err) {
    if (!(err instanceof PasswdError)) throw err;
    io.stderr.write(`smq passwd: ${err.message}\n`);
    return 1;
  }
}

/** Adds or replaces `username`'s line; with `create` the file holds only that line afterwards. */
async function setUser(file: string, username: string, hash: string, create: boolean): Promise<void> {
  const { target, lines } = create ? { target: await resolveTarget(file, true), lines: [] } : await readLines(file);
  const line = `${username}:${hash}`;
  let placed = false;
  const out: string[] = [];
  for (const l of lines) {
    if (userOf(l) !== username) out.push(l);
    else if (!placed) {
      // Replaced where it was, so a file kept in some order stays in it; later duplicates go.
      out.push(line);
      placed = true;
    }
  }
  if (!placed) out.push(line);
  await writeAtomically(target, out);
}

async function deleteUser(file: string, username: string): Promise<void> {
  const { target, lines } = await readLines(file);
  const out = lines.filter((l) => userOf(l) !== username);
  if (out.length === lines.length) throw new PasswdError(`user "${username}" is not in ${file}`);
  await writeAtomically(target, out);
}

/** The username of a password-file line, or undefined for comments and blank lines. */
function userOf(line: string): string | undefined {
  if (line.startsWith('#')) return undefined;
  const colon = line.indexOf(':');
  return colon > 0 ? line.slice(0, colon) : undefined;
}

/** The file to write: a symbolic link is followed, so the link (a mounted secret, say) stays a link. */
async function resolveTarget(file: string, mayBeMissing: boolean): Promise<string> {
  try {
    return await realpath(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && mayBeMissing) return file;
    if (code === 'ENOENT') throw new PasswdError(`${file} does not exist (use -c to create it)`, { cause: err });
    throw new PasswdError(`cannot open ${file}: ${code ?? String(err)}`, { cause: err });
  }
}

async function readLines(file: string): Promise<{ target: string; lines: string[] }> {
  const target = await resolveTarget(file, false);
  let text: string;
  try {
    text = await readFile(target, 'utf8');
  } catch (err) {
    throw new PasswdError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
  const lines = text.split('\n').map((l) => l.replace(/\r$/, ''));
  if (lines[lines.length - 1] === '') lines.pop();
  return { target, lines };
}

/** Writes `lines` to a temporary file beside `target` (mode 0600), flushes it, and renames it over `target`. */
async function writeAtomically(target: string, lines: readonly string[]): Promise<void> {
  const temp = join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let written = false;
  try {
    const fh = await open(temp, 'wx', 0o600);
    try {
      // The mode given to open is reduced by the umask; chmod makes it exactly 0600.
      await fh.chmod(0o600);
      await fh.writeFile(lines.length ? `${lines.join('\n')}\n` : '');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(temp, target);
    written = true;
  } catch (err) {
    throw new PasswdError(`cannot write ${target}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  } finally {
    if (!written) await unlink(temp).catch(() => undefined); // nothing to clean when open itself failed
  }
}

/** Asks twice on a terminal; reads one line from a pipe. */
async function askPassword(io: PasswdIo): Promise<string> {
  const input = io.stdin;
  if (input.isTTY === true && typeof input.setRawMode === 'function') {
    const first = await readHidden(input, io.stderr, 'Password: ');
    const second = await readHidden(input, io.stderr, 'Reenter password: ');
    if (first !== second) throw new PasswdError('the passwords do not match');
    return first;
  }
  const line = await readLine(input);
  if (line === null) throw new PasswdError('no password on standard input');
  return line;
}

/** Reads a line from a terminal in raw mode, echoing nothing. */
function readHidden(input: PasswdInput, prompt: NodeJS.WritableStream, question: string): Promise<string> {
  prompt.write(question);
  return new Promise((resolve, reject) => {
    let typed = '';
    const decoder = new StringDecoder('utf8');
    const finish = (err: PasswdError | null): void => {
      input.off('data', onData);
      input.setRawMode?.(false);
      input.pause();
      prompt.write('\n');
      if (err) reject(err);
      else resolve(typed);
    };
    const onData = (chunk: Buffer | string): void => {
      for (const ch of typeof chunk === 'string' ? chunk : decoder.write(chunk)) {
        if (ch === '\r' || ch === '\n') return finish(null);
        if (ch === '\u0003' || ch === '\u0004') return finish(new PasswdError('cancelled')); // Ctrl-C, Ctrl-D
        if (ch === '\u007f' || ch === '\b') typed = [...typed].slice(0, -1).join('');
        else if (ch >= ' ') typed += ch;
      }
    };
    input.setRawMode?.(true);
    input.on('data', onData);
    input.resume();
  });
}

/** The first line of a pipe (without its line end), or null when it is empty. */
function readLine(input: PasswdInput): Promise<string | null> {
  return new Promise((resolve, reject) => {
    let buf = '';
    // A multi-byte character split across chunks must not become U+FFFD.
    const decoder = new StringDecoder('utf8');
    const done = (line: string | null): void => {
      input.off('data', onData);
      input.off('end', onEnd);
      input.off('error', onError);
      input.pause();
      resolve(line === null ? null : line.replace(/\r$/, ''));
    };
    const onData = (chunk: Buffer | string): void => {
      buf += typeof chunk === 'string' ? chunk : decoder.write(chunk);
      const nl = buf.indexOf('\n');
      if (nl >= 0) done(buf.slice(0, nl));
    };
    const onEnd = (): void => {
      buf += decoder.end();
      done(buf === '' ? null : buf);
    };
    const onError = (err: Error): void => {
      input.off('data', onData);
      input.off('end', onEnd);
      reject(new PasswdError(`cannot read standard input: ${err.message}`, { cause: err }));
    };
    input.on('data', onData);
    input.once('end', onEnd);
    input.once('error', onError);
    input.resume();
  });
}
