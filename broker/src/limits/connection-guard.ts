import type { LimitsConfig } from '../config/types.js';
import { RC } from '../protocol/reason-codes.js';
import { TokenBucket } from './token-bucket.js';
import { hostKey } from './host-key.js';

/** Rate buckets kept before idle ones are swept, so a scan of many addresses cannot grow memory forever. */
const SWEEP_AT = 10000;

/**
 * Refused connections kept open at once so they can be told why (CONNACK) in all, and from one address. Past
 * these they are closed at once: otherwise a flood of refused sockets, each kept until its CONNECT or the connect
 * timeout, would use up the process's file descriptors and lock out everyone else.
 */
export const MAX_EXPLAINED = 1024;
export const MAX_EXPLAINED_PER_ADDRESS = 8;

/**
 * Admission of new connections: the total, per-address and per-address-rate limits (an address counted by its
 * host key: IPv6 by /64, see host-key.ts). A refused socket is
 * still served until its CONNECT so that the client learns why (CONNACK with the reason), bounded by the
 * connect timeout.
 */
export class ConnectionGuard {
  private readonly limits: LimitsConfig;
  private total = 0;
  private readonly perAddress = new Map<string, number>();
  private readonly rates = new Map<string, TokenBucket>();
  /** Refused connections kept open to be told why, in all and per address. */
  private explaining = 0;
  private readonly explainingPer = new Map<string, number>();

  /** Whether open connections are counted per address (only with that limit on: a key costs ~1 µs a connection). */
  private readonly perAddressOn: boolean;

  constructor(limits: LimitsConfig) {
    this.limits = limits;
    this.perAddressOn = limits.max_connections_per_address > 0;
  }

  /**
   * Counts a new connection from `address`. Returns 0 when it may proceed, else the v5 reason code of the
   * refusal and the name of the limit. Every admitted or refused connection must be released once.
   */
  admit(peer: string, now: number): { rc: number; limit: string } | null {
    const l = this.limits;
    const address = this.perAddressOn || l.connection_rate > 0 ? hostKey(peer) : '';
    this.total++;
    let fromAddress = 0;
    if (this.perAddressOn) {
      fromAddress = (this.perAddress.get(address) ?? 0) + 1;
      this.perAddress.set(address, fromAddress);
    }
    if (l.max_connections > 0 && this.total > l.max_connections) return { rc: RC.QUOTA_EXCEEDED, limit: 'max_connections' };
    if (this.perAddressOn && fromAddress > l.max_connections_per_address) {
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

  /**
   * A refused connection from `address`: true when it may be kept open until its CONNECT to be told why (then
   * `release(address, true)` when it closes), false when too many refused ones are open already and it must be
   * closed at once (then `release(address, false)`).
   */
  explain(peer: string): boolean {
    const address = hostKey(peer);
    const n = this.explainingPer.get(address) ?? 0;
    if (this.explaining >= MAX_EXPLAINED || n >= MAX_EXPLAINED_PER_ADDRESS) return false;
    this.explaining++;
    this.explainingPer.set(address, n + 1);
    return true;
  }

  /** The connection from `address` has closed; `explained`: it was a refused one kept open by explain(). */
  release(peer: string, explained = false): void {
    this.total--;
    if (!this.perAddressOn && !explained) return;
    const address = hostKey(peer);
    if (this.perAddressOn) {
      const n = (this.perAddress.get(address) ?? 1) - 1;
      if (n <= 0) this.perAddress.delete(address);
      else this.perAddress.set(address, n);
    }
    if (!explained) return;
    this.explaining--;
    const e = (this.explainingPer.get(address) ?? 1) - 1;
    if (e <= 0) this.explainingPer.delete(address);
    else this.explainingPer.set(address, e);
  }

  /** Open connections counted, for tests and metrics. */
  get open(): number {
    return this.total;
  }

  private sweep(now: number): void {
    for (const [address, bucket] of this.rates) if (bucket.full(now)) this.rates.delete(address);
  }
}
