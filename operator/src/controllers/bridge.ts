import { mappingId } from '../../../broker/src/bridge/mappings.js';
import type { BridgeMappingSpec, Condition, SmqBridgeStatus } from '../api/types.js';
import { setCondition } from '../build/conditions.js';
import { type KubeObject, objectPath } from '../kube/client.js';
import { apiToken, apiUrl, bridgeOf, type BridgeObject, type ControllerContext } from './context.js';
import type { Result } from './cluster.js';

/** The finalizer that removes a deleted SmqBridge's mappings from its cluster before the resource goes. */
export const MAPPINGS_FINALIZER = 'smq.sestack.io/mappings';

type Applied = BridgeMappingSpec & { readonly id: string };

/**
 * Reconciles one SmqBridge: its mappings are applied to the running cluster through the broker's HTTP API
 * (`POST /api/v1/bridge/`, cluster-wide through etcd), the ones it no longer lists are deleted, and a
 * finalizer removes them all when the resource is deleted. Its Kafka settings go into the cluster's
 * configuration (the SmqCluster reconcile reads them).
 */
export async function reconcileBridge(ctx: ControllerContext, namespace: string, name: string): Promise<Result> {
  const bridge = ctx.bridges.get(namespace, name);
  if (bridge === undefined) return {};
  const finalizers = bridge.metadata.finalizers ?? [];
  const cluster = ctx.clusters.get(namespace, bridge.spec.cluster);
  if (bridge.metadata.deletionTimestamp) {
    if (!finalizers.includes(MAPPINGS_FINALIZER)) return {};
    if (cluster !== undefined) {
      const api = await clusterApi(ctx, bridge);
      if (api === null) return { requeueMs: 5000 };
      for (const m of bridge.status?.mappings ?? []) await api.remove(m.id);
      ctx.events.normal(bridge, 'MappingsRemoved', `removed ${bridge.status?.mappings?.length ?? 0} mappings from cluster ${bridge.spec.cluster}`);
    }
    await setFinalizers(ctx, bridge, finalizers.filter((f) => f !== MAPPINGS_FINALIZER));
    return {};
  }
  if (!finalizers.includes(MAPPINGS_FINALIZER)) await setFinalizers(ctx, bridge, [...finalizers, MAPPINGS_FINALIZER]);
  if (cluster === undefined) {
    await writeStatus(ctx, bridge, bridge.status?.mappings ?? [], { type: 'Ready', status: 'False', reason: 'ClusterNotFound', message: `no SmqCluster ${bridge.spec.cluster} in ${namespace}` });
    return { requeueMs: 30_000 };
  }
  // A cluster bridges to one Kafka: the first SmqBridge (by name) sets it, and one naming another Kafka waits.
  const first = bridgeOf(ctx, cluster);
  if (first !== undefined && first.metadata.name !== bridge.metadata.name && JSON.stringify(first.spec.kafka) !== JSON.stringify(bridge.spec.kafka)) {
    const message = `cluster ${bridge.spec.cluster} bridges to the Kafka of SmqBridge ${first.metadata.name}; this one names another`;
    ctx.events.warning(bridge, 'ConflictingKafka', message);
    await writeStatus(ctx, bridge, bridge.status?.mappings ?? [], { type: 'Ready', status: 'False', reason: 'ConflictingKafka', message });
    return {};
  }
  const api = await clusterApi(ctx, bridge);
  if (api === null) {
    await writeStatus(ctx, bridge, bridge.status?.mappings ?? [], { type: 'Ready', status: 'False', reason: 'ClusterUnreachable', message: `the HTTP API of ${bridge.spec.cluster} does not answer yet` });
    return { requeueMs: 5000 };
  }
  const desired: Applied[] = bridge.spec.mappings.map((m) => ({ id: mappingId(m.topic, m.queue), topic: m.topic, queue: m.queue, key: m.key ?? 'topic' }));
  const present = new Map((await api.list()).map((m) => [m.id, m]));
  let changed = 0;
  for (const m of desired) {
    const there = present.get(m.id);
    if (there !== undefined && (there.key ?? 'topic') === m.key) continue;
    await api.add(m);
    changed++;
  }
  const wanted = new Set(desired.map((m) => m.id));
  for (const m of bridge.status?.mappings ?? []) {
    if (wanted.has(m.id) || !present.has(m.id)) continue;
    await api.remove(m.id);
    changed++;
  }
  if (changed > 0) ctx.events.normal(bridge, 'MappingsApplied', `${desired.length} mappings on cluster ${bridge.spec.cluster} (${changed} changed)`);
  await writeStatus(ctx, bridge, desired, { type: 'Ready', status: 'True', reason: 'MappingsApplied', message: `${desired.length} mappings bridged` });
  return {};
}

/** The cluster's bridge endpoints, or null while its token or API is not there yet. */
async function clusterApi(ctx: ControllerContext, bridge: BridgeObject): Promise<{
  list(): Promise<Applied[]>;
  add(m: Applied): Promise<void>;
  remove(id: string): Promise<void>;
} | null> {
  const cluster = ctx.clusters.get(bridge.metadata.namespace, bridge.spec.cluster);
  if (cluster === undefined) return null;
  const token = await apiToken(ctx, cluster);
  if (token === null) return null;
  const base = `${apiUrl(cluster)}/api/v1/bridge`;
  const call = async (method: string, path: string, body?: unknown): Promise<Response> => {
    const res = await fetch(base + path, {
      method, signal: AbortSignal.timeout(5000),
      headers: { 'x-token': token, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    if (!res.ok && res.status !== 404) throw new Error(`${method} ${base}${path}: ${res.status} ${await res.text()}`);
    return res;
  };
  try {
    await call('GET', '/');
  } catch {
    return null;
  }
  return {
    list: async () => ((await (await call('GET', '/')).json()) as { mappings: Applied[] }).mappings,
    add: async (m) => void await call('POST', '/', { topic: m.topic, queue: m.queue, key: m.key }),
    remove: async (id) => void await call('DELETE', `/${encodeURIComponent(id)}`),
  };
}

/** Sets metadata.finalizers, guarded by the resourceVersion read (a conflict retries with backoff). */
async function setFinalizers(ctx: ControllerContext, bridge: BridgeObject, finalizers: string[]): Promise<void> {
  await ctx.client.request('PATCH', objectPath('SmqBridge', bridge.metadata.namespace, bridge.metadata.name), {
    metadata: { finalizers, resourceVersion: bridge.metadata.resourceVersion },
  }, 'application/merge-patch+json');
}

async function writeStatus(ctx: ControllerContext, bridge: BridgeObject, mappings: readonly Applied[], ready: Parameters<typeof setCondition>[1]): Promise<void> {
  const conditions: readonly Condition[] = setCondition(bridge.status?.conditions, ready, ctx.now(), bridge.metadata.generation);
  const status: SmqBridgeStatus = { observedGeneration: bridge.metadata.generation, mappings, conditions };
  if (JSON.stringify(status) === JSON.stringify(bridge.status ?? {})) return;
  await ctx.client.apply({
    apiVersion: bridge.apiVersion, kind: bridge.kind, metadata: { name: bridge.metadata.name, namespace: bridge.metadata.namespace }, status,
  } as KubeObject, 'status');
}

