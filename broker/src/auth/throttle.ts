/**
 * The failed-login throttle: an address (counted by its host key: IPv6 by /64, see limits/host-key.ts) with `auth.max_failures` failed logins within `auth.failure_window`
 * seconds waits `auth.failure_delay` ms before its next CONNECT is answered, twice as long after each further
 * failure, at most 30 s. Guessing passwords becomes slow while one typo costs nothing.
 */
import type { Logger } from 'pino';
import type { ClientInfo, Hook } from '../hooks/types.js';
import { RC } from '../protocol/reason-codes.js';
import { hostKey } from '../limits/host-key.js';

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
  /** Failures within the window before attempts are slowed. */
  readonly maxFailures: number;
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
    if (!this.enabled || this.failures.size === 0) return 0;
    const times = this.failures.get(hostKey(address));
    if (times === undefined) return 0;
    const n = this.recent(times);
    if (n < this.maxFailures) return 0;
    return Math.min(this.maxDelayMs, this.delayMs * 2 ** (n - this.maxFailures));
  }

  /**
   * Milliseconds until `address` may try again when each attempt must come at least its delay after the last
   * failure (the HTTP API's rule: refused attempts are not held open, they are told when to come back).
   */
  retryAfter(address: string): number {
    const delay = this.delayFor(address);
    if (delay === 0) return 0;
    const times = this.failures.get(hostKey(address));
    const last = times?.[times.length - 1] ?? 0;
    return Math.max(0, last + delay - this.now());
  }

  /** Records a failed login; returns the failures of `address` within the window, this one included. */
  recordFailure(peer: string): number {
    const address = hostKey(peer);
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
    if (this.failures.size > 0) this.failures.delete(hostKey(address)); // every good login: no key when none failed
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
 * The hook that logs every CONNECT refused for its credentials (Bad username or password, Not authorized) and
 * records it in the throttle; `onConnected` (a login that got through) clears the address. The waiting itself is
 * the {@link LoginGate}'s, before a login takes a slot of the shared worker pool.
 */
export function authFailureHook(throttle: FailureThrottle, log: Logger): Hook {
  const hook: Hook = {
    name: 'auth-failures',
    onAuthFailure(client: ClientInfo, reasonCode: number): void {
      // Only refused credentials are failed logins; a ban (flapping, limits) is logged and counted by its owner.
      if (reasonCode !== RC.BAD_USERNAME_OR_PASSWORD && reasonCode !== RC.NOT_AUTHORIZED) return;
      const remote = client.remoteAddress;
      if (!throttle.enabled) {
        log.warn({ clientId: client.clientId, username: client.username, remote, reasonCode }, 'authentication failed');
        return;
      }
      const before = throttle.delayFor(remote);
      const failures = throttle.recordFailure(remote);
      const delayMs = throttle.delayFor(remote);
      // A guessing run would write a line per attempt (a flood of logs is a denial of service of its own): past
      // the threshold, a line only when the delay grows; smq_auth_failures_total still counts every one.
      if (failures > throttle.maxFailures && delayMs === before) return;
      // Never the password: the username is enough to tell a typo from a guessing run.
      log.warn({ clientId: client.clientId, username: client.username, remote, reasonCode, failures }, 'authentication failed');
      if (delayMs > 0) log.warn({ remote, failures, delayMs }, 'login attempts from this address are slowed down');
    },
  };
  if (!throttle.enabled) return hook;
  return {
    ...hook,
    onConnected(client: ClientInfo): void {
      throttle.reset(client.remoteAddress);
    },
  };
}

/** What {@link LoginGate.enter} says of a login. */
export type GateVerdict =
  /** Go on now; call `leave()` once the login has its answer. */
  | { readonly wait: null; leave(): void }
  /** Go on once `wait` resolves true (false: the client went away first); call `leave()` once it has its answer. */
  | { readonly wait: Promise<boolean>; leave(): void }
  /** Too many logins from this slowed-down address are pending: refuse this one at once. */
  | null;

const GO: GateVerdict = { wait: null, leave: () => undefined };

/**
 * Where a login from a slowed-down address waits out its delay: a timer and nothing else, so the shared worker
 * pool (and every other address's logins) never waits for it; the timer goes as soon as the client does. At most
 * `maxPending` logins of one slowed-down address are pending at once (waiting, queued for a worker, or being
 * checked); further ones are refused at once without checking their password. Addresses that are not slowed
 * down (a NAT of many devices reconnecting after a restart, say) are never capped.
 */
export class LoginGate {
  private readonly throttle: FailureThrottle;
  private readonly maxPending: number;
  /** Logins pending per slowed-down address. */
  private readonly pendingByAddress = new Map<string, number>();

  constructor(throttle: FailureThrottle, maxPending: number) {
    this.throttle = throttle;
    this.maxPending = maxPending;
  }

  /** Logins of slowed-down addresses pending now, all addresses together (a metric). */
  get pending(): number {
    let n = 0;
    for (const k of this.pendingByAddress.values()) n += k;
    return n;
  }

  /** Logins pending for `address` now (for tests and metrics). */
  pendingFor(address: string): number {
    return this.pendingByAddress.get(hostKey(address)) ?? 0;
  }

  /**
   * Admits a login from `address`; the signal `abandoned` gives (asked for only when the login must wait) aborts
   * its wait when the client goes away.
   */
  enter(peer: string, abandoned: () => AbortSignal): GateVerdict {
    const delayMs = this.throttle.delayFor(peer);
    if (delayMs === 0) return GO;
    const address = hostKey(peer);
    const n = this.pendingByAddress.get(address) ?? 0;
    if (n >= this.maxPending) return null;
    this.pendingByAddress.set(address, n + 1);
    let left = false;
    const leave = (): void => {
      if (left) return;
      left = true;
      const m = (this.pendingByAddress.get(address) ?? 1) - 1;
      if (m > 0) this.pendingByAddress.set(address, m);
      else this.pendingByAddress.delete(address);
    };
    const signal = abandoned();
    const wait = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', abandon);
        resolve(!signal.aborted);
      }, delayMs);
      const abandon = (): void => {
        clearTimeout(timer);
        leave();
        resolve(false);
      };
      signal.addEventListener('abort', abandon, { once: true });
    });
    return { wait, leave };
  }
}
