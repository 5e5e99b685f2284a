/**
 * The custom resources of group `smq.sestack.io`, version `v1alpha1`, as TypeScript types. The CRD schemas in
 * `crds/` are generated from `schema.ts` next to this file; the two are kept in step by `crds.test.ts`.
 */

/** The API group and version of every smq resource. */
export const GROUP = 'smq.sestack.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

/** A key of a Secret or ConfigMap in the resource's namespace. */
export interface KeyRef {
  readonly name: string;
  readonly key: string;
}

/** A condition, as Kubernetes conventions have it (metav1.Condition). */
export interface Condition {
  readonly type: 'Ready' | 'Progressing' | 'Degraded';
  readonly status: 'True' | 'False' | 'Unknown';
  readonly reason: string;
  readonly message: string;
  readonly lastTransitionTime: string;
  readonly observedGeneration?: number;
}

/** Object metadata the operator reads (the rest passes through). */
export interface Meta {
  readonly name: string;
  readonly namespace: string;
  readonly uid?: string;
  readonly generation?: number;
  readonly resourceVersion?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
  readonly finalizers?: readonly string[];
  readonly deletionTimestamp?: string;
}

/** SmqCluster: a set of smq nodes clustered through etcd. */
export interface SmqCluster {
  readonly apiVersion: typeof API_VERSION;
  readonly kind: 'SmqCluster';
  readonly metadata: Meta;
  readonly spec: SmqClusterSpec;
  readonly status?: SmqClusterStatus;
}

export interface SmqClusterSpec {
  /** Broker pods (default 3). */
  readonly replicas: number;
  /** The smq container image. */
  readonly image: string;
  readonly imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /** Secrets for pulling `image` from a private registry. */
  readonly imagePullSecrets?: readonly { readonly name: string }[];
  /**
   * smq configuration with the names of the YAML file (`mqtt.max_inflight`, `limits.publish_rate`, ...). Keys
   * the operator owns (listeners' ports and files, `etcd.*`, `store.dir`, `cluster`, `broker`, `http.*`) are
   * refused by validation; they have fields of their own below.
   */
  readonly config?: Readonly<Record<string, unknown>>;
  readonly etcd: {
    /** External etcd endpoints (`host:port`); the chart's own etcd when it deploys one. */
    readonly endpoints: readonly string[];
    /** Secret with `ca.crt`, and `tls.crt` + `tls.key` for client certificates. */
    readonly tlsSecret?: string;
    /** Secret with `username` and `password`. */
    readonly authSecret?: string;
  };
  /** TLS for MQTT (8883) and secure WebSocket: a Secret with `tls.crt`, `tls.key` and, to verify clients, `ca.crt`. */
  readonly tls?: { readonly secretName: string; readonly verifyClients?: boolean };
  /** The password file (`smq passwd` format) from a Secret key; turns authentication on. */
  readonly auth?: { readonly passwordFile: KeyRef };
  /** ACL rules (YAML) from a ConfigMap (or, with `fromSecret`, a Secret) key; turns access control on. */
  readonly acl?: { readonly rules: KeyRef; readonly fromSecret?: boolean };
  /** The HTTP API token (operator and users) from a Secret key; the operator creates one when absent. */
  readonly apiToken?: KeyRef;
  readonly service: {
    readonly type: 'ClusterIP' | 'NodePort' | 'LoadBalancer';
    readonly annotations?: Readonly<Record<string, string>>;
    readonly ports: { readonly mqtt: number; readonly mqtts: number; readonly ws: number; readonly wss: number };
  };
  readonly resources?: Readonly<Record<string, unknown>>;
  readonly storage: { readonly size: string; readonly storageClassName?: string };
  readonly nodeSelector?: Readonly<Record<string, string>>;
  readonly tolerations?: readonly Readonly<Record<string, unknown>>[];
  readonly affinity?: Readonly<Record<string, unknown>>;
  readonly podDisruptionBudget: { readonly enabled: boolean; readonly maxUnavailable: number };
  readonly metrics: { readonly serviceMonitor: boolean; readonly interval: string };
  /** Seconds a pod has to drain before it is killed (its clients are told to go elsewhere first). */
  readonly terminationGracePeriodSeconds: number;
}

/** One node as the status shows it. */
export interface NodeStatus {
  readonly name: string;
  readonly ready: boolean;
  readonly connections: number;
}

export interface SmqClusterStatus {
  readonly observedGeneration?: number;
  readonly replicas?: number;
  readonly readyReplicas?: number;
  /** The pods' label selector, for the scale subresource (`kubectl scale`, HorizontalPodAutoscaler). */
  readonly selector?: string;
  readonly nodes?: readonly NodeStatus[];
  readonly conditions?: readonly Condition[];
}

/** SmqBridge: Kafka and the mappings one SmqCluster bridges to it. */
export interface SmqBridge {
  readonly apiVersion: typeof API_VERSION;
  readonly kind: 'SmqBridge';
  readonly metadata: Meta;
  readonly spec: SmqBridgeSpec;
  readonly status?: SmqBridgeStatus;
}

/** One mapping: MQTT topic filter to Kafka topic, with the record key. */
export interface BridgeMappingSpec {
  readonly topic: string;
  readonly queue: string;
  readonly key: 'topic' | 'clientid';
}

export interface SmqBridgeSpec {
  /** The SmqCluster (same namespace) whose nodes bridge. */
  readonly cluster: string;
  readonly kafka: {
    readonly bootstrapServers: readonly string[];
    /** TLS to Kafka: a Secret with `ca.crt` (and `tls.crt` + `tls.key` for client certificates). */
    readonly tls?: { readonly secretName: string };
    /** SASL: a Secret with `username` and `password`. */
    readonly sasl?: { readonly mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512'; readonly secretName: string };
  };
  readonly mappings: readonly BridgeMappingSpec[];
}

export interface SmqBridgeStatus {
  readonly observedGeneration?: number;
  /** The mappings the cluster bridges now, with their ids. */
  readonly mappings?: readonly (BridgeMappingSpec & { readonly id: string })[];
  readonly conditions?: readonly Condition[];
}
