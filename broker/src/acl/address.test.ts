import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AddressRange, canonicalIp, displayIp, formatIp, parseIp, parseRange } from './address.js';

function range(text: string): AddressRange {
  const r = parseRange(text);
  if (typeof r === 'string') throw new Error(`${text}: ${r}`);
  return r;
}

describe('parseIp', () => {
  const cases: [text: string, expected: number[] | null][] = [
    ['10.1.2.3', [10, 1, 2, 3]],
    ['::ffff:10.1.2.3', [10, 1, 2, 3]],
    ['::ffff:a01:203', [10, 1, 2, 3]],
    ['::1', [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]],
    ['2001:db8::8:1', [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 1]],
    ['fe80::1%eth0', [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]],
    ['1:2:3:4:5:6:7:8', [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8]],
    ['64:ff9b::1.2.3.4', [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]],
    ['010.1.2.3', null],
    ['256.1.2.3', null],
    ['localhost', null],
    ['', null],
  ];
  for (const [text, expected] of cases) {
    it(JSON.stringify(text), () => {
      const got = parseIp(text);
      assert.deepEqual(got === null ? null : [...got], expected);
    });
  }

  it('displayIp shows IPv4-mapped peers as IPv4 and leaves the rest', () => {
    assert.equal(displayIp('::ffff:127.0.0.1'), '127.0.0.1');
    assert.equal(displayIp('127.0.0.1'), '127.0.0.1');
    assert.equal(displayIp('::1'), '::1');
    assert.equal(displayIp('pipe'), 'pipe');
  });
});

describe('formatIp and canonicalIp', () => {
  const cases: [text: string, canonical: string | null][] = [
    ['10.1.2.3', '10.1.2.3'],
    ['::ffff:10.1.2.3', '10.1.2.3'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1'], // the longest run of zeros is the one compressed
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    ['2001:0:0:1:1:0:0:1', '2001::1:1:0:0:1'], // equal runs: the first
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // one zero group is not compressed (RFC 5952 4.2.2)
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['64:ff9b::1.2.3.4', '64:ff9b::102:304'],
    ['fe80::1%eth0', null],
    ['010.1.2.3', null],
    ['bogus', null],
  ];
  for (const [text, canonical] of cases) it(`${text} → ${canonical}`, () => assert.equal(canonicalIp(text), canonical));

  it('gives a raw IPv4-mapped 16-byte address as IPv4', () => {
    assert.equal(formatIp(Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1])), '192.0.2.1');
  });
});

describe('AddressRange.contains', () => {
  const cases: [range: string, peer: string, expected: boolean][] = [
    ['10.0.0.0/8', '10.255.0.1', true],
    ['10.0.0.0/8', '11.0.0.1', false],
    ['10.0.0.0/8', '::ffff:10.0.0.1', true], // dual-stack sockets report IPv4 peers this way
    ['192.168.1.0/25', '192.168.1.127', true],
    ['192.168.1.0/25', '192.168.1.128', false],
    ['127.0.0.1', '127.0.0.1', true],
    ['127.0.0.1', '127.0.0.2', false],
    ['0.0.0.0/0', '8.8.8.8', true],
    ['0.0.0.0/0', '::1', false],
    ['2001:db8::/32', '2001:db8:ffff::1', true],
    ['2001:db8::/32', '2001:db9::1', false],
    ['2001:db8::/32', '10.0.0.1', false],
    ['::/0', '10.0.0.1', true], // an IPv4 peer is in the IPv6 space as its mapped address
    ['::ffff:0:0/96', '10.0.0.1', true],
    ['::ffff:10.0.0.0/104', '10.3.4.5', true], // a mapped range is its IPv4 range
    ['::ffff:10.0.0.0/104', '11.3.4.5', false],
    ['::1', '::1', true],
    ['fe80::/10', 'fe80::1%eth0', true],
    ['10.0.0.0/8', 'not-an-ip', false],
  ];
  for (const [r, peer, expected] of cases) {
    it(`${r} ${expected ? 'contains' : 'does not contain'} ${peer}`, () => {
      assert.equal(range(r).contains(parseIp(peer)), expected);
    });
  }
});

describe('parseRange errors', () => {
  const cases: [text: string, says: RegExp][] = [
    ['10.0.0.0/33', /prefix length from 0 to 32/],
    ['2001:db8::/129', /prefix length from 0 to 128/],
    ['10.0.0.0/', /prefix length/],
    ['10.0.0.0/x', /prefix length/],
    ['10.0.0.1/8', /host bits.*10\.0\.0\.0\/8/],
    ['example.com', /IPv4 or IPv6 address/],
    ['fe80::1%eth0', /zone/],
  ];
  for (const [text, says] of cases) {
    it(text, () => {
      const r = parseRange(text);
      assert.equal(typeof r, 'string');
      assert.match(r as string, says);
    });
  }
});
