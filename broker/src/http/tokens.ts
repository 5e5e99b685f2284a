/**
 * The API's `x-token` check. Tokens are compared as SHA-256 digests with timingSafeEqual against every configured
 * token, so how long a refusal takes says nothing about how much of a token was right; and an address that keeps
 * sending wrong tokens is told to wait (429 with Retry-After), like a client that keeps failing MQTT logins, so
 * a short token cannot be guessed at line rate.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { FailureThrottle } from '../auth/throttle.js';
import type { Config } from '../config/types.js';

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** What {@link ApiTokens.check} says of a request. */
export type TokenVerdict = { readonly ok: true } | { readonly ok: false; readonly retryAfterMs: number };

/** The tokens of `http.tokens` and `http.token_file`, and the failure throttle of the API. */
export class ApiTokens {
  private readonly fixed: Buffer[];
  private readonly file: string;
  private readonly throttle: FailureThrottle;

  constructor(config: Config, now?: () => number) {
    this.fixed = config.http.tokens.map(digest);
    this.file = config.http.token_file;
    const auth = config.auth;
    // The same rule as MQTT logins (auth.max_failures within auth.failure_window, auth.failure_delay doubling).
    this.throttle = new FailureThrottle({
      maxFailures: auth.max_failures,
      windowMs: auth.failure_window * 1000,
      delayMs: auth.failure_delay,
      ...(now === undefined ? {} : { now }),
    });
  }

  /** Checks the token a request from `address` carries (undefined: none). */
  check(address: string, token: string | undefined): TokenVerdict {
    const wait = this.throttle.retryAfter(address);
    if (wait > 0) return { ok: false, retryAfterMs: wait };
    if (token !== undefined && token !== '' && this.known(digest(token))) {
      this.throttle.reset(address);
      return { ok: true };
    }
    this.throttle.recordFailure(address);
    return { ok: false, retryAfterMs: 0 };
  }

  /** Compares against every token (no early exit: the time taken does not depend on which one matched). */
  private known(d: Buffer): boolean {
    let found = false;
    for (const t of this.fixed) found = timingSafeEqual(t, d) || found;
    for (const t of fileTokens(this.file)) found = timingSafeEqual(t, d) || found;
    return found;
  }
}

/** Digests of the tokens of `http.token_file` (one per line), read per request so a rotated Secret applies at once. */
function fileTokens(file: string): Buffer[] {
  if (file === '') return [];
  try {
    return readFileSync(file, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '').map(digest);
  } catch {
    return [];
  }
}
