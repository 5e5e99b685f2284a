/**
 * `proxy.trusted`: which peers are trusted (IPv4, IPv6, IPv4-mapped peers against IPv4 ranges), and the
 * X-Forwarded-For walk from the right that stops at the first untrusted address.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TrustedProxies } from './trusted-proxies.js';

const proxies = new TrustedProxies(['127.0.0.1/32', '10.8.0.0/16', 'fd00::/8']);

describe('TrustedProxies.trusts', () => {
  const cases: [address: string, trusted: boolean][] = [
    ['127.0.0.1', true],
    ['::ffff:127.0.0.1', true], // what a dual-stack socket reports for an IPv4 peer
    ['127.0.0.2', false],
    ['10.8.200.1', true],
    ['10.9.0.1', false],
    ['fd12::1', true],
    ['fe80::1', false],
    ['', false],
    ['not an address', false],
  ];
  for (const [address, trusted] of cases) it(`${JSON.stringify(address)} → ${trusted}`, () => assert.equal(proxies.trusts(address), trusted));

  it('an empty list trusts no one, not even loopback', () => {
    const none = new TrustedProxies([]);
    assert.equal(none.empty, true);
    assert.equal(none.trusts('127.0.0.1'), false);
    assert.equal(none.clientAddress('127.0.0.1', '10.1.2.3'), '127.0.0.1');
  });

  it('refuses an entry that is not an address or range', () => {
    assert.throws(() => new TrustedProxies(['10.0.0.1/8']), /proxy\.trusted: "10\.0\.0\.1\/8"/);
  });
});

describe('TrustedProxies.clientAddress (X-Forwarded-For)', () => {
  const cases: [what: string, peer: string, header: string | undefined, client: string][] = [
    ['no header: the peer', '127.0.0.1', undefined, '127.0.0.1'],
    ['an untrusted peer: the header is ignored', '127.0.0.2', '10.1.2.3', '127.0.0.2'],
    ['an untrusted peer that lists itself after a claim', '192.0.2.1', '10.1.2.3, 192.0.2.1', '192.0.2.1'],
    ['one entry from a trusted peer', '127.0.0.1', '10.1.2.3', '10.1.2.3'],
    ['the right-most untrusted entry, not a forged left one', '127.0.0.1', '6.6.6.6, 198.51.100.7', '198.51.100.7'],
    ['trusted hops on the right are walked past', '127.0.0.1', '198.51.100.7, 10.8.1.1, 10.8.1.2', '198.51.100.7'],
    ['every entry trusted: the left-most', '127.0.0.1', '10.8.1.1, 10.8.1.2', '10.8.1.1'],
    ['an IPv4-mapped peer is trusted like its IPv4 form', '::ffff:127.0.0.1', '198.51.100.7', '198.51.100.7'],
    ['entries are given canonically', '127.0.0.1', '2001:DB8:0::7', '2001:db8::7'],
    ['a mapped entry is given as IPv4', '127.0.0.1', '::ffff:198.51.100.7', '198.51.100.7'],
    ['spaces and tabs around entries', '127.0.0.1', ' 198.51.100.7 ,\t10.8.1.1 ', '198.51.100.7'],
    ['a malformed entry: the whole header is ignored', '127.0.0.1', '198.51.100.7, bogus', '127.0.0.1'],
    ['a host name', '127.0.0.1', 'client.example.com', '127.0.0.1'],
    ['an entry with a port', '127.0.0.1', '198.51.100.7:5555', '127.0.0.1'],
    ['an empty entry', '127.0.0.1', '198.51.100.7,,10.8.1.1', '127.0.0.1'],
    ['an empty header', '127.0.0.1', '', '127.0.0.1'],
    ['"unknown" (RFC 7239 style)', '127.0.0.1', 'unknown', '127.0.0.1'],
    ['an IPv6 zone', '127.0.0.1', 'fe80::1%eth0', '127.0.0.1'],
  ];
  for (const [what, peer, header, client] of cases) {
    it(what, () => assert.equal(proxies.clientAddress(peer, header), client));
  }
});
