/** The StatefulSet of an SmqCluster: the broker pods. */
import type {
  V1Affinity, V1Container, V1ContainerPort, V1Probe, V1ResourceRequirements, V1StatefulSet, V1Toleration,
} from '@kubernetes/client-node';
import type { SmqBridge, SmqCluster } from '../api/types.js';
import { CONFIG_HASH_ANNOTATION, PATHS, PORTS, RUN_AS } from './layout.js';
import { labels, metadata, names, podLabels, selectorLabels, sortedRecord } from './names.js';
import { DATA_VOLUME, podEnv, podFiles } from './volumes.js';

/** What the StatefulSet needs besides the SmqCluster. */
export interface StatefulSetOptions {
  /** `hash` of {@link smqConfig}: the pod template's annotation, so a config change rolls the pods. */
  readonly configHash: string;
  /** The SmqBridge of this cluster, if any: its SASL credentials and Kafka TLS files. */
  readonly bridge?: SmqBridge;
}

/** Seconds the preStop hook waits at most; less with a short grace period, which must leave room for the drain. */
const PRESTOP_SECONDS = 5;

/** The pods' preStop wait for a grace period (seconds): 5, or a third of a short grace period, at least 1. */
export function preStopSeconds(gracePeriod: number): number {
  return Math.max(1, Math.min(PRESTOP_SECONDS, Math.floor(gracePeriod / 3)));
}

const probe = (path: string, extra: V1Probe): V1Probe => ({ httpGet: { path, port: 'http', scheme: 'HTTP' }, timeoutSeconds: 3, ...extra });

/**
 * `<cluster>`: `spec.replicas` broker pods named `<cluster>-0`, `-1`, ... behind the headless Service, each
 * with its PersistentVolumeClaim `data-<cluster>-<n>` for the store.
 */
export function statefulSet(cluster: SmqCluster, options: StatefulSetOptions): V1StatefulSet {
  const spec = cluster.spec;
  const n = names(cluster);
  const files = podFiles(cluster, options.bridge);
  const tls = spec.tls !== undefined;
  const port = (name: string, containerPort: number): V1ContainerPort => ({ name, containerPort, protocol: 'TCP' });
  const ports = [port('mqtt', PORTS.mqtt)];
  if (tls) ports.push(port('mqtts', PORTS.mqtts));
  ports.push(port('ws', PORTS.ws));
  if (tls) ports.push(port('wss', PORTS.wss));
  ports.push(port('http', PORTS.http));

  const container: V1Container = {
    name: 'smq',
    image: spec.image,
    imagePullPolicy: spec.imagePullPolicy ?? 'IfNotPresent',
    args: ['-c', PATHS.configFile],
    env: podEnv(cluster, options.bridge),
    ports,
    // Opening a large store after a crash (and waiting up to 10 s for etcd) may take a while: three minutes
    // before liveness takes over, so a slow start is not killed and restarted into the same slow start.
    startupProbe: probe('/healthz', { periodSeconds: 2, failureThreshold: 90 }),
    livenessProbe: probe('/healthz', { periodSeconds: 10, failureThreshold: 3 }),
    // /readyz answers 503 while starting, draining or away from etcd: out of the client Service quickly.
    readinessProbe: probe('/readyz', { periodSeconds: 5, failureThreshold: 2, successThreshold: 1 }),
    lifecycle: {
      // Deleting a pod removes it from the Service's endpoints and sends SIGTERM at the same time; kube-proxy
      // and cloud load balancers catch up a few seconds later. Waiting first means that when SIGTERM makes the
      // broker drain (v5 DISCONNECT 0x8B, "use another server"), the clients' reconnects no longer reach this
      // pod. The sleep action needs no shell in the image. It counts against the grace period, hence its bound.
      preStop: { sleep: { seconds: preStopSeconds(spec.terminationGracePeriodSeconds) } },
    },
    volumeMounts: files.mounts,
    securityContext: {
      runAsNonRoot: true,
      runAsUser: RUN_AS,
      runAsGroup: RUN_AS,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
  };
  // Passed through as given: the CRD keeps them free-form and the API server validates them.
  if (spec.resources !== undefined) container.resources = spec.resources as V1ResourceRequirements;

  const affinity: V1Affinity = spec.affinity !== undefined ? spec.affinity as V1Affinity : {
    // Preferred, not required: one node losing its machine should not take two, but a small cluster with
    // fewer machines than replicas must still schedule every pod.
    podAntiAffinity: {
      preferredDuringSchedulingIgnoredDuringExecution: [{
        weight: 100,
        podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: selectorLabels(cluster) } },
      }],
    },
  };

  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: metadata(cluster, n.statefulSet),
    spec: {
      serviceName: n.headlessService,
      replicas: spec.replicas,
      selector: { matchLabels: selectorLabels(cluster) },
      // Parallel: smq nodes never talk to each other and each joins through etcd on its own, so no node needs
      // another to be up first (unlike etcd or ZooKeeper, which bootstrap a quorum in order). Pods start and
      // scale together, and one stuck pod does not hold up the rest. Updates are unaffected: the policy
      // applies to scaling only, and RollingUpdate below still replaces one pod at a time, waiting for it to be ready.
      podManagementPolicy: 'Parallel',
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: 0 } },
      // The claims outlive the cluster and a scale-down: a node brought back finds its sessions and inbox.
      persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Retain', whenScaled: 'Retain' },
      template: {
        metadata: {
          labels: podLabels(cluster),
          annotations: sortedRecord({
            [CONFIG_HASH_ANNOTATION]: options.configHash,
            'prometheus.io/scrape': 'true',
            'prometheus.io/port': String(PORTS.http),
            'prometheus.io/path': '/metrics',
          }),
        },
        spec: {
          containers: [container],
          terminationGracePeriodSeconds: spec.terminationGracePeriodSeconds,
          // The broker never calls the Kubernetes API.
          automountServiceAccountToken: false,
          ...(spec.imagePullSecrets !== undefined && spec.imagePullSecrets.length > 0 ? { imagePullSecrets: spec.imagePullSecrets.map((s) => ({ name: s.name })) } : {}),
          // No <SERVICE>_PORT variables: a Service named smq-... would otherwise inject SMQ_* names that the
          // broker's loader reads as configuration.
          enableServiceLinks: false,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: RUN_AS,
            runAsGroup: RUN_AS,
            // The volume and the Secret files (mode 0440) belong to this group, so the broker can use them.
            fsGroup: RUN_AS,
            fsGroupChangePolicy: 'OnRootMismatch',
            seccompProfile: { type: 'RuntimeDefault' },
          },
          affinity,
          ...(spec.nodeSelector !== undefined ? { nodeSelector: sortedRecord(spec.nodeSelector) } : {}),
          ...(spec.tolerations !== undefined ? { tolerations: [...spec.tolerations] as V1Toleration[] } : {}),
          volumes: files.volumes,
        },
      },
      volumeClaimTemplates: [{
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        // No owner reference: the StatefulSet controller owns claims by their name, and they are kept on purpose.
        metadata: { name: DATA_VOLUME, labels: labels(cluster) },
        spec: {
          accessModes: ['ReadWriteOnce'],
          resources: { requests: { storage: spec.storage.size } },
          ...(spec.storage.storageClassName !== undefined ? { storageClassName: spec.storage.storageClassName } : {}),
        },
      }],
    },
  };
}
