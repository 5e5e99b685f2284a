import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '../../../broker/src/config/load.js';
import type { Config } from '../../../broker/src/config/types.js';
import type { SmqCluster } from '../api/types.js';
import { configHash, smqConfig } from './config.js';
import { fullBridge, fullCluster, minimalCluster } from './fixtures.js';

const ALL_TLS_KEYS = ['ca.crt', 'tls.crt', 'tls.key'];

/** Loads `text` with the broker's own loader, as `smq -c` would, with the pod's environment. */
function load(text: string, env: Record<string, string> = {}): Config {
  const dir = mkdtempSync(join(tmpdir(), 'smq-operator-config-'));
  try {
    const file = join(dir, 'smq.yaml');
    writeFileSync(file, text);
    return loadConfig({ file, env: { SMQ_BROKER: 'mqtt-0', ...env } });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('minimal cluster: the operator\'s keys, nothing else', () => {
  assert.deepEqual(smqConfig(minimalCluster()).config, {
    bridge: { enable: false },
    cluster: 'iot-mqtt',
    etcd: { endpoints: ['etcd-0.etcd:2379', 'etcd-1.etcd:2379'] },
    host: '0.0.0.0',
    http: { enable: true, host: '0.0.0.0', port: 8888, token_file: '/etc/smq/api/token' },
    log: { level: 'info' },
    port: 1883,
    store: { dir: '/var/lib/smq' },
    tls: { enable: false },
    ws: { enable: true, port: 8083 },
    wss: { enable: false },
  });
});

test('full cluster with a bridge: TLS, mutual TLS, etcd TLS, auth, ACL, Kafka TLS and SASL as files and switches', () => {
  const { config } = smqConfig(fullCluster(), fullBridge(), { etcd: ALL_TLS_KEYS, kafka: ['ca.crt'] });
  assert.deepEqual(config['tls'], {
    ca: '/etc/smq/tls/ca.crt', cert: '/etc/smq/tls/tls.crt', enable: true, key: '/etc/smq/tls/tls.key', port: 8883, verify: true,
  });
  assert.deepEqual(config['wss'], { enable: true, port: 8084 });
  assert.deepEqual(config['etcd'], {
    ca: '/etc/smq/etcd/ca.crt', cert: '/etc/smq/etcd/tls.crt', endpoints: ['etcd.db:2379'], key: '/etc/smq/etcd/tls.key',
  });
  assert.deepEqual(config['auth'], { enable: true, password_file: '/etc/smq/auth/passwd' });
  assert.deepEqual(config['acl'], { enable: true, file: '/etc/smq/acl/acl.yaml' });
  assert.deepEqual(config['bridge'], {
    enable: true,
    kafka: {
      addr: ['kafka-0.kafka:9093', 'kafka-1.kafka:9093'],
      key: 'topic',
      sasl: { mechanism: 'scram-sha-512' },
      tls: { ca: '/etc/smq/kafka/ca.crt', enable: true },
    },
    type: 'kafka',
  });
  // The user's keys pass through beside the operator's.
  assert.deepEqual(config['mqtt'], { max_inflight: 128, shared_strategy: 'hash_clientid' });
  assert.equal(config['sys_interval'], 0);
});

test('TLS without verifyClients names no CA (a Secret without ca.crt must do)', () => {
  const { config } = smqConfig(fullCluster({ tls: { secretName: 'mqtt-tls' } }));
  assert.deepEqual(config['tls'], { cert: '/etc/smq/tls/tls.crt', enable: true, key: '/etc/smq/tls/tls.key', port: 8883, verify: false });
});

test('etcd and Kafka TLS: a client certificate only when the Secret holds one; the CA alone by default', () => {
  const etcd = (keys?: string[]): unknown => smqConfig(fullCluster(), undefined, keys === undefined ? {} : { etcd: keys }).config['etcd'];
  assert.deepEqual(etcd(), { ca: '/etc/smq/etcd/ca.crt', endpoints: ['etcd.db:2379'] });
  assert.deepEqual(etcd(['ca.crt', 'tls.crt']), { ca: '/etc/smq/etcd/ca.crt', endpoints: ['etcd.db:2379'] });
  const kafka = smqConfig(fullCluster(), fullBridge(), { kafka: ALL_TLS_KEYS }).config['bridge'] as { kafka: { tls: unknown } };
  assert.deepEqual(kafka.kafka.tls, { ca: '/etc/smq/kafka/ca.crt', cert: '/etc/smq/kafka/tls.crt', enable: true, key: '/etc/smq/kafka/tls.key' });
  const publicCa = smqConfig(fullCluster(), fullBridge(), { kafka: [] }).config['bridge'] as { kafka: { tls: unknown } };
  assert.deepEqual(publicCa.kafka.tls, { enable: true });
});

test('no credential is written: node id, etcd and SASL users and passwords come from the environment', () => {
  const { text } = smqConfig(fullCluster(), fullBridge(), { etcd: ALL_TLS_KEYS, kafka: ALL_TLS_KEYS });
  for (const word of ['password:', 'username:', 'broker:', 'tokens:']) assert.ok(!text.includes(word), word);
});

test('the operator\'s keys win over spec.config; log.level is taken from it', () => {
  const cluster = fullCluster({ config: { port: 1, http: { port: 2, host: '127.0.0.1' }, log: { level: 'debug' }, mqtt: { max_queued: 5 } } });
  const { config } = smqConfig(cluster);
  assert.equal(config['port'], 1883);
  assert.deepEqual(config['http'], { enable: true, host: '0.0.0.0', port: 8888, token_file: '/etc/smq/api/token' });
  assert.deepEqual(config['log'], { level: 'debug' });
  assert.deepEqual(config['mqtt'], { max_queued: 5 });
});

test('behind a load balancer: proxy.trusted and the listeners\' proxy_protocol pass through beside the owned keys', () => {
  const cluster = fullCluster({ config: {
    proxy: { trusted: ['10.0.0.0/8'] }, proxy_protocol: true,
    tls: { proxy_protocol: true }, ws: { proxy_protocol: true }, wss: { proxy_protocol: true },
  } });
  const loaded = load(smqConfig(cluster).text);
  assert.deepEqual(loaded.proxy.trusted, ['10.0.0.0/8']);
  assert.deepEqual([loaded.proxy_protocol, loaded.tls.proxy_protocol, loaded.ws.proxy_protocol, loaded.wss.proxy_protocol], [true, true, true, true]);
  // The owned listener keys are still the operator's.
  assert.deepEqual([loaded.ws.enable, loaded.ws.port, loaded.tls.port], [true, 8083, 8883]);
});

test('bridge.kafka.key is clientid only when every mapping asks for it', () => {
  const bridge = fullBridge();
  const byClient = { ...bridge, spec: { ...bridge.spec, mappings: bridge.spec.mappings.map((m) => ({ ...m, key: 'clientid' as const })) } };
  const key = (config: Record<string, unknown>): unknown => (config['bridge'] as { kafka: { key: unknown } }).kafka.key;
  assert.equal(key(smqConfig(fullCluster(), bridge).config), 'topic');
  assert.equal(key(smqConfig(fullCluster(), byClient).config), 'clientid');
});

test('a bridge of another cluster is refused', () => {
  const bridge = fullBridge();
  assert.throws(() => smqConfig(fullCluster(), { ...bridge, spec: { ...bridge.spec, cluster: 'other' } }), /belongs to other/);
  assert.throws(() => smqConfig(fullCluster(), { ...bridge, metadata: { ...bridge.metadata, namespace: 'elsewhere' } }));
});

test('the broker\'s own loader takes the minimal config', () => {
  const loaded = load(smqConfig(minimalCluster()).text);
  assert.equal(loaded.broker, 'mqtt-0');
  assert.equal(loaded.cluster, 'iot-mqtt');
  assert.equal(loaded.host, '0.0.0.0');
  assert.deepEqual(loaded.etcd.endpoints, ['etcd-0.etcd:2379', 'etcd-1.etcd:2379']);
  assert.equal(loaded.http.host, '0.0.0.0');
  assert.equal(loaded.http.token_file, '/etc/smq/api/token');
  assert.equal(loaded.store.dir, '/var/lib/smq');
  assert.equal(loaded.tls.enable, false);
  assert.equal(loaded.bridge.enable, false);
});

test('the broker\'s own loader takes the full config, with the credentials from the environment', () => {
  const text = smqConfig(fullCluster(), fullBridge(), { etcd: ALL_TLS_KEYS, kafka: ALL_TLS_KEYS }).text;
  const loaded = load(text, {
    SMQ_ETCD_USERNAME: 'smq', SMQ_ETCD_PASSWORD: 'etcd-secret',
    SMQ_BRIDGE_KAFKA_SASL_USERNAME: 'bridge', SMQ_BRIDGE_KAFKA_SASL_PASSWORD: 'kafka-secret',
  });
  assert.equal(loaded.tls.verify, true);
  assert.equal(loaded.tls.ca, '/etc/smq/tls/ca.crt');
  assert.equal(loaded.wss.enable, true);
  assert.equal(loaded.etcd.cert, '/etc/smq/etcd/tls.crt');
  assert.equal(loaded.etcd.password, 'etcd-secret');
  assert.equal(loaded.auth.password_file, '/etc/smq/auth/passwd');
  assert.equal(loaded.acl.file, '/etc/smq/acl/acl.yaml');
  assert.deepEqual(loaded.bridge.kafka.addr, ['kafka-0.kafka:9093', 'kafka-1.kafka:9093']);
  assert.equal(loaded.bridge.kafka.sasl.mechanism, 'scram-sha-512');
  assert.equal(loaded.bridge.kafka.sasl.password, 'kafka-secret');
  assert.equal(loaded.mqtt.max_inflight, 128);
  assert.equal(loaded.limits.publish_rate, 100);
});

test('a misspelt key fails the loader (so the tests above would catch one in the builder)', () => {
  const cluster = fullCluster({ config: { mqtt: { max_inflite: 5 } } });
  assert.throws(() => load(smqConfig(cluster).text), (err: unknown) => err instanceof ConfigError && err.key === 'mqtt.max_inflite');
});

test('the hash: the same for the same cluster whatever the key order, different when the config changes, and only then', () => {
  const a = smqConfig(fullCluster(), fullBridge());
  const reordered: SmqCluster = fullCluster({ config: { sys_interval: 0, limits: { publish_rate: 100 }, mqtt: { shared_strategy: 'hash_clientid', max_inflight: 128 } } });
  assert.equal(smqConfig(reordered, fullBridge()).text, a.text);
  assert.equal(smqConfig(reordered, fullBridge()).hash, a.hash);
  assert.match(a.hash, /^[0-9a-f]{16}$/);
  assert.equal(a.hash, configHash(a.text));
  // Fields outside the config do not roll the pods through the hash (their own template changes do, if any).
  for (const spec of [{ replicas: 7 }, { image: 'smq:9' }, { storage: { size: '5Gi' } }, { terminationGracePeriodSeconds: 30 }]) {
    assert.equal(smqConfig(fullCluster(spec), fullBridge()).hash, a.hash, JSON.stringify(spec));
  }
  // Anything the broker reads does.
  const changed = [
    smqConfig(fullCluster({ config: { mqtt: { max_inflight: 129 } } }), fullBridge()),
    smqConfig(fullCluster({ tls: { secretName: 'mqtt-tls', verifyClients: false } }), fullBridge()),
    smqConfig(fullCluster({ etcd: { endpoints: ['etcd.db:2380'] } }), fullBridge()),
    smqConfig(fullCluster()),
    smqConfig(fullCluster(), fullBridge(), { kafka: ALL_TLS_KEYS }),
  ];
  for (const c of changed) assert.notEqual(c.hash, a.hash);
});
