/**
 * Names, labels and metadata of the objects an SmqCluster becomes. Every builder takes its names from
 * {@link names} and its metadata from {@link metadata}, so a rename happens in one place and the selectors of
 * the Services, the PodDisruptionBudget and the ServiceMonitor always agree with the pods' labels.
 */
import type { V1ObjectMeta, V1OwnerReference } from '@kubernetes/client-node';
import { API_VERSION, type SmqCluster } from '../api/types.js';

/** The names of the objects made for one SmqCluster (all in its namespace). */
export interface Names {
  /** The StatefulSet, and the prefix of its pods (`<cluster>-0`, ...). */
  readonly statefulSet: string;
  /** The ConfigMap with the smq YAML. */
  readonly configMap: string;
  /** The headless Service: per-pod DNS, metrics scraping, the operator's calls to each node's HTTP API. */
  readonly headlessService: string;
  /** The Service devices connect to (`<cluster>.<namespace>.svc:1883`), and the operator reaches the API through. */
  readonly clientService: string;
  /** `<cluster>-api`: the HTTP API and /metrics, inside the Kubernetes cluster only (ClusterIP). */
  readonly apiService: string;
  readonly podDisruptionBudget: string;
  readonly serviceMonitor: string;
  /** The Secret the operator creates for the HTTP API token when `spec.apiToken` is absent. */
  readonly apiTokenSecret: string;
  /** The smq `cluster` name: `<namespace>-<name>`, so two SmqClusters sharing an etcd never share keys. */
  readonly smqCluster: string;
}

/**
 * The names of one SmqCluster's objects. The client Service is `<cluster>` itself (what users type most);
 * the helpers carry a suffix. Each kind has its own namespace in Kubernetes, so the StatefulSet, the client
 * Service, the PodDisruptionBudget and the ServiceMonitor may share the name.
 */
export function names(cluster: SmqCluster): Names {
  const name = cluster.metadata.name;
  return {
    statefulSet: name,
    configMap: `${name}-config`,
    headlessService: `${name}-headless`,
    clientService: name,
    apiService: `${name}-api`,
    podDisruptionBudget: name,
    serviceMonitor: name,
    apiTokenSecret: `${name}-api-token`,
    smqCluster: `${cluster.metadata.namespace}-${name}`,
  };
}

/** The recommended labels' keys (https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/). */
export const LABEL = {
  name: 'app.kubernetes.io/name',
  instance: 'app.kubernetes.io/instance',
  managedBy: 'app.kubernetes.io/managed-by',
  component: 'app.kubernetes.io/component',
  /** Tells the two Services apart, so the ServiceMonitor selects exactly one of them (no pod scraped twice). */
  service: 'smq.sestack.io/service',
} as const;

/** The value of `app.kubernetes.io/managed-by` on everything the operator makes. */
export const MANAGED_BY = 'smq-operator';

/** Labels every object of the cluster carries. */
export function labels(cluster: SmqCluster): Record<string, string> {
  return {
    [LABEL.instance]: cluster.metadata.name,
    [LABEL.managedBy]: MANAGED_BY,
    [LABEL.name]: 'smq',
  };
}

/**
 * The labels that select the cluster's broker pods (StatefulSet selector, Services, PodDisruptionBudget,
 * anti-affinity). `component: broker` keeps a Helm release of the same name as the cluster (whose operator
 * pods could carry name and instance too) out of the Services. A StatefulSet's selector cannot change: these
 * three labels are fixed for the life of the cluster.
 */
export function selectorLabels(cluster: SmqCluster): Record<string, string> {
  return {
    [LABEL.component]: 'broker',
    [LABEL.instance]: cluster.metadata.name,
    [LABEL.name]: 'smq',
  };
}

/** The pods' labels: the common ones and the selector's. */
export function podLabels(cluster: SmqCluster): Record<string, string> {
  return sortedRecord({ ...labels(cluster), ...selectorLabels(cluster) });
}

/** {@link selectorLabels} as a label selector string, for `status.selector` (the scale subresource). */
export function selectorString(cluster: SmqCluster): string {
  return Object.entries(selectorLabels(cluster)).map(([k, v]) => `${k}=${v}`).join(',');
}

/**
 * The owner reference to the SmqCluster: deleting the cluster deletes what it owns (the API server's garbage
 * collector), and `controller: true` marks the operator's objects so a second controller cannot adopt them.
 */
export function ownerReference(cluster: SmqCluster): V1OwnerReference {
  const uid = cluster.metadata.uid;
  if (uid === undefined || uid === '') {
    // An owner reference without the uid is refused by the API server; the cluster must be the object it returned.
    throw new Error(`SmqCluster ${cluster.metadata.namespace}/${cluster.metadata.name} has no metadata.uid`);
  }
  return { apiVersion: API_VERSION, kind: 'SmqCluster', name: cluster.metadata.name, uid, controller: true, blockOwnerDeletion: true };
}

/** Metadata of an object owned by the cluster: name, namespace, labels (the common ones plus `extra`), owner. */
export function metadata(
  cluster: SmqCluster,
  name: string,
  extra: Readonly<Record<string, string>> = {},
  annotations?: Readonly<Record<string, string>>,
): V1ObjectMeta {
  const meta: V1ObjectMeta = {
    name,
    namespace: cluster.metadata.namespace,
    labels: sortedRecord({ ...labels(cluster), ...extra }),
    ownerReferences: [ownerReference(cluster)],
  };
  if (annotations !== undefined && Object.keys(annotations).length > 0) meta.annotations = sortedRecord(annotations);
  return meta;
}

/** A copy of a string map with its keys in order, so the same input always gives the same object. */
export function sortedRecord<T>(record: Readonly<Record<string, T>>): Record<string, T> {
  const out: Record<string, T> = {};
  for (const key of Object.keys(record).sort()) out[key] = record[key] as T;
  return out;
}
