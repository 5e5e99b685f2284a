/**
 * IP addresses and CIDR ranges for the `address` matcher of ACL rules. Pure: parsing and comparing bytes, no
 * I/O. IPv4 addresses are 4 bytes, IPv6 16; an IPv4-mapped IPv6 address (`::ffff:10.1.2.3`, what a dual-stack
 * socket reports for an IPv4 peer) is turned into its IPv4 form, so IPv4 rules match it.
 */
import { isIPv4, isIPv6 } from 'node:net';

/** The `::ffff:0:0/96` prefix of IPv4-mapped IPv6 addresses. */
const MAPPED_PREFIX = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] as const;

/**
 * Parses an IPv4 or IPv6 address (an IPv6 zone such as `%eth0` is ignored) into 4 or 16 bytes; IPv4-mapped
 * IPv6 addresses come back as 4 bytes. Returns null for anything else (a Unix socket path, a test's label).
 */
export function parseIp(text: string): Uint8Array | null {
  if (isIPv4(text)) return parseIPv4(text);
  const zone = text.indexOf('%');
  const bare = zone < 0 ? text : text.slice(0, zone);
  if (!isIPv6(bare)) return null;
  const bytes = parseIPv6(bare);
  return isMapped(bytes) ? bytes.subarray(12) : bytes;
}

/**
 * The printable form of a peer address as backends expect it: an IPv4-mapped IPv6 address becomes plain IPv4,
 * anything else is returned unchanged.
 */
export function displayIp(text: string): string {
  const bytes = parseIp(text);
  return bytes !== null && bytes.length === 4 && !isIPv4(text) ? bytes.join('.') : text;
}

/**
 * The canonical text of a parsed address (4 or 16 bytes): dotted IPv4, an IPv4-mapped IPv6 address as IPv4,
 * other IPv6 as RFC 5952 has it (lower case, no leading zeros, the longest run of two or more zero groups as
 * `::`). One address has one spelling, so counting by address (limits, the login throttle) cannot be dodged
 * by writing it another way.
 */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 16 && isMapped(bytes)) return bytes.subarray(12).join('.');
  if (bytes.length !== 16) return bytes.join('.');
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLength) {
      best = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (ws: number[]): string => ws.map((w) => w.toString(16)).join(':');
  if (best < 0) return hex(words);
  return `${hex(words.slice(0, best))}::${hex(words.slice(best + bestLength))}`;
}

/**
 * The canonical form ({@link formatIp}) of an IPv4 or IPv6 address written as text, or null when the text is
 * not one (a zone such as `%eth0` included: it means nothing beyond the local host).
 */
export function canonicalIp(text: string): string | null {
  if (text.includes('%')) return null;
  const bytes = parseIp(text);
  return bytes === null ? null : formatIp(bytes);
}

/** One IP address or CIDR range from a rule. */
export class AddressRange {
  /** The network bytes (host bits zero): 4 for IPv4, 16 for IPv6. */
  readonly bytes: Uint8Array;
  /** Prefix length in bits. */
  readonly prefix: number;
  /** The range as written in the rules file, for messages. */
  readonly source: string;

  constructor(bytes: Uint8Array, prefix: number, source: string) {
    this.bytes = bytes;
    this.prefix = prefix;
    this.source = source;
  }

  /** True when the (already parsed) address lies in the range; null (not an IP address) never does. */
  contains(ip: Uint8Array | null): boolean {
    if (ip === null) return false;
    let addr = ip;
    if (addr.length !== this.bytes.length) {
      // An IPv4 peer against an IPv6 range (`::/0`, `::ffff:0:0/96`): compare its mapped form.
      if (addr.length !== 4) return false;
      addr = new Uint8Array(16);
      addr.set(MAPPED_PREFIX);
      addr.set(ip, 12);
    }
    return prefixEqual(addr, this.bytes, this.prefix);
  }
}

/**
 * Parses `10.0.0.0/8`, `2001:db8::/32`, or a single address (a full-length prefix). An IPv4-mapped IPv6 range
 * of at least 96 bits becomes the IPv4 range it stands for. Returns a sentence saying what is wrong otherwise,
 * including a range with host bits set (`10.0.0.1/8`), which usually means a misunderstanding.
 */
export function parseRange(text: string): AddressRange | string {
  const slash = text.indexOf('/');
  const addrText = slash < 0 ? text : text.slice(0, slash);
  if (addrText.includes('%')) return 'an address without an IPv6 zone';
  let bytes = parseIp(addrText);
  if (bytes === null) return 'an IPv4 or IPv6 address, optionally with a /prefix';
  // parseIp has already turned a mapped address into 4 bytes; its prefix counts in IPv6 bits.
  const mapped = bytes.length === 4 && !isIPv4(addrText);
  const bits = mapped ? 128 : bytes.length * 8;
  let prefix = bits;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > bits) return `a prefix length from 0 to ${bits} after the "/"`;
    prefix = Number(p);
  }
  if (mapped) {
    if (prefix < 96) {
      // Wider than the mapped block: keep it as the IPv6 range it is.
      const wide = new Uint8Array(16);
      wide.set(MAPPED_PREFIX);
      wide.set(bytes, 12);
      bytes = wide;
    } else {
      prefix -= 96;
    }
  }
  const network = mask(bytes, prefix);
  if (!equalBytes(network, bytes)) return `a network address with no host bits set (did you mean ${format(network)}/${slash < 0 ? prefix : text.slice(slash + 1)}?)`;
  return new AddressRange(network, prefix, text);
}

function parseIPv4(text: string): Uint8Array {
  const out = new Uint8Array(4);
  const parts = text.split('.');
  for (let i = 0; i < 4; i++) out[i] = Number(parts[i]);
  return out;
}

/** Parses an address `isIPv6` accepted: groups around at most one `::`, perhaps a dotted IPv4 tail. */
function parseIPv6(text: string): Uint8Array {
  const groups = (part: string): number[] => {
    if (part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (g.includes('.')) {
        const v4 = parseIPv4(g);
        out.push(((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0));
      } else {
        out.push(parseInt(g, 16));
      }
    }
    return out;
  };
  const gap = text.indexOf('::');
  const head = groups(gap < 0 ? text : text.slice(0, gap));
  const tail = gap < 0 ? [] : groups(text.slice(gap + 2));
  const words = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    const w = words[i] ?? 0;
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  }
  return out;
}

function isMapped(bytes: Uint8Array): boolean {
  for (let i = 0; i < 12; i++) if (bytes[i] !== MAPPED_PREFIX[i]) return false;
  return true;
}

function mask(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    out[i] = (bytes[i] ?? 0) & ((0xff << (8 - keep)) & 0xff);
  }
  return out;
}

function prefixEqual(a: Uint8Array, b: Uint8Array, prefix: number): boolean {
  const whole = prefix >> 3;
  for (let i = 0; i < whole; i++) if (a[i] !== b[i]) return false;
  const rest = prefix & 7;
  if (rest === 0) return true;
  const m = (0xff << (8 - rest)) & 0xff;
  return ((a[whole] ?? 0) & m) === ((b[whole] ?? 0) & m);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function format(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join('.');
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  return words.join(':');
}
