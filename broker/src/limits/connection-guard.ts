import type { LimitsConfig } from '../config/types.js';
import { RC } from '../protocol/reason-codes.js';
import { TokenBucket } from './token-bucket.js';

/** Rate buckets kept before idle ones are swept, so a scan of many addresses cannot grow memory forever. */
const SWEEP_AT = 10000;

/**
 * Admission of new connections: the total, per-address and per-address-rate limits. A refused socket is
 * still served until its CONNECT so that the client learns why (CONNACK with the reason), bounded by the
 * connect timeout.
 */
export class ConnectionGuard {
  private readonly limits: LimitsConfig;
  private total = 0;
  private readonly perAddress = new Map<string, number>();
  private readonly rates = new Map<string, TokenBucket>();

  constructor(limits: LimitsConfig) {
    this.limits = limits;
  }

  /**
   * Counts a new connection from `address`. Returns 0 when it may proceed, else the v5 reason code of the
   * refusal and the name of the limit. Every admitted or refused connection must be released once.
   */
  admit(address: string, now: number): { rc: number; limit: string } | null {
    this.total++;
    this.perAddress.set(address, (this.perAddress.get(address) ?? 0) + 1);
    const l = this.limits;
    if (l.max_connections > 0 && this.total > l.max_connections) return { rc: RC.QUOTA_EXCEEDED, limit: 'max_connections' };
    if (l.max_connections_per_address > 0 && (this.perAddress.get(address) ?? 0) > l.max_connections_per_address) {
      return { rc: RC.QUOTA_EXCEEDED, limit: 'max_connections_per_address' };
    }
    if (l.connection_rate > 0) {
      let bucket = this.rates.get(address);
      if (!bucket) {
        if (this.rates.size >= SWEEP_AT) this.sweep(now);
        bucket = new TokenBucket(l.connection_rate, l.connection_rate, now);
        this.rates.set(address, bucket);
      }
      if (bucket.take(now) > 0) return { rc: RC.CONNECTION_RATE_EXCEEDED, limit: 'connection_rate' };
    }
    return null;
  }

  /** The connection from `address` has closed. */
  release(address: string): void {
    this.total--;
    const n = (this.perAddress.get(address) ?? 1) - 1;
    if (n <= 0) this.perAddress.delete(address);
    else this.perAddress.set(address, n);
  }

  /** Open connections counted, for tests and metrics. */
  get open(): number {
    return this.total;
  }

  private sweep(now: number): void {
    for (const [address, bucket] of this.rates) if (bucket.full(now)) this.rates.delete(address);
  }
}
