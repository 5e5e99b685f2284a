/**
 * The HTTP backend (`auth.http.*`): each CONNECT is POSTed as JSON to a service that answers allow, deny or
 * ignore (EMQX's convention). Answers are cached briefly; failures are not, so a recovered service is asked
 * again at once.
 */
import { createHash } from 'node:crypto';
import type { IConnectPacket } from 'mqtt-packet';
import type { Logger } from 'pino';
import { SmqError } from '../errors.js';
import type { AuthResult, ClientInfo, Hook } from '../hooks/types.js';
import { RC } from '../protocol/reason-codes.js';

/** What the service decided. `ignore` abstains: the next backend (or `auth.enable`) decides. */
export type HttpAuthAnswer = 'allow' | 'deny' | 'ignore';

/** The JSON body POSTed for each CONNECT. */
export interface HttpAuthRequest {
  readonly clientid: string;
  readonly username: string | null;
  /** The password as sent, decoded as UTF-8; null when the client sent none. */
  readonly password: string | null;
  readonly peerhost: string;
  /** MQTT protocol level: 3 (3.1), 4 (3.1.1) or 5. */
  readonly protocol: 3 | 4 | 5;
  readonly transport: string;
}

/** The service could not be asked or gave no usable answer; `on_error` decides. */
export class AuthBackendError extends SmqError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_AUTH_BACKEND', message, options);
  }
}

/** Options of {@link HttpAuth}. */
export interface HttpAuthOptions {
  readonly url: string;
  readonly timeoutMs: number;
  /** Milliseconds an answer stays cached; 0 disables the cache. */
  readonly cacheTtlMs: number;
  readonly onError: 'deny' | 'allow';
  readonly log: Logger;
  /** Most answers kept; the oldest go first. */
  readonly maxCacheEntries?: number;
  /** Milliseconds since the epoch; injectable for tests. */
  readonly now?: () => number;
}

/** Enough for every client of a busy node to reconnect within the TTL, small enough to never matter. */
const DEFAULT_MAX_CACHE_ENTRIES = 10000;

const ALLOW: AuthResult = { ok: true };
/** The service said no to these credentials. */
const DENY: AuthResult = { ok: false, reasonCode: RC.BAD_USERNAME_OR_PASSWORD };
/** The service could not be asked: not the client's fault, so not "bad password". */
const UNAVAILABLE: AuthResult = { ok: false, reasonCode: RC.NOT_AUTHORIZED };

function toResult(answer: HttpAuthAnswer): AuthResult {
  return answer === 'allow' ? ALLOW : answer === 'deny' ? DENY : undefined;
}

function describe(err: unknown): string {
  if (err instanceof AuthBackendError) return err.message;
  if (err instanceof Error && err.name === 'TimeoutError') return 'timed out';
  if (err instanceof Error) {
    // fetch reports network errors as "fetch failed" with the real reason (ECONNREFUSED, ...) as the cause.
    const cause = err.cause;
    const code = cause instanceof Error ? (cause as NodeJS.ErrnoException).code ?? cause.message : undefined;
    return code === undefined ? err.message : `${err.message}: ${code}`;
  }
  return String(err);
}

/**
 * Asks an HTTP service about each CONNECT. HTTP 200 with `{"result": "allow" | "deny" | "ignore"}` or 204 (allow)
 * are answers; any other status, a timeout or a network error applies `on_error` (deny answers Not authorized).
 */
export class HttpAuth implements Hook {
  /** authenticate() stops its HTTP call when the client goes away. */
  readonly abortable = true;
  readonly name = 'auth-http';
  private readonly options: HttpAuthOptions;
  private readonly cache = new Map<string, { readonly answer: HttpAuthAnswer; readonly expires: number }>();
  private readonly maxEntries: number;
  private readonly now: () => number;
  private readonly where: string;

  /** Throws {@link AuthBackendError} when the URL is not an http(s) URL, so a typo stops the start. */
  constructor(options: HttpAuthOptions) {
    let url: URL | undefined;
    try {
      url = new URL(options.url);
    } catch {
      // reported below
    }
    if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      throw new AuthBackendError('auth.http.url: expected an http:// or https:// URL');
    }
    // Logged without user info or query, which may hold the service's own credentials.
    this.where = `${url.origin}${url.pathname}`;
    this.options = options;
    this.maxEntries = options.maxCacheEntries ?? DEFAULT_MAX_CACHE_ENTRIES;
    this.now = options.now ?? Date.now;
  }

  /** Answers currently cached. */
  get cached(): number {
    return this.cache.size;
  }

  async authenticate(client: ClientInfo, connect: IConnectPacket, signal?: AbortSignal): Promise<AuthResult> {
    const request: HttpAuthRequest = {
      clientid: client.clientId,
      username: client.username ?? null,
      password: connect.password === undefined ? null : connect.password.toString('utf8'),
      peerhost: client.remoteAddress,
      protocol: client.protocolVersion,
      transport: client.transport,
    };
    const key = this.options.cacheTtlMs > 0 ? cacheKey(request, connect.password) : null;
    if (key !== null) {
      const hit = this.cache.get(key);
      if (hit !== undefined && hit.expires > this.now()) return toResult(hit.answer);
      if (hit !== undefined) this.cache.delete(key);
    }
    const who = { clientId: client.clientId, username: client.username };
    let answer: HttpAuthAnswer;
    try {
      answer = await this.ask(request, signal);
    } catch (err) {
      if (signal?.aborted) throw err; // the client went away: nobody waits for an answer
      this.options.log.warn({ ...who, url: this.where, err: describe(err), onError: this.options.onError }, 'authentication backend failed');
      return this.options.onError === 'allow' ? ALLOW : UNAVAILABLE;
    }
    this.options.log.debug({ ...who, answer }, 'authentication backend answered');
    if (key !== null) this.remember(key, answer);
    return toResult(answer);
  }

  private async ask(request: HttpAuthRequest, abandoned: AbortSignal | undefined): Promise<HttpAuthAnswer> {
    const timeout = AbortSignal.timeout(this.options.timeoutMs);
    // The signal covers the body too, so a service that sends headers and then stalls still times out.
    const res = await fetch(this.options.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(request),
      signal: abandoned === undefined ? timeout : AbortSignal.any([timeout, abandoned]),
      redirect: 'error',
    });
    if (res.status === 204) {
      await res.body?.cancel();
      return 'allow';
    }
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new AuthBackendError(`HTTP ${res.status}`);
    }
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new AuthBackendError('answer is not JSON');
    }
    const result = typeof body === 'object' && body !== null ? (body as Record<string, unknown>)['result'] : undefined;
    if (result === 'allow' || result === 'deny' || result === 'ignore') return result;
    throw new AuthBackendError('answer has no "result" of allow, deny or ignore');
  }

  private remember(key: string, answer: HttpAuthAnswer): void {
    // Re-inserting keeps the Map in insertion order by age, so the first key is always the oldest.
    this.cache.delete(key);
    this.cache.set(key, { answer, expires: this.now() + this.options.cacheTtlMs });
    while (this.cache.size > this.maxEntries) {
      const oldest = this.cache.keys().next();
      if (oldest.done) break;
      this.cache.delete(oldest.value);
    }
  }

  onStop(): void {
    this.cache.clear();
  }
}

/** The cache key holds a digest of the password, never the password itself. */
function cacheKey(request: HttpAuthRequest, password: Buffer | undefined): string {
  const digest = password === undefined ? '-' : createHash('sha256').update(password).digest('base64');
  return JSON.stringify([request.clientid, request.username, digest, request.peerhost]);
}
