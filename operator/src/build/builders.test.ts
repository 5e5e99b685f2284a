/** What every builder must do: labels, owner references, determinism, and files the config names being mounted. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1ObjectMeta } from '@kubernetes/client-node';
import type { SmqBridge, SmqCluster } from '../api/types.js';
import { apiTokenSecret } from './api-token.js';
import { clientService } from './client-service.js';
import { smqConfig } from './config.js';
import { configMap } from './configmap.js';
import { CLUSTER_UID, fullBridge, fullCluster, minimalCluster } from './fixtures.js';
import { headlessService } from './headless-service.js';
import { podDisruptionBudget } from './pdb.js';
import { serviceMonitor } from './service-monitor.js';
import { statefulSet } from './statefulset.js';

const ALL_TLS_KEYS = ['ca.crt', 'tls.crt', 'tls.key'];

function all(cluster: SmqCluster, bridge?: SmqBridge): { kind?: string; metadata?: V1ObjectMeta }[] {
  const config = smqConfig(cluster, bridge);
  const objects = [
    configMap(cluster, config.text), headlessService(cluster), clientService(cluster),
    statefulSet(cluster, { configHash: config.hash, bridge }), podDisruptionBudget(cluster), serviceMonitor(cluster),
    apiTokenSecret(cluster, 'token'),
  ];
  return objects.filter((o) => o !== null);
}

for (const [what, cluster, bridge] of [['minimal', minimalCluster(), undefined], ['full', fullCluster(), fullBridge()]] as const) {
  test(`${what}: every object has the namespace, the common labels and the controller owner reference`, () => {
    const objects = all(cluster, bridge);
    assert.equal(objects.length, what === 'minimal' ? 6 : 7);
    for (const o of objects) {
      assert.equal(o.metadata?.namespace, 'iot', o.kind);
      assert.equal(o.metadata?.labels?.['app.kubernetes.io/name'], 'smq', o.kind);
      assert.equal(o.metadata?.labels?.['app.kubernetes.io/instance'], 'mqtt', o.kind);
      assert.equal(o.metadata?.labels?.['app.kubernetes.io/managed-by'], 'smq-operator', o.kind);
      assert.deepEqual(o.metadata?.ownerReferences, [{
        apiVersion: 'smq.sestack.io/v1alpha1', kind: 'SmqCluster', name: 'mqtt', uid: CLUSTER_UID, controller: true, blockOwnerDeletion: true,
      }], o.kind);
    }
  });

  test(`${what}: the same input gives the same objects, byte for byte`, () => {
    assert.equal(JSON.stringify(all(cluster, bridge)), JSON.stringify(all(structuredClone(cluster), bridge && structuredClone(bridge))));
  });
}

test('every file the config names is mounted where the config says, and the data directory too', () => {
  const cluster = fullCluster();
  const { config } = smqConfig(cluster, fullBridge(), { etcd: ALL_TLS_KEYS, kafka: ALL_TLS_KEYS });
  const sts = statefulSet(cluster, { configHash: 'x', bridge: fullBridge() });
  const mounts = sts.spec?.template.spec?.containers[0]?.volumeMounts ?? [];
  const volumes = sts.spec?.template.spec?.volumes ?? [];
  const paths: string[] = [];
  const walk = (value: unknown): void => {
    if (typeof value === 'string' && /^\/(etc\/smq|var\/lib\/smq)/.test(value)) paths.push(value);
    else if (typeof value === 'object' && value !== null) Object.values(value).forEach(walk);
  };
  walk(config);
  assert.equal(paths.length, 13);
  for (const path of paths) {
    const mount = mounts.find((m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`));
    assert.ok(mount, `${path} is not mounted`);
    const file = path.slice(mount.mountPath.length + 1);
    if (file === '') continue;
    // A mount with items holds only those files: the named file must be one of them.
    const volume = volumes.find((v) => v.name === mount.name);
    const items = volume?.secret?.items ?? volume?.configMap?.items;
    if (items !== undefined) assert.ok(items.some((i) => i.path === file), `${path}: not among the items of ${mount.name}`);
  }
});
