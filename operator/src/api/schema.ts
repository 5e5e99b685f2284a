/**
 * The CustomResourceDefinitions of SmqCluster and SmqBridge, as objects: structural OpenAPI v3 schemas with
 * defaults, validation (CEL where a plain schema cannot say it), status subresources, printer columns, and
 * the scale subresource for SmqCluster. `npm run crds` writes them to `crds/` (crds.test.ts checks it is done).
 * The schema of `spec.config` is made from the broker's own configuration table, so the names, types and
 * bounds are the ones `smq -c` takes.
 */
import { SCHEMA, type KeySpec } from '../../../broker/src/config/schema.js';
import { GROUP, VERSION } from './types.js';

type Schema = Record<string, unknown>;

/**
 * Configuration keys the operator sets itself (listeners, files, cluster identity, etcd, the bridge's Kafka);
 * `spec.config` may not. An entry names a key or a whole section; every other key (`log.level`,
 * `tls.min_version`, `store.durability`, `bridge.buffer`, ...) is the user's.
 */
export const OWNED_CONFIG = [
  'cluster', 'broker', 'name', 'host', 'port',
  'tls.enable', 'tls.port', 'tls.cert', 'tls.key', 'tls.ca', 'tls.verify',
  'ws.enable', 'ws.host', 'ws.port', 'wss.enable', 'wss.host', 'wss.port',
  'etcd', 'http', 'store.dir', 'auth.password_file', 'acl.file',
  'bridge.enable', 'bridge.type', 'bridge.kafka.addr', 'bridge.kafka.tls', 'bridge.kafka.sasl',
] as const;

/** Whether the operator owns a configuration key (itself, or a section it is in). */
export function ownedKey(path: string): boolean {
  return OWNED_CONFIG.some((o) => path === o || path.startsWith(`${o}.`));
}

const str = (extra: Schema = {}): Schema => ({ type: 'string', ...extra });
const int = (extra: Schema = {}): Schema => ({ type: 'integer', ...extra });
const bool = (extra: Schema = {}): Schema => ({ type: 'boolean', ...extra });
const obj = (properties: Record<string, Schema>, extra: Schema = {}): Schema => ({ type: 'object', properties, ...extra });
const stringMap: Schema = { type: 'object', additionalProperties: { type: 'string' } };
/** Kubernetes objects passed through as they are (resources, affinity, tolerations). */
const free: Schema = { type: 'object', 'x-kubernetes-preserve-unknown-fields': true };
const keyRef = (what: string): Schema => obj({ name: str({ minLength: 1 }), key: str({ minLength: 1 }) }, { required: ['name', 'key'], description: what });
const dnsName = str({ minLength: 1, maxLength: 253, pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$' });

/** One broker configuration key as an OpenAPI schema. */
function keySchema(k: KeySpec): Schema {
  const d = { description: k.description };
  switch (k.kind) {
    case 'string': return str(d);
    case 'int': return int({ ...d, minimum: k.min, maximum: k.max });
    case 'bool': return bool(d);
    case 'enum': return str({ ...d, enum: [...k.values] });
    case 'string-list': return { ...d, type: 'array', items: str({ minLength: 1 }) };
  }
}

/** `spec.config`: the broker's configuration tree, less the keys the operator owns. */
export function configSchema(): Schema {
  const root: Schema = obj({}, {
    description: 'smq configuration, with the names of the YAML file (README "Configuration"); keys the operator sets are not accepted here',
  });
  for (const k of SCHEMA) {
    const parts = k.path.split('.');
    if (ownedKey(k.path)) continue;
    let node = root;
    for (const [i, part] of parts.entries()) {
      const props = node['properties'] as Record<string, Schema>;
      if (i === parts.length - 1) props[part] = keySchema(k);
      else node = props[part] ??= obj({});
    }
  }
  return root;
}

const condition = obj({
  type: str(), status: str({ enum: ['True', 'False', 'Unknown'] }), reason: str(), message: str(),
  lastTransitionTime: str({ format: 'date-time' }), observedGeneration: int({ format: 'int64', minimum: 0 }),
}, { required: ['type', 'status', 'reason', 'lastTransitionTime'] });
const conditions: Schema = {
  type: 'array', items: condition, 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'],
};

function smqClusterSchema(): Schema {
  const port = (def: number): Schema => int({ minimum: 1, maximum: 65535, default: def });
  const spec = obj({
    replicas: int({ minimum: 0, maximum: 100, default: 3, description: 'broker pods' }),
    image: str({ minLength: 1, default: 'smq:0.1.0', description: 'the smq container image' }),
    imagePullPolicy: str({ enum: ['Always', 'IfNotPresent', 'Never'], default: 'IfNotPresent' }),
    imagePullSecrets: { type: 'array', items: obj({ name: str({ minLength: 1 }) }, { required: ['name'] }), description: 'Secrets for pulling the image from a private registry' },
    config: configSchema(),
    etcd: obj({
      endpoints: { type: 'array', minItems: 1, items: str({ minLength: 1 }), description: 'etcd endpoints (host:port)' },
      tlsSecret: str({ description: 'Secret with ca.crt, and tls.crt + tls.key for client certificates' }),
      authSecret: str({ description: 'Secret with username and password' }),
    }, { required: ['endpoints'] }),
    tls: obj({
      secretName: str({ minLength: 1, description: 'Secret with tls.crt, tls.key (and ca.crt to verify clients); a cert-manager Certificate secret fits' }),
      verifyClients: bool({ default: false, description: 'mutual TLS: require client certificates signed by ca.crt' }),
    }, { required: ['secretName'] }),
    auth: obj({ passwordFile: keyRef('password file (smq passwd format): turns authentication on') }, { required: ['passwordFile'] }),
    acl: obj({
      rules: keyRef('ACL rules (YAML): turns access control on'),
      fromSecret: bool({ default: false, description: 'rules come from a Secret rather than a ConfigMap' }),
    }, { required: ['rules'] }),
    apiToken: keyRef('HTTP API token; the operator creates a Secret with one when absent'),
    service: obj({
      type: str({ enum: ['ClusterIP', 'NodePort', 'LoadBalancer'], default: 'ClusterIP' }),
      annotations: stringMap,
      ports: obj({ mqtt: port(1883), mqtts: port(8883), ws: port(8083), wss: port(8084) }, { default: {} }),
    }, { default: {} }),
    resources: free,
    storage: obj({
      size: str({ default: '1Gi', pattern: '^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$' }),
      storageClassName: str(),
    }, {
      default: {},
      // The StatefulSet's volume claim templates cannot change: say so here rather than fail in the operator.
      'x-kubernetes-validations': [{ rule: 'self == oldSelf', message: 'storage cannot change after creation (the StatefulSet\'s volume claims are immutable)' }],
    }),
    nodeSelector: stringMap,
    tolerations: { type: 'array', items: free },
    affinity: free,
    podDisruptionBudget: obj({ enabled: bool({ default: true }), maxUnavailable: int({ minimum: 1, default: 1 }) }, { default: {} }),
    metrics: obj({
      serviceMonitor: bool({ default: false, description: 'create a Prometheus Operator ServiceMonitor (when its CRD exists)' }),
      interval: str({ default: '30s', pattern: '^[0-9]+(ms|s|m|h)$' }),
    }, { default: {} }),
    terminationGracePeriodSeconds: int({ minimum: 5, maximum: 3600, default: 60, description: 'seconds a pod has to drain' }),
  }, {
    required: ['etcd'],
    'x-kubernetes-validations': [
      { rule: '!has(self.config) || !has(self.config.mqtt) || !has(self.config.mqtt.max_inflight) || self.config.mqtt.max_inflight >= 1', message: 'config.mqtt.max_inflight must be at least 1' },
      { rule: '!has(self.tls) || !self.tls.verifyClients || size(self.tls.secretName) > 0', message: 'tls.verifyClients needs tls.secretName (its ca.crt)' },
    ],
  });
  const status = obj({
    observedGeneration: int({ format: 'int64' }),
    replicas: int(),
    readyReplicas: int(),
    selector: str(),
    nodes: { type: 'array', items: obj({ name: str(), ready: bool(), connections: int() }, { required: ['name'] }) },
    conditions,
  });
  return obj({ apiVersion: str(), kind: str(), metadata: obj({}), spec, status }, {
    required: ['spec'],
    // Pod names (`<name>-<n>`), `<name>-headless` and the controller-revision label must stay within 63
    // characters; a name too long would only fail later, in the StatefulSet.
    'x-kubernetes-validations': [{ rule: 'self.metadata.name.size() <= 47', message: 'metadata.name must be at most 47 characters (its pods and Services add suffixes)' }],
  });
}

function smqBridgeSchema(): Schema {
  const mapping = obj({
    topic: str({ minLength: 1, maxLength: 65535, description: 'MQTT topic filter (wildcards allowed), not starting with $', pattern: '^[^$]' }),
    queue: str({ minLength: 1, maxLength: 249, pattern: '^[a-zA-Z0-9._-]+$', description: 'Kafka topic' }),
    key: str({ enum: ['topic', 'clientid'], default: 'topic', description: 'Kafka record key: the MQTT topic or the publisher\'s client id' }),
  }, { required: ['topic', 'queue'] });
  const spec = obj({
    cluster: dnsName,
    kafka: obj({
      bootstrapServers: { type: 'array', minItems: 1, items: str({ minLength: 1, pattern: '^[^:]+:[0-9]+$' }) },
      tls: obj({ secretName: str({ minLength: 1, description: 'Secret with ca.crt (and tls.crt + tls.key)' }) }, { required: ['secretName'] }),
      sasl: obj({
        mechanism: str({ enum: ['plain', 'scram-sha-256', 'scram-sha-512'] }),
        secretName: str({ minLength: 1, description: 'Secret with username and password' }),
      }, { required: ['mechanism', 'secretName'] }),
    }, { required: ['bootstrapServers'] }),
    mappings: {
      // A map list keyed by (topic, queue): the API server itself refuses a pair given twice, and server-side
      // apply merges mappings one by one.
      type: 'array', minItems: 1, maxItems: 1000, items: mapping,
      'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['topic', 'queue'],
    },
  }, { required: ['cluster', 'kafka', 'mappings'] });
  const status = obj({
    observedGeneration: int({ format: 'int64' }),
    mappings: { type: 'array', items: obj({ id: str(), topic: str(), queue: str(), key: str() }) },
    conditions,
  });
  return obj({ apiVersion: str(), kind: str(), metadata: obj({}), spec, status }, { required: ['spec'] });
}

const ready = { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' };
const age = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

function crd(kind: string, plural: string, shortNames: string[], schema: Schema, columns: Schema[], scale: boolean): Schema {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.${GROUP}`, labels: { 'app.kubernetes.io/part-of': 'smq' } },
    spec: {
      group: GROUP,
      scope: 'Namespaced',
      names: { kind, listKind: `${kind}List`, plural, singular: kind.toLowerCase(), shortNames, categories: ['smq'] },
      versions: [{
        name: VERSION,
        served: true,
        storage: true,
        schema: { openAPIV3Schema: schema },
        subresources: scale
          ? { status: {}, scale: { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' } }
          : { status: {} },
        additionalPrinterColumns: [...columns, ready, age],
      }],
    },
  };
}

/** The SmqCluster CRD. */
export function smqClusterCrd(): Schema {
  return crd('SmqCluster', 'smqclusters', ['smq'], smqClusterSchema(), [
    { name: 'Replicas', type: 'integer', jsonPath: '.spec.replicas' },
    { name: 'Ready-Replicas', type: 'integer', jsonPath: '.status.readyReplicas' },
    { name: 'Image', type: 'string', jsonPath: '.spec.image', priority: 1 },
  ], true);
}

/** The SmqBridge CRD. */
export function smqBridgeCrd(): Schema {
  return crd('SmqBridge', 'smqbridges', ['smqb'], smqBridgeSchema(), [
    { name: 'Cluster', type: 'string', jsonPath: '.spec.cluster' },
    { name: 'Kafka', type: 'string', jsonPath: '.spec.kafka.bootstrapServers[0]' },
  ], false);
}
