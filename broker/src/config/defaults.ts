import { hostname } from 'node:os';

import type { Config } from './types.js';

/**
 * Freezes a value and everything reachable from it, so that a configuration passed down the broker cannot be
 * changed behind the back of the code that validated it. Returns the same value for convenient chaining.
 */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    // Freeze children first: a frozen parent with a mutable child would still let a caller change a setting.
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/**
 * The configuration used for every key the file and the environment leave out. Secure by default: like
 * Mosquitto 2, the MQTT and HTTP listeners bind to loopback until the user sets `host` (the seed's sample uses
 * 0.0.0.0); etcd is empty so a single node runs standalone without an etcd to reach.
 */
export const DEFAULTS: Config = deepFreeze({
  cluster: 'smq',
  // Empty on purpose: the broker generates a node id at start-up (and may persist it), not the config loader.
  broker: '',
  name: hostname(),
  worker: 4096,
  host: '127.0.0.1',
  port: 1883,
  tls: {
    enable: false,
    verify: false,
    cert: 'ssl/server/cert.pem',
    key: 'ssl/server/key.pem',
    ca: '',
    port: 8883,
  },
  // Empty host: the WebSocket listener follows the top-level `host`, so one setting opens (or not) both.
  ws: { enable: true, host: '', port: 8083, path: '/mqtt' },
  etcd: { endpoints: [] },
  http: { enable: true, host: '127.0.0.1', port: 8888, tokens: [] },
  bridge: { enable: false, type: 'kafka', kafka: { addr: ['127.0.0.1:9092'] } },
  notify: { enable: false, type: 'grpc', server: '127.0.0.1:9999' },
  auth: { enable: false },
  acl: { enable: false },
  log: { level: 'info' },
  // Empty: sessions and retained messages live in memory only.
  store: { dir: '' },
  sys_interval: 10,
  mqtt: {
    max_keepalive: 65535,
    max_packet_size: 1048576,
    receive_maximum: 1024,
    max_inflight: 32,
    max_queued: 1000,
    topic_alias_maximum: 64,
    session_expiry_interval: 7200,
    // 0xFFFFFFFF is the MQTT 5 value for "the session never expires" (MQTT 5.0, 3.1.2.11.2).
    max_session_expiry_interval: 4294967295,
    shared_strategy: 'round_robin',
    max_output_buffer: 8388608,
    slow_consumer_timeout: 30,
    connect_timeout: 10,
    retain_available: true,
  },
});
