import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeClaim, encodeClaim, newer } from './claims.js';

test('client id claims: encoded with their CONNACK time; an older node\'s bare node id reads as the oldest claim', () => {
  assert.deepEqual(decodeClaim(encodeClaim({ node: 'n1', at: 1700000000123 })), { node: 'n1', at: 1700000000123 });
  assert.deepEqual(decodeClaim('n1'), { node: 'n1', at: 0 });
  assert.deepEqual(decodeClaim('n1\nnot-a-number'), { node: 'n1', at: 0 });
});

test('client id claims: the later connection wins; the node id breaks a tie of the same millisecond', () => {
  assert.equal(newer({ node: 'n1', at: 2 }, { node: 'n2', at: 1 }), true);
  assert.equal(newer({ node: 'n1', at: 1 }, { node: 'n2', at: 2 }), false);
  assert.equal(newer({ node: 'n2', at: 1 }, { node: 'n1', at: 1 }), true);
  assert.equal(newer({ node: 'n1', at: 1 }, { node: 'n1', at: 1 }), false, 'a claim is not newer than itself');
});
