import assert from 'node:assert/strict';
import { test } from 'node:test';
import { apiTokenRef, apiTokenSecret } from './api-token.js';
import { fullCluster, minimalCluster } from './fixtures.js';

test('API token Secret: <cluster>-api-token with the token under `token`', () => {
  const secret = apiTokenSecret(minimalCluster(), 's3cr3t-token');
  assert.equal(secret.apiVersion, 'v1');
  assert.equal(secret.kind, 'Secret');
  assert.equal(secret.type, 'Opaque');
  assert.equal(secret.metadata?.name, 'mqtt-api-token');
  assert.deepEqual(secret.data, { token: Buffer.from('s3cr3t-token').toString('base64') });
});

test('API token reference: spec.apiToken when given, the operator\'s Secret otherwise', () => {
  assert.deepEqual(apiTokenRef(minimalCluster()), { name: 'mqtt-api-token', key: 'token' });
  assert.deepEqual(apiTokenRef(fullCluster()), { name: 'mqtt-admin', key: 'api-token' });
});
