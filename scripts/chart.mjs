#!/usr/bin/env node
// Keeps charts/smq in step with the CRDs (`npm run chart` runs it, then scripts/manifests.mjs):
//   - charts/smq/crds/*.yaml: copies of crds/*.yaml (Helm installs a chart's crds/ before its templates);
//   - charts/smq/values.schema.json: the JSON Schema of the chart's values. Its `cluster` and `bridges` parts
//     are made from the CRDs' spec schemas, so `helm install` refuses what the API server would, under the
//     same names (and, unlike the API server, which drops unknown fields, an unknown key too: a typo in
//     cluster.config stops the install instead of vanishing). The rest is written out below.
// With --check it writes nothing and exits 1 naming every file that differs (test 93 runs it).
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { parse } from 'yaml';

const root = new URL('../', import.meta.url);
const chart = new URL('charts/smq/', root);
const check = process.argv.includes('--check');

/** Every file this script owns, path (relative to the repository) -> text. */
function files() {
  const out = new Map();
  const crdDir = new URL('crds/', root);
  const crds = {};
  for (const name of readdirSync(crdDir).filter((f) => f.endsWith('.yaml')).sort()) {
    const text = readFileSync(new URL(name, crdDir), 'utf8');
    out.set(`charts/smq/crds/${name}`, text);
    const crd = parse(text);
    crds[crd.spec.names.kind] = crd.spec.versions.find((v) => v.storage).schema.openAPIV3Schema.properties.spec;
  }
  out.set('charts/smq/values.schema.json', `${JSON.stringify(valuesSchema(crds), null, 2)}\n`);
  return out;
}

/**
 * An OpenAPI (structural CRD) schema as a JSON Schema for values: x-kubernetes-* keywords dropped (CEL rules
 * have no JSON Schema form), objects with listed properties closed to others, objects that keep unknown
 * fields (resources, affinity, tolerations) left open.
 */
function fromOpenApi(schema) {
  if (Array.isArray(schema)) return schema.map(fromOpenApi);
  if (schema === null || typeof schema !== 'object') return schema;
  const out = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key.startsWith('x-kubernetes-')) continue;
    // Names of properties are data, not keywords: only their schemas are converted.
    out[key] = key === 'properties'
      ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fromOpenApi(v)]))
      : fromOpenApi(value);
  }
  if (schema.type === 'object' && schema.properties && !schema['x-kubernetes-preserve-unknown-fields'] && !('additionalProperties' in schema)) {
    out.additionalProperties = false;
  }
  return out;
}

const str = (description, extra = {}) => ({ type: 'string', description, ...extra });
const int = (description, extra = {}) => ({ type: 'integer', description, ...extra });
const bool = (description) => ({ type: 'boolean', description });
const obj = (description, properties, extra = {}) => ({ type: 'object', description, properties, additionalProperties: false, ...extra });
const stringMap = (description) => ({ type: 'object', description, additionalProperties: { type: 'string' } });
/** Kubernetes objects passed through as they are. */
const free = (description) => ({ type: 'object', description });
const list = (description, items = { type: 'object' }) => ({ type: 'array', description, items });
const quantity = (description) => str(description, { pattern: '^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$' });
const dnsLabel = { pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 63 };
const pullPolicy = str('image pull policy', { enum: ['Always', 'IfNotPresent', 'Never'] });
const pod = {
  podAnnotations: stringMap('annotations of the pods'),
  priorityClassName: str('PriorityClass of the pods'),
  nodeSelector: stringMap('nodeSelector of the pods'),
  tolerations: list('tolerations of the pods'),
  affinity: free('affinity of the pods'),
};

/** The values' JSON Schema; `crds` maps kind -> the CRD's spec schema. */
function valuesSchema(crds) {
  // cluster.*: the SmqCluster spec, plus enabled and name. The chart fills in image and etcd.endpoints when
  // they are empty, so neither is required here; `fail` in the templates covers a cluster with no etcd.
  const cluster = fromOpenApi(crds.SmqCluster);
  delete cluster.required;
  cluster.description = 'an SmqCluster: the fields of its spec (kubectl explain smqcluster.spec), plus enabled and name';
  cluster.properties = {
    enabled: bool('create an SmqCluster'),
    name: str('its name; empty: the full name', { ...dnsLabel, pattern: `^$|${dnsLabel.pattern}` }),
    ...cluster.properties,
    image: str('the broker image; empty: image.repository:image.tag'),
  };
  delete cluster.properties.etcd.properties.endpoints.minItems;
  cluster.properties.etcd.properties.endpoints.description = "etcd endpoints (host:port); empty: the chart's etcd";

  // bridges[]: the SmqBridge spec, plus name; cluster defaults to the chart's SmqCluster.
  const bridge = fromOpenApi(crds.SmqBridge);
  bridge.description = 'an SmqBridge: the fields of its spec (kubectl explain smqbridge.spec), plus name';
  bridge.required = ['name', ...bridge.required.filter((r) => r !== 'cluster')];
  bridge.properties = { name: str('the SmqBridge name', { minLength: 1, maxLength: 253, pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$' }), ...bridge.properties };
  bridge.properties.cluster.description = "the SmqCluster to bridge; default: the chart's";

  const resources = free('container resources (requests, limits)');
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $comment: 'Generated by scripts/chart.mjs (npm run chart) from the CRDs in crds/ and the sections written in the script; do not edit.',
    title: 'smq chart values',
    type: 'object',
    additionalProperties: false,
    properties: {
      global: free('values shared with subcharts (Helm\'s own convention; unused by this chart)'),
      nameOverride: str('override the chart name in object names and labels'),
      fullnameOverride: str('override the prefix of every object name (cut to 40 characters)'),
      image: obj('the smq image (broker and operator)', {
        repository: str('image repository', { minLength: 1 }),
        tag: str('image tag; empty: the chart\'s appVersion'),
        pullPolicy,
      }, { required: ['repository'] }),
      imagePullSecrets: list('Secrets for pulling the image ([{name: regcred}])', obj('a Secret name', { name: str('Secret name', { minLength: 1 }) }, { required: ['name'] })),
      operator: obj('the operator', {
        replicas: int('operator pods (more than one needs leaderElection)', { minimum: 1, maximum: 10 }),
        watchNamespace: str('the one namespace to manage; empty: every namespace', { pattern: `^$|${dnsLabel.pattern}`, maxLength: 63 }),
        leaderElection: obj('leader election', { enabled: bool('hold a Lease while reconciling') }),
        logLevel: str('log level', { enum: ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] }),
        resources,
        serviceAccount: obj('the operator\'s ServiceAccount', {
          create: bool('create it'),
          name: str('its name; empty: <fullname>-operator'),
          annotations: stringMap('its annotations (IAM roles and the like)'),
        }),
        rbac: obj('the operator\'s RBAC', {
          create: bool('create the (Cluster)Roles and bindings'),
          aggregateToDefaultRoles: bool('add SmqCluster/SmqBridge rights to the built-in admin, edit and view roles'),
        }),
        metrics: obj('the operator\'s /metrics', {
          service: obj('a Service for /metrics', { enabled: bool('create it'), annotations: stringMap('its annotations') }),
          serviceMonitor: obj('a Prometheus Operator ServiceMonitor', {
            enabled: bool('create it (needs the monitoring.coreos.com CRDs)'),
            interval: str('scrape interval', { pattern: '^[0-9]+(ms|s|m|h)$' }),
            labels: stringMap('labels your Prometheus selects ServiceMonitors by'),
          }),
        }),
        podLabels: stringMap('labels added to the pods'),
        ...pod,
        extraEnv: list('more environment variables ([{name, value}])', { type: 'object', required: ['name'], properties: { name: str('variable name', { minLength: 1 }) } }),
      }),
      cluster,
      bridges: list('SmqBridges for the chart\'s cluster', bridge),
      etcd: obj('an etcd for the cluster', {
        enabled: bool('deploy it'),
        replicas: int('members: an odd number, fixed at install', { enum: [1, 3, 5, 7] }),
        image: obj('the etcd image', { repository: str('image repository', { minLength: 1 }), tag: str('image tag', { minLength: 1 }), pullPolicy }, { required: ['repository', 'tag'] }),
        resources,
        persistence: obj('a volume per member', {
          enabled: bool('a PersistentVolumeClaim per member (else emptyDir: data lost with the pod)'),
          size: quantity('its size'),
          storageClassName: str('its StorageClass; empty: the default one'),
        }),
        autoCompaction: obj('history compaction', {
          mode: str('--auto-compaction-mode', { enum: ['periodic', 'revision'] }),
          retention: str('--auto-compaction-retention: a duration (periodic, e.g. 5m) or a revision count (revision)', { pattern: '^[0-9]+(ns|us|ms|s|m|h)?$' }),
        }),
        quotaBackendBytes: int('--quota-backend-bytes', { minimum: 0 }),
        extraArgs: list('more etcd flags', { type: 'string', pattern: '^--' }),
        podDisruptionBudget: obj('a PodDisruptionBudget (with 3 or more members)', { enabled: bool('create it') }),
        ...pod,
      }),
    },
  };
}

let stale = 0;
const wanted = files();
for (const [path, text] of wanted) {
  const url = new URL(path, root);
  let current = null;
  try {
    current = readFileSync(url, 'utf8');
  } catch {
    // missing: written (or reported) below
  }
  if (current === text) continue;
  if (check) {
    console.error(`${path} is not up to date: run \`npm run chart\``);
    stale += 1;
  } else {
    writeFileSync(url, text);
    console.log(`wrote ${path}`);
  }
}
// A CRD gone from crds/ goes from the chart too.
for (const name of readdirSync(new URL('crds/', chart)).filter((f) => f.endsWith('.yaml'))) {
  const path = `charts/smq/crds/${name}`;
  if (wanted.has(path)) continue;
  if (check) {
    console.error(`${path} has no source in crds/: run \`npm run chart\``);
    stale += 1;
  } else {
    rmSync(new URL(path, root));
    console.log(`removed ${path}`);
  }
}
process.exit(stale === 0 ? 0 : 1);
