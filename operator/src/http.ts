import { createServer, type Server } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** The operator's own metrics (controller-runtime's names, with an `smq_operator_` prefix). */
export class OperatorMetrics {
  readonly registry = new Registry();
  readonly reconciles = new Counter({
    name: 'smq_operator_reconciles_total', help: 'Reconciles by kind and result', labelNames: ['kind', 'result'], registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'smq_operator_reconcile_seconds', help: 'Time one reconcile took, by kind', labelNames: ['kind'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [this.registry],
  });
  readonly leader = new Gauge({ name: 'smq_operator_leader', help: '1 while this replica leads', registers: [this.registry] });
  readonly queue = new Gauge({ name: 'smq_operator_queue_depth', help: 'Objects waiting to be reconciled, by kind', labelNames: ['kind'], registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'smq_operator_' });
  }
}

/**
 * `/healthz` (the process runs), `/readyz` (the caches are filled: a standby replica is ready too, so a
 * rollout of the operator is not held up by leader election) and `/metrics`.
 */
export function operatorHttp(metrics: OperatorMetrics, ready: () => boolean): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end();
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    } else if (path === '/readyz') {
      const ok = ready();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(ok ? '{"status":"ready"}' : '{"status":"starting"}');
    } else if (path === '/metrics') {
      metrics.registry.metrics().then((text) => {
        res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text);
      }, () => res.writeHead(500).end());
    } else {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"code":"NOT_FOUND","message":"no such endpoint"}');
    }
  });
}
