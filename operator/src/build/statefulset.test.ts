import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1Container, V1PodSpec } from '@kubernetes/client-node';
import { fullBridge, fullCluster, minimalCluster } from './fixtures.js';
import { preStopSeconds, statefulSet } from './statefulset.js';

const minimal = statefulSet(minimalCluster(), { configHash: '0123456789abcdef' });
const full = statefulSet(fullCluster(), { configHash: 'fedcba9876543210', bridge: fullBridge() });

function pod(sts: typeof minimal): V1PodSpec {
  const spec = sts.spec?.template.spec;
  assert.ok(spec);
  return spec;
}

function container(sts: typeof minimal): V1Container {
  const c = pod(sts).containers[0];
  assert.ok(c);
  return c;
}

const selector = { 'app.kubernetes.io/component': 'broker', 'app.kubernetes.io/instance': 'mqtt', 'app.kubernetes.io/name': 'smq' };

test('StatefulSet: name, headless service, replicas, selector, policies', () => {
  assert.equal(minimal.apiVersion, 'apps/v1');
  assert.equal(minimal.metadata?.name, 'mqtt');
  assert.equal(minimal.metadata?.namespace, 'iot');
  assert.equal(minimal.spec?.serviceName, 'mqtt-headless');
  assert.equal(minimal.spec?.replicas, 3);
  assert.equal(full.spec?.replicas, 5);
  assert.deepEqual(minimal.spec?.selector, { matchLabels: selector });
  assert.equal(minimal.spec?.podManagementPolicy, 'Parallel');
  assert.deepEqual(minimal.spec?.updateStrategy, { type: 'RollingUpdate', rollingUpdate: { partition: 0 } });
  assert.deepEqual(minimal.spec?.persistentVolumeClaimRetentionPolicy, { whenDeleted: 'Retain', whenScaled: 'Retain' });
});

test('pod template: labels include the selector; annotations carry the config hash and Prometheus scraping', () => {
  const meta = minimal.spec?.template.metadata;
  for (const [k, v] of Object.entries(selector)) assert.equal(meta?.labels?.[k], v, k);
  assert.equal(meta?.labels?.['app.kubernetes.io/managed-by'], 'smq-operator');
  assert.deepEqual(meta?.annotations, {
    'prometheus.io/path': '/metrics',
    'prometheus.io/port': '8888',
    'prometheus.io/scrape': 'true',
    'smq.sestack.io/config-hash': '0123456789abcdef',
  });
  assert.equal(full.spec?.template.metadata?.annotations?.['smq.sestack.io/config-hash'], 'fedcba9876543210');
});

test('container: image, args, ports (TLS adds mqtts and wss)', () => {
  const c = container(minimal);
  assert.equal(c.name, 'smq');
  assert.equal(c.image, 'smq:0.1.0');
  assert.equal(c.imagePullPolicy, 'IfNotPresent');
  assert.deepEqual(c.args, ['-c', '/etc/smq/smq.yaml']);
  assert.deepEqual(c.ports, [
    { name: 'mqtt', containerPort: 1883, protocol: 'TCP' },
    { name: 'ws', containerPort: 8083, protocol: 'TCP' },
    { name: 'http', containerPort: 8888, protocol: 'TCP' },
  ]);
  assert.equal(container(full).image, 'registry.example.com/smq:0.2.0');
  assert.equal(container(full).imagePullPolicy, 'Always');
  assert.deepEqual(container(full).ports?.map((p) => `${p.name}:${p.containerPort}`), ['mqtt:1883', 'mqtts:8883', 'ws:8083', 'wss:8084', 'http:8888']);
});

test('probes: liveness /healthz, readiness /readyz, startup /healthz, all on the http port', () => {
  const c = container(minimal);
  const get = (path: string) => ({ path, port: 'http', scheme: 'HTTP' });
  assert.deepEqual(c.livenessProbe?.httpGet, get('/healthz'));
  assert.deepEqual(c.readinessProbe?.httpGet, get('/readyz'));
  assert.deepEqual(c.startupProbe?.httpGet, get('/healthz'));
  // The startup probe gives minutes, liveness then takes over.
  assert.ok((c.startupProbe?.periodSeconds ?? 0) * (c.startupProbe?.failureThreshold ?? 0) >= 120);
});

test('drain: preStop sleeps before SIGTERM, inside a grace period from the spec', () => {
  assert.deepEqual(container(minimal).lifecycle, { preStop: { sleep: { seconds: 5 } } });
  assert.equal(pod(minimal).terminationGracePeriodSeconds, 60);
  assert.equal(pod(full).terminationGracePeriodSeconds, 120);
  assert.equal(preStopSeconds(5), 1);
  assert.equal(preStopSeconds(9), 3);
  assert.equal(preStopSeconds(3600), 5);
});

test('environment: node id from the pod name; nothing else for a minimal cluster', () => {
  assert.deepEqual(container(minimal).env, [{ name: 'SMQ_BROKER', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } }]);
});

test('environment: etcd and SASL credentials from their Secrets, sorted by name', () => {
  const secret = (name: string, key: string) => ({ valueFrom: { secretKeyRef: { name, key } } });
  assert.deepEqual(container(full).env, [
    { name: 'SMQ_BRIDGE_KAFKA_SASL_PASSWORD', ...secret('kafka-user', 'password') },
    { name: 'SMQ_BRIDGE_KAFKA_SASL_USERNAME', ...secret('kafka-user', 'username') },
    { name: 'SMQ_BROKER', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } },
    { name: 'SMQ_ETCD_PASSWORD', ...secret('etcd-user', 'password') },
    { name: 'SMQ_ETCD_USERNAME', ...secret('etcd-user', 'username') },
  ]);
});

test('volumes and mounts: minimal cluster', () => {
  assert.deepEqual(pod(minimal).volumes, [
    { name: 'config', configMap: { name: 'mqtt-config', items: [{ key: 'smq.yaml', path: 'smq.yaml' }] } },
    { name: 'api-token', secret: { secretName: 'mqtt-api-token', defaultMode: 0o440, items: [{ key: 'token', path: 'token' }] } },
    { name: 'tmp', emptyDir: { sizeLimit: '64Mi' } },
  ]);
  assert.deepEqual(container(minimal).volumeMounts, [
    { name: 'config', mountPath: '/etc/smq/smq.yaml', readOnly: true, subPath: 'smq.yaml' },
    { name: 'data', mountPath: '/var/lib/smq' },
    { name: 'api-token', mountPath: '/etc/smq/api', readOnly: true },
    { name: 'tmp', mountPath: '/tmp' },
  ]);
});

test('volumes and mounts: full cluster with a bridge', () => {
  const byName = new Map(pod(full).volumes?.map((v) => [v.name, v]));
  assert.deepEqual([...byName.keys()], ['config', 'tls', 'etcd-tls', 'auth', 'acl', 'api-token', 'kafka-tls', 'tmp']);
  assert.deepEqual(byName.get('tls')?.secret, { secretName: 'mqtt-tls', defaultMode: 0o440 });
  assert.deepEqual(byName.get('etcd-tls')?.secret, { secretName: 'etcd-client-tls', defaultMode: 0o440 });
  assert.deepEqual(byName.get('auth')?.secret, { secretName: 'mqtt-users', defaultMode: 0o440, items: [{ key: 'passwd', path: 'passwd' }] });
  assert.deepEqual(byName.get('acl')?.configMap, { name: 'mqtt-acl', items: [{ key: 'rules.yaml', path: 'acl.yaml' }] });
  assert.deepEqual(byName.get('api-token')?.secret, { secretName: 'mqtt-admin', defaultMode: 0o440, items: [{ key: 'api-token', path: 'token' }] });
  assert.deepEqual(byName.get('kafka-tls')?.secret, { secretName: 'kafka-ca', defaultMode: 0o440 });
  const mounts = Object.fromEntries(container(full).volumeMounts?.map((m) => [m.name, m.mountPath]) ?? []);
  assert.deepEqual(mounts, {
    config: '/etc/smq/smq.yaml', data: '/var/lib/smq', tls: '/etc/smq/tls', 'etcd-tls': '/etc/smq/etcd', auth: '/etc/smq/auth',
    acl: '/etc/smq/acl', 'api-token': '/etc/smq/api', 'kafka-tls': '/etc/smq/kafka', tmp: '/tmp',
  });
  // Only the config file is a subPath mount: the kubelet updates the others in place (certificate rotation).
  assert.deepEqual(container(full).volumeMounts?.filter((m) => m.subPath !== undefined).map((m) => m.name), ['config']);
});

test('ACL rules from a Secret', () => {
  const sts = statefulSet(fullCluster({ acl: { rules: { name: 'acl-secret', key: 'acl' }, fromSecret: true } }), { configHash: 'x' });
  const acl = pod(sts).volumes?.find((v) => v.name === 'acl');
  assert.deepEqual(acl, { name: 'acl', secret: { secretName: 'acl-secret', defaultMode: 0o440, items: [{ key: 'acl', path: 'acl.yaml' }] } });
});

test('volume claim template: data, size and class from spec.storage', () => {
  assert.deepEqual(minimal.spec?.volumeClaimTemplates?.[0]?.spec, { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } });
  assert.equal(minimal.spec?.volumeClaimTemplates?.[0]?.metadata?.name, 'data');
  assert.deepEqual(full.spec?.volumeClaimTemplates?.[0]?.spec, {
    accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '20Gi' } }, storageClassName: 'fast-ssd',
  });
});

test('security: non-root user 10001, read-only root, no privilege escalation, no capabilities, RuntimeDefault seccomp', () => {
  assert.deepEqual(container(minimal).securityContext, {
    runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' },
  });
  const p = pod(minimal);
  assert.equal(p.securityContext?.fsGroup, 10001);
  assert.equal(p.securityContext?.runAsNonRoot, true);
  assert.equal(p.automountServiceAccountToken, false);
  assert.equal(p.enableServiceLinks, false);
});

test('scheduling: anti-affinity preferring other nodes by default; the spec\'s affinity, node selector and tolerations when given', () => {
  assert.deepEqual(pod(minimal).affinity, {
    podAntiAffinity: {
      preferredDuringSchedulingIgnoredDuringExecution: [{
        weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: selector } },
      }],
    },
  });
  assert.equal(pod(minimal).nodeSelector, undefined);
  assert.equal(pod(minimal).tolerations, undefined);
  assert.equal(container(minimal).resources, undefined);
  const spec = fullCluster().spec;
  assert.deepEqual(pod(full).affinity, spec.affinity);
  assert.deepEqual(Object.keys(pod(full).nodeSelector ?? {}), ['kubernetes.io/arch', 'node-role.example.com/mqtt']);
  assert.deepEqual(pod(full).tolerations, spec.tolerations);
  assert.deepEqual(container(full).resources, spec.resources);
});

test('imagePullSecrets reach the pod spec when given, and only then', () => {
  const withSecrets = statefulSet(fullCluster({ imagePullSecrets: [{ name: 'registry' }] }), { configHash: 'h' });
  assert.deepEqual(withSecrets.spec?.template.spec?.imagePullSecrets, [{ name: 'registry' }]);
  assert.equal(statefulSet(minimalCluster(), { configHash: 'h' }).spec?.template.spec?.imagePullSecrets, undefined);
});
