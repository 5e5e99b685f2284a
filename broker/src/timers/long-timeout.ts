/**
 * Timers for delays that clients and configuration choose. Node's setTimeout takes at most 2^31-1 ms (24.8 days);
 * beyond, it prints TimeoutOverflowWarning and fires after 1 ms. A v5 client may ask for a Session Expiry or Will
 * Delay Interval of up to 2^32-1 seconds (136 years), and one of 30 days used to lose its session, and every
 * message queued for it, the moment it disconnected. A LongTimeout waits in hops of at most the maximum until its
 * deadline has really passed.
 */

/** The longest delay setTimeout honours. */
export const MAX_TIMEOUT_MS = 0x7fffffff;

/** A one-shot timer for any delay a number can hold; unref'd, so it never keeps the process alive by itself. */
export class LongTimeout {
  /** Epoch ms at which the callback runs. */
  readonly deadline: number;
  private readonly fn: () => void;
  private handle: NodeJS.Timeout | null = null;

  /** Runs `fn` once, `ms` milliseconds from now (at once for 0 or less; never for Infinity). */
  constructor(fn: () => void, ms: number) {
    this.fn = fn;
    this.deadline = Date.now() + Math.max(0, ms);
    if (Number.isFinite(this.deadline)) this.arm();
  }

  private arm(): void {
    const left = this.deadline - Date.now();
    this.handle = setTimeout(LongTimeout.hop, Math.min(Math.max(0, left), MAX_TIMEOUT_MS), this);
    this.handle.unref();
  }

  private static hop(t: LongTimeout): void {
    t.handle = null;
    // A hop of the maximum (or a clock that moved back) may end before the deadline: wait again.
    if (Date.now() < t.deadline) t.arm();
    else t.fn();
  }

  /** Cancels the timer; nothing runs afterwards. */
  clear(): void {
    if (this.handle !== null) clearTimeout(this.handle);
    this.handle = null;
  }
}
