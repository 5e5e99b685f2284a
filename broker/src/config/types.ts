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
  /** Oldest TLS version accepted. */
  readonly min_version: 'TLSv1.2' | 'TLSv1.3';
  /** OpenSSL cipher list; empty keeps Node's default. */
  readonly ciphers: string;
  /** Take the username from the verified client certificate: its CN, or its first SAN (DNS, email or URI). */
  readonly cert_username: 'none' | 'cn' | 'san';
  /** Read a PROXY protocol header from trusted proxies before the TLS handshake. */
  readonly proxy_protocol: boolean;
}

/** MQTT over WebSocket listener. */
export interface WsConfig {
  readonly enable: boolean;
  /** Listen address; empty means the top-level `host`. */
  readonly host: string;
  readonly port: number;
  readonly path: string;
  /** Read a PROXY protocol header from trusted proxies before the HTTP upgrade. */
  readonly proxy_protocol: boolean;
}

/** MQTT over secure WebSocket (wss), using the certificates of the `tls` block. */
export interface WssConfig {
  readonly enable: boolean;
  /** Listen address; empty means the top-level `host`. */
  readonly host: string;
  readonly port: number;
  readonly path: string;
  /** Read a PROXY protocol header from trusted proxies before the TLS handshake. */
  readonly proxy_protocol: boolean;
}

/** Load balancers and proxies in front of the broker (`proxy.*`). */
export interface ProxyConfig {
  /**
   * Addresses and CIDR ranges of the proxies whose PROXY headers and X-Forwarded-For are believed; from any
   * other peer neither is read. Empty (the default): every peer is the client itself.
   */
  readonly trusted: readonly string[];
}

/** An HTTP service that answers authentication or ACL questions. */
export interface HttpBackendConfig {
  /** URL POSTed to with a JSON body; empty turns the backend off. */
  readonly url: string;
  /** Milliseconds to wait for an answer. */
  readonly timeout: number;
  /** Seconds an answer is cached; 0 disables the cache. */
  readonly cache_ttl: number;
  /** What a timeout or error means: deny (default) or allow. */
  readonly on_error: 'deny' | 'allow';
}

/** Authentication (the seed's `auth` block, extended). */
export interface AuthConfig {
  /** Refuse clients that no backend accepts (the seed's meaning: true = authentication required). */
  readonly enable: boolean;
  /** Password file written by `smq passwd`; reloaded when it changes. */
  readonly password_file: string;
  readonly http: HttpBackendConfig;
  readonly jwt: {
    /** Where the token is read from: the MQTT password (default) or the username. */
    readonly from: 'password' | 'username';
    /** HS256 secret; empty disables HS256. */
    readonly secret: string;
    /** JWKS file with RS256/ES256 public keys; empty disables them. */
    readonly jwks_file: string;
    /** Required `iss`, if not empty. */
    readonly issuer: string;
    /** Required `aud`, if not empty. */
    readonly audience: string;
    /** Close a connection when its token's `exp` passes (v5 DISCONNECT 0xA0). */
    readonly disconnect_on_expiry: boolean;
  };
  /** Failed logins from one address within `failure_window` seconds before new attempts are slowed down. */
  readonly max_failures: number;
  readonly failure_window: number;
  /** Milliseconds each further attempt from that address waits before it is answered (doubling, capped at 30 s). */
  readonly failure_delay: number;
  /** Logins of one slowed-down address pending at once; further ones are refused at once (0x9F). */
  readonly max_pending: number;
}

/** Access control (the seed's `acl` block, extended). */
export interface AclConfig {
  readonly enable: boolean;
  /** YAML rules file; reloaded when it changes. */
  readonly file: string;
  /** What applies when no rule matches. */
  readonly default: 'deny' | 'allow';
  readonly http: HttpBackendConfig;
}

/** Limits that keep one client from hurting the others. 0 turns a limit off where noted. */
export interface LimitsConfig {
  /** Open connections in total; 0 = no limit. */
  readonly max_connections: number;
  /** Open connections from one IP address; 0 = no limit. */
  readonly max_connections_per_address: number;
  /** New connections per second from one IP address (token bucket, burst of the same size); 0 = no limit. */
  readonly connection_rate: number;
  /** Subscriptions one session may hold; 0 = no limit. */
  readonly max_subscriptions: number;
  /** Sessions on this node, connected or waiting for their client; a CONNECT that would make one more is refused. */
  readonly max_sessions: number;
  /** Levels in a topic name or filter. */
  readonly max_topic_levels: number;
  /** Bytes in a topic name or filter. */
  readonly max_topic_length: number;
  /** PUBLISH packets per second from one client (token bucket; the client is slowed, not dropped); 0 = no limit. */
  readonly publish_rate: number;
  /** Flapping detection: a client id connecting more than `flapping_max` times within `flapping_window` seconds is refused for `flapping_ban` seconds. 0 turns it off. */
  readonly flapping_max: number;
  readonly flapping_window: number;
  readonly flapping_ban: number;
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

/** etcd, for clustering (empty endpoints: standalone). */
export interface EtcdConfig {
  readonly endpoints: readonly string[];
  readonly username: string;
  readonly password: string;
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
  readonly lease_ttl: number;
  readonly orphan_ttl: number;
  /** Seconds a client resuming its persistent session waits for the node holding it, or for etcd. */
  readonly session_wait: number;
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
  /** Read a PROXY protocol header from trusted proxies on the MQTT (TCP) listener. */
  readonly proxy_protocol: boolean;
  readonly tls: TlsConfig;
  readonly ws: WsConfig;
  readonly wss: WssConfig;
  readonly proxy: ProxyConfig;
  readonly etcd: EtcdConfig;
  readonly http: {
    readonly enable: boolean;
    readonly host: string;
    readonly port: number;
    readonly tokens: readonly string[];
    readonly token_file: string;
  };
  readonly bridge: BridgeConfig;
  readonly notify: {
    readonly enable: boolean;
    readonly type: 'grpc' | 'http';
    /** `host:port`; for `http` also a full `http(s)://host:port/path` URL. */
    readonly server: string;
    /** Events waiting to be sent, at most; newer ones are dropped (and counted) beyond it. */
    readonly queue_size: number;
    /** Milliseconds one call to the notification server may take. */
    readonly timeout: number;
    /** Further attempts after a failed one before an event is dropped. */
    readonly retries: number;
    /** Milliseconds before the first retry; doubled for each further one. */
    readonly backoff: number;
    /** Largest wait between retries, in milliseconds. */
    readonly backoff_max: number;
    /** Calls in flight at once (events of one client always go one at a time, in order). */
    readonly concurrency: number;
    /** Milliseconds a stopping broker spends sending what is still queued. */
    readonly flush_timeout: number;
  };
  readonly auth: AuthConfig;
  readonly acl: AclConfig;
  readonly limits: LimitsConfig;
  readonly log: { readonly level: LogLevel };
  readonly store: {
    readonly dir: string;
    /**
     * When an acknowledged message is safe: `fsync` (after the commit reached the disk; survives power loss),
     * `write` (committed without fsync; survives a process crash), `none` (acknowledged at once; the last
     * moments may be lost in a crash).
     */
    readonly durability: 'fsync' | 'write' | 'none';
    /** Open a damaged store by keeping what is intact (logged), instead of refusing to start. */
    readonly recover: boolean;
  };
  /** Seconds between `$SYS/broker/...` updates; 0 turns them off. */
  readonly sys_interval: number;
  readonly mqtt: MqttConfig;
}

/** `bridge.*`: the Kafka bridge (the seed's `enable`, `type`, `kafka.addr`, and the producer's settings). */
export interface BridgeConfig {
  readonly enable: boolean;
  readonly type: 'kafka';
  /** Messages waiting for Kafka, at most; a bridged publish beyond it is refused (v5 0x97) and counted. */
  readonly buffer: number;
  readonly kafka: {
    readonly addr: readonly string[];
    /** The producer's client id; empty means `smq-<node id>`. */
    readonly client_id: string;
    /** Kafka record key: the MQTT topic, or the publisher's client id. */
    readonly key: 'topic' | 'clientid';
    /** `all` (with the idempotent producer), `leader` or `none`. */
    readonly acks: 'all' | 'leader' | 'none';
    readonly compression: 'none' | 'gzip';
    /** Milliseconds a batch waits for more messages before it is sent. */
    readonly linger: number;
    /** Messages in one batch, at most. */
    readonly batch_size: number;
    /** Milliseconds one request to Kafka may take. */
    readonly timeout: number;
    readonly tls: { readonly enable: boolean; readonly ca: string; readonly cert: string; readonly key: string; readonly verify: boolean };
    readonly sasl: {
      readonly mechanism: 'none' | 'plain' | 'scram-sha-256' | 'scram-sha-512';
      readonly username: string;
      readonly password: string;
    };
  };
}
