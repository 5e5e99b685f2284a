import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fullCluster, minimalCluster } from './fixtures.js';
import { podDisruptionBudget } from './pdb.js';

test('PodDisruptionBudget: policy/v1, maxUnavailable from the spec, the pods\' selector', () => {
  const pdb = podDisruptionBudget(minimalCluster());
  assert.equal(pdb?.apiVersion, 'policy/v1');
  assert.equal(pdb?.kind, 'PodDisruptionBudget');
  assert.equal(pdb?.metadata?.name, 'mqtt');
  assert.deepEqual(pdb?.spec, {
    maxUnavailable: 1,
    selector: { matchLabels: { 'app.kubernetes.io/component': 'broker', 'app.kubernetes.io/instance': 'mqtt', 'app.kubernetes.io/name': 'smq' } },
  });
  assert.equal(podDisruptionBudget(fullCluster())?.spec?.maxUnavailable, 2);
});

test('PodDisruptionBudget: null when disabled', () => {
  assert.equal(podDisruptionBudget(fullCluster({ podDisruptionBudget: { enabled: false, maxUnavailable: 1 } })), null);
});
