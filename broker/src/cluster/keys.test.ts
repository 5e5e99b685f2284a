import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Keys } from './keys.js';

test('route keys name the node and the route, shared groups and filters with slashes included', () => {
  const k = new Keys('prod');
  assert.equal(k.route('n1', 'a/+/#'), '/smq/prod/routes/n1/a/+/#');
  assert.deepEqual(k.parseRoute(k.route('n1', 'a/+/#')), { node: 'n1', route: 'a/+/#' });
  assert.deepEqual(k.parseRoute(k.route('n-2', '$share/g/x/y')), { node: 'n-2', route: '$share/g/x/y' });
  assert.equal(k.parseRoute('/smq/other/routes/n1/a'), null, 'another cluster');
  assert.equal(k.parseRoute('/smq/prod/routes/n1'), null, 'no route');
});

test('inbox keys sort in the order a source wrote them', () => {
  const k = new Keys('c');
  const keys = [9, 10, 1_700_000_000_000_000, 1_700_000_000_000_001].map((s) => k.inboxKey('n2', 'n1', s));
  assert.deepEqual([...keys].sort(), keys);
  assert.ok(keys.every((key) => key.startsWith(k.inbox('n2'))));
});
