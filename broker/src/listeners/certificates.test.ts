/**
 * Unit tests for the pure parts of the certificate module: Node's `subjectaltname` strings, the identity
 * taken from a peer certificate, and `certificateUsername` for each `tls.cert_username` value.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { PeerCertificate } from '../hooks/types.js';
import { certificateUsername, parseSubjectAltName, toPeerCertificate, TlsConfigError } from './certificates.js';

describe('parseSubjectAltName', () => {
  const cases: { name: string; input: string | undefined; want: string[] }[] = [
    { name: 'absent', input: undefined, want: [] },
    { name: 'empty', input: '', want: [] },
    { name: 'one DNS name', input: 'DNS:device-1.example', want: ['device-1.example'] },
    {
      name: 'every identity type, in certificate order',
      input: 'DNS:a.example, email:ops@example.com, URI:spiffe://cluster.local/ns/iot/sa/device, IP Address:10.0.0.7',
      want: ['a.example', 'ops@example.com', 'spiffe://cluster.local/ns/iot/sa/device', '10.0.0.7'],
    },
    { name: 'IPv6 keeps its colons', input: 'IP Address:2001:DB8:0:0:0:0:0:1, DNS:b', want: ['2001:DB8:0:0:0:0:0:1', 'b'] },
    {
      // Node (>= 17.3.1) quotes values with special characters so they cannot pose as a second entry.
      name: 'a quoted value with a comma stays one entry',
      input: 'DNS:"evil.example, DNS:admin", DNS:ok.example',
      want: ['evil.example, DNS:admin', 'ok.example'],
    },
    {
      // The exact form Node 20 prints for a DNS name holding ", DNS:admin" (taken from a real certificate).
      name: 'Node\'s \\u002c escape of a comma',
      input: 'DNS:"evil.example\\u002c DNS:admin", email:ab@example.com, IP Address:2001:DB8:0:0:0:0:0:1, DNS:ok.example',
      want: ['evil.example, DNS:admin', 'ab@example.com', '2001:DB8:0:0:0:0:0:1', 'ok.example'],
    },
    { name: 'escapes inside a quoted value', input: 'email:"a\\"b@example.com", DNS:c', want: ['a"b@example.com', 'c'] },
    {
      name: 'types that name no identity are left out',
      input: 'othername:<unsupported>, DirName:"CN=x,O=y", Registered ID:1.2.3.4, DNS:kept',
      want: ['kept'],
    },
    { name: 'an unterminated quote stops parsing instead of guessing', input: 'DNS:first, DNS:"broken', want: ['first'] },
  ];
  for (const c of cases) {
    test(c.name, () => assert.deepEqual(parseSubjectAltName(c.input), c.want));
  }
});

describe('toPeerCertificate', () => {
  test('CN and SANs without prefixes', () => {
    const cert = { subject: { CN: 'device-1', O: 'acme' }, subjectaltname: 'DNS:device-1.example, IP Address:127.0.0.1' };
    assert.deepEqual(toPeerCertificate(cert), { cn: 'device-1', san: ['device-1.example', '127.0.0.1'] });
  });
  test('a repeated CN gives its first value; a missing CN gives the empty string', () => {
    assert.equal(toPeerCertificate({ subject: { CN: ['first', 'second'] }, subjectaltname: '' }).cn, 'first');
    assert.deepEqual(toPeerCertificate({ subject: { O: 'acme' } }), { cn: '', san: [] });
  });
});

describe('certificateUsername', () => {
  const cert = { cn: 'device-1', san: ['10.0.0.7', '2001:db8::1', 'device-1.example', 'other.example'] };
  const cases: { name: string; mode: 'none' | 'cn' | 'san'; cert: PeerCertificate | undefined; want: string | undefined }[] = [
    { name: 'none ignores the certificate', mode: 'none', cert, want: undefined },
    { name: 'cn takes the common name', mode: 'cn', cert, want: 'device-1' },
    { name: 'san takes the first SAN that is not an IP address', mode: 'san', cert, want: 'device-1.example' },
    { name: 'no certificate (plain TCP, or TLS without verify) gives nothing', mode: 'cn', cert: undefined, want: undefined },
    { name: 'no certificate with san gives nothing', mode: 'san', cert: undefined, want: undefined },
    { name: 'an empty CN gives nothing rather than an empty username', mode: 'cn', cert: { cn: '', san: ['x'] }, want: undefined },
    { name: 'only IP SANs give nothing', mode: 'san', cert: { cn: 'c', san: ['127.0.0.1'] }, want: undefined },
    { name: 'no SAN gives nothing', mode: 'san', cert: { cn: 'c', san: [] }, want: undefined },
  ];
  for (const c of cases) {
    test(c.name, () => assert.equal(certificateUsername({ cert_username: c.mode }, c.cert), c.want));
  }
});

test('TlsConfigError names the key, the file and the problem, with a stable code', () => {
  const e = new TlsConfigError('tls.cert', '/etc/smq/cert.pem', 'file not found');
  assert.equal(e.code, 'ERR_TLS_CONFIG');
  assert.equal(e.name, 'TlsConfigError');
  assert.equal(e.message, 'TLS configuration error: key "tls.cert" (file /etc/smq/cert.pem): file not found');
});
