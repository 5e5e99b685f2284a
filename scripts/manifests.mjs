#!/usr/bin/env node
// Writes deploy/, the plain manifests for users without Helm, from charts/smq with `helm template`
// (`npm run chart` runs it after scripts/chart.mjs):
//   deploy/smq-operator.yaml          Namespace smq-system, the CRDs, the operator watching every namespace
//   deploy/examples/etcd.yaml         a three-member etcd (the chart's etcd.*)
//   deploy/examples/smqcluster.yaml   a three-node SmqCluster on that etcd (the chart's cluster.*)
//   deploy/examples/smqbridge.yaml    an SmqBridge to Kafka for it (the chart's bridges)
// The examples carry no namespace (`kubectl apply -n <namespace> -f deploy/examples/`); Helm's own labels
// (helm.sh/chart, app.kubernetes.io/managed-by) are left out, nothing here being managed by Helm.
// With --check it writes nothing and exits 1 naming every file that differs (test 93 runs it).
//
// helm: $HELM, else the one scripts/kube.sh provisions, else helm on the PATH. Helm's configuration, cache
// and data go to a temporary directory, not ~/.config/helm.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

const root = fileURLToPath(new URL('../', import.meta.url));
const check = process.argv.includes('--check');

function helmBinary() {
  if (process.env.HELM) return process.env.HELM;
  try {
    const home = execFileSync('bash', [join(root, 'scripts', 'kube.sh'), '--print-home'], { encoding: 'utf8' }).trim();
    if (existsSync(join(home, 'bin', 'helm'))) return join(home, 'bin', 'helm');
  } catch {
    // no provisioned helm: the PATH's
  }
  return 'helm';
}

const helm = helmBinary();
const helmHome = mkdtempSync(join(tmpdir(), 'smq-helm-'));
const env = {
  ...process.env,
  HELM_CONFIG_HOME: join(helmHome, 'config'),
  HELM_CACHE_HOME: join(helmHome, 'cache'),
  HELM_DATA_HOME: join(helmHome, 'data'),
};

/** `helm template smq charts/smq` with these arguments, as YAML text. */
function template(args) {
  return execFileSync(helm, ['template', 'smq', join(root, 'charts', 'smq'), ...args], { env, encoding: 'utf8', maxBuffer: 64 << 20 });
}

/**
 * The documents of `text` with Helm's labels taken out (and, for examples, the namespace), each kept with its
 * comments, joined under `header`.
 */
function plain(text, header, { keepNamespace }) {
  const docs = parseAllDocuments(text).filter((d) => d.contents !== null);
  for (const doc of docs) {
    if (doc.errors.length > 0) throw new Error(`helm template gave invalid YAML: ${doc.errors[0].message}`);
    for (const labels of [['metadata', 'labels'], ['spec', 'template', 'metadata', 'labels']]) {
      if (!doc.hasIn(labels)) continue;
      doc.deleteIn([...labels, 'helm.sh/chart']);
      doc.deleteIn([...labels, 'app.kubernetes.io/managed-by']);
    }
    if (!keepNamespace) doc.deleteIn(['metadata', 'namespace']);
  }
  const body = docs.map((d) => `---\n${d.toString({ lineWidth: 0 }).replace(/^---\n/, '')}`).join('');
  return `${header.trim().split('\n').map((l) => `# ${l}`.trimEnd()).join('\n')}\n${body}`;
}

const generated = 'Generated from charts/smq by scripts/manifests.mjs (`npm run chart`); do not edit.';
const exampleBridge = JSON.stringify([{
  name: 'telemetry',
  kafka: { bootstrapServers: ['kafka-0.kafka:9092', 'kafka-1.kafka:9092', 'kafka-2.kafka:9092'] },
  mappings: [
    { topic: 'devices/+/telemetry', queue: 'telemetry', key: 'clientid' },
    { topic: 'devices/+/events/#', queue: 'events', key: 'topic' },
  ],
}]);

const files = new Map();
try {
  const namespace = 'smq-system';
  files.set('deploy/smq-operator.yaml', plain(
    `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${namespace}\n  labels:\n    app.kubernetes.io/part-of: smq\n`
      + template(['--namespace', namespace, '--include-crds', '--set', 'cluster.enabled=false', '--set', 'etcd.enabled=false']),
    `The smq operator without Helm: Namespace ${namespace}, the SmqCluster and SmqBridge CRDs, and the operator
(ServiceAccount, RBAC, Deployment, metrics Service), watching every namespace.

  kubectl apply --server-side -f deploy/smq-operator.yaml

Then an etcd, a cluster and a bridge in a namespace of yours: deploy/examples/.
${generated}`,
    { keepNamespace: true },
  ));
  files.set('deploy/examples/etcd.yaml', plain(
    template(['--set', 'cluster.enabled=false', '--show-only', 'templates/etcd/service.yaml', '--show-only', 'templates/etcd/statefulset.yaml', '--show-only', 'templates/etcd/pdb.yaml']),
    `A three-member etcd for an SmqCluster (smq nodes cluster through it): headless Service, StatefulSet with a
volume per member, PodDisruptionBudget. Plain HTTP, no authentication: for production, an etcd with TLS.

  kubectl create namespace iot
  kubectl apply -n iot -f deploy/examples/etcd.yaml
${generated}`,
    { keepNamespace: false },
  ));
  files.set('deploy/examples/smqcluster.yaml', plain(
    template(['--show-only', 'templates/smqcluster.yaml']),
    `A three-node SmqCluster on the etcd of etcd.yaml (same namespace). Every field: kubectl explain smqcluster.spec

  kubectl apply -n iot -f deploy/examples/smqcluster.yaml
  kubectl -n iot get smqcluster smq -w
${generated}`,
    { keepNamespace: false },
  ));
  files.set('deploy/examples/smqbridge.yaml', plain(
    template(['--set-json', `bridges=${exampleBridge}`, '--show-only', 'templates/smqbridges.yaml']),
    `An SmqBridge: MQTT topics of SmqCluster smq onto Kafka topics (set your own bootstrap servers; TLS and SASL
from Secrets: kubectl explain smqbridge.spec.kafka).

  kubectl apply -n iot -f deploy/examples/smqbridge.yaml
  kubectl -n iot get smqbridge telemetry
${generated}`,
    { keepNamespace: false },
  ));
} finally {
  rmSync(helmHome, { recursive: true, force: true });
}

let stale = 0;
for (const [path, text] of files) {
  const file = join(root, path);
  const current = existsSync(file) ? readFileSync(file, 'utf8') : null;
  if (current === text) continue;
  if (check) {
    console.error(`${path} is not up to date with charts/smq: run \`npm run chart\``);
    stale += 1;
  } else {
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(file, text);
    console.log(`wrote ${path}`);
  }
}
process.exit(stale === 0 ? 0 : 1);
