import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hostKey } from './host-key.js';

test('host keys: IPv4 as is, mapped IPv6 as IPv4, IPv6 by its /64, anything else unchanged', () => {
  assert.equal(hostKey('10.1.2.3'), '10.1.2.3');
  assert.equal(hostKey('::ffff:10.1.2.3'), '10.1.2.3', 'one host on a dual-stack listener counts once');
  assert.equal(hostKey('2001:db8:1:2:aaaa:bbbb:cccc:dddd'), '2001:db8:1:2::/64');
  assert.equal(hostKey('2001:DB8:1:2::1'), '2001:db8:1:2::/64', 'one spelling');
  assert.equal(hostKey('2001:db8:1:3::1') === hostKey('2001:db8:1:2::1'), false, 'another /64 is another host');
  assert.equal(hostKey('fe80::1%eth0'), 'fe80::/64');
  assert.equal(hostKey(''), '');
  assert.equal(hostKey('restored'), 'restored');
});
