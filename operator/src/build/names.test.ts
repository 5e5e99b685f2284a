import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CLUSTER_UID, minimalCluster } from './fixtures.js';
import { labels, metadata, names, ownerReference, podLabels, selectorLabels, selectorString } from './names.js';

test('names: the client Service is the cluster\'s name, helpers carry a suffix; the smq cluster is <namespace>-<name>', () => {
  assert.deepEqual(names(minimalCluster()), {
    statefulSet: 'mqtt',
    configMap: 'mqtt-config',
    headlessService: 'mqtt-headless',
    clientService: 'mqtt',
    apiService: 'mqtt-api',
    podDisruptionBudget: 'mqtt',
    serviceMonitor: 'mqtt',
    apiTokenSecret: 'mqtt-api-token',
    smqCluster: 'iot-mqtt',
  });
});

test('labels: the common three; the selector adds component broker; pods have both', () => {
  assert.deepEqual(labels(minimalCluster()), {
    'app.kubernetes.io/instance': 'mqtt', 'app.kubernetes.io/managed-by': 'smq-operator', 'app.kubernetes.io/name': 'smq',
  });
  assert.deepEqual(selectorLabels(minimalCluster()), {
    'app.kubernetes.io/component': 'broker', 'app.kubernetes.io/instance': 'mqtt', 'app.kubernetes.io/name': 'smq',
  });
  assert.deepEqual(Object.keys(podLabels(minimalCluster())), [
    'app.kubernetes.io/component', 'app.kubernetes.io/instance', 'app.kubernetes.io/managed-by', 'app.kubernetes.io/name',
  ]);
  assert.equal(selectorString(minimalCluster()), 'app.kubernetes.io/component=broker,app.kubernetes.io/instance=mqtt,app.kubernetes.io/name=smq');
});

test('owner reference: the SmqCluster, controller, blocking deletion', () => {
  assert.deepEqual(ownerReference(minimalCluster()), {
    apiVersion: 'smq.sestack.io/v1alpha1', kind: 'SmqCluster', name: 'mqtt', uid: CLUSTER_UID, controller: true, blockOwnerDeletion: true,
  });
  const noUid = minimalCluster();
  assert.throws(() => ownerReference({ ...noUid, metadata: { name: 'mqtt', namespace: 'iot' } }), /no metadata.uid/);
});

test('metadata: extra labels merged and sorted; empty annotations left out', () => {
  const meta = metadata(minimalCluster(), 'x', { 'z.example/a': '1', 'a.example/b': '2' }, {});
  assert.deepEqual(Object.keys(meta.labels ?? {}), [
    'a.example/b', 'app.kubernetes.io/instance', 'app.kubernetes.io/managed-by', 'app.kubernetes.io/name', 'z.example/a',
  ]);
  assert.equal(meta.annotations, undefined);
  assert.equal(meta.namespace, 'iot');
});
