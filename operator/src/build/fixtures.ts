/**
 * SmqCluster and SmqBridge resources for the builders' tests: a minimal one, as the CRD's defaults fill it
 * (only the etcd endpoints given), and a full one that uses every field.
 */
import { API_VERSION, type SmqBridge, type SmqCluster, type SmqClusterSpec } from '../api/types.js';

/** The uid of the test clusters, for owner references. */
export const CLUSTER_UID = '6a3c2f0e-1b4d-4e8a-9f3e-2d1c0b9a8f7e';

/** An SmqCluster `mqtt` in namespace `iot` with only `spec.etcd.endpoints` given, defaults filled as the API server does. */
export function minimalCluster(): SmqCluster {
  return {
    apiVersion: API_VERSION,
    kind: 'SmqCluster',
    metadata: { name: 'mqtt', namespace: 'iot', uid: CLUSTER_UID, generation: 1 },
    spec: {
      replicas: 3,
      image: 'smq:0.1.0',
      imagePullPolicy: 'IfNotPresent',
      etcd: { endpoints: ['etcd-0.etcd:2379', 'etcd-1.etcd:2379'] },
      service: { type: 'ClusterIP', ports: { mqtt: 1883, mqtts: 8883, ws: 8083, wss: 8084 } },
      storage: { size: '1Gi' },
      podDisruptionBudget: { enabled: true, maxUnavailable: 1 },
      metrics: { serviceMonitor: false, interval: '30s' },
      terminationGracePeriodSeconds: 60,
    },
  };
}

/** The same cluster with every field used; `spec` fields given in `overrides` replace the full ones. */
export function fullCluster(overrides: Partial<SmqClusterSpec> = {}): SmqCluster {
  const base = minimalCluster();
  return {
    ...base,
    spec: {
      ...base.spec,
      replicas: 5,
      image: 'registry.example.com/smq:0.2.0',
      imagePullPolicy: 'Always',
      config: { mqtt: { max_inflight: 128, shared_strategy: 'hash_clientid' }, limits: { publish_rate: 100 }, sys_interval: 0 },
      etcd: { endpoints: ['etcd.db:2379'], tlsSecret: 'etcd-client-tls', authSecret: 'etcd-user' },
      tls: { secretName: 'mqtt-tls', verifyClients: true },
      auth: { passwordFile: { name: 'mqtt-users', key: 'passwd' } },
      acl: { rules: { name: 'mqtt-acl', key: 'rules.yaml' } },
      apiToken: { name: 'mqtt-admin', key: 'api-token' },
      service: {
        type: 'LoadBalancer',
        annotations: { 'service.beta.kubernetes.io/aws-load-balancer-type': 'nlb', 'example.com/b': 'x' },
        ports: { mqtt: 11883, mqtts: 18883, ws: 18083, wss: 18084 },
      },
      resources: { requests: { cpu: '500m', memory: '512Mi' }, limits: { memory: '1Gi' } },
      storage: { size: '20Gi', storageClassName: 'fast-ssd' },
      nodeSelector: { 'node-role.example.com/mqtt': 'true', 'kubernetes.io/arch': 'amd64' },
      tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'mqtt', effect: 'NoSchedule' }],
      affinity: {
        podAntiAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: [{
            topologyKey: 'topology.kubernetes.io/zone',
            labelSelector: { matchLabels: { 'app.kubernetes.io/instance': 'mqtt' } },
          }],
        },
      },
      podDisruptionBudget: { enabled: true, maxUnavailable: 2 },
      metrics: { serviceMonitor: true, interval: '15s' },
      terminationGracePeriodSeconds: 120,
      ...overrides,
    },
  };
}

/** An SmqBridge of cluster `mqtt` with Kafka TLS and SASL. */
export function fullBridge(): SmqBridge {
  return {
    apiVersion: API_VERSION,
    kind: 'SmqBridge',
    metadata: { name: 'telemetry', namespace: 'iot', uid: 'b1', generation: 1 },
    spec: {
      cluster: 'mqtt',
      kafka: {
        bootstrapServers: ['kafka-0.kafka:9093', 'kafka-1.kafka:9093'],
        tls: { secretName: 'kafka-ca' },
        sasl: { mechanism: 'scram-sha-512', secretName: 'kafka-user' },
      },
      mappings: [{ topic: 'sensors/#', queue: 'sensors', key: 'topic' }, { topic: 'agents/+/result', queue: 'results', key: 'clientid' }],
    },
  };
}
