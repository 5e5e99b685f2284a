import assert from 'node:assert/strict';
import { test } from 'node:test';
import { smqConfig } from './config.js';
import { configMap } from './configmap.js';
import { minimalCluster } from './fixtures.js';

test('ConfigMap: <cluster>-config holding the smq YAML under smq.yaml', () => {
  const { text } = smqConfig(minimalCluster());
  const cm = configMap(minimalCluster(), text);
  assert.equal(cm.apiVersion, 'v1');
  assert.equal(cm.kind, 'ConfigMap');
  assert.equal(cm.metadata?.name, 'mqtt-config');
  assert.equal(cm.metadata?.namespace, 'iot');
  assert.deepEqual(cm.data, { 'smq.yaml': text });
});
