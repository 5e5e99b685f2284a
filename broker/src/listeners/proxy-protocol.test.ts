/**
 * The PROXY protocol parser, byte by byte: v1 (TCP4, TCP6, UNKNOWN) and v2 (PROXY and LOCAL, IPv4 and IPv6,
 * TLVs), every malformation the spec rules out, a header split over many reads and a header followed by the
 * client's first bytes in the same read. Fixtures are written out in bytes, as a load balancer sends them.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseProxyHeader, V1_MAX_LENGTH, V2_MAX_BLOCK, V2_SIGNATURE, type ProxyParse } from './proxy-protocol.js';

const ascii = (text: string): Buffer => Buffer.from(text, 'latin1');

/** A v2 header: signature, version/command, family/protocol, block length, then `block`. */
function v2(command: number, family: number, block: number[] | Buffer, version = 2): Buffer {
  const b = Buffer.from(block);
  return Buffer.concat([V2_SIGNATURE, Buffer.from([(version << 4) | command, family, b.length >> 8, b.length & 0xff]), b]);
}

// 192.0.2.10:51000 -> 198.51.100.1:1883 (ports 0xc738, 0x075b)
const TCP4_BLOCK = [192, 0, 2, 10, 198, 51, 100, 1, 0xc7, 0x38, 0x07, 0x5b];
// 2001:db8::7:51000 -> 2001:db8::1:8883 (port 0x22b3)
const TCP6_BLOCK = [
  0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7,
  0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
  0xc7, 0x38, 0x22, 0xb3,
];
/** An MQTT 3.1.1 CONNECT with client id "a": what follows the header on a real connection. */
const CONNECT = Buffer.from([0x10, 0x0d, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3c, 0x00, 0x01, 0x61]);

function header(r: ProxyParse): Extract<ProxyParse, { kind: 'header' }>['header'] {
  assert.equal(r.kind, 'header', JSON.stringify(r));
  return (r as Extract<ProxyParse, { kind: 'header' }>).header;
}

function problem(r: ProxyParse): string {
  assert.equal(r.kind, 'refused', JSON.stringify(r));
  return (r as Extract<ProxyParse, { kind: 'refused' }>).problem;
}

describe('PROXY v1', () => {
  it('TCP4 gives the source and destination, and the length of the line', () => {
    const line = ascii('PROXY TCP4 192.0.2.10 198.51.100.1 51000 1883\r\n');
    const h = header(parseProxyHeader(line));
    assert.deepEqual(h, { version: 1, source: { address: '192.0.2.10', port: 51000 }, destination: { address: '198.51.100.1', port: 1883 }, length: line.length });
  });

  it('TCP6 gives canonical addresses (an IPv4-mapped source as IPv4)', () => {
    const h = header(parseProxyHeader(ascii('PROXY TCP6 2001:DB8:0:0::7 ::ffff:192.0.2.10 65535 0\r\n')));
    assert.deepEqual(h.source, { address: '2001:db8::7', port: 65535 });
    assert.deepEqual(h.destination, { address: '192.0.2.10', port: 0 });
  });

  it('UNKNOWN (a health check) carries no address, whatever follows it on the line', () => {
    for (const text of ['PROXY UNKNOWN\r\n', 'PROXY UNKNOWN ffff:: ffff:: 65535 65535\r\n']) {
      const h = header(parseProxyHeader(ascii(text)));
      assert.deepEqual(h, { version: 1, source: null, destination: null, length: text.length });
    }
  });

  it('the longest legal line (107 bytes) is accepted; a line without CRLF in 107 bytes is too long', () => {
    const longest = ascii(`PROXY UNKNOWN ${'f'.repeat(V1_MAX_LENGTH - 16)}\r\n`);
    assert.equal(longest.length, V1_MAX_LENGTH);
    assert.equal(header(parseProxyHeader(longest)).length, V1_MAX_LENGTH);
    const endless = ascii(`PROXY UNKNOWN ${'f'.repeat(200)}\r\n`);
    assert.equal(problem(parseProxyHeader(endless.subarray(0, V1_MAX_LENGTH))), 'too_long');
    assert.equal(parseProxyHeader(endless.subarray(0, V1_MAX_LENGTH - 1)).kind, 'more');
  });

  const malformed: [string, string][] = [
    ['no space after PROXY', 'PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n'],
    ['unknown family', 'PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n'],
    ['LF without CR', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n'],
    ['a doubled space', 'PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n'],
    ['a missing port', 'PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n'],
    ['an extra field', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n'],
    ['an IPv6 address in TCP4', 'PROXY TCP4 ::1 5.6.7.8 1 2\r\n'],
    ['an IPv4 address in TCP6', 'PROXY TCP6 1.2.3.4 ::1 1 2\r\n'],
    ['an IPv6 zone', 'PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n'],
    ['an octet above 255', 'PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n'],
    ['a leading zero in an address', 'PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n'],
    ['a host name', 'PROXY TCP4 localhost 5.6.7.8 1 2\r\n'],
    ['a port above 65535', 'PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n'],
    ['a port with a leading zero', 'PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n'],
    ['a negative port', 'PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n'],
    ['a non-numeric port', 'PROXY TCP4 1.2.3.4 5.6.7.8 http 2\r\n'],
    ['a control character', 'PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n'],
    ['a non-ASCII byte', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\xff\r\n'],
  ];
  for (const [what, text] of malformed) {
    it(`refuses ${what}`, () => assert.equal(problem(parseProxyHeader(ascii(text))), 'malformed'));
  }
});

describe('PROXY v2', () => {
  it('PROXY over TCP/IPv4', () => {
    const h = header(parseProxyHeader(v2(1, 0x11, TCP4_BLOCK)));
    assert.deepEqual(h, { version: 2, source: { address: '192.0.2.10', port: 51000 }, destination: { address: '198.51.100.1', port: 1883 }, length: 28 });
  });

  it('PROXY over TCP/IPv6, and an IPv4-mapped source given as IPv4', () => {
    const h = header(parseProxyHeader(v2(1, 0x21, TCP6_BLOCK)));
    assert.deepEqual(h.source, { address: '2001:db8::7', port: 51000 });
    assert.deepEqual(h.destination, { address: '2001:db8::1', port: 8883 });
    const mapped = [...TCP6_BLOCK];
    mapped.splice(0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3);
    assert.equal(header(parseProxyHeader(v2(1, 0x21, mapped))).source?.address, '10.1.2.3');
  });

  it('LOCAL (a health check) carries no address, whatever its block holds', () => {
    assert.deepEqual(header(parseProxyHeader(v2(0, 0x00, []))), { version: 2, source: null, destination: null, length: 16 });
    assert.deepEqual(header(parseProxyHeader(v2(0, 0x11, TCP4_BLOCK))).source, null);
    assert.deepEqual(header(parseProxyHeader(v2(0, 0x77, [1, 2, 3]))).length, 19);
  });

  it('PROXY with AF_UNSPEC keeps the peer address', () => {
    assert.equal(header(parseProxyHeader(v2(1, 0x00, [9, 9]))).source, null);
  });

  it('skips TLVs (NOOP, AWS VPC endpoint, an empty one) after the addresses', () => {
    const tlvs = [0x04, 0x00, 0x02, 0, 0, 0xea, 0x00, 0x05, 0x01, 0x76, 0x70, 0x63, 0x65, 0x20, 0x00, 0x00];
    const h = header(parseProxyHeader(v2(1, 0x11, [...TCP4_BLOCK, ...tlvs])));
    assert.equal(h.source?.address, '192.0.2.10');
    assert.equal(h.length, 16 + 12 + tlvs.length);
  });

  it(`accepts a block of ${V2_MAX_BLOCK} bytes and refuses a longer one as soon as its length is read`, () => {
    const pad = (n: number): number[] => [0x04, (n - 3) >> 8, (n - 3) & 0xff, ...new Array<number>(n - 3).fill(0)];
    assert.equal(header(parseProxyHeader(v2(1, 0x11, [...TCP4_BLOCK, ...pad(V2_MAX_BLOCK - 12)]))).length, 16 + V2_MAX_BLOCK);
    const fixed = v2(1, 0x11, [...TCP4_BLOCK, ...pad(V2_MAX_BLOCK - 11)]).subarray(0, 16);
    assert.equal(problem(parseProxyHeader(fixed)), 'too_long');
  });

  const malformed: [string, Buffer][] = [
    ['a bad signature', Buffer.concat([Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0d]), Buffer.alloc(4)])],
    ['version 1 in binary', v2(1, 0x11, TCP4_BLOCK, 1)],
    ['version 3', v2(1, 0x11, TCP4_BLOCK, 3)],
    ['command 2', v2(2, 0x11, TCP4_BLOCK)],
    ['UDP over IPv4', v2(1, 0x12, TCP4_BLOCK)],
    ['a UNIX socket', v2(1, 0x31, new Array<number>(216).fill(0))],
    ['an unknown family', v2(1, 0x41, TCP4_BLOCK)],
    ['an IPv4 block too short for its addresses', v2(1, 0x11, TCP4_BLOCK.slice(0, 11))],
    ['an IPv6 family with an IPv4 block', v2(1, 0x21, TCP4_BLOCK)],
    ['a TLV header cut short', v2(1, 0x11, [...TCP4_BLOCK, 0x04, 0x00])],
    ['a TLV value running past the block', v2(1, 0x11, [...TCP4_BLOCK, 0x04, 0x00, 0x05, 1, 2])],
  ];
  for (const [what, bytes] of malformed) {
    it(`refuses ${what}`, () => assert.equal(problem(parseProxyHeader(bytes)), 'malformed'));
  }
});

describe('reading a connection', () => {
  it('refuses a connection that starts with something else, from its first byte', () => {
    assert.equal(problem(parseProxyHeader(CONNECT)), 'missing');
    assert.equal(problem(parseProxyHeader(Buffer.from([0x16, 0x03, 0x01]))), 'missing'); // a TLS ClientHello
    assert.equal(problem(parseProxyHeader(ascii('GET /mqtt HTTP/1.1\r\n'))), 'missing');
    assert.equal(problem(parseProxyHeader(ascii('proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n'))), 'missing'); // case matters
    assert.equal(problem(parseProxyHeader(ascii('POST'))), 'malformed'); // starts like "PROXY ", then is not
  });

  it('asks for more, byte by byte, until a v1 or v2 header split over many reads is complete', () => {
    const line = ascii('PROXY TCP6 2001:db8::7 2001:db8::1 51000 8883\r\n');
    for (const whole of [line, v2(1, 0x21, [...TCP6_BLOCK, 0x04, 0x00, 0x01, 0x00])]) {
      for (let n = 0; n < whole.length; n++) assert.equal(parseProxyHeader(whole.subarray(0, n)).kind, 'more', `${n} bytes`);
      assert.equal(header(parseProxyHeader(whole)).length, whole.length);
    }
  });

  it('gives the header length when MQTT follows in the same read, leaving those bytes to the client', () => {
    for (const head of [ascii('PROXY TCP4 192.0.2.10 198.51.100.1 51000 1883\r\n'), v2(1, 0x11, TCP4_BLOCK), v2(0, 0x00, [])]) {
      const read = Buffer.concat([head, CONNECT]);
      const h = header(parseProxyHeader(read));
      assert.equal(h.length, head.length);
      assert.deepEqual(read.subarray(h.length), CONNECT);
    }
  });

  it('a v1 header followed by a LF-bearing client payload ends at its own CRLF', () => {
    const read = Buffer.concat([ascii('PROXY UNKNOWN\r\n'), ascii('GET /mqtt HTTP/1.1\r\n')]);
    assert.equal(header(parseProxyHeader(read)).length, 15);
  });
});
