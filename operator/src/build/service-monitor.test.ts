import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fullCluster, minimalCluster } from './fixtures.js';
import { headlessService } from './headless-service.js';
import { clientService } from './client-service.js';
import { serviceMonitor } from './service-monitor.js';

test('ServiceMonitor: null unless spec.metrics.serviceMonitor', () => {
  assert.equal(serviceMonitor(minimalCluster()), null);
});

test('ServiceMonitor: /metrics on the http port at the spec\'s interval', () => {
  const sm = serviceMonitor(fullCluster());
  assert.equal(sm?.apiVersion, 'monitoring.coreos.com/v1');
  assert.equal(sm?.metadata.name, 'mqtt');
  assert.deepEqual(sm?.spec.endpoints, [{ port: 'http', path: '/metrics', interval: '15s', scheme: 'http' }]);
});

test('ServiceMonitor: selects the headless Service (http port, not-ready pods too) and not the client Service, so no pod is scraped twice', () => {
  const sm = serviceMonitor(fullCluster());
  const matches = (labels: Record<string, string> | undefined): boolean =>
    Object.entries(sm?.spec.selector.matchLabels ?? {}).every(([k, v]) => labels?.[k] === v);
  const headless = headlessService(fullCluster());
  assert.ok(matches(headless.metadata?.labels));
  assert.ok(headless.spec?.ports?.some((p) => p.name === 'http'));
  assert.ok(!matches(clientService(fullCluster()).metadata?.labels));
});
