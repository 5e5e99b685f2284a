import { randomBytes } from 'node:crypto';
import type { V1StatefulSet } from '@kubernetes/client-node';
import type { Condition, NodeStatus, SmqClusterStatus } from '../api/types.js';
import { apiTokenSecret } from '../build/api-token.js';
import { apiService, clientService } from '../build/client-service.js';
import { setCondition } from '../build/conditions.js';
import { smqConfig, type TlsSecretKeys } from '../build/config.js';
import { configMap } from '../build/configmap.js';
import { headlessService } from '../build/headless-service.js';
import { CONFIG_HASH_ANNOTATION } from '../build/layout.js';
import { names, selectorString } from '../build/names.js';
import { podDisruptionBudget } from '../build/pdb.js';
import { serviceMonitor } from '../build/service-monitor.js';
import { statefulSet } from '../build/statefulset.js';
import { type KubeObject, KubeError } from '../kube/client.js';
import { apiToken, apiUrl, bridgeOf, type ClusterObject, type ControllerContext } from './context.js';

/** What one reconcile asks of the queue: come back after `requeueMs` (still rolling, pods not ready). */
export interface Result {
  readonly requeueMs?: number;
}

/**
 * Reconciles one SmqCluster, as an ordered list of small steps (the EMQX operator's habit): the API token
 * Secret, the ConfigMap (the smq YAML), the Services, the StatefulSet, the PodDisruptionBudget, the
 * ServiceMonitor, then the status. Every object is built by a pure builder and server-side applied, so a
 * reconcile that finds everything right changes nothing.
 */
export async function reconcileCluster(ctx: ControllerContext, namespace: string, name: string): Promise<Result> {
  const cluster = ctx.clusters.get(namespace, name);
  // Deleted: the objects carry owner references, so Kubernetes' garbage collector removes them.
  if (cluster === undefined || cluster.metadata.deletionTimestamp) return {};
  try {
    const bridge = bridgeOf(ctx, cluster);
    await ensureApiToken(ctx, cluster);
    const config = smqConfig(cluster, bridge, await secretKeys(ctx, cluster, bridge?.spec.kafka.tls?.secretName));
    await ctx.client.apply(configMap(cluster, config.text) as KubeObject);
    await ctx.client.apply(headlessService(cluster) as KubeObject);
    await ctx.client.apply(clientService(cluster) as KubeObject);
    await ctx.client.apply(apiService(cluster) as KubeObject);
    const before = await ctx.client.get<V1StatefulSet>('StatefulSet', namespace, names(cluster).statefulSet);
    const sts = await ctx.client.apply(statefulSet(cluster, { configHash: config.hash, bridge }) as KubeObject) as V1StatefulSet;
    announceRollout(ctx, cluster, before, config.hash);
    await applyOrDelete(ctx, podDisruptionBudget(cluster) as KubeObject | null, 'PodDisruptionBudget', cluster);
    await applyServiceMonitor(ctx, cluster);
    return await writeStatus(ctx, cluster, sts);
  } catch (err) {
    // Deleted while being reconciled: the garbage collector takes it from here.
    if (err instanceof KubeError && err.status === 404 && !(await ctx.client.get('SmqCluster', namespace, name))) return {};
    await degraded(ctx, cluster, err);
    throw err;
  }
}

/** The operator makes a token when `spec.apiToken` names none; an existing one is kept, never replaced. */
async function ensureApiToken(ctx: ControllerContext, cluster: ClusterObject): Promise<void> {
  if (cluster.spec.apiToken !== undefined) return;
  const name = names(cluster).apiTokenSecret;
  if (await ctx.client.get('Secret', cluster.metadata.namespace, name) !== null) return;
  try {
    await ctx.client.request('POST', `/api/v1/namespaces/${cluster.metadata.namespace}/secrets`, apiTokenSecret(cluster, randomBytes(24).toString('base64url')));
    ctx.events.normal(cluster, 'ApiTokenCreated', `created Secret ${name} with the HTTP API token`);
  } catch (err) {
    if (!(err instanceof KubeError && err.status === 409)) throw err;
  }
}

/** Which keys the etcd and Kafka TLS Secrets hold (a CA-only Secret means no client certificate). */
async function secretKeys(ctx: ControllerContext, cluster: ClusterObject, kafkaSecret: string | undefined): Promise<TlsSecretKeys> {
  const keysOf = async (secret: string | undefined): Promise<string[] | undefined> => {
    if (secret === undefined) return undefined;
    const s = await ctx.client.get<{ data?: Record<string, string> }>('Secret', cluster.metadata.namespace, secret);
    return s === null ? undefined : Object.keys(s.data ?? {});
  };
  const [etcd, kafka] = await Promise.all([keysOf(cluster.spec.etcd.tlsSecret), keysOf(kafkaSecret)]);
  return { ...(etcd ? { etcd } : {}), ...(kafka ? { kafka } : {}) };
}

/** An Event when the pods are about to roll because their configuration changed. */
function announceRollout(ctx: ControllerContext, cluster: ClusterObject, before: V1StatefulSet | null, hash: string): void {
  if (before === null) {
    ctx.events.normal(cluster, 'Created', `created StatefulSet ${names(cluster).statefulSet} with ${cluster.spec.replicas} replicas`);
    return;
  }
  const old = before.spec?.template.metadata?.annotations?.[CONFIG_HASH_ANNOTATION];
  if (old !== undefined && old !== hash) {
    ctx.events.normal(cluster, 'ConfigChanged', 'configuration changed: rolling the pods one at a time, each drained first');
  }
}

async function applyOrDelete(ctx: ControllerContext, obj: KubeObject | null, kind: string, cluster: ClusterObject): Promise<void> {
  if (obj !== null) await ctx.client.apply(obj);
  else await ctx.client.delete(kind, cluster.metadata.namespace, names(cluster).podDisruptionBudget);
}

let monitorCrd: boolean | null = null;

/** A ServiceMonitor when asked for and the Prometheus Operator's CRD exists (looked up once). */
async function applyServiceMonitor(ctx: ControllerContext, cluster: ClusterObject): Promise<void> {
  const monitor = serviceMonitor(cluster);
  if (monitor === null) return;
  monitorCrd ??= (await ctx.client.request('GET', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/servicemonitors.monitoring.coreos.com')
    .then(() => true, (err: unknown) => {
      if (err instanceof KubeError && err.status === 404) return false;
      throw err;
    }));
  if (monitorCrd) await ctx.client.apply(monitor as unknown as KubeObject);
  else ctx.events.warning(cluster, 'NoServiceMonitorCRD', 'metrics.serviceMonitor is on, but the ServiceMonitor CRD (Prometheus Operator) is not installed');
}

/** Status from the StatefulSet and, when reachable, the brokers' own view of their connections. */
async function writeStatus(ctx: ControllerContext, cluster: ClusterObject, sts: V1StatefulSet): Promise<Result> {
  const want = cluster.spec.replicas;
  const s = sts.status;
  const ready = s?.readyReplicas ?? 0;
  const rolling = (s?.updatedReplicas ?? 0) < want || (s?.observedGeneration ?? 0) < (sts.metadata?.generation ?? 0) || (s?.currentRevision !== undefined && s.currentRevision !== s.updateRevision);
  const now = ctx.now();
  const gen = cluster.metadata.generation;
  let conditions: readonly Condition[] = cluster.status?.conditions ?? [];
  conditions = setCondition(conditions, ready >= want
    ? { type: 'Ready', status: 'True', reason: 'AllReplicasReady', message: `${ready} of ${want} ready` }
    : { type: 'Ready', status: 'False', reason: 'ReplicasNotReady', message: `${ready} of ${want} ready` }, now, gen);
  conditions = setCondition(conditions, rolling
    ? { type: 'Progressing', status: 'True', reason: 'RollingUpdate', message: 'pods are being created or updated one at a time' }
    : { type: 'Progressing', status: 'False', reason: 'Stable', message: 'every pod runs the current configuration' }, now, gen);
  conditions = setCondition(conditions, { type: 'Degraded', status: 'False', reason: 'ReconcileSucceeded', message: 'every object is as the spec says' }, now, gen);
  const status: SmqClusterStatus = {
    observedGeneration: gen,
    replicas: s?.replicas ?? 0,
    readyReplicas: ready,
    selector: selectorString(cluster),
    nodes: await nodes(ctx, cluster),
    conditions,
  };
  if (JSON.stringify(status) !== JSON.stringify(cluster.status ?? {})) {
    await ctx.client.apply({ apiVersion: cluster.apiVersion, kind: cluster.kind, metadata: { name: cluster.metadata.name, namespace: cluster.metadata.namespace }, status } as KubeObject, 'status');
  }
  return ready >= want && !rolling ? {} : { requeueMs: 10_000 };
}

/** The brokers that registered in the cluster, with their connections (from any node's API; [] when unreachable). */
async function nodes(ctx: ControllerContext, cluster: ClusterObject): Promise<NodeStatus[]> {
  try {
    const token = await apiToken(ctx, cluster);
    if (token === null) return [];
    const res = await fetch(`${apiUrl(cluster)}/api/v1/nodes`, { headers: { 'x-token': token }, signal: AbortSignal.timeout(2000) });
    if (!res.ok) return [];
    const members = (await res.json()) as { id: string; clients?: number }[];
    return members.map((m) => ({ name: m.id, ready: true, connections: m.clients ?? 0 })).sort((a, b) => (a.name < b.name ? -1 : 1));
  } catch {
    return cluster.status?.nodes ? [...cluster.status.nodes] : [];
  }
}

/** Degraded=True with the error, and a Warning Event; the queue retries with backoff. */
async function degraded(ctx: ControllerContext, cluster: ClusterObject, err: unknown): Promise<void> {
  const message = (err as Error).message.slice(0, 1000);
  ctx.events.warning(cluster, 'ReconcileFailed', message);
  const conditions = setCondition(cluster.status?.conditions, { type: 'Degraded', status: 'True', reason: 'ReconcileFailed', message }, ctx.now(), cluster.metadata.generation);
  await ctx.client.apply({
    apiVersion: cluster.apiVersion, kind: cluster.kind, metadata: { name: cluster.metadata.name, namespace: cluster.metadata.namespace }, status: { conditions },
  } as KubeObject, 'status').catch(() => undefined);
}
