/**
 * The PROXY protocol, versions 1 (text) and 2 (binary), as HAProxy's specification (proxy-protocol.txt)
 * defines it: the header a load balancer sends first on each connection it relays, naming the client it
 * relays for. Pure: bytes in, a verdict out, no I/O. The caller feeds what it has read so far and is told to
 * read more, that the header is complete (and how long it was: what follows is the client's), or that the
 * connection must be refused. Only TCP over IPv4 and IPv6 carries an address; LOCAL (v2) and UNKNOWN (v1),
 * which load balancers use for health checks, carry none.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { canonicalIp, formatIp } from '../acl/address.js';

/** The longest v1 header, CRLF included (the spec's bound, met by an UNKNOWN line with two IPv6 addresses). */
export const V1_MAX_LENGTH = 107;

/**
 * The largest v2 address block (addresses and TLVs) accepted. The format allows 65535 bytes; what load
 * balancers send (addresses, a VPC endpoint or link id, ALPN, SNI, a unique id, TLS facts) stays well under
 * 1 KiB, and a header is buffered in full before anything else is read, so a connection may hold no more.
 */
export const V2_MAX_BLOCK = 2048;

/** The 12 bytes that open a v2 header; chosen by the spec never to occur at the start of another protocol. */
export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
/** Signature, version and command, family and protocol, block length. */
const V2_FIXED = 16;
const V2_LOCAL = 0x0;
const V2_PROXY = 0x1;
const V2_UNSPEC = 0x00;
const V2_TCP4 = 0x11;
const V2_TCP6 = 0x21;
/** A v1 port: decimal, 0 to 65535, no sign and no leading zero. */
const V1_PORT = /^(0|[1-9][0-9]{0,4})$/;

/** One end of the relayed connection. */
export interface ProxyEndpoint {
  /** Canonical text (see `formatIp`): an IPv4-mapped IPv6 address is given as IPv4. */
  readonly address: string;
  readonly port: number;
}

/** A complete, valid header. */
export interface ProxyHeader {
  readonly version: 1 | 2;
  /** The client the proxy relays for; null for LOCAL, UNKNOWN and AF_UNSPEC: the peer's own address stands. */
  readonly source: ProxyEndpoint | null;
  /** The address the client connected to (the load balancer's); null when `source` is. */
  readonly destination: ProxyEndpoint | null;
  /** Bytes the header took; the bytes after it belong to the client. */
  readonly length: number;
}

/** Why a connection's header was refused: none at all, one that breaks the format, one too long. */
export type ProxyHeaderProblem = 'missing' | 'malformed' | 'too_long';

/** What {@link parseProxyHeader} makes of the bytes read so far. */
export type ProxyParse =
  | { readonly kind: 'more' }
  | { readonly kind: 'header'; readonly header: ProxyHeader }
  | { readonly kind: 'refused'; readonly problem: ProxyHeaderProblem; readonly detail: string };

const MORE: ProxyParse = { kind: 'more' };

/**
 * Reads a PROXY header from the first bytes of a connection (every byte read so far, from the first). A
 * receiver must not guess whether a header is there, so anything that cannot become a header is refused as
 * soon as that is certain; `more` only while the bytes are a proper start of one (bounded by
 * {@link V1_MAX_LENGTH} and {@link V2_MAX_BLOCK}).
 */
export function parseProxyHeader(buf: Uint8Array): ProxyParse {
  if (buf.length === 0) return MORE;
  if (buf[0] === V2_SIGNATURE[0]) {
    if (!startsLike(buf, V2_SIGNATURE)) return refused('malformed', 'bad v2 signature');
    return buf.length < V2_FIXED ? MORE : parseV2(buf);
  }
  if (buf[0] === V1_PREFIX[0]) {
    if (!startsLike(buf, V1_PREFIX)) return refused('malformed', 'bad v1 signature (expected "PROXY ")');
    return parseV1(buf);
  }
  return refused('missing', 'the connection does not start with a PROXY protocol header');
}

/** `PROXY TCP4 <src> <dst> <sport> <dport>\r\n`, `PROXY TCP6 ...`, or `PROXY UNKNOWN<anything>\r\n`. */
function parseV1(buf: Uint8Array): ProxyParse {
  const head = buf.subarray(0, Math.min(buf.length, V1_MAX_LENGTH));
  const lf = head.indexOf(0x0a);
  if (lf < 0) {
    return buf.length >= V1_MAX_LENGTH ? refused('too_long', `no CRLF within ${V1_MAX_LENGTH} bytes`) : MORE;
  }
  if (head[lf - 1] !== 0x0d) return refused('malformed', 'a v1 header ends with CRLF');
  const line = head.subarray(0, lf - 1);
  for (const b of line) if (b < 0x20 || b > 0x7e) return refused('malformed', 'a v1 header is printable ASCII');
  const length = lf + 1;
  const fields = Buffer.from(line).toString('latin1').split(' ');
  // [proxy-protocol.txt 2.1] after UNKNOWN the receiver ignores everything up to CRLF and keeps the real peer.
  if (fields[1] === 'UNKNOWN') return { kind: 'header', header: { version: 1, source: null, destination: null, length } };
  const [, family, src, dst, sport, dport] = fields;
  if (family !== 'TCP4' && family !== 'TCP6') return refused('malformed', 'v1 family TCP4, TCP6 or UNKNOWN');
  // Exactly one space between fields: a doubled space leaves an empty field, which no check below accepts.
  if (fields.length !== 6) return refused('malformed', 'a v1 header has six fields');
  const valid = family === 'TCP4' ? isIPv4 : (a: string): boolean => isIPv6(a) && !a.includes('%');
  if (src === undefined || dst === undefined || !valid(src) || !valid(dst)) {
    return refused('malformed', `v1 addresses are ${family === 'TCP4' ? 'IPv4' : 'IPv6'} addresses`);
  }
  const sourcePort = v1Port(sport);
  const destinationPort = v1Port(dport);
  if (sourcePort === null || destinationPort === null) return refused('malformed', 'v1 ports are decimal numbers from 0 to 65535');
  return {
    kind: 'header',
    header: {
      version: 1,
      source: { address: canonicalIp(src) ?? src, port: sourcePort },
      destination: { address: canonicalIp(dst) ?? dst, port: destinationPort },
      length,
    },
  };
}

function v1Port(text: string | undefined): number | null {
  if (text === undefined || !V1_PORT.test(text)) return null;
  const n = Number(text);
  return n <= 65535 ? n : null;
}

/** Signature, version 2 and a command, family and protocol, block length, then addresses and TLVs. */
function parseV2(buf: Uint8Array): ProxyParse {
  const versionCommand = buf[12] ?? 0;
  if (versionCommand >> 4 !== 2) return refused('malformed', `v2 version ${versionCommand >> 4} (only 2 exists)`);
  const command = versionCommand & 0x0f;
  if (command !== V2_LOCAL && command !== V2_PROXY) return refused('malformed', `v2 command ${command} (LOCAL 0 or PROXY 1)`);
  const family = buf[13] ?? 0;
  const blockLength = ((buf[14] ?? 0) << 8) | (buf[15] ?? 0);
  if (blockLength > V2_MAX_BLOCK) return refused('too_long', `v2 address block of ${blockLength} bytes (at most ${V2_MAX_BLOCK})`);
  const length = V2_FIXED + blockLength;
  if (buf.length < length) return MORE;
  const none: ProxyParse = { kind: 'header', header: { version: 2, source: null, destination: null, length } };
  // [proxy-protocol.txt 2.2] LOCAL: the proxy's own connection (a health check); the block, family included,
  // is discarded and the real peer stands. AF_UNSPEC with PROXY: the same, which the spec leaves to us.
  if (command === V2_LOCAL || family === V2_UNSPEC) return none;
  const block = buf.subarray(V2_FIXED, length);
  let addresses: number;
  if (family === V2_TCP4) addresses = 12;
  else if (family === V2_TCP6) addresses = 36;
  else return refused('malformed', `v2 family and protocol 0x${family.toString(16).padStart(2, '0')} (TCP over IPv4 0x11 or IPv6 0x21)`);
  if (blockLength < addresses) return refused('malformed', `v2 address block of ${blockLength} bytes, too short for its family`);
  const size = family === V2_TCP4 ? 4 : 16;
  const at = (offset: number): ProxyEndpoint => {
    const portAt = 2 * size + (offset === 0 ? 0 : 2);
    return { address: formatIp(block.subarray(offset, offset + size)), port: ((block[portAt] ?? 0) << 8) | (block[portAt + 1] ?? 0) };
  };
  const tlvProblem = checkTlvs(block.subarray(addresses));
  if (tlvProblem !== null) return refused('malformed', tlvProblem);
  return { kind: 'header', header: { version: 2, source: at(0), destination: at(size), length } };
}

/**
 * TLVs (type, 16-bit length, value) fill the rest of the block. None is used (the address is all smq needs),
 * but one that runs past the block means the header is not what it claims to be. The walk is bounded by the
 * block, itself bounded by {@link V2_MAX_BLOCK}.
 */
function checkTlvs(tlvs: Uint8Array): string | null {
  let off = 0;
  while (off < tlvs.length) {
    if (off + 3 > tlvs.length) return 'a v2 TLV header runs past the address block';
    const n = ((tlvs[off + 1] ?? 0) << 8) | (tlvs[off + 2] ?? 0);
    off += 3 + n;
    if (off > tlvs.length) return 'a v2 TLV value runs past the address block';
  }
  return null;
}

/** True when the bytes read so far agree with `prefix` (as far as both go). */
function startsLike(buf: Uint8Array, prefix: Uint8Array): boolean {
  const n = Math.min(buf.length, prefix.length);
  for (let i = 0; i < n; i++) if (buf[i] !== prefix[i]) return false;
  return true;
}

function refused(problem: ProxyHeaderProblem, detail: string): ProxyParse {
  return { kind: 'refused', problem, detail };
}
