/**
 * `proxy.trusted`: the load balancers and proxies whose word on a client's address is taken. Only a peer in
 * the list may send a PROXY protocol header or an X-Forwarded-For that counts; from anyone else both are the
 * client's own claims, which would let it pass address rules, dodge its own limits and throttle, or have
 * another address throttled. Pure: addresses and header text in, an address out.
 */
import { AddressRange, canonicalIp, parseIp, parseRange } from '../acl/address.js';

/** The trusted proxy ranges of `proxy.trusted`. */
export class TrustedProxies {
  private readonly ranges: readonly AddressRange[];

  /** Takes the `proxy.trusted` list, which the configuration loader has already checked entry by entry. */
  constructor(list: readonly string[]) {
    this.ranges = list.map((text) => {
      const r = parseRange(text);
      if (typeof r === 'string') throw new Error(`proxy.trusted: "${text}": expected ${r}`);
      return r;
    });
  }

  /** True when no proxy is trusted (the default): every peer is taken to be the client itself. */
  get empty(): boolean {
    return this.ranges.length === 0;
  }

  /** True when `address` (as a socket reports it; `::ffff:a.b.c.d` matches IPv4 ranges) is a trusted proxy. */
  trusts(address: string): boolean {
    if (this.ranges.length === 0) return false;
    const ip = parseIp(address);
    return ip !== null && this.ranges.some((r) => r.contains(ip));
  }

  /**
   * The address of the client behind `peer`, given the X-Forwarded-For header of its request. Each proxy
   * appends the address it received the request from, so the list is read from the right: the first address
   * that is not a trusted proxy is the client (left of it, anything may be forged). If every entry is trusted,
   * the left-most is the client. The header is ignored, and `peer` returned, when `peer` is not trusted, when
   * there is no header, or when any entry is not an IP address: a header that cannot be read in full is not
   * believed in part.
   */
  clientAddress(peer: string, forwardedFor: string | undefined): string {
    if (forwardedFor === undefined || !this.trusts(peer)) return peer;
    const entries: string[] = [];
    for (const raw of forwardedFor.split(',')) {
      const ip = canonicalIp(raw.trim());
      if (ip === null) return peer;
      entries.push(ip);
    }
    for (let i = entries.length - 1; i >= 0; i--) {
      const ip = entries[i] as string;
      if (!this.trusts(ip)) return ip;
    }
    return entries[0] ?? peer;
  }
}
