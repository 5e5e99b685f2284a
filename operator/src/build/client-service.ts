/** The Service devices connect to. */
import type { V1Service, V1ServicePort } from '@kubernetes/client-node';
import type { SmqCluster } from '../api/types.js';
import { PORTS } from './layout.js';
import { LABEL, metadata, names, selectorLabels } from './names.js';

/**
 * `<cluster>`, of `spec.service.type` with `spec.service.annotations` (load-balancer settings): MQTT, and with
 * TLS MQTT over TLS and secure WebSocket, and WebSocket; the Service ports are `spec.service.ports`, the target
 * ports the container's named ports. Not the HTTP port: with a LoadBalancer that would put /metrics and the
 * token-guarded API wherever the load balancer reaches; they have their own ClusterIP Service ({@link apiService}).
 */
export function clientService(cluster: SmqCluster): V1Service {
  const service = cluster.spec.service;
  const tls = cluster.spec.tls !== undefined;
  const port = (name: string, number: number): V1ServicePort => ({ name, port: number, targetPort: name, protocol: 'TCP' });
  const ports = [port('mqtt', service.ports.mqtt)];
  if (tls) ports.push(port('mqtts', service.ports.mqtts));
  ports.push(port('ws', service.ports.ws));
  if (tls) ports.push(port('wss', service.ports.wss));
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: metadata(cluster, names(cluster).clientService, { [LABEL.service]: 'client' }, service.annotations),
    spec: { type: service.type, selector: selectorLabels(cluster), ports },
  };
}

/**
 * `<cluster>-api`: the HTTP API (and /metrics) of the ready nodes, on a ClusterIP Service whatever the client
 * Service's type, so the operator (and users, through port-forward) reach it and nothing outside the cluster does.
 */
export function apiService(cluster: SmqCluster): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: metadata(cluster, names(cluster).apiService, { [LABEL.service]: 'api' }),
    spec: {
      type: 'ClusterIP',
      selector: selectorLabels(cluster),
      ports: [{ name: 'http', port: PORTS.http, targetPort: 'http', protocol: 'TCP' }],
    },
  };
}
