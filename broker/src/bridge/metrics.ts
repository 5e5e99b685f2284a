import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { BridgeMappings } from './mappings.js';
import type { KafkaBridge } from './hook.js';
import type { MappingCounts } from './producer.js';

/**
 * The bridge's metrics, per mapping (labels `topic`, the MQTT filter, and `queue`, the Kafka topic): messages
 * produced, failed attempts, messages waiting, and the latency from publish to Kafka's acknowledgement; plus
 * the publishes refused or dropped because the buffer was full.
 */
export function registerBridgeMetrics(registry: Registry, bridge: KafkaBridge, mappings: BridgeMappings): void {
  const labelNames = ['topic', 'queue'] as const;
  /** Each mapping's count (0 before its first message), read at scrape time. */
  const each = (read: (c: MappingCounts) => number, put: (labels: { topic: string; queue: string }, n: number) => void): void => {
    for (const m of mappings.list()) {
      const c = bridge.pipeline.counts.get(m.id);
      put({ topic: m.topic, queue: m.queue }, c === undefined ? 0 : read(c));
    }
  };
  registry.registerMetric(new Counter({
    name: 'smq_bridge_messages_produced_total', help: 'Messages Kafka acknowledged, per mapping', labelNames, registers: [],
    collect() {
      this.reset();
      each((c) => c.produced, (labels, n) => this.inc(labels, n));
    },
  }));
  registry.registerMetric(new Counter({
    name: 'smq_bridge_messages_failed_total', help: 'Messages in batches Kafka did not take (each is sent again), per mapping', labelNames, registers: [],
    collect() {
      this.reset();
      each((c) => c.failed, (labels, n) => this.inc(labels, n));
    },
  }));
  registry.registerMetric(new Gauge({
    name: 'smq_bridge_buffered_messages', help: 'Messages waiting for Kafka, per mapping', labelNames, registers: [],
    collect() {
      this.reset();
      each((c) => c.buffered, (labels, n) => this.set(labels, n));
    },
  }));
  registry.registerMetric(new Counter({
    name: 'smq_bridge_messages_refused_total',
    help: 'Bridged publishes refused (QoS 1/2, v5 0x97) or dropped (QoS 0) because bridge.buffer was full, by QoS class',
    labelNames: ['qos'], registers: [],
    collect() {
      this.reset();
      this.inc({ qos: '0' }, bridge.dropped);
      this.inc({ qos: '1+' }, bridge.refused);
    },
  }));
  registry.registerMetric(new Gauge({
    name: 'smq_bridge_up', help: '1 while the last batch reached Kafka, 0 while Kafka is away or not yet reached', registers: [],
    collect() {
      this.set(bridge.state === 'connected' ? 1 : 0);
    },
  }));
  const latency = new Histogram({
    name: 'smq_bridge_produce_seconds',
    help: 'Time from publish to Kafka\'s acknowledgement, per mapping',
    labelNames,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  bridge.pipeline.observeLatency = (m, seconds) => latency.labels(m.topic, m.queue).observe(seconds);
}
