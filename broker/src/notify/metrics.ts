/**
 * Prometheus metrics of notifications and agents, read at scrape time from the notifier's plain counters (the
 * habit of http/metrics.ts: nothing is paid per event).
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { AgentRegistry } from '../agent/registry.js';
import { EVENT_NAMES } from './events.js';
import type { NotifyCounters } from './notifier.js';

/** What the metrics read: the agents, and the notifier when notifications are on. */
export interface NotifySource {
  readonly agents: AgentRegistry;
  readonly notifications: { readonly notifier: NotifyCounters | null };
}

/**
 * Registers smq_notifications_sent_total{event}, smq_notifications_failed_total,
 * smq_notifications_dropped_total{reason}, smq_notification_queue and smq_agents on `registry`. With
 * notifications off they read 0.
 */
export function registerNotifyMetrics(registry: Registry, source: NotifySource): void {
  const counters = (): NotifyCounters | null => source.notifications.notifier;
  registry.registerMetric(new Counter({
    name: 'smq_notifications_sent_total', help: 'Notifications the notification server acknowledged, by event',
    labelNames: ['event'], registers: [],
    collect() {
      this.reset();
      const sent = counters()?.sent;
      for (const e of EVENT_NAMES) this.inc({ event: e }, sent?.get(e) ?? 0);
    },
  }));
  registry.registerMetric(new Counter({
    name: 'smq_notifications_failed_total', help: 'Failed calls to the notification server (each retry counts)', registers: [],
    collect() {
      this.reset();
      this.inc(counters()?.failed ?? 0);
    },
  }));
  registry.registerMetric(new Counter({
    name: 'smq_notifications_dropped_total', help: 'Notifications given up, by reason (queue_full, retries_exhausted, shutdown)',
    labelNames: ['reason'], registers: [],
    collect() {
      this.reset();
      const dropped = counters()?.dropped;
      for (const r of ['queue_full', 'retries_exhausted', 'shutdown'] as const) this.inc({ reason: r }, dropped?.get(r) ?? 0);
    },
  }));
  registry.registerMetric(new Gauge({
    name: 'smq_notification_queue', help: 'Notifications waiting to be sent, in flight or waiting to retry', registers: [],
    collect() {
      this.set(counters()?.queued ?? 0);
    },
  }));
  registry.registerMetric(new Gauge({
    name: 'smq_agents', help: 'Agents connected to this node (clients subscribed to agents/<own client id>)', registers: [],
    collect() {
      this.set(source.agents.size);
    },
  }));
}
