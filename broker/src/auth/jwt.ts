/**
 * The JWT backend (`auth.jwt.*`): a signed token in the MQTT password (or username), verified with node:crypto
 * alone. HS256 uses `auth.jwt.secret`; RS256 and ES256 use the public keys of a JWKS file. The algorithm a
 * token names must fit the key it is checked with, so `alg: none` and HS256-with-an-RSA-key tokens fail.
 */
import { createHmac, createPublicKey, timingSafeEqual, verify, type JsonWebKey, type KeyObject } from 'node:crypto';
import type { IConnectPacket } from 'mqtt-packet';
import type { Logger } from 'pino';
import type { WatchedFiles } from '../files/watched-files.js';
import type { AuthResult, ClientInfo, Hook } from '../hooks/types.js';
import { RC } from '../protocol/reason-codes.js';
import { watchAuthFile } from './auth-file.js';

/** Algorithms verified with a JWKS key. */
export type AsymmetricAlg = 'RS256' | 'ES256';

/** One usable public key of a JWKS file. */
export interface JwtKey {
  readonly kid: string | undefined;
  readonly alg: AsymmetricAlg;
  readonly key: KeyObject;
}

/** The keys of a JWKS file: by `kid`, and those without one. */
export interface JwtKeySet {
  readonly byKid: ReadonlyMap<string, JwtKey>;
  readonly unnamed: readonly JwtKey[];
  /** Why some keys were left out (unsupported type, curve or use), for the log. */
  readonly skipped: readonly string[];
}

/** An empty key set: RS256 and ES256 tokens are then refused. */
export const NO_KEYS: JwtKeySet = { byKid: new Map(), unnamed: [], skipped: [] };

/** RSA moduli shorter than this are refused (NIST SP 800-131A). */
const MIN_RSA_BITS = 2048;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses a JWKS document (`{"keys": [...]}`); throws on bad JSON, bad keys or a repeated `kid`. */
export function parseJwks(text: string): JwtKeySet {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new Error('not valid JSON');
  }
  if (!isObject(doc) || !Array.isArray(doc['keys'])) throw new Error('expected a JSON object with a "keys" array');
  const byKid = new Map<string, JwtKey>();
  const unnamed: JwtKey[] = [];
  const skipped: string[] = [];
  const list = doc['keys'] as unknown[];
  for (let i = 0; i < list.length; i++) {
    const jwk = list[i];
    const where = `key ${i}`;
    if (!isObject(jwk)) throw new Error(`${where} is not an object`);
    const kid = typeof jwk['kid'] === 'string' ? jwk['kid'] : undefined;
    const name = kid === undefined ? where : `${where} (kid "${kid}")`;
    if (jwk['use'] !== undefined && jwk['use'] !== 'sig') {
      skipped.push(`${name}: use is not "sig"`);
      continue;
    }
    let alg: AsymmetricAlg;
    if (jwk['kty'] === 'RSA') {
      alg = 'RS256';
    } else if (jwk['kty'] === 'EC' && jwk['crv'] === 'P-256') {
      alg = 'ES256';
    } else {
      skipped.push(`${name}: only RSA and EC P-256 keys are supported`);
      continue;
    }
    // A key that declares its algorithm may only be used with it.
    if (jwk['alg'] !== undefined && jwk['alg'] !== alg) {
      skipped.push(`${name}: alg ${String(jwk['alg'])} is not supported`);
      continue;
    }
    let key: KeyObject;
    try {
      // Only the public members: a JWKS that also carries private ones must not make us hold a private key.
      const pub: JsonWebKey = alg === 'RS256'
        ? { kty: 'RSA', n: jwk['n'] as string, e: jwk['e'] as string }
        : { kty: 'EC', crv: 'P-256', x: jwk['x'] as string, y: jwk['y'] as string };
      key = createPublicKey({ key: pub, format: 'jwk' });
    } catch (err) {
      throw new Error(`${name} is not a valid ${alg === 'RS256' ? 'RSA' : 'EC'} public key (${err instanceof Error ? err.message : String(err)})`);
    }
    if (alg === 'RS256' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS) {
      throw new Error(`${name}: RSA keys need at least ${MIN_RSA_BITS} bits`);
    }
    const entry: JwtKey = { kid, alg, key };
    if (kid === undefined) unnamed.push(entry);
    else if (byKid.has(kid)) throw new Error(`kid "${kid}" appears twice`);
    else byKid.set(kid, entry);
  }
  return { byKid, unnamed, skipped };
}

/** What a token is checked against. */
export interface JwtVerifyOptions {
  /** HS256 secret; null disables HS256. */
  readonly secret: Buffer | null;
  readonly keys: JwtKeySet;
  /** Required `iss`; empty accepts any. */
  readonly issuer: string;
  /** Required `aud` (a string claim equal to it, or an array claim holding it); empty accepts any. */
  readonly audience: string;
  /** The current time in seconds since the epoch. */
  readonly now: number;
}

/** The outcome of {@link verifyJwt}: the claims, or why the token is refused (for the log; names no secret). */
export type JwtVerdict = { readonly ok: true; readonly claims: Readonly<Record<string, unknown>> } | { readonly ok: false; readonly reason: string };

const SEGMENT = '[A-Za-z0-9_-]+';
const SHAPE = new RegExp(`^${SEGMENT}\\.${SEGMENT}\\.[A-Za-z0-9_-]*$`);

/**
 * True when `s` has the shape of a compact JWS (three base64url segments). Anything else is not a token at
 * all, so the JWT backend abstains and a plain password can reach the next backend.
 */
export function looksLikeJwt(s: string): boolean {
  return SHAPE.test(s);
}

function decodeJson(segment: string): unknown {
  try {
    return JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}

function refuse(reason: string): JwtVerdict {
  return { ok: false, reason };
}

/** Verifies a compact JWS and its time, issuer and audience claims. */
export function verifyJwt(token: string, options: JwtVerifyOptions): JwtVerdict {
  if (!looksLikeJwt(token)) return refuse('malformed token');
  const [h = '', p = '', s = ''] = token.split('.');
  const header = decodeJson(h);
  const claims = decodeJson(p);
  if (!isObject(header) || !isObject(claims)) return refuse('malformed token');
  // RFC 7515 section 4.1.11: extensions we do not understand must make the token invalid.
  if (header['crit'] !== undefined) return refuse('unsupported crit header');
  const signed = Buffer.from(`${h}.${p}`, 'ascii');
  const signature = Buffer.from(s, 'base64url');
  const alg = header['alg'];
  if (alg === 'HS256') {
    if (options.secret === null) return refuse('HS256 is not enabled');
    const expected = createHmac('sha256', options.secret).update(signed).digest();
    if (signature.length !== expected.length || !timingSafeEqual(signature, expected)) return refuse('bad signature');
  } else if (alg === 'RS256' || alg === 'ES256') {
    const kid = header['kid'];
    let key: JwtKey | undefined;
    if (typeof kid === 'string') key = options.keys.byKid.get(kid);
    else if (kid === undefined && options.keys.unnamed.length === 1) key = options.keys.unnamed[0];
    if (key === undefined) return refuse(typeof kid === 'string' ? 'unknown kid' : 'no key for a token without kid');
    // The key decides the algorithm, never the token alone [RFC 8725 section 3.1].
    if (key.alg !== alg) return refuse(`${alg} token for a ${key.alg} key`);
    const ok = alg === 'RS256'
      ? verify('sha256', signed, key.key, signature)
      : signature.length === 64 && verify('sha256', signed, { key: key.key, dsaEncoding: 'ieee-p1363' }, signature);
    if (!ok) return refuse('bad signature');
  } else {
    // 'none' and everything else: an unsigned token proves nothing.
    return refuse(`algorithm ${typeof alg === 'string' ? alg : '(missing)'} is not accepted`);
  }
  const exp = claims['exp'];
  if (typeof exp !== 'number') return refuse('no exp claim');
  if (options.now >= exp) return refuse('expired');
  const nbf = claims['nbf'];
  if (nbf !== undefined && (typeof nbf !== 'number' || options.now < nbf)) return refuse('not valid yet (nbf)');
  if (options.issuer !== '' && claims['iss'] !== options.issuer) return refuse('wrong issuer');
  if (options.audience !== '') {
    const aud = claims['aud'];
    const fits = aud === options.audience || (Array.isArray(aud) && aud.includes(options.audience));
    if (!fits) return refuse('wrong audience');
  }
  return { ok: true, claims };
}

/** Options of {@link JwtAuth}. */
export interface JwtAuthOptions {
  readonly from: 'password' | 'username';
  /** HS256 secret; empty disables HS256. */
  readonly secret: string;
  /** JWKS file; empty disables RS256 and ES256. */
  readonly jwksFile: string;
  readonly issuer: string;
  readonly audience: string;
  /** Name the token's expiry in the answer, so the connection is closed when it passes. */
  readonly disconnectOnExpiry?: boolean;
  readonly log: Logger;
  /** Seconds since the epoch; injectable for tests. */
  readonly now?: () => number;
  /** Poll interval of the JWKS file, for tests. */
  readonly intervalMs?: number;
}

const BAD_CREDENTIALS: AuthResult = { ok: false, reasonCode: RC.BAD_USERNAME_OR_PASSWORD };

/**
 * Authenticates clients that present a JWT. No token (or a value not shaped like one) abstains; a token that
 * fails any check is refused with Bad username or password. A `clientid` or `username` claim, when present,
 * must match the CONNECT (the username claim only when the token travels in the password).
 */
export class JwtAuth implements Hook {
  readonly name = 'jwt';
  private readonly options: JwtAuthOptions;
  private readonly secret: Buffer | null;
  private readonly jwks: WatchedFiles<JwtKeySet> | null;
  private readonly now: () => number;

  /** Reads the JWKS file, if any; throws an `AuthFileError` when it cannot be read or parsed. */
  constructor(options: JwtAuthOptions) {
    this.options = options;
    this.secret = options.secret === '' ? null : Buffer.from(options.secret, 'utf8');
    this.now = options.now ?? ((): number => Date.now() / 1000);
    const log = options.log;
    this.jwks = options.jwksFile === ''
      ? null
      : watchAuthFile({
        key: 'auth.jwt.jwks_file',
        file: options.jwksFile,
        what: 'jwks file',
        parse: (text) => {
          const keys = parseJwks(text);
          if (keys.skipped.length) log.warn({ file: options.jwksFile, skipped: keys.skipped }, 'jwks keys skipped');
          return keys;
        },
        log,
        intervalMs: options.intervalMs,
      });
  }

  authenticate(client: ClientInfo, connect: IConnectPacket): AuthResult {
    const fromPassword = this.options.from === 'password';
    const token = fromPassword ? connect.password?.toString('utf8') : connect.username;
    if (token === undefined || !looksLikeJwt(token)) return undefined;
    const verdict = verifyJwt(token, {
      secret: this.secret,
      keys: this.jwks?.value ?? NO_KEYS,
      issuer: this.options.issuer,
      audience: this.options.audience,
      now: this.now(),
    });
    let reason = verdict.ok ? undefined : verdict.reason;
    if (verdict.ok) {
      const { clientid, username } = verdict.claims;
      if (clientid !== undefined && clientid !== client.clientId) reason = 'clientid claim does not match';
      // With the token in the username field, the username is the token itself: nothing to compare.
      else if (fromPassword && username !== undefined && username !== client.username) reason = 'username claim does not match';
    }
    if (reason === undefined && verdict.ok) {
      const exp = verdict.claims['exp'] as number; // checked by verifyJwt
      const identity = identityOf(verdict.claims, fromPassword);
      return {
        ok: true,
        ...(identity === undefined ? {} : { identity }),
        ...(this.options.disconnectOnExpiry === true ? { expiresAt: exp * 1000 } : {}),
      };
    }
    this.options.log.info({ clientId: client.clientId, reason }, 'jwt refused');
    return BAD_CREDENTIALS;
  }

  /** Re-reads the JWKS file if it changed (the poll timer does this every second). */
  async reload(): Promise<void> {
    await this.jwks?.check();
  }

  onStop(): void {
    this.jwks?.close();
  }
}

/**
 * Who a valid token names, for session ownership: its `username` claim (with the token in the password, checked to
 * be the CONNECT's username); else, with the token in the username field (which changes at every refresh), its
 * `sub`, kept apart from usernames by a prefix no username can hold (U+0000). Undefined: the username it is.
 */
function identityOf(claims: Readonly<Record<string, unknown>>, fromPassword: boolean): string | undefined {
  const username = claims['username'];
  const sub = claims['sub'];
  if (typeof username === 'string') return username;
  if (!fromPassword && typeof sub === 'string') return `\u0000jwt:${sub}`;
  return undefined;
}
