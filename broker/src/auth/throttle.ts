/**
 * The failed-login throttle: an address with `auth.max_failures` failed logins within `auth.failure_window`
 * seconds waits `auth.failure_delay` ms before its next CONNECT is answered, twice as long after each further
 * failure, at most 30 s. Guessing passwords becomes slow while one typo costs nothing.
 */
import type { Logger } from 'pino';
import type { AuthResult, ClientInfo, Hook } from '../hooks/types.js';
import { RC } from '../protocol/reason-codes.js';

/** The longest wait, whatever the number of failures. */
export const MAX_DELAY_MS = 30000;

/** Options of {@link FailureThrottle}. */
export interface ThrottleOptions {
  /** Failures before attempts are slowed; 0 never slows. */
  readonly maxFailures: number;
  readonly windowMs: number;
  /** The first wait; 0 never slows. */
  readonly delayMs: number;
  readonly maxDelayMs?: number;
  /** Addresses remembered at most; the least recently failing are forgotten first. */
  readonly maxAddresses?: number;
  /** Milliseconds; injectable for tests. */
  readonly now?: () => number;
}

/** Enough for a distributed guessing attempt to be slowed everywhere, small enough to stay a few MB. */
const DEFAULT_MAX_ADDRESSES = 50000;

/**
 * Failure counts per address over a sliding window. Pure bookkeeping with an injectable clock; the hook from
 * {@link authFailureHook} does the waiting.
 */
export class FailureThrottle {
  private readonly maxFailures: number;
  private readonly windowMs: number;
  private readonly delayMs: number;
  private readonly maxDelayMs: number;
  private readonly maxAddresses: number;
  /** Keeping more failure times than this changes nothing: the delay has reached its cap. */
  private readonly keep: number;
  private readonly now: () => number;
  /** Failure times per address, oldest first; the Map is ordered by last failure (re-inserted on each). */
  private readonly failures = new Map<string, number[]>();

  constructor(options: ThrottleOptions) {
    this.maxFailures = options.maxFailures;
    this.windowMs = options.windowMs;
    this.delayMs = options.delayMs;
    this.maxDelayMs = options.maxDelayMs ?? MAX_DELAY_MS;
    this.maxAddresses = options.maxAddresses ?? DEFAULT_MAX_ADDRESSES;
    this.now = options.now ?? Date.now;
    let doublings = 0;
    while (this.delayMs > 0 && this.delayMs * 2 ** doublings < this.maxDelayMs) doublings++;
    this.keep = this.maxFailures + doublings + 1;
  }

  /** True when this throttle ever slows anyone. */
  get enabled(): boolean {
    return this.maxFailures > 0 && this.delayMs > 0;
  }

  /** Addresses remembered now. */
  get size(): number {
    return this.failures.size;
  }

  /** Milliseconds the next attempt from `address` must wait; 0 for no wait. */
  delayFor(address: string): number {
    if (!this.enabled) return 0;
    const times = this.failures.get(address);
    if (times === undefined) return 0;
    const n = this.recent(times);
    if (n < this.maxFailures) return 0;
    return Math.min(this.maxDelayMs, this.delayMs * 2 ** (n - this.maxFailures));
  }

  /** Records a failed login; returns the failures of `address` within the window, this one included. */
  recordFailure(address: string): number {
    const now = this.now();
    const times = this.failures.get(address) ?? [];
    this.failures.delete(address);
    times.push(now);
    if (times.length > this.keep) times.splice(0, times.length - this.keep);
    this.failures.set(address, times);
    this.prune(now);
    return this.recent(times);
  }

  /** A successful login forgets the address's failures. */
  reset(address: string): void {
    this.failures.delete(address);
  }

  /** Drops expired failure times from `times` and returns how many remain. */
  private recent(times: number[]): number {
    const since = this.now() - this.windowMs;
    let expired = 0;
    while (expired < times.length && (times[expired] ?? 0) <= since) expired++;
    if (expired) times.splice(0, expired);
    return times.length;
  }

  /** Forgets addresses whose last failure left the window, and the oldest beyond the bound. */
  private prune(now: number): void {
    const since = now - this.windowMs;
    for (const [address, times] of this.failures) {
      // Ordered by last failure: the first address still in the window ends the scan.
      if ((times[times.length - 1] ?? 0) > since) break;
      this.failures.delete(address);
    }
    while (this.failures.size > this.maxAddresses) {
      const oldest = this.failures.keys().next();
      if (oldest.done) break;
      this.failures.delete(oldest.value);
    }
  }
}

/**
 * The hook that logs every CONNECT refused for its credentials (Bad username or password, Not authorized) and, when the throttle is on, delays the attempts of addresses with
 * too many recent failures. It goes first: its `authenticate` waits, then abstains so the real backends answer.
 * `onConnected` (a login that got through) clears the address.
 */
export function authFailureHook(throttle: FailureThrottle, log: Logger): Hook {
  const hook: Hook = {
    name: 'auth-failures',
    onAuthFailure(client: ClientInfo, reasonCode: number): void {
      // Only refused credentials are failed logins; a ban (flapping, limits) is logged and counted by its owner.
      if (reasonCode !== RC.BAD_USERNAME_OR_PASSWORD && reasonCode !== RC.NOT_AUTHORIZED) return;
      const remote = client.remoteAddress;
      // Never the password: the username is enough to tell a typo from a guessing run.
      log.warn({ clientId: client.clientId, username: client.username, remote, reasonCode }, 'authentication failed');
      if (!throttle.enabled) return;
      const failures = throttle.recordFailure(remote);
      const delayMs = throttle.delayFor(remote);
      if (delayMs > 0) log.warn({ remote, failures, delayMs }, 'login attempts from this address are slowed down');
    },
  };
  if (!throttle.enabled) return hook;
  return {
    ...hook,
    authenticate(client: ClientInfo): AuthResult | Promise<AuthResult> {
      const delayMs = throttle.delayFor(client.remoteAddress);
      if (delayMs === 0) return undefined;
      return new Promise((resolve) => setTimeout(() => resolve(undefined), delayMs));
    },
    onConnected(client: ClientInfo): void {
      throttle.reset(client.remoteAddress);
    },
  };
}
