/** The Prometheus Operator ServiceMonitor of an SmqCluster. */
import type { V1ObjectMeta } from '@kubernetes/client-node';
import type { SmqCluster } from '../api/types.js';
import { LABEL, labels, metadata, names } from './names.js';

/** A monitoring.coreos.com/v1 ServiceMonitor, as far as the operator sets it. */
export interface ServiceMonitor {
  readonly apiVersion: 'monitoring.coreos.com/v1';
  readonly kind: 'ServiceMonitor';
  readonly metadata: V1ObjectMeta;
  readonly spec: {
    readonly selector: { readonly matchLabels: Record<string, string> };
    readonly endpoints: readonly { readonly port: string; readonly path: string; readonly interval: string; readonly scheme: 'http' }[];
  };
}

/**
 * `<cluster>`: every broker pod's `/metrics` on the `http` port, every `spec.metrics.interval`, through the
 * headless Service (it alone carries the HTTP port, and it lists pods that are starting or draining too).
 * Null unless `spec.metrics.serviceMonitor` (the controller also skips it when the CRD is not installed).
 */
export function serviceMonitor(cluster: SmqCluster): ServiceMonitor | null {
  const metrics = cluster.spec.metrics;
  if (!metrics.serviceMonitor) return null;
  return {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'ServiceMonitor',
    metadata: metadata(cluster, names(cluster).serviceMonitor),
    spec: {
      selector: { matchLabels: { ...labels(cluster), [LABEL.service]: 'headless' } },
      endpoints: [{ port: 'http', path: '/metrics', interval: metrics.interval, scheme: 'http' }],
    },
  };
}
