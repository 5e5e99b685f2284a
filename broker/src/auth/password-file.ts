/**
 * The password-file backend (`auth.password_file`): `username:hash` lines as written by `smq passwd` or
 * `mosquitto_passwd`, reloaded when the file changes.
 */
import type { IConnectPacket } from 'mqtt-packet';
import type { Logger } from 'pino';
import type { WatchedFiles } from '../files/watched-files.js';
import type { AuthResult, ClientInfo, Hook } from '../hooks/types.js';
import { RC } from '../protocol/reason-codes.js';
import { watchAuthFile } from './auth-file.js';
import { dummyHash, HashFormatError, parseHash, verifyPassword, type PasswordHash } from './hash.js';

/** Users of a password file and their parsed hashes. */
export type PasswordTable = ReadonlyMap<string, PasswordHash>;

/**
 * Parses a password file. Blank lines and lines starting with `#` are skipped. Any bad line makes the whole
 * file invalid (naming the line number, never its content), so a half-written file is not taken for a
 * shorter one.
 */
export function parsePasswordFile(text: string): PasswordTable {
  const users = new Map<string, PasswordHash>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? '').replace(/\r$/, '');
    if (line.trim() === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    // Usernames cannot hold ':' (mosquitto_passwd refuses them too), so the first one separates.
    if (colon <= 0) throw new HashFormatError(`line ${i + 1}: expected username:hash`);
    const username = line.slice(0, colon);
    if (users.has(username)) throw new HashFormatError(`line ${i + 1}: user "${username}" is listed twice`);
    try {
      users.set(username, parseHash(line.slice(colon + 1)));
    } catch (err) {
      throw new HashFormatError(`line ${i + 1}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return users;
}

const BAD_CREDENTIALS: AuthResult = { ok: false, reasonCode: RC.BAD_USERNAME_OR_PASSWORD };
const NO_PASSWORD = Buffer.alloc(0);

/** Options of {@link PasswordFileAuth}. */
export interface PasswordFileOptions {
  readonly file: string;
  readonly log: Logger;
  /**
   * True when no backend comes after this one. Then unknown users are refused; otherwise they are left to the
   * next backend (a JWT or HTTP user need not be in the file).
   */
  readonly final: boolean;
  /** Poll interval of the file, for tests. */
  readonly intervalMs?: number;
}

/**
 * Authenticates users listed in the password file. Clients without a username abstain (anonymous access is
 * `auth.enable`'s business). A listed user with a wrong or missing password is refused with Bad username or
 * password; so is an unknown user when this is the last backend, after the same work as a real check.
 */
export class PasswordFileAuth implements Hook {
  readonly name = 'password-file';
  private readonly users: WatchedFiles<PasswordTable>;
  private readonly final: boolean;
  private readonly dummy = dummyHash();

  /** Reads the file; throws an `AuthFileError` when it cannot be read or parsed. */
  constructor(options: PasswordFileOptions) {
    this.final = options.final;
    this.users = watchAuthFile({
      key: 'auth.password_file',
      file: options.file,
      what: 'password file',
      parse: parsePasswordFile,
      log: options.log,
      intervalMs: options.intervalMs,
    });
  }

  /** Number of users in the current file. */
  get size(): number {
    return this.users.value.size;
  }

  async authenticate(client: ClientInfo, connect: IConnectPacket): Promise<AuthResult> {
    const username = client.username;
    if (username === undefined) return undefined;
    const stored = this.users.value.get(username);
    if (stored === undefined && !this.final) return undefined;
    // An unknown user costs a verification against a hash nothing matches: the same time as a wrong password.
    const ok = await verifyPassword(connect.password ?? NO_PASSWORD, stored ?? this.dummy);
    return ok && stored !== undefined && connect.password !== undefined ? { ok: true } : BAD_CREDENTIALS;
  }

  /** Re-reads the file if it changed (the poll timer does this every second). */
  async reload(): Promise<void> {
    await this.users.check();
  }

  onStop(): void {
    this.users.close();
  }
}
