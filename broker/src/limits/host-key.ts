/**
 * The key by which a peer address is counted for per-address limits and throttles. IPv4 addresses count one by one
 * (an IPv4-mapped IPv6 address as its IPv4 form, so a dual-stack listener cannot count one host twice); an IPv6
 * address counts by its /64, the smallest network a provider hands out: anyone with one host on IPv6 has
 * 2^64 addresses to rotate through, and counting them one by one would let each attempt come from a fresh one.
 * Anything that is not an IP address (a test's label, a Unix socket) is its own key.
 */
import { formatIp, parseIp } from '../acl/address.js';

/** The counting key of `address` (see the module comment). */
export function hostKey(address: string): string {
  const bytes = parseIp(address);
  if (bytes === null) return address;
  if (bytes.length === 4) return formatIp(bytes);
  const net = new Uint8Array(16);
  net.set(bytes.subarray(0, 8));
  return `${formatIp(net)}/64`;
}
