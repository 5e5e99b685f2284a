import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { OperatorMetrics, operatorHttp } from './http.js';

test('the operator serves /healthz, /readyz (503 until its caches are filled) and Prometheus /metrics', async () => {
  const metrics = new OperatorMetrics();
  let ready = false;
  const server = operatorHttp(metrics, () => ready);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    assert.equal((await fetch(`${base}/readyz`)).status, 503);
    ready = true;
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    metrics.reconciles.inc({ kind: 'SmqCluster', result: 'success' });
    const text = await (await fetch(`${base}/metrics`)).text();
    assert.match(text, /^smq_operator_reconciles_total\{kind="SmqCluster",result="success"\} 1$/m);
    assert.match(text, /^# TYPE smq_operator_reconcile_seconds histogram$/m);
    assert.equal((await fetch(`${base}/nothing`)).status, 404);
    assert.equal((await fetch(`${base}/healthz`, { method: 'POST' })).status, 405);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
