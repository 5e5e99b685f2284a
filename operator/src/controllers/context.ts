import type { Logger } from 'pino';
import type { SmqBridge, SmqCluster } from '../api/types.js';
import { apiTokenRef } from '../build/api-token.js';
import { PORTS } from '../build/layout.js';
import { names } from '../build/names.js';
import type { OperatorMetrics } from '../http.js';
import type { KubeClient, KubeObject } from '../kube/client.js';
import type { EventRecorder } from '../kube/events.js';
import type { Informer } from '../kube/informer.js';

/** An SmqCluster or SmqBridge as the caches hold them. */
export type ClusterObject = SmqCluster & KubeObject;
export type BridgeObject = SmqBridge & KubeObject;

/** What every reconcile works with. */
export interface ControllerContext {
  readonly client: KubeClient;
  readonly log: Logger;
  readonly metrics: OperatorMetrics;
  readonly events: EventRecorder;
  readonly clusters: Informer<ClusterObject>;
  readonly bridges: Informer<BridgeObject>;
  readonly now: () => Date;
}

/**
 * Where the operator reaches a cluster's HTTP API: its `<cluster>-api` Service, or the URL of the annotation
 * `smq.sestack.io/api-url` (an operator running outside the cluster, a test whose brokers are processes).
 */
export const API_URL_ANNOTATION = 'smq.sestack.io/api-url';

export function apiUrl(cluster: SmqCluster): string {
  const override = cluster.metadata.annotations?.[API_URL_ANNOTATION];
  if (override !== undefined && override !== '') return override.replace(/\/+$/, '');
  return `http://${names(cluster).apiService}.${cluster.metadata.namespace}.svc:${PORTS.http}`;
}

/** The cluster's API token, from its Secret; null while the Secret (or the key) is not there yet. */
export async function apiToken(ctx: ControllerContext, cluster: SmqCluster): Promise<string | null> {
  const ref = apiTokenRef(cluster);
  const secret = await ctx.client.get<{ data?: Record<string, string> }>('Secret', cluster.metadata.namespace, ref.name);
  const value = secret?.data?.[ref.key];
  return value === undefined ? null : Buffer.from(value, 'base64').toString('utf8').trim();
}

/** The SmqBridge of a cluster (the first by name when several name it), if any. */
export function bridgeOf(ctx: ControllerContext, cluster: SmqCluster): BridgeObject | undefined {
  return ctx.bridges.list()
    .filter((b) => b.metadata.namespace === cluster.metadata.namespace && b.spec.cluster === cluster.metadata.name && !b.metadata.deletionTimestamp)
    .sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1))[0];
}
