/** The Service devices connect to. */
import type { V1Service, V1ServicePort } from '@kubernetes/client-node';
import type { SmqCluster } from '../api/types.js';
import { PORTS } from './layout.js';
import { LABEL, metadata, names, selectorLabels } from './names.js';

/**
 * `<cluster>`, of `spec.service.type` with `spec.service.annotations` (load-balancer settings): MQTT, and with
 * TLS MQTT over TLS and secure WebSocket, and WebSocket; the Service ports are `spec.service.ports`, the target
 * ports the container's named ports. The HTTP port (8888) too: the operator calls the API of a ready node
 * through it. With a LoadBalancer that puts /metrics and the token-guarded API wherever the load balancer
 * reaches; the ServiceMonitor scrapes through the headless Service instead.
 */
export function clientService(cluster: SmqCluster): V1Service {
  const service = cluster.spec.service;
  const tls = cluster.spec.tls !== undefined;
  const port = (name: string, number: number): V1ServicePort => ({ name, port: number, targetPort: name, protocol: 'TCP' });
  const ports = [port('mqtt', service.ports.mqtt)];
  if (tls) ports.push(port('mqtts', service.ports.mqtts));
  ports.push(port('ws', service.ports.ws));
  // The CRD has no field for the wss Service port yet; the container's port is used.
  if (tls) ports.push(port('wss', PORTS.wss));
  ports.push(port('http', PORTS.http));
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: metadata(cluster, names(cluster).clientService, { [LABEL.service]: 'client' }, service.annotations),
    spec: { type: service.type, selector: selectorLabels(cluster), ports },
  };
}
