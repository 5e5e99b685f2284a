/**
 * The layout of an smq pod: listener ports and the paths where the configuration, Secrets and data are
 * mounted. The smq YAML (config.ts) and the pod (statefulset.ts, volumes.ts) both read them from here, so a
 * file the config names is always the file the pod mounts.
 */

/** Container ports of the broker; the operator owns them (`spec.config` cannot move a listener). */
export const PORTS = {
  mqtt: 1883,
  mqtts: 8883,
  ws: 8083,
  /** Secure WebSocket, opened with TLS. */
  wss: 8084,
  /** HTTP API, /healthz, /readyz, /metrics. */
  http: 8888,
} as const;

/** Where things are in the container. */
export const PATHS = {
  /** The smq YAML, given to the broker as `-c`. */
  configFile: '/etc/smq/smq.yaml',
  /** `spec.tls.secretName`: tls.crt, tls.key, ca.crt. */
  tls: '/etc/smq/tls',
  /** `spec.etcd.tlsSecret`: ca.crt, tls.crt, tls.key. */
  etcd: '/etc/smq/etcd',
  /** `spec.auth.passwordFile`, as the file `passwd`. */
  authFile: '/etc/smq/auth/passwd',
  /** `spec.acl.rules`, as the file `acl.yaml`. */
  aclFile: '/etc/smq/acl/acl.yaml',
  /** The HTTP API token, as the file `token`. */
  tokenFile: '/etc/smq/api/token',
  /** The SmqBridge's `kafka.tls.secretName`: ca.crt, tls.crt, tls.key. */
  kafka: '/etc/smq/kafka',
  /** `store.dir`, on the PersistentVolumeClaim. */
  data: '/var/lib/smq',
  /** A small writable directory; the root filesystem is read-only. */
  tmp: '/tmp',
} as const;

/** The user and group the broker runs as (the image's non-root user). */
export const RUN_AS = 10001;

/** Pod-template annotation with the hash of the smq YAML: a config change changes the template and rolls the pods. */
export const CONFIG_HASH_ANNOTATION = 'smq.sestack.io/config-hash';

/** The key of the ConfigMap that holds the smq YAML. */
export const CONFIG_KEY = 'smq.yaml';

/** The key of the Secret the operator creates for the HTTP API token. */
export const TOKEN_KEY = 'token';

/** Keys of a TLS Secret (kubernetes.io/tls and cert-manager's layout). */
export const TLS_KEYS = { ca: 'ca.crt', cert: 'tls.crt', key: 'tls.key' } as const;
