/**
 * Password hashes of the password file. smq writes scrypt hashes in a self-describing format,
 * `$scrypt$N=16384,r=8,p=1$<salt b64>$<hash b64>`, and also verifies the two formats of `mosquitto_passwd`
 * (Mosquitto 2's `$7$` PBKDF2-SHA512 and the older `$6$` salted SHA-512) so migrated files keep working.
 *
 * Verification is CPU-heavy by design, so scrypt and PBKDF2 run on libuv's thread pool (the callback APIs)
 * and the event loop keeps serving other clients meanwhile.
 */
import { createHash, pbkdf2, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { SmqError } from '../errors.js';

/** scrypt cost parameters. */
export interface ScryptParams {
  readonly N: number;
  readonly r: number;
  readonly p: number;
}

/** What `smq passwd` writes: 16 MiB and about 50 ms per verification, the level OWASP suggests for scrypt. */
export const SCRYPT_DEFAULTS: ScryptParams = { N: 16384, r: 8, p: 1 };

const SALT_BYTES = 16;
const KEY_BYTES = 32;
/** Memory (128·N·r bytes) a hash from a file may ask for; more is refused rather than risked. */
const MAX_SCRYPT_MEMORY = 256 * 1024 * 1024;
const MAX_PBKDF2_ITERATIONS = 10_000_000;

/** A parsed password hash, ready to verify against. */
export type PasswordHash =
  | { readonly kind: 'scrypt'; readonly params: ScryptParams; readonly salt: Buffer; readonly hash: Buffer }
  /** Mosquitto 2 (`$7$<iterations>$<salt>$<hash>`). */
  | { readonly kind: 'pbkdf2-sha512'; readonly iterations: number; readonly salt: Buffer; readonly hash: Buffer }
  /** Mosquitto 1.x (`$6$<salt>$<hash>`): SHA-512 of the password followed by the salt. */
  | { readonly kind: 'sha512'; readonly salt: Buffer; readonly hash: Buffer };

/** A stored hash in no format smq knows, or with parameters out of range. The message never holds the hash. */
export class HashFormatError extends SmqError {
  constructor(message: string) {
    super('ERR_PASSWORD_HASH', message);
  }
}

const B64 = /^[A-Za-z0-9+/]+={0,2}$/;

function b64(field: string | undefined, what: string, minBytes: number, maxBytes: number): Buffer {
  if (field === undefined || !B64.test(field)) throw new HashFormatError(`${what} is not base64`);
  const bytes = Buffer.from(field, 'base64');
  if (bytes.length < minBytes || bytes.length > maxBytes) throw new HashFormatError(`${what} has ${bytes.length} bytes, expected ${minBytes} to ${maxBytes}`);
  return bytes;
}

function int(field: string | undefined, what: string, min: number, max: number): number {
  if (field === undefined || !/^[0-9]{1,10}$/.test(field)) throw new HashFormatError(`${what} is not a number`);
  const n = Number(field);
  if (n < min || n > max) throw new HashFormatError(`${what} must be from ${min} to ${max}`);
  return n;
}

/** Parses a stored hash; throws {@link HashFormatError} for anything it cannot verify. */
export function parseHash(encoded: string): PasswordHash {
  const parts = encoded.split('$');
  // Every format starts with '$', so parts[0] is empty.
  if (parts[0] !== '' || parts.length < 4) throw new HashFormatError('not a hash in a known format ($scrypt$, $7$ or $6$)');
  switch (parts[1]) {
    case 'scrypt': {
      if (parts.length !== 5) throw new HashFormatError('a $scrypt$ hash has four fields');
      const params = parseScryptParams(parts[2] ?? '');
      return { kind: 'scrypt', params, salt: b64(parts[3], 'scrypt salt', 8, 1024), hash: b64(parts[4], 'scrypt hash', 16, 1024) };
    }
    case '7': {
      if (parts.length !== 5) throw new HashFormatError('a $7$ hash has four fields');
      const iterations = int(parts[2], '$7$ iteration count', 1, MAX_PBKDF2_ITERATIONS);
      return { kind: 'pbkdf2-sha512', iterations, salt: b64(parts[3], '$7$ salt', 8, 1024), hash: b64(parts[4], '$7$ hash', 16, 64) };
    }
    case '6': {
      if (parts.length !== 4) throw new HashFormatError('a $6$ hash has three fields');
      return { kind: 'sha512', salt: b64(parts[2], '$6$ salt', 8, 1024), hash: b64(parts[3], '$6$ hash', 64, 64) };
    }
    default:
      throw new HashFormatError('not a hash in a known format ($scrypt$, $7$ or $6$)');
  }
}

function parseScryptParams(field: string): ScryptParams {
  const m = /^N=([0-9]+),r=([0-9]+),p=([0-9]+)$/.exec(field);
  if (!m) throw new HashFormatError('scrypt parameters must read N=<n>,r=<r>,p=<p>');
  const N = int(m[1], 'scrypt N', 2, 2 ** 24);
  if ((N & (N - 1)) !== 0) throw new HashFormatError('scrypt N must be a power of two');
  const params = { N, r: int(m[2], 'scrypt r', 1, 64), p: int(m[3], 'scrypt p', 1, 16) };
  if (128 * params.N * params.r > MAX_SCRYPT_MEMORY) throw new HashFormatError('scrypt parameters need more than 256 MiB');
  return params;
}

function runScrypt(password: Buffer, salt: Buffer, keylen: number, params: ScryptParams): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // maxmem: Node refuses by default above 32 MiB; the parameters were bounded when parsed.
    const options = { N: params.N, r: params.r, p: params.p, maxmem: 128 * params.N * params.r * 2 };
    scrypt(password, salt, keylen, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

function runPbkdf2(password: Buffer, salt: Buffer, iterations: number, keylen: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    pbkdf2(password, salt, iterations, keylen, 'sha512', (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** Hashes a password for the password file, with a fresh random salt. */
export async function hashPassword(password: string | Buffer, params: ScryptParams = SCRYPT_DEFAULTS): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await runScrypt(Buffer.from(password), salt, KEY_BYTES, params);
  return `$scrypt$N=${params.N},r=${params.r},p=${params.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

/** True when `password` matches `stored`. The comparison takes the same time wherever the bytes differ. */
export async function verifyPassword(password: Buffer, stored: PasswordHash): Promise<boolean> {
  let derived: Buffer;
  switch (stored.kind) {
    case 'scrypt':
      derived = await runScrypt(password, stored.salt, stored.hash.length, stored.params);
      break;
    case 'pbkdf2-sha512':
      derived = await runPbkdf2(password, stored.salt, stored.iterations, stored.hash.length);
      break;
    case 'sha512':
      derived = createHash('sha512').update(password).update(stored.salt).digest();
      break;
  }
  // Lengths are part of the stored format, not a secret; timingSafeEqual needs them equal.
  return derived.length === stored.hash.length && timingSafeEqual(derived, stored.hash);
}

/**
 * A hash no password matches, costing what a real smq hash costs to check: verified for unknown users so that
 * the time of the answer does not tell whether a user exists.
 */
export function dummyHash(): PasswordHash {
  return { kind: 'scrypt', params: SCRYPT_DEFAULTS, salt: randomBytes(SALT_BYTES), hash: randomBytes(KEY_BYTES) };
}
