import assert from 'node:assert/strict';
import { test } from 'node:test';
import { apiService, clientService } from './client-service.js';
import { fullCluster, minimalCluster } from './fixtures.js';
import { headlessService } from './headless-service.js';

const selector = { 'app.kubernetes.io/component': 'broker', 'app.kubernetes.io/instance': 'mqtt', 'app.kubernetes.io/name': 'smq' };

test('headless Service: no cluster IP, not-ready pods published, mqtt and http', () => {
  const svc = headlessService(minimalCluster());
  assert.equal(svc.metadata?.name, 'mqtt-headless');
  assert.equal(svc.metadata?.labels?.['smq.sestack.io/service'], 'headless');
  assert.deepEqual(svc.spec, {
    clusterIP: 'None',
    publishNotReadyAddresses: true,
    selector,
    ports: [
      { name: 'mqtt', port: 1883, targetPort: 'mqtt', protocol: 'TCP' },
      { name: 'http', port: 8888, targetPort: 'http', protocol: 'TCP' },
    ],
  });
});

test('client Service, minimal: ClusterIP, mqtt and ws (the API has its own Service), no annotations', () => {
  const svc = clientService(minimalCluster());
  assert.equal(svc.metadata?.name, 'mqtt');
  assert.equal(svc.metadata?.annotations, undefined);
  assert.equal(svc.metadata?.labels?.['smq.sestack.io/service'], 'client');
  assert.deepEqual(svc.spec, {
    type: 'ClusterIP',
    selector,
    ports: [
      { name: 'mqtt', port: 1883, targetPort: 'mqtt', protocol: 'TCP' },
      { name: 'ws', port: 8083, targetPort: 'ws', protocol: 'TCP' },
    ],
  });
});

test('API Service: ClusterIP whatever the client Service is, the http port only', () => {
  const svc = apiService(fullCluster());
  assert.equal(svc.metadata?.name, 'mqtt-api');
  assert.equal(svc.metadata?.labels?.['smq.sestack.io/service'], 'api');
  assert.deepEqual(svc.spec, { type: 'ClusterIP', selector, ports: [{ name: 'http', port: 8888, targetPort: 'http', protocol: 'TCP' }] });
});

test('client Service, full: LoadBalancer with sorted annotations; spec ports onto the named container ports; TLS adds mqtts and wss', () => {
  const svc = clientService(fullCluster());
  assert.equal(svc.spec?.type, 'LoadBalancer');
  assert.deepEqual(svc.metadata?.annotations, { 'example.com/b': 'x', 'service.beta.kubernetes.io/aws-load-balancer-type': 'nlb' });
  assert.deepEqual(Object.keys(svc.metadata?.annotations ?? {}), ['example.com/b', 'service.beta.kubernetes.io/aws-load-balancer-type']);
  assert.deepEqual(svc.spec?.ports, [
    { name: 'mqtt', port: 11883, targetPort: 'mqtt', protocol: 'TCP' },
    { name: 'mqtts', port: 18883, targetPort: 'mqtts', protocol: 'TCP' },
    { name: 'ws', port: 18083, targetPort: 'ws', protocol: 'TCP' },
    { name: 'wss', port: 18084, targetPort: 'wss', protocol: 'TCP' },
  ]);
});
