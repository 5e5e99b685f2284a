import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { Broker } from '../broker.js';

/**
 * Prometheus metrics (prom-client), read from the broker's plain counters at scrape time: the MQTT path pays
 * nothing for them. Names follow Prometheus conventions: `smq_` prefix, `_total` for counters, units in names.
 */
export function brokerMetrics(broker: Broker): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'smq_' });
  const s = broker.stats;
  const gauge = (name: string, help: string, read: () => number): void => {
    registry.registerMetric(new Gauge({ name, help, registers: [], collect() { this.set(read()); } }));
  };
  const counter = (name: string, help: string, read: () => number): void => {
    registry.registerMetric(new Counter({
      name, help, registers: [],
      collect() {
        // Set to the broker's own running total (read at scrape time, so no scrape sees the reset).
        this.reset();
        this.inc(read());
      },
    }));
  };
  gauge('smq_connections', 'Clients connected now', () => s.clientsConnected);
  gauge('smq_sessions', 'Sessions, connected or waiting for their client', () => broker.sessions.size);
  gauge('smq_subscriptions', 'Subscriptions (shared group members one by one)', () => broker.router.subscriptionCount);
  gauge('smq_retained_messages', 'Retained messages', () => broker.router.retained.size);
  counter('smq_connections_total', 'Connections accepted', () => s.connectionsTotal);
  counter('smq_messages_received_total', 'PUBLISH packets received from clients', () => s.messagesReceived);
  counter('smq_messages_sent_total', 'PUBLISH packets sent to clients', () => s.messagesSent);
  counter('smq_messages_dropped_total', 'Messages not delivered (queue full, slow consumer, expired, too large)', () => s.messagesDropped);
  counter('smq_received_bytes_total', 'Bytes received from clients', () => s.bytesReceived);
  counter('smq_sent_bytes_total', 'Bytes sent to clients', () => s.bytesSent);
  counter('smq_publish_denied_total', 'PUBLISH packets refused by access control', () => s.publishDenied);
  counter('smq_auth_failures_total', 'Refused logins', () => s.authFailures);
  counter('smq_malformed_packets_total', 'Connections closed for a malformed packet', () => s.malformed);
  counter('smq_slow_consumers_total', 'Clients disconnected as slow consumers', () => s.slowConsumers);
  const cluster = broker.cluster;
  if (cluster !== null) {
    gauge('smq_cluster_members', 'Nodes in the cluster', () => cluster.membership.members.size);
    counter('smq_cluster_messages_sent_total', 'Messages sent to other nodes', () => cluster.outbox.carried);
    counter('smq_cluster_messages_received_total', 'Messages received from other nodes', () => cluster.inbox.messages);
    counter('smq_cluster_messages_dropped_total', 'QoS 0 messages for other nodes dropped while etcd was away', () => cluster.outbox.dropped);
    counter('smq_cluster_etcd_writes_total', 'etcd writes that carried messages to other nodes', () => cluster.outbox.writes);
  }
  return registry;
}
