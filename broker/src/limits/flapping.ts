/** Entries kept before old ones are swept. */
const SWEEP_AT = 10000;

/**
 * Flapping detection (as EMQX's): a client id that connects more than `max` times within `window` seconds is
 * refused for `ban` seconds, so a crash-looping device cannot keep the broker busy with session takeovers.
 */
export class FlappingDetector {
  private readonly max: number;
  private readonly windowMs: number;
  private readonly banMs: number;
  private readonly seen = new Map<string, { start: number; count: number; bannedUntil: number }>();

  constructor(max: number, windowSeconds: number, banSeconds: number) {
    this.max = max;
    this.windowMs = windowSeconds * 1000;
    this.banMs = banSeconds * 1000;
  }

  /** Records a connection attempt; returns true when the client id is (now) banned. */
  banned(clientId: string, now: number): boolean {
    if (this.max <= 0) return false;
    let e = this.seen.get(clientId);
    if (e && e.bannedUntil > now) return true;
    if (!e || now - e.start > this.windowMs) {
      if (!e && this.seen.size >= SWEEP_AT) this.sweep(now);
      e = { start: now, count: 0, bannedUntil: 0 };
      this.seen.set(clientId, e);
    }
    e.count++;
    if (e.count > this.max) {
      e.bannedUntil = now + this.banMs;
      e.start = now;
      e.count = 0;
      return true;
    }
    return false;
  }

  private sweep(now: number): void {
    for (const [id, e] of this.seen) if (e.bannedUntil <= now && now - e.start > this.windowMs) this.seen.delete(id);
  }
}
