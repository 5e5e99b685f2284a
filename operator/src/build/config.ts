/**
 * The smq YAML of an SmqCluster: `spec.config` (the user's keys, with the broker's own names) under the keys
 * the operator owns (listeners, files, etcd, store, HTTP, bridge). What is secret never lands here: the node
 * id, the etcd user and password and the Kafka SASL user and password reach the broker as `SMQ_*`
 * environment variables (statefulset.ts), which the broker's loader lays over the file.
 */
import { createHash } from 'node:crypto';
import { stringify } from 'yaml';
import type { SmqBridge, SmqCluster } from '../api/types.js';
import { PATHS, PORTS, TLS_KEYS } from './layout.js';
import { names } from './names.js';

/** A configuration tree (YAML mappings as plain objects). */
export type ConfigTree = { [key: string]: unknown };

/**
 * The keys the TLS Secrets hold. Builders read no Secrets, and the files the config may name depend on them
 * (a CA-only Secret has no client certificate; the broker refuses to start on a file it cannot read), so the
 * controller passes the keys it saw. Absent: `ca.crt` only.
 */
export interface TlsSecretKeys {
  /** Keys of `spec.etcd.tlsSecret`. */
  readonly etcd?: readonly string[];
  /** Keys of the SmqBridge's `kafka.tls.secretName`. */
  readonly kafka?: readonly string[];
}

/** The smq configuration for the ConfigMap: as an object, as YAML text, and the hash of that text. */
export interface SmqConfig {
  readonly config: ConfigTree;
  readonly text: string;
  /** {@link configHash} of `text`, for the pod template's annotation. */
  readonly hash: string;
}

/**
 * The smq configuration of `cluster` (and of its `bridge`, when one is given). Deterministic: keys are sorted,
 * so the same SmqCluster always gives the same text and hash whatever order the API server returned its
 * `spec.config` in.
 */
export function smqConfig(cluster: SmqCluster, bridge?: SmqBridge, secretKeys: TlsSecretKeys = {}): SmqConfig {
  if (bridge !== undefined && (bridge.spec.cluster !== cluster.metadata.name || bridge.metadata.namespace !== cluster.metadata.namespace)) {
    throw new Error(`SmqBridge ${bridge.metadata.namespace}/${bridge.metadata.name} belongs to ${bridge.spec.cluster}, not ${cluster.metadata.name}`);
  }
  const config = sortDeep(merge(cluster.spec.config ?? {}, owned(cluster, bridge, secretKeys)));
  const header = `# smq configuration of SmqCluster ${cluster.metadata.namespace}/${cluster.metadata.name}, written by smq-operator;\n`
    + '# change the SmqCluster, not this ConfigMap. Node id and passwords come from the environment (SMQ_*).\n';
  const text = header + stringify(config, { lineWidth: 0, sortMapEntries: true });
  return { config, text, hash: configHash(text) };
}

/** sha256 of the config text, first 16 hex digits: short enough for an annotation, long enough never to collide in practice. */
export function configHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

/** The keys the operator sets; they win over `spec.config` (which the CRD already keeps them out of). */
function owned(cluster: SmqCluster, bridge: SmqBridge | undefined, secretKeys: TlsSecretKeys): ConfigTree {
  const spec = cluster.spec;
  const out: ConfigTree = {
    cluster: names(cluster).smqCluster,
    host: '0.0.0.0',
    port: PORTS.mqtt,
    ws: { enable: true, port: PORTS.ws },
    ...listenersTls(cluster),
    etcd: { endpoints: [...spec.etcd.endpoints], ...tlsFiles(spec.etcd.tlsSecret, PATHS.etcd, secretKeys.etcd) },
    store: { dir: PATHS.data },
    http: { enable: true, host: '0.0.0.0', port: PORTS.http, token_file: PATHS.tokenFile },
    bridge: bridge === undefined ? { enable: false } : bridgeConfig(bridge, secretKeys.kafka),
    log: { level: userLogLevel(spec.config) ?? 'info' },
  };
  if (spec.auth !== undefined) out['auth'] = { enable: true, password_file: PATHS.authFile };
  if (spec.acl !== undefined) out['acl'] = { enable: true, file: PATHS.aclFile };
  return out;
}

/**
 * MQTT over TLS and secure WebSocket, both from `spec.tls` (the broker uses one certificate for both). The CA
 * is named only for mutual TLS: it verifies clients, and a Secret without `ca.crt` must still work without it.
 */
function listenersTls(cluster: SmqCluster): ConfigTree {
  const tls = cluster.spec.tls;
  if (tls === undefined) return { tls: { enable: false }, wss: { enable: false } };
  const verify = tls.verifyClients === true;
  return {
    tls: {
      enable: true,
      port: PORTS.mqtts,
      cert: `${PATHS.tls}/${TLS_KEYS.cert}`,
      key: `${PATHS.tls}/${TLS_KEYS.key}`,
      verify,
      ...(verify ? { ca: `${PATHS.tls}/${TLS_KEYS.ca}` } : {}),
    },
    wss: { enable: true, port: PORTS.wss },
  };
}

/** `ca`, and `cert` + `key` when the Secret holds a client certificate, as files under `dir`. */
function tlsFiles(secret: string | undefined, dir: string, keys: readonly string[] = [TLS_KEYS.ca]): ConfigTree {
  if (secret === undefined) return {};
  const out: ConfigTree = {};
  if (keys.includes(TLS_KEYS.ca)) out['ca'] = `${dir}/${TLS_KEYS.ca}`;
  if (keys.includes(TLS_KEYS.cert) && keys.includes(TLS_KEYS.key)) {
    out['cert'] = `${dir}/${TLS_KEYS.cert}`;
    out['key'] = `${dir}/${TLS_KEYS.key}`;
  }
  return out;
}

/**
 * `bridge.*` for an SmqBridge. The broker has one record key for all mappings (`bridge.kafka.key`): it is
 * `clientid` when every mapping asks for it, `topic` otherwise (the broker's default).
 */
function bridgeConfig(bridge: SmqBridge, kafkaKeys: readonly string[] | undefined): ConfigTree {
  const kafka = bridge.spec.kafka;
  const byClient = bridge.spec.mappings.length > 0 && bridge.spec.mappings.every((m) => m.key === 'clientid');
  return {
    enable: true,
    type: 'kafka',
    kafka: {
      addr: [...kafka.bootstrapServers],
      key: byClient ? 'clientid' : 'topic',
      tls: kafka.tls === undefined ? { enable: false } : { enable: true, ...tlsFiles(kafka.tls.secretName, PATHS.kafka, kafkaKeys) },
      // The user and password come from the Secret through SMQ_BRIDGE_KAFKA_SASL_USERNAME / _PASSWORD.
      sasl: { mechanism: kafka.sasl?.mechanism ?? 'none' },
    },
  };
}

/** `log.level` as `spec.config` gives it, if it does (`log` is an owned section, but the level is the user's call). */
function userLogLevel(config: Readonly<Record<string, unknown>> | undefined): string | undefined {
  const log = config?.['log'];
  if (!isTree(log)) return undefined;
  const level = log['level'];
  return typeof level === 'string' ? level : undefined;
}

/** `over` laid on `base`, mapping by mapping; lists and scalars of `over` replace those of `base`. */
function merge(base: Readonly<ConfigTree>, over: Readonly<ConfigTree>): ConfigTree {
  const out: ConfigTree = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const under = out[key];
    out[key] = isTree(under) && isTree(value) ? merge(under, value) : value;
  }
  return out;
}

/** A copy with the keys of every mapping in order. */
function sortDeep(tree: Readonly<ConfigTree>): ConfigTree {
  const out: ConfigTree = {};
  for (const key of Object.keys(tree).sort()) {
    const value = tree[key];
    out[key] = isTree(value) ? sortDeep(value) : value;
  }
  return out;
}

function isTree(value: unknown): value is ConfigTree {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
