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
  proxy_protocol: false,
  tls: {
    enable: false,
    verify: false,
    cert: 'ssl/server/cert.pem',
    key: 'ssl/server/key.pem',
    ca: '',
    port: 8883,
    min_version: 'TLSv1.2',
    ciphers: '',
    cert_username: 'none',
    proxy_protocol: false,
  },
  // Empty host: the WebSocket listener follows the top-level `host`, so one setting opens (or not) both.
  ws: { enable: true, host: '', port: 8083, path: '/mqtt', proxy_protocol: false },
  wss: { enable: false, host: '', port: 8084, path: '/mqtt', proxy_protocol: false },
  // No proxy is trusted until the user names one: a PROXY header or X-Forwarded-For from anyone else is the
  // client's own claim about its address.
  proxy: { trusted: [] },
  etcd: { endpoints: [], username: '', password: '', ca: '', cert: '', key: '', lease_ttl: 10, orphan_ttl: 3600, session_wait: 10 },
  http: { enable: true, host: '127.0.0.1', port: 8888, tokens: [], token_file: '' },
  bridge: {
    enable: false,
    type: 'kafka',
    buffer: 100000,
    kafka: {
      addr: ['127.0.0.1:9092'],
      client_id: '',
      key: 'topic',
      acks: 'all',
      compression: 'none',
      linger: 5,
      batch_size: 1000,
      timeout: 30000,
      tls: { enable: false, ca: '', cert: '', key: '', verify: true },
      sasl: { mechanism: 'none', username: '', password: '' },
    },
  },
  notify: {
    enable: false, type: 'grpc', server: '127.0.0.1:9999',
    queue_size: 10000, timeout: 5000, retries: 5, backoff: 200, backoff_max: 10000, concurrency: 8, flush_timeout: 2000,
  },
  auth: {
    enable: false,
    password_file: '',
    http: { url: '', timeout: 5000, cache_ttl: 60, on_error: 'deny' },
    jwt: { from: 'password', secret: '', jwks_file: '', issuer: '', audience: '', disconnect_on_expiry: true },
    max_failures: 5,
    failure_window: 60,
    failure_delay: 1000,
    max_pending: 8,
  },
  // With acl.enable on and no rule matching, access is denied: nothing is open that the rules do not open.
  acl: { enable: false, file: '', default: 'deny', http: { url: '', timeout: 5000, cache_ttl: 60, on_error: 'deny' } },
  // Per-address limits are off by default: behind a Kubernetes load balancer many devices share one address.
  limits: {
    max_connections: 100000,
    max_connections_per_address: 0,
    connection_rate: 0,
    max_subscriptions: 10000,
    // Sessions outlive their connections (up to mqtt.max_session_expiry_interval): without a bound, one client
    // cycling through client ids could fill the memory with them.
    max_sessions: 1000000,
    max_topic_levels: 128,
    max_topic_length: 4096,
    publish_rate: 0,
    flapping_max: 0,
    flapping_window: 60,
    flapping_ban: 300,
  },
  log: { level: 'info' },
  // Empty: sessions and retained messages live in memory only.
  store: { dir: '', durability: 'fsync', recover: false },
  sys_interval: 10,
  mqtt: {
    max_keepalive: 65535,
    max_packet_size: 1048576,
    receive_maximum: 1024,
    // 256, not 32 (EMQX) or 20 (Mosquitto): each window of acknowledgements costs an event-loop turn, and with
    // 32 one subscriber was held to ~25k msgs/s here while the broker had CPU to spare. v5 clients lower it
    // with their Receive Maximum.
    max_inflight: 256,
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
