/**
 * The broker's configuration, in the seed's YAML shape. Every key the seed names keeps its name and
 * meaning; new keys follow the same snake_case style. Helm values and the SmqCluster spec use these names.
 */

/** Log levels understood by pino. */
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

/** How a shared-subscription group picks the member that receives a message. */
export type SharedStrategy = 'round_robin' | 'random' | 'hash_clientid' | 'hash_topic';

/** TLS listener settings (the seed's `tls` block). */
export interface TlsConfig {
  readonly enable: boolean;
  /** Require and verify a client certificate (mutual TLS). */
  readonly verify: boolean;
  readonly cert: string;
  readonly key: string;
  /** CA bundle used to verify client certificates when `verify` is on. */
  readonly ca: string;
  readonly port: number;
}

/** MQTT over WebSocket listener. */
export interface WsConfig {
  readonly enable: boolean;
  /** Listen address; empty means the top-level `host`. */
  readonly host: string;
  readonly port: number;
  readonly path: string;
}

/** Protocol limits and behaviour. */
export interface MqttConfig {
  /** Largest keep-alive the broker accepts; larger requests get Server Keep Alive in v5 CONNACK. 0 = no cap. */
  readonly max_keepalive: number;
  /** Largest packet accepted from or sent to a client, in bytes. */
  readonly max_packet_size: number;
  /** Receive Maximum announced to v5 clients: how many QoS 1/2 publishes they may have unacknowledged. */
  readonly receive_maximum: number;
  /** Outgoing in-flight QoS 1/2 window per session (capped by the client's Receive Maximum). */
  readonly max_inflight: number;
  /** Messages queued per session beyond the in-flight window; the oldest QoS 0 go first, then new ones are dropped. */
  readonly max_queued: number;
  /** Topic Alias Maximum announced to v5 clients (0 disables inbound aliases). */
  readonly topic_alias_maximum: number;
  /** Session expiry, in seconds, for v3.1.x clients that connect with clean session 0. */
  readonly session_expiry_interval: number;
  /** Upper bound on the session expiry a v5 client may ask for, in seconds. */
  readonly max_session_expiry_interval: number;
  /** Strategy used to pick one member of a shared-subscription group. */
  readonly shared_strategy: SharedStrategy;
  /** Bytes buffered toward one client before it counts as slow. */
  readonly max_output_buffer: number;
  /** Seconds a client may stay slow (output buffer full) before it is disconnected. */
  readonly slow_consumer_timeout: number;
  /** Seconds a new connection has to send CONNECT. */
  readonly connect_timeout: number;
  readonly retain_available: boolean;
}

/** The whole configuration, frozen once loaded. */
export interface Config {
  /** Cluster name. */
  readonly cluster: string;
  /** Node id; generated when empty. */
  readonly broker: string;
  /** Node name. */
  readonly name: string;
  /** Worker pool size: bounds concurrent asynchronous hook calls (auth, notifications). */
  readonly worker: number;
  /** MQTT listen address. */
  readonly host: string;
  /** MQTT listen port. */
  readonly port: number;
  readonly tls: TlsConfig;
  readonly ws: WsConfig;
  readonly etcd: { readonly endpoints: readonly string[] };
  readonly http: {
    readonly enable: boolean;
    readonly host: string;
    readonly port: number;
    readonly tokens: readonly string[];
  };
  readonly bridge: {
    readonly enable: boolean;
    readonly type: 'kafka';
    readonly kafka: { readonly addr: readonly string[] };
  };
  readonly notify: { readonly enable: boolean; readonly type: 'grpc' | 'http'; readonly server: string };
  readonly auth: { readonly enable: boolean };
  readonly acl: { readonly enable: boolean };
  readonly log: { readonly level: LogLevel };
  readonly store: { readonly dir: string };
  /** Seconds between `$SYS/broker/...` updates; 0 turns them off. */
  readonly sys_interval: number;
  readonly mqtt: MqttConfig;
}
