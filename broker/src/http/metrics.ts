import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Broker } from '../broker.js';
import { registerBridgeMetrics } from '../bridge/metrics.js';
import { registerNotifyMetrics } from '../notify/metrics.js';

/**
 * Prometheus metrics (prom-client), read from the broker's plain counters at scrape time: the MQTT path pays
 * nothing for them. Names follow Prometheus conventions: `smq_` prefix, `_total` for counters, units in names.
 */
export function brokerMetrics(broker: Broker): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'smq_' });
  // prom-client names three gauges *_total, a suffix Prometheus keeps for counters (promtool check metrics
  // flags them). Each has a by-type gauge beside it, whose sum is the same number.
  for (const name of ['smq_nodejs_active_handles_total', 'smq_nodejs_active_requests_total', 'smq_nodejs_active_resources_total']) {
    registry.removeSingleMetric(name);
  }
  const s = broker.stats;
  const gauge = (name: string, help: string, read: () => number): void => {
    registry.registerMetric(new Gauge({ name, help, registers: [], collect() { this.set(read()); } }));
  };
  const counter = (name: string, help: string, read: () => number): void => {
    labelled(name, help, '', () => [['', read()]]);
  };
  /** A counter with one label, set at scrape time to the broker's running totals (one per label value). */
  const labelled = (name: string, help: string, label: string, read: () => Iterable<[string, number]>): void => {
    registry.registerMetric(new Counter({
      name, help, labelNames: label === '' ? [] : [label], registers: [],
      collect() {
        // Set to the broker's own running totals (read at scrape time, so no scrape sees the reset).
        this.reset();
        for (const [value, n] of read()) {
          if (label === '') this.inc(n);
          else this.inc({ [label]: value }, n);
        }
      },
    }));
  };
  gauge('smq_connections', 'Clients connected now', () => s.clientsConnected);
  gauge('smq_sessions', 'Sessions, connected or waiting for their client', () => broker.sessions.size);
  gauge('smq_subscriptions', 'Subscriptions (shared group members one by one)', () => broker.router.subscriptionCount);
  gauge('smq_retained_messages', 'Retained messages', () => broker.router.retained.size);
  gauge('smq_inflight_messages', 'Outgoing QoS 1/2 messages sent and not yet acknowledged', () => sumSessions(broker, 'inflight'));
  gauge('smq_queued_messages', 'Outgoing QoS 1/2 messages waiting for room in a client\'s in-flight window', () => sumSessions(broker, 'queued'));
  gauge('smq_auth_logins_slowed', 'Logins from slowed-down addresses waiting out their delay or being checked', () => broker.loginGate.pending);
  gauge('smq_auth_logins_queued', 'Logins waiting for a slot of the authentication worker pool', () => broker.workers.queued);
  gauge('smq_bridge_mappings', 'Kafka bridge mappings (cluster-wide in a cluster)', () => broker.bridgeMappings.size);
  counter('smq_connections_accepted_total', 'Connections accepted', () => s.connectionsTotal);
  labelled('smq_messages_received_total', 'PUBLISH packets received from clients, by QoS', 'qos', () => [
    ['0', s.messagesReceived - s.receivedQos1 - s.receivedQos2], ['1', s.receivedQos1], ['2', s.receivedQos2],
  ]);
  labelled('smq_messages_sent_total', 'PUBLISH packets sent to clients, by QoS', 'qos', () => [
    ['0', s.messagesSent - s.sentQos1 - s.sentQos2], ['1', s.sentQos1], ['2', s.sentQos2],
  ]);
  labelled('smq_messages_dropped_total', 'Messages not delivered, by reason (queue_full, slow_consumer, expired, too_large, ...)', 'reason', () => s.dropsByReason);
  counter('smq_received_bytes_total', 'Bytes received from clients', () => s.bytesReceived);
  counter('smq_sent_bytes_total', 'Bytes sent to clients', () => s.bytesSent);
  labelled('smq_acl_denials_total', 'Requests refused by access control, by action', 'action', () => [
    ['publish', s.publishDenied], ['subscribe', s.subscribeDenied],
  ]);
  counter('smq_auth_failures_total', 'Refused logins (bad credentials, not authorized, banned)', () => s.authFailures);
  labelled('smq_limit_hits_total', 'Requests refused by a configured limit, by limit', 'limit', () => s.limitHits);
  counter('smq_malformed_packets_total', 'Connections closed for a malformed packet', () => s.malformed);
  counter('smq_slow_consumers_total', 'Clients disconnected as slow consumers', () => s.slowConsumers);
  labelled('smq_proxy_refused_total', 'Connections from trusted proxies closed for their PROXY header, by reason', 'reason', () => s.proxyRefused);
  registerNotifyMetrics(registry, broker);
  if (broker.bridge !== null) registerBridgeMetrics(registry, broker.bridge, broker.bridgeMappings);
  const cluster = broker.cluster;
  if (cluster !== null) {
    gauge('smq_cluster_members', 'Nodes in the cluster', () => cluster.membership.members.size);
    gauge('smq_cluster_outbox_messages', 'Messages for other nodes waiting to be written to etcd', () => cluster.outbox.backlog);
    counter('smq_cluster_messages_sent_total', 'Messages sent to other nodes', () => cluster.outbox.carried);
    counter('smq_cluster_messages_received_total', 'Messages received from other nodes', () => cluster.inbox.messages);
    counter('smq_cluster_messages_dropped_total', 'QoS 0 messages for other nodes dropped while etcd was away', () => cluster.outbox.dropped);
    counter('smq_cluster_etcd_writes_total', 'etcd writes that carried messages to other nodes', () => cluster.outbox.writes);
    const latency = new Histogram({
      name: 'smq_cluster_etcd_write_seconds',
      help: 'Time etcd took to take a batch of messages for another node',
      buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    });
    cluster.outbox.observeWrite = (seconds) => latency.observe(seconds);
  }
  return registry;
}

/** Sums a per-session count over every session (at scrape time: no bookkeeping on the delivery path). */
function sumSessions(broker: Broker, what: 'inflight' | 'queued'): number {
  let n = 0;
  for (const session of broker.sessions.values()) n += what === 'inflight' ? session.inflightCount : session.queued;
  return n;
}
