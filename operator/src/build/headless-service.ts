/** The headless Service of an SmqCluster: stable per-pod DNS names, and the Service metrics are scraped from. */
import type { V1Service } from '@kubernetes/client-node';
import type { SmqCluster } from '../api/types.js';
import { PORTS } from './layout.js';
import { LABEL, metadata, names, selectorLabels } from './names.js';

/**
 * `<cluster>-headless`, the StatefulSet's `serviceName`: `<pod>.<cluster>-headless.<namespace>.svc` names each
 * node. It publishes pods that are not ready, so a node's DNS name resolves while it starts or drains (the
 * operator and Prometheus reach every node, ready or not); the client Service is the one that follows readiness.
 * The ServiceMonitor scrapes its HTTP port, so starting and draining nodes are scraped too.
 */
export function headlessService(cluster: SmqCluster): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: metadata(cluster, names(cluster).headlessService, { [LABEL.service]: 'headless' }),
    spec: {
      clusterIP: 'None',
      publishNotReadyAddresses: true,
      selector: selectorLabels(cluster),
      ports: [
        { name: 'mqtt', port: PORTS.mqtt, targetPort: 'mqtt', protocol: 'TCP' },
        { name: 'http', port: PORTS.http, targetPort: 'http', protocol: 'TCP' },
      ],
    },
  };
}
