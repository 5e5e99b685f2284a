/**
 * The one description of every configuration key. Validation of the YAML file, environment overrides and the
 * generated docs are all driven from this table, so adding a key means adding one line here (and the field in
 * `types.ts`; the compile-time checks below fail until both agree).
 */
import { parseRange } from '../acl/address.js';
import type { Config, LogLevel, SharedStrategy } from './types.js';

/** Values a leaf of the configuration may hold; anything else is a section (a nested mapping). */
type Leaf = string | number | boolean | readonly string[];

/** Every dotted key path of `T` that ends at a leaf, e.g. `'tls.port'`. */
type LeafPaths<T, Prefix extends string = ''> = {
  [K in keyof T & string]: T[K] extends Leaf ? `${Prefix}${K}` : LeafPaths<T[K], `${Prefix}${K}.`>;
}[keyof T & string];

/** A dotted path to one setting of {@link Config}, as written in errors and docs (`mqtt.max_inflight`). */
export type ConfigPath = LeafPaths<Config>;

/** The kinds of value a key can take; each has one parser for YAML and one for environment variables. */
export type KeyKind = 'string' | 'int' | 'bool' | 'enum' | 'string-list';

interface KeyBase {
  /** Dotted path in the YAML file; the environment variable name is derived from it. */
  readonly path: ConfigPath;
  /** One line, used in error messages and in the docs. */
  readonly description: string;
}

/** A free-form string; `pattern` narrows it when a wrong value would only fail much later. */
export interface StringKey extends KeyBase {
  readonly kind: 'string';
  readonly pattern?: { readonly regex: RegExp; readonly expected: string };
}

/** A safe integer within `[min, max]`, both inclusive. */
export interface IntKey extends KeyBase {
  readonly kind: 'int';
  readonly min: number;
  readonly max: number;
}

/** `true` or `false` (YAML booleans; true/false/1/0/yes/no from the environment). */
export interface BoolKey extends KeyBase {
  readonly kind: 'bool';
}

/** One of a fixed list of strings. */
export interface EnumKey extends KeyBase {
  readonly kind: 'enum';
  readonly values: readonly string[];
}

/** A list of non-empty strings (comma-separated in the environment). */
export interface StringListKey extends KeyBase {
  readonly kind: 'string-list';
  /** What each item must be, when not any string: the check returns what is wrong with one, or null. */
  readonly item?: { readonly check: (text: string) => string | null; readonly expected: string };
}

/** The description of one configuration key. */
export type KeySpec = StringKey | IntKey | BoolKey | EnumKey | StringListKey;

/** Log levels accepted by `log.level`. */
export const LOG_LEVELS = [
  'trace',
  'debug',
  'info',
  'warn',
  'error',
  'fatal',
  'silent',
] as const satisfies readonly LogLevel[];

/** Strategies accepted by `mqtt.shared_strategy`. */
export const SHARED_STRATEGIES = [
  'round_robin',
  'random',
  'hash_clientid',
  'hash_topic',
] as const satisfies readonly SharedStrategy[];

/** Bridge back-ends accepted by `bridge.type`. */
export const BRIDGE_TYPES = ['kafka'] as const satisfies readonly Config['bridge']['type'][];

/** Notification transports accepted by `notify.type`. */
export const NOTIFY_TYPES = ['grpc', 'http'] as const satisfies readonly Config['notify']['type'][];

// Port 0 is allowed everywhere: it asks the OS for a free port, which tests rely on.
const PORT = { min: 0, max: 65535 } as const;
const UINT16 = { min: 0, max: 65535 } as const;
const UINT32 = { min: 0, max: 4294967295 } as const;
const INT32 = 2147483647;
// Addresses and names that must not be empty: an empty `host` would make Node listen on every interface, which
// secure-by-default forbids unless the user writes 0.0.0.0 (or ::) on purpose.
const NON_EMPTY = { regex: /\S/, expected: 'a non-empty string' } as const;
const DAY = 86400;
/** An entry of `proxy.trusted`: checked at start-up, so a typo never silently trusts nobody (or everybody). */
const IP_RANGE = {
  check: (text: string): string | null => {
    const r = parseRange(text);
    return typeof r === 'string' ? r : null;
  },
  expected: 'IP addresses or CIDR ranges (IPv4 or IPv6)',
} as const;

/** The four keys of an HTTP decision backend (`auth.http`, `acl.http`). */
function httpBackend<P extends 'auth' | 'acl'>(prefix: P, what: string) {
  return [
    { path: `${prefix}.http.url`, kind: 'string', description: `URL of the HTTP ${what} backend; empty turns it off` },
    { path: `${prefix}.http.timeout`, kind: 'int', min: 1, max: 60000, description: `milliseconds to wait for the ${what} backend` },
    { path: `${prefix}.http.cache_ttl`, kind: 'int', min: 0, max: DAY, description: `seconds an ${what} answer is cached; 0 = no cache` },
    {
      path: `${prefix}.http.on_error`, kind: 'enum', values: ['deny', 'allow'],
      description: `what a timeout or error of the ${what} backend means`,
    },
  ] as const;
}

const KEYS = [
  {
    path: 'cluster', kind: 'string', pattern: NON_EMPTY,
    description: 'cluster name, the same on every node of one cluster',
  },
  { path: 'broker', kind: 'string', description: 'node id; when empty, generated once and kept in store.dir/node-id (a new one at each start without store.dir)' },
  { path: 'name', kind: 'string', pattern: NON_EMPTY, description: 'node name; defaults to the host name' },
  {
    path: 'worker', kind: 'int', min: 1, max: 1048576,
    description: 'worker pool size: concurrent authentication calls (further logins wait their turn)',
  },
  {
    path: 'host', kind: 'string', pattern: NON_EMPTY,
    description: 'MQTT listen address; 0.0.0.0 opens the broker to the network',
  },
  { path: 'port', kind: 'int', ...PORT, description: 'MQTT listen port' },
  {
    path: 'proxy_protocol', kind: 'bool',
    description: 'expect a PROXY protocol header (v1 or v2) first on every MQTT connection from proxy.trusted',
  },

  { path: 'tls.enable', kind: 'bool', description: 'start the MQTT over TLS listener' },
  { path: 'tls.verify', kind: 'bool', description: 'require and verify client certificates (mutual TLS)' },
  { path: 'tls.cert', kind: 'string', description: 'server certificate file (PEM)' },
  { path: 'tls.key', kind: 'string', description: 'server private key file (PEM)' },
  { path: 'tls.ca', kind: 'string', description: 'CA bundle that verifies client certificates (PEM)' },
  { path: 'tls.port', kind: 'int', ...PORT, description: 'MQTT over TLS listen port' },
  { path: 'tls.min_version', kind: 'enum', values: ['TLSv1.2', 'TLSv1.3'], description: 'oldest TLS version accepted' },
  { path: 'tls.ciphers', kind: 'string', description: "OpenSSL cipher list; empty keeps Node's default" },
  {
    path: 'tls.cert_username', kind: 'enum', values: ['none', 'cn', 'san'],
    description: 'take the username from the verified client certificate (its CN or first SAN)',
  },
  {
    path: 'tls.proxy_protocol', kind: 'bool',
    description: 'expect a PROXY protocol header (v1 or v2) before the TLS handshake from proxy.trusted',
  },

  { path: 'ws.enable', kind: 'bool', description: 'start the MQTT over WebSocket listener' },
  { path: 'ws.host', kind: 'string', description: 'WebSocket listen address; empty means the top-level host' },
  { path: 'ws.port', kind: 'int', ...PORT, description: 'WebSocket listen port' },
  {
    path: 'ws.path',
    kind: 'string',
    pattern: { regex: /^\//, expected: 'a URL path starting with "/"' },
    description: 'URL path that accepts MQTT over WebSocket',
  },
  {
    path: 'ws.proxy_protocol', kind: 'bool',
    description: 'expect a PROXY protocol header (v1 or v2) before the HTTP upgrade from proxy.trusted',
  },

  { path: 'wss.enable', kind: 'bool', description: 'start the MQTT over secure WebSocket listener (uses the tls certificates)' },
  { path: 'wss.host', kind: 'string', description: 'secure WebSocket listen address; empty means the top-level host' },
  { path: 'wss.port', kind: 'int', ...PORT, description: 'secure WebSocket listen port' },
  {
    path: 'wss.path',
    kind: 'string',
    pattern: { regex: /^\//, expected: 'a URL path starting with "/"' },
    description: 'URL path that accepts MQTT over secure WebSocket',
  },
  {
    path: 'wss.proxy_protocol', kind: 'bool',
    description: 'expect a PROXY protocol header (v1 or v2) before the TLS handshake from proxy.trusted',
  },

  {
    path: 'proxy.trusted', kind: 'string-list', item: IP_RANGE,
    description: 'load balancers and proxies whose PROXY headers and X-Forwarded-For are believed; empty trusts none',
  },

  {
    path: 'etcd.endpoints', kind: 'string-list',
    description: 'etcd servers (host:port) for clustering; empty runs standalone',
  },
  { path: 'etcd.username', kind: 'string', description: 'etcd user (etcd authentication); empty for none' },
  { path: 'etcd.password', kind: 'string', description: "etcd user's password (or SMQ_ETCD_PASSWORD)" },
  { path: 'etcd.ca', kind: 'string', description: 'CA bundle that verifies the etcd servers (PEM); set it to talk TLS to etcd' },
  { path: 'etcd.cert', kind: 'string', description: 'client certificate for etcd (PEM), with etcd.key' },
  { path: 'etcd.key', kind: 'string', description: 'private key of etcd.cert (PEM)' },
  {
    path: 'etcd.lease_ttl', kind: 'int', min: 2, max: 300,
    description: 'seconds after which a node that stopped renewing its lease drops out of the cluster',
  },
  {
    path: 'etcd.orphan_ttl', kind: 'int', min: 1, max: INT32,
    description: 'seconds after which the inbox of a node that left the cluster (and did not return) is deleted',
  },
  {
    path: 'etcd.session_wait', kind: 'int', min: 0, max: 300,
    description: 'seconds a client resuming its persistent session waits for the node holding it (or for etcd); then it gets a new one, and the old copy\'s messages follow when its node can hand them over',
  },

  { path: 'http.enable', kind: 'bool', description: 'start the HTTP API service' },
  { path: 'http.host', kind: 'string', pattern: NON_EMPTY, description: 'HTTP API listen address' },
  { path: 'http.port', kind: 'int', ...PORT, description: 'HTTP API listen port' },
  { path: 'http.tokens', kind: 'string-list', description: 'tokens accepted in the x-token header of HTTP API calls' },
  { path: 'http.token_file', kind: 'string', description: 'file of further API tokens, one per line (a mounted Secret); read per request' },

  { path: 'bridge.enable', kind: 'bool', description: 'bridge published messages to the message queue' },
  { path: 'bridge.type', kind: 'enum', values: BRIDGE_TYPES, description: 'bridge back-end' },
  {
    path: 'bridge.buffer', kind: 'int', min: 1, max: INT32,
    description: 'messages waiting for Kafka, at most; a bridged publish beyond it is refused (v5 PUBACK 0x97) and counted',
  },
  { path: 'bridge.kafka.addr', kind: 'string-list', description: 'Kafka brokers (host:port)' },
  { path: 'bridge.kafka.client_id', kind: 'string', description: "the producer's client id; empty means smq-<node id>" },
  { path: 'bridge.kafka.key', kind: 'enum', values: ['topic', 'clientid'], description: "Kafka record key: the MQTT topic or the publisher's client id (order is kept per key)" },
  {
    path: 'bridge.kafka.acks', kind: 'enum', values: ['all', 'leader', 'none'],
    description: 'acknowledgement Kafka gives before a QoS 1/2 publish is acknowledged: all (idempotent producer), leader, none',
  },
  { path: 'bridge.kafka.compression', kind: 'enum', values: ['none', 'gzip'], description: 'compression of record batches' },
  { path: 'bridge.kafka.linger', kind: 'int', min: 0, max: 60000, description: 'milliseconds a batch waits for more messages' },
  { path: 'bridge.kafka.batch_size', kind: 'int', min: 1, max: 100000, description: 'messages in one batch, at most' },
  { path: 'bridge.kafka.timeout', kind: 'int', min: 100, max: 600000, description: 'milliseconds one request to Kafka may take' },
  { path: 'bridge.kafka.tls.enable', kind: 'bool', description: 'talk TLS to Kafka' },
  { path: 'bridge.kafka.tls.ca', kind: 'string', description: 'CA bundle that verifies the Kafka brokers (PEM); empty uses the system CAs' },
  { path: 'bridge.kafka.tls.cert', kind: 'string', description: 'client certificate for Kafka (PEM), with bridge.kafka.tls.key' },
  { path: 'bridge.kafka.tls.key', kind: 'string', description: 'private key of bridge.kafka.tls.cert (PEM)' },
  { path: 'bridge.kafka.tls.verify', kind: 'bool', description: "verify the Kafka brokers' certificates (turn off only for tests)" },
  {
    path: 'bridge.kafka.sasl.mechanism', kind: 'enum', values: ['none', 'plain', 'scram-sha-256', 'scram-sha-512'],
    description: 'SASL authentication to Kafka',
  },
  { path: 'bridge.kafka.sasl.username', kind: 'string', description: 'SASL user' },
  { path: 'bridge.kafka.sasl.password', kind: 'string', description: "SASL user's password (or SMQ_BRIDGE_KAFKA_SASL_PASSWORD)" },

  { path: 'notify.enable', kind: 'bool', description: 'send client and agent notifications' },
  { path: 'notify.type', kind: 'enum', values: NOTIFY_TYPES, description: 'notification transport' },
  {
    path: 'notify.server', kind: 'string', pattern: NON_EMPTY,
    description: 'notification server: host:port (grpc, http), or for http a URL http(s)://host:port/path',
  },
  {
    path: 'notify.queue_size', kind: 'int', min: 1, max: INT32,
    description: 'notifications waiting to be sent, at most; newer ones are dropped (counted as queue_full)',
  },
  { path: 'notify.timeout', kind: 'int', min: 1, max: 600000, description: 'milliseconds one call to the notification server may take' },
  {
    path: 'notify.retries', kind: 'int', min: 0, max: 1000,
    description: 'further attempts after a failed call before a notification is dropped (counted as retries_exhausted)',
  },
  { path: 'notify.backoff', kind: 'int', min: 1, max: 600000, description: 'milliseconds before the first retry, doubled for each further one' },
  { path: 'notify.backoff_max', kind: 'int', min: 1, max: 3600000, description: 'longest wait between retries, in milliseconds' },
  {
    path: 'notify.concurrency', kind: 'int', min: 1, max: 1024,
    description: 'calls to the notification server in flight at once (one client\'s events always go one at a time, in order)',
  },
  {
    path: 'notify.flush_timeout', kind: 'int', min: 0, max: 600000,
    description: 'milliseconds a stopping broker spends sending the notifications still queued',
  },

  {
    path: 'auth.enable', kind: 'bool',
    description: 'require client authentication (false lets anonymous clients connect)',
  },
  { path: 'auth.password_file', kind: 'string', description: 'password file written by `smq passwd`; reloaded on change' },
  ...httpBackend('auth', 'authentication'),
  {
    path: 'auth.jwt.from', kind: 'enum', values: ['password', 'username'],
    description: 'which CONNECT field carries a JWT',
  },
  { path: 'auth.jwt.secret', kind: 'string', description: 'HS256 secret for JWTs; empty disables HS256' },
  { path: 'auth.jwt.jwks_file', kind: 'string', description: 'JWKS file with RS256/ES256 public keys; empty disables them' },
  { path: 'auth.jwt.issuer', kind: 'string', description: 'required JWT iss claim; empty accepts any' },
  { path: 'auth.jwt.audience', kind: 'string', description: 'required JWT aud claim; empty accepts any' },
  {
    path: 'auth.jwt.disconnect_on_expiry', kind: 'bool',
    description: "close a connection when its token's exp passes (v5 DISCONNECT 0xA0, maximum connect time)",
  },
  {
    path: 'auth.max_failures', kind: 'int', min: 0, max: INT32,
    description: 'failed logins from one address before further attempts are slowed; 0 = never slowed',
  },
  { path: 'auth.failure_window', kind: 'int', min: 1, max: DAY, description: 'seconds over which failed logins are counted' },
  {
    path: 'auth.failure_delay', kind: 'int', min: 0, max: 30000,
    description: 'milliseconds the first slowed attempt waits (doubling, at most 30 s)',
  },
  {
    path: 'auth.max_pending', kind: 'int', min: 1, max: 65535,
    description: 'logins from one slowed-down address that may be pending at once; further ones are refused at once (v5 0x9F)',
  },

  { path: 'acl.enable', kind: 'bool', description: 'enforce access control on publish and subscribe' },
  { path: 'acl.file', kind: 'string', description: 'YAML access rules file; reloaded on change' },
  { path: 'acl.default', kind: 'enum', values: ['deny', 'allow'], description: 'what applies when no rule matches' },
  ...httpBackend('acl', 'access control'),

  { path: 'limits.max_connections', kind: 'int', min: 0, max: INT32, description: 'open connections in total; 0 = no limit' },
  {
    path: 'limits.max_connections_per_address', kind: 'int', min: 0, max: INT32,
    description: 'open connections from one IP address; 0 = no limit',
  },
  {
    path: 'limits.connection_rate', kind: 'int', min: 0, max: INT32,
    description: 'new connections per second from one IP address; 0 = no limit',
  },
  {
    path: 'limits.max_sessions', kind: 'int', min: 0, max: INT32,
    description: 'sessions on this node, connected or waiting for their client; a CONNECT that would make one more is refused (0x97); 0 = no limit',
  },
  {
    path: 'limits.max_subscriptions', kind: 'int', min: 0, max: INT32,
    description: 'subscriptions one session may hold; 0 = no limit',
  },
  { path: 'limits.max_topic_levels', kind: 'int', min: 1, max: 65535, description: 'levels in a topic name or filter' },
  { path: 'limits.max_topic_length', kind: 'int', min: 1, max: 65535, description: 'bytes in a topic name or filter' },
  {
    path: 'limits.publish_rate', kind: 'int', min: 0, max: INT32,
    description: 'PUBLISH packets per second from one client (it is slowed, not dropped); 0 = no limit',
  },
  {
    path: 'limits.flapping_max', kind: 'int', min: 0, max: INT32,
    description: 'connections of one client id within flapping_window before it is banned; 0 = off',
  },
  { path: 'limits.flapping_window', kind: 'int', min: 1, max: DAY, description: 'seconds over which connections are counted for flapping' },
  { path: 'limits.flapping_ban', kind: 'int', min: 1, max: DAY, description: 'seconds a flapping client id is refused' },
  { path: 'log.level', kind: 'enum', values: LOG_LEVELS, description: 'log level' },
  {
    path: 'store.dir', kind: 'string',
    description: 'directory for persistent sessions and retained messages; empty keeps them in memory',
  },
  {
    path: 'store.durability', kind: 'enum', values: ['fsync', 'write', 'none'],
    description: 'when an acknowledged message is safe: fsync (power loss), write (process crash), none',
  },
  {
    path: 'store.recover', kind: 'bool',
    description: 'open a damaged store by keeping what is intact (logged) instead of refusing to start',
  },
  {
    path: 'sys_interval', kind: 'int', min: 0, max: DAY,
    description: 'seconds between $SYS updates; 0 turns them off',
  },

  {
    path: 'mqtt.max_keepalive', kind: 'int', ...UINT16,
    description: 'largest keep-alive accepted, in seconds; 0 = no cap',
  },
  // 268435455 is the largest Remaining Length; the 5 extra bytes are the largest fixed header.
  {
    path: 'mqtt.max_packet_size', kind: 'int', min: 1, max: 268435460,
    description: 'largest packet accepted or sent, in bytes',
  },
  // Receive Maximum is a two-byte integer and 0 is a protocol error (MQTT 5.0, 3.2.2.3.3).
  {
    path: 'mqtt.receive_maximum', kind: 'int', min: 1, max: 65535,
    description: 'QoS 1/2 publishes a v5 client may leave unacknowledged',
  },
  {
    path: 'mqtt.max_inflight', kind: 'int', min: 1, max: 65535,
    description: 'outgoing QoS 1/2 in-flight window per session',
  },
  {
    path: 'mqtt.max_queued', kind: 'int', min: 0, max: INT32,
    description: 'messages queued per session beyond the in-flight window',
  },
  {
    path: 'mqtt.topic_alias_maximum', kind: 'int', ...UINT16,
    description: 'topic aliases a v5 client may use; 0 disables them',
  },
  {
    path: 'mqtt.session_expiry_interval', kind: 'int', ...UINT32,
    description: 'session expiry for v3.1.x clients without clean session, in seconds',
  },
  {
    path: 'mqtt.max_session_expiry_interval', kind: 'int', ...UINT32,
    description: 'largest session expiry a v5 client may ask for; 4294967295 = never',
  },
  {
    path: 'mqtt.shared_strategy', kind: 'enum', values: SHARED_STRATEGIES,
    description: 'how a shared subscription group picks a member',
  },
  {
    path: 'mqtt.max_output_buffer', kind: 'int', min: 1, max: INT32,
    description: 'bytes buffered toward one client before it counts as slow',
  },
  {
    path: 'mqtt.slow_consumer_timeout', kind: 'int', min: 0, max: DAY,
    description: 'seconds a client may stay slow before it is disconnected',
  },
  {
    path: 'mqtt.connect_timeout', kind: 'int', min: 1, max: 3600,
    description: 'seconds a new connection has to send CONNECT',
  },
  { path: 'mqtt.retain_available', kind: 'bool', description: 'accept retained messages' },
] as const satisfies readonly KeySpec[];

// Compile-time guards: the build fails if a field of Config has no key here, or if an enum list misses a
// member of its union type, so the schema cannot silently fall behind types.ts.
type AssertNever<T extends never> = T;
type SchemaCoversConfig = AssertNever<Exclude<ConfigPath, (typeof KEYS)[number]['path']>>;
type SchemaCoversEnums = AssertNever<
  | Exclude<LogLevel, (typeof LOG_LEVELS)[number]>
  | Exclude<SharedStrategy, (typeof SHARED_STRATEGIES)[number]>
  | Exclude<Config['bridge']['type'], (typeof BRIDGE_TYPES)[number]>
  | Exclude<Config['notify']['type'], (typeof NOTIFY_TYPES)[number]>
>;

/** Every configuration key, in the order of the docs. */
export const SCHEMA: readonly KeySpec[] = KEYS;

/** Prefix of the environment variables that override configuration keys. */
export const ENV_PREFIX = 'SMQ_';

/** Environment variable that overrides a key: `tls.port` → `SMQ_TLS_PORT`. */
export function envName(path: string): string {
  return ENV_PREFIX + path.replaceAll('.', '_').toUpperCase();
}

/** What a key accepts, in words, for error messages: `an integer from 0 to 65535`. */
export function describeExpected(spec: KeySpec): string {
  switch (spec.kind) {
    case 'string':
      return spec.pattern?.expected ?? 'a string';
    case 'int':
      return `an integer from ${spec.min} to ${spec.max}`;
    case 'bool':
      return 'a boolean (true or false)';
    case 'enum':
      return `one of ${spec.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'string-list':
      return `a list of ${spec.item?.expected ?? 'non-empty strings'}`;
  }
}
