/**
 * 93 Chart: charts/smq with helm (built from the Go module proxy by scripts/kube.sh) and a real kube-apiserver.
 * The chart's crds/, values.schema.json and deploy/ are what scripts/chart.mjs and scripts/manifests.mjs write;
 * `helm lint --strict` passes; `helm template` renders the defaults and other value combinations as meant;
 * the values schema refuses bad values naming them; every rendered object, the plain manifests of deploy/ and
 * its examples pass a server-side dry run (strict field validation) once the CRDs are installed; the
 * operator's ServiceAccount may do what the operator needs and no more (SubjectAccessReview), and the real
 * operator, run with that ServiceAccount's token, reconciles without a refusal; and a real
 * `helm install`, `upgrade` and `uninstall` go through, printing NOTES that name the right objects.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { ROOT, freePort } from './helpers/broker.js';
import { kubeBinary, startKube, type RunningKube } from './helpers/kube.js';
import { runToEnd, type Finished } from './helpers/process.js';

/** A Kubernetes object as rendered. */
interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [key: string]: unknown;
}

const CHART = join(ROOT, 'charts', 'smq');
let helmBin: string;
let helmHome: string;
let helmEnv: Record<string, string>;
let kube: RunningKube;
let kubeStarting: Promise<RunningKube>;

before(() => {
  helmBin = kubeBinary('helm');
  // Helm keeps its configuration, cache and data here, not in ~/.config/helm.
  helmHome = mkdtempSync(join(tmpdir(), 'smq-helm-'));
  helmEnv = {
    HELM: helmBin,
    HELM_CONFIG_HOME: join(helmHome, 'config'),
    HELM_CACHE_HOME: join(helmHome, 'cache'),
    HELM_DATA_HOME: join(helmHome, 'data'),
  };
  // The API server starts while the offline tests (lint, template, schema) run; the first test that needs it
  // waits for it.
  kubeStarting = startKube();
  kubeStarting.catch(() => undefined);
});

after(async () => {
  await (kube ?? await kubeStarting.catch(() => undefined))?.stop();
  if (helmHome) rmSync(helmHome, { recursive: true, force: true });
});

async function apiServer(): Promise<RunningKube> {
  kube ??= await kubeStarting;
  return kube;
}

async function helm(args: readonly string[], timeoutMs = 30_000): Promise<Finished> {
  return runToEnd(helmBin, args, { env: helmEnv, timeoutMs });
}

/** `helm template <release> charts/smq -n <namespace> <args>`, parsed; fails the test if helm does. */
async function render(release: string, namespace: string, args: readonly string[] = []): Promise<Obj[]> {
  const r = await helm(['template', release, CHART, '--namespace', namespace, ...args]);
  assert.equal(r.code, 0, `helm template ${args.join(' ')}: ${r.stderr}`);
  return parseYaml(r.stdout);
}

function parseYaml(text: string): Obj[] {
  return parseAllDocuments(text).map((d) => {
    assert.deepEqual(d.errors, [], String(d.errors[0]));
    return d.toJS() as Obj | null;
  }).filter((o): o is Obj => o !== null);
}

function find(objs: readonly Obj[], kind: string, name: string): Obj {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `no ${kind} ${name} among ${objs.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')}`);
  return o;
}

const kinds = (objs: readonly Obj[]): string[] => objs.map((o) => `${o.kind}/${o.metadata.name}`).sort();

/** Value combinations rendered, linted and dry-run below: [release, namespace, helm args]. */
const VARIANTS: Record<string, [string, string, string[]]> = {
  defaults: ['smq', 'smq', []],
  watchNamespace: ['r1', 'ops', ['--set', 'operator.watchNamespace=iot', '--set', 'cluster.enabled=false', '--set', 'etcd.enabled=false']],
  externalEtcd: ['ext', 'ext', [
    '--set', 'etcd.enabled=false',
    '--set-json', 'cluster.etcd={"endpoints":["etcd-a.example:2379","etcd-b.example:2379"],"tlsSecret":"etcd-tls","authSecret":"etcd-auth"}',
    '--set-json', 'cluster.tls={"secretName":"smq-tls","verifyClients":true}',
    '--set-json', 'cluster.auth={"passwordFile":{"name":"smq-users","key":"passwd"}}',
    '--set-json', 'cluster.config={"mqtt":{"max_inflight":64}}',
    '--set', 'cluster.service.type=LoadBalancer',
    '--set-json', 'bridges=[{"name":"telemetry","kafka":{"bootstrapServers":["kafka:9092"],"sasl":{"mechanism":"scram-sha-512","secretName":"kafka-user"}},"mappings":[{"topic":"devices/+/up","queue":"uplink","key":"clientid"}]}]',
  ]],
  dev: ['dev', 'dev', ['--set', 'etcd.replicas=1', '--set', 'etcd.persistence.enabled=false', '--set', 'cluster.replicas=1', '--set', 'operator.replicas=2']],
};

test('the chart\'s crds/, values.schema.json and deploy/ are what the scripts write from crds/ and the chart', async () => {
  // The CRDs byte for byte, said plainly; scripts/chart.mjs --check covers values.schema.json as well.
  const repo = readdirSync(join(ROOT, 'crds')).filter((f) => f.endsWith('.yaml')).sort();
  assert.deepEqual(readdirSync(join(CHART, 'crds')).sort(), repo);
  for (const f of repo) {
    assert.equal(readFileSync(join(CHART, 'crds', f), 'utf8'), readFileSync(join(ROOT, 'crds', f), 'utf8'), `charts/smq/crds/${f} differs from crds/${f}: run \`npm run chart\``);
  }
  for (const script of ['chart.mjs', 'manifests.mjs']) {
    const r = await runToEnd(process.execPath, [join(ROOT, 'scripts', script), '--check'], { env: helmEnv, timeoutMs: 30_000 });
    assert.equal(r.code, 0, `scripts/${script} --check: ${r.stderr}${r.stdout}`);
  }
});

test('helm lint --strict passes for the defaults and every value combination', async () => {
  for (const [name, [, namespace, args]] of Object.entries(VARIANTS)) {
    const r = await helm(['lint', '--strict', CHART, '--namespace', namespace, ...args]);
    assert.equal(r.code, 0, `${name}: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  }
});

test('defaults: the operator (least-privilege ClusterRole, Lease Role), a three-node SmqCluster and a three-member etcd', async () => {
  const objs = await render('smq', 'smq', ['--include-crds']);
  assert.deepEqual(kinds(objs), [
    'ClusterRole/smq-edit', 'ClusterRole/smq-operator', 'ClusterRole/smq-view', 'ClusterRoleBinding/smq-operator',
    'CustomResourceDefinition/smqbridges.smq.sestack.io', 'CustomResourceDefinition/smqclusters.smq.sestack.io',
    'Deployment/smq-operator', 'PodDisruptionBudget/smq-etcd', 'Role/smq-operator-leader-election',
    'RoleBinding/smq-operator-leader-election', 'Service/smq-etcd-headless', 'Service/smq-operator-metrics',
    'ServiceAccount/smq-operator', 'SmqCluster/smq', 'StatefulSet/smq-etcd',
  ]);
  for (const o of objs) {
    if (o.kind === 'CustomResourceDefinition' || o.kind.startsWith('Cluster')) continue;
    assert.equal(o.metadata.namespace, 'smq', `${o.kind}/${o.metadata.name} names its namespace`);
    const labels = o.metadata.labels ?? {};
    for (const l of ['app.kubernetes.io/name', 'app.kubernetes.io/instance', 'app.kubernetes.io/component', 'app.kubernetes.io/version', 'app.kubernetes.io/part-of', 'app.kubernetes.io/managed-by']) {
      assert.ok(labels[l], `${o.kind}/${o.metadata.name} has label ${l}`);
    }
  }

  const deploy = find(objs, 'Deployment', 'smq-operator') as Obj & { spec: { selector: { matchLabels: Record<string, string> }; template: { spec: PodSpec } } };
  const pod = deploy.spec.template.spec;
  const c = pod.containers[0]!;
  assert.equal(c.image, 'smq:0.1.0');
  assert.deepEqual(c.command, ['node', 'bin/smq-operator.js']);
  const env = Object.fromEntries(c.env.map((e) => [e.name, e.value ?? e.valueFrom?.fieldRef?.fieldPath]));
  assert.deepEqual(env, {
    WATCH_NAMESPACE: '', POD_NAMESPACE: 'metadata.namespace', POD_NAME: 'metadata.name', LEADER_ELECTION: 'true', LOG_LEVEL: 'info', HTTP_PORT: '8081',
  });
  assert.deepEqual(c.ports.map((p) => [p.name, p.containerPort]), [['http', 8081]]);
  assert.deepEqual([c.livenessProbe.httpGet.path, c.livenessProbe.httpGet.port], ['/healthz', 'http']);
  assert.deepEqual([c.readinessProbe.httpGet.path, c.readinessProbe.httpGet.port], ['/readyz', 'http']);
  assert.deepEqual(pod.securityContext, { runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001, seccompProfile: { type: 'RuntimeDefault' } });
  assert.deepEqual(c.securityContext, { allowPrivilegeEscalation: false, privileged: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ['ALL'] } });
  assert.equal(pod.serviceAccountName, 'smq-operator');

  const cluster = find(objs, 'SmqCluster', 'smq') as Obj & { spec: Record<string, unknown> };
  assert.equal(cluster.spec['replicas'], 3);
  assert.equal(cluster.spec['image'], 'smq:0.1.0');
  assert.deepEqual(cluster.spec['etcd'], { endpoints: ['smq-etcd-0.smq-etcd-headless:2379', 'smq-etcd-1.smq-etcd-headless:2379', 'smq-etcd-2.smq-etcd-headless:2379'] });
  // Empty values are left to the CRD's defaults rather than written out.
  for (const k of ['config', 'nodeSelector', 'tolerations', 'affinity', 'enabled', 'name']) assert.ok(!(k in cluster.spec), `spec.${k} left out`);

  // The brokers' pods (made by the operator, app.kubernetes.io/name=smq) are selected by no chart selector.
  const etcd = find(objs, 'StatefulSet', 'smq-etcd') as Obj & { spec: { replicas: number; serviceName: string; podManagementPolicy: string; selector: { matchLabels: Record<string, string> }; template: { spec: PodSpec } } };
  assert.equal(etcd.spec.replicas, 3);
  assert.equal(etcd.spec.podManagementPolicy, 'Parallel');
  assert.equal(etcd.spec.selector.matchLabels['app.kubernetes.io/name'], 'etcd');
  assert.equal(deploy.spec.selector.matchLabels['app.kubernetes.io/name'], 'smq-operator');
  const args = etcd.spec.template.spec.containers[0]!.args ?? [];
  assert.ok(args.includes('--initial-cluster=smq-etcd-0=http://smq-etcd-0.smq-etcd-headless.$(POD_NAMESPACE).svc:2380,smq-etcd-1=http://smq-etcd-1.smq-etcd-headless.$(POD_NAMESPACE).svc:2380,smq-etcd-2=http://smq-etcd-2.smq-etcd-headless.$(POD_NAMESPACE).svc:2380'), args.join('\n'));
  const headless = find(objs, 'Service', 'smq-etcd-headless') as Obj & { spec: { clusterIP: string; publishNotReadyAddresses: boolean } };
  assert.equal(headless.spec.clusterIP, 'None');
  assert.equal(headless.spec.publishNotReadyAddresses, true);

  // Cluster-wide rules; the Lease only in the release namespace, by name for get/update/patch.
  const rules = (find(objs, 'ClusterRole', 'smq-operator') as Obj & { rules: Rule[] }).rules;
  assert.ok(!rules.some((r) => r.apiGroups.includes('coordination.k8s.io')), 'no cluster-wide Lease rights');
  assert.ok(!rules.some((r) => r.verbs.includes('*') || r.resources.includes('*')), 'no wildcards');
  const lease = (find(objs, 'Role', 'smq-operator-leader-election') as Obj & { rules: Rule[] }).rules;
  assert.deepEqual(lease.find((r) => r.resourceNames)?.resourceNames, ['smq-operator-leader']);
});

test('watchNamespace: the namespaced rules become a Role in that namespace, only CRD reading stays cluster-wide', async () => {
  const objs = await render('r1', 'ops', VARIANTS['watchNamespace']![2]);
  assert.deepEqual(kinds(objs), [
    'ClusterRole/r1-smq-edit', 'ClusterRole/r1-smq-operator-crds', 'ClusterRole/r1-smq-view', 'ClusterRoleBinding/r1-smq-operator-crds',
    'Deployment/r1-smq-operator', 'Role/r1-smq-operator', 'Role/r1-smq-operator-leader-election', 'RoleBinding/r1-smq-operator',
    'RoleBinding/r1-smq-operator-leader-election', 'Service/r1-smq-operator-metrics', 'ServiceAccount/r1-smq-operator',
  ]);
  assert.equal(find(objs, 'Role', 'r1-smq-operator').metadata.namespace, 'iot');
  assert.equal(find(objs, 'Role', 'r1-smq-operator-leader-election').metadata.namespace, 'ops');
  const binding = find(objs, 'RoleBinding', 'r1-smq-operator') as Obj & { subjects: { kind: string; name: string; namespace: string }[] };
  assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'r1-smq-operator', namespace: 'ops' }]);
  const crds = (find(objs, 'ClusterRole', 'r1-smq-operator-crds') as Obj & { rules: Rule[] }).rules;
  assert.deepEqual(crds, [{ apiGroups: ['apiextensions.k8s.io'], resources: ['customresourcedefinitions'], resourceNames: ['servicemonitors.monitoring.coreos.com'], verbs: ['get'] }]);
  const env = (find(objs, 'Deployment', 'r1-smq-operator') as Obj & { spec: { template: { spec: PodSpec } } }).spec.template.spec.containers[0]!.env;
  assert.equal(env.find((e) => e.name === 'WATCH_NAMESPACE')?.value, 'iot');

  // Watching its own namespace, the release may bring its cluster: everything in one namespace.
  const home = await render('r2', 'iot', ['--set', 'operator.watchNamespace=iot']);
  assert.equal(find(home, 'SmqCluster', 'r2-smq').metadata.namespace, 'iot');
  assert.equal(find(home, 'Role', 'r2-smq-operator').metadata.namespace, 'iot');
});

test('cluster disabled, external etcd, bridges, a development size, the operator\'s ServiceMonitor', async () => {
  const none = await render('smq', 'smq', ['--set', 'cluster.enabled=false']);
  assert.ok(!none.some((o) => o.kind === 'SmqCluster'));
  assert.ok(none.some((o) => o.kind === 'StatefulSet'), 'etcd.enabled stands on its own');

  const ext = await render(...VARIANTS['externalEtcd']!);
  assert.ok(!ext.some((o) => o.kind === 'StatefulSet' || o.metadata.name.includes('etcd')), kinds(ext).join(', '));
  const spec = (find(ext, 'SmqCluster', 'ext-smq') as Obj & { spec: Record<string, Record<string, unknown>> }).spec;
  assert.deepEqual(spec['etcd'], { endpoints: ['etcd-a.example:2379', 'etcd-b.example:2379'], tlsSecret: 'etcd-tls', authSecret: 'etcd-auth' });
  assert.deepEqual(spec['config'], { mqtt: { max_inflight: 64 } });
  assert.equal(spec['service']?.['type'], 'LoadBalancer');
  const bridge = find(ext, 'SmqBridge', 'telemetry') as Obj & { spec: Record<string, unknown> };
  assert.equal(bridge.spec['cluster'], 'ext-smq');
  assert.ok(!('name' in bridge.spec));

  const dev = await render(...VARIANTS['dev']!);
  const etcd = find(dev, 'StatefulSet', 'dev-smq-etcd') as Obj & { spec: { volumeClaimTemplates?: unknown; template: { spec: { volumes: { name: string; emptyDir?: unknown }[] } } } };
  assert.equal(etcd.spec.volumeClaimTemplates, undefined);
  assert.ok(etcd.spec.template.spec.volumes.some((v) => v.name === 'data' && v.emptyDir));
  assert.ok(!dev.some((o) => o.kind === 'PodDisruptionBudget'), 'no etcd PodDisruptionBudget for one member');
  assert.deepEqual((find(dev, 'SmqCluster', 'dev-smq') as Obj & { spec: { etcd: unknown } }).spec.etcd, { endpoints: ['dev-smq-etcd-0.dev-smq-etcd-headless:2379'] });

  const sm = await render('smq', 'smq', ['--set', 'operator.metrics.serviceMonitor.enabled=true', '--set', 'operator.metrics.serviceMonitor.labels.release=prometheus']);
  const monitor = find(sm, 'ServiceMonitor', 'smq-operator') as Obj & { spec: { endpoints: { port: string }[] } };
  assert.equal(monitor.metadata.labels?.['release'], 'prometheus');
  assert.equal(monitor.spec.endpoints[0]?.port, 'metrics');

  const noRbac = await render('smq', 'smq', ['--set', 'operator.rbac.create=false', '--set', 'operator.rbac.aggregateToDefaultRoles=false', '--set', 'operator.serviceAccount.create=false', '--set', 'operator.serviceAccount.name=mine']);
  assert.ok(!noRbac.some((o) => o.kind.includes('Role') || o.kind === 'ServiceAccount'), kinds(noRbac).join(', '));
});

test('bad values are refused before anything is sent, each naming the value and what is wrong', async () => {
  const cases: [string[], RegExp][] = [
    [['--set', 'cluster.replicas=three'], /at '\/cluster\/replicas': got string, want integer/],
    [['--set', 'cluster.config.mqtt.max_inflght=3'], /at '\/cluster\/config\/mqtt': additional properties 'max_inflght' not allowed/],
    // A key the operator sets (the listeners) is no field of the SmqCluster's config.
    [['--set', 'cluster.config.port=1884'], /at '\/cluster\/config': additional properties 'port' not allowed/],
    [['--set', 'cluster.service.type=Ingress'], /at '\/cluster\/service\/type'/],
    [['--set', 'etcd.replicas=2'], /at '\/etcd\/replicas'/],
    [['--set', 'operator.watchNamespace=Not_A_Namespace'], /at '\/operator\/watchNamespace'/],
    [['--set', 'clusters.replicas=3'], /additional properties 'clusters' not allowed/],
    [['--set-json', 'bridges=[{"name":"b","kafka":{"bootstrapServers":["kafka"]},"mappings":[{"topic":"a","queue":"q"}]}]'], /at '\/bridges\/0\/kafka\/bootstrapServers\/0'/],
    // What a schema cannot say, the templates do.
    [['--set', 'etcd.enabled=false'], /cluster\.etcd\.endpoints: an SmqCluster needs etcd/],
    [['--set', 'operator.replicas=2', '--set', 'operator.leaderElection.enabled=false'], /operator\.replicas > 1 needs operator\.leaderElection\.enabled/],
    [['--set', 'cluster.enabled=false', '--set-json', 'bridges=[{"name":"b","kafka":{"bootstrapServers":["k:9092"]},"mappings":[{"topic":"a","queue":"q"}]}]'], /bridges\[b\]\.cluster: name the SmqCluster/],
    // The chart's own SmqCluster would sit where its operator never looks.
    [['--set', 'operator.watchNamespace=iot'], /the chart's SmqCluster goes to the release namespace default, which the operator does not watch/],
  ];
  for (const [args, why] of cases) {
    const r = await helm(['template', 'smq', CHART, ...args]);
    assert.notEqual(r.code, 0, `${args.join(' ')} was accepted`);
    assert.match(r.stderr, why, args.join(' '));
  }
});

// --- on the API server ----------------------------------------------------------------------------------

interface Rule { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }
interface Container {
  image: string; command?: string[]; args?: string[];
  env: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  ports: { name: string; containerPort: number }[];
  livenessProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
  securityContext: unknown;
}
interface PodSpec { containers: Container[]; securityContext: unknown; serviceAccountName?: string }

/** kind -> REST resource, from the API server's discovery. */
const resources = new Map<string, { plural: string; namespaced: boolean }>();

async function resourceOf(o: Obj): Promise<{ path: string; namespaced: boolean }> {
  const key = `${o.apiVersion}/${o.kind}`;
  const base = o.apiVersion.includes('/') ? `/apis/${o.apiVersion}` : `/api/${o.apiVersion}`;
  // A CRD just established may take a moment to appear in discovery.
  for (let tries = 0; !resources.has(key) && tries < 50; tries++) {
    if (tries > 0) await new Promise((r) => setTimeout(r, 100));
    const res = await kube.request('GET', base);
    if (res.status !== 200) continue;
    for (const r of res.json<{ resources: { name: string; kind: string; namespaced: boolean }[] }>().resources) {
      if (!r.name.includes('/')) resources.set(`${o.apiVersion}/${r.kind}`, { plural: r.name, namespaced: r.namespaced });
    }
  }
  const r = resources.get(key);
  assert.ok(r, `the API server serves no ${key}`);
  return { path: `${base}/${r.plural}`, namespaced: r.namespaced };
}

/** Server-side apply of `o` (in `namespace` when it names none), a dry run unless `dryRun` is false. */
async function apply(o: Obj, namespace: string, dryRun = true): Promise<void> {
  const { path, namespaced } = await resourceOf(o);
  const ns = o.metadata.namespace ?? namespace;
  const url = `${namespaced ? path.replace(/\/([^/]+)$/, `/namespaces/${ns}/$1`) : path}/${o.metadata.name}`
    + `?fieldManager=smq-chart-test&force=true&fieldValidation=Strict${dryRun ? '&dryRun=All' : ''}`;
  const res = await kube.request('PATCH', url, { body: o, contentType: 'application/apply-patch+yaml' });
  assert.ok(res.status === 200 || res.status === 201, `${dryRun ? 'dry run of ' : ''}${o.kind} ${ns}/${o.metadata.name}: ${res.status} ${res.body}`);
}

async function ensureNamespace(name: string): Promise<void> {
  const res = await kube.request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name } } });
  assert.ok(res.status === 201 || res.status === 409, `namespace ${name}: ${res.status} ${res.body}`);
}

async function installCrds(): Promise<void> {
  for (const f of readdirSync(join(CHART, 'crds'))) {
    for (const crd of parseYaml(readFileSync(join(CHART, 'crds', f), 'utf8'))) {
      await apply(crd, '', false);
      for (const deadline = Date.now() + 20_000; ;) {
        const res = await kube.request('GET', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`);
        const conds = res.json<{ status?: { conditions?: { type: string; status: string }[] } }>().status?.conditions ?? [];
        if (conds.some((c) => c.type === 'Established' && c.status === 'True')) break;
        assert.ok(Date.now() < deadline, `${crd.metadata.name} not established: ${res.body}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }
}

/** Dry-runs `objs`, CRDs first, creating the namespaces they name (a dry run needs its namespace to exist). */
async function dryRunAll(objs: readonly Obj[], namespace: string): Promise<void> {
  const namespaces = new Set([namespace, ...objs.map((o) => o.metadata.namespace).filter((n): n is string => n !== undefined)]);
  for (const o of objs) if (o.kind === 'Namespace') namespaces.add(o.metadata.name);
  for (const n of namespaces) await ensureNamespace(n);
  const crdsFirst = [...objs].sort((a, b) => Number(b.kind === 'CustomResourceDefinition') - Number(a.kind === 'CustomResourceDefinition'));
  for (const o of crdsFirst) await apply(o, namespace);
}

test('every rendered object passes a server-side dry run (strict fields), CRDs installed first', async () => {
  await apiServer();
  await installCrds();
  for (const [name, [release, namespace, args]] of Object.entries(VARIANTS)) {
    const objs = await render(release, namespace, args);
    assert.ok(objs.length > 5, name);
    await dryRunAll(objs, namespace);
  }
});

test('deploy/: the operator manifest and the examples pass a server-side dry run', async () => {
  await apiServer();
  await installCrds();
  await dryRunAll(parseYaml(readFileSync(join(ROOT, 'deploy', 'smq-operator.yaml'), 'utf8')), 'smq-system');
  const examples = join(ROOT, 'deploy', 'examples');
  const files = readdirSync(examples).sort();
  assert.deepEqual(files, ['etcd.yaml', 'smqbridge.yaml', 'smqcluster.yaml']);
  const objs = files.flatMap((f) => parseYaml(readFileSync(join(examples, f), 'utf8')));
  for (const o of objs) assert.equal(o.metadata.namespace, undefined, `${o.kind}/${o.metadata.name}: examples go to the namespace kubectl is given`);
  await dryRunAll(objs, 'examples');
});

/** Whether ServiceAccount `namespace/name` may do `verb` on a resource (SubjectAccessReview). */
async function may(sa: string, attrs: { verb: string; group?: string; resource: string; subresource?: string; namespace?: string; name?: string }): Promise<boolean> {
  const [namespace, name] = sa.split('/') as [string, string];
  const res = await kube.request('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
    body: {
      apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview',
      spec: {
        user: `system:serviceaccount:${namespace}:${name}`,
        groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
        resourceAttributes: { group: '', ...attrs },
      },
    },
  });
  assert.equal(res.status, 201, res.body);
  return res.json<{ status: { allowed: boolean } }>().status.allowed;
}

let operatorRbac: Promise<void> | undefined;

/** The ServiceAccounts and RBAC of two releases, created for real: `smq` (every namespace) and `r1` (watching iot). */
function createOperatorRbac(): Promise<void> {
  operatorRbac ??= (async () => {
    await apiServer();
    await installCrds();
    for (const [release, namespace, args] of [VARIANTS['defaults']!, VARIANTS['watchNamespace']!]) {
      const objs = (await render(release, namespace, args)).filter((o) => o.kind === 'ServiceAccount' || o.kind.includes('Role'));
      for (const n of new Set([namespace, ...objs.map((o) => o.metadata.namespace).filter((x): x is string => x !== undefined)])) await ensureNamespace(n);
      for (const o of objs) await apply(o, namespace, false);
    }
  })();
  return operatorRbac;
}

test('RBAC: the operator\'s ServiceAccount may do what the operator needs, and no more', async () => {
  await createOperatorRbac();

  const needs = (ns: string): Parameters<typeof may>[1][] => [
    ...['get', 'list', 'watch', 'update', 'patch'].flatMap((verb) => ['smqclusters', 'smqbridges'].map((resource) => ({ verb, group: 'smq.sestack.io', resource, namespace: ns }))),
    { verb: 'patch', group: 'smq.sestack.io', resource: 'smqclusters', subresource: 'status', namespace: ns },
    { verb: 'update', group: 'smq.sestack.io', resource: 'smqbridges', subresource: 'status', namespace: ns },
    { verb: 'update', group: 'smq.sestack.io', resource: 'smqbridges', subresource: 'finalizers', namespace: ns },
    ...['configmaps', 'services', 'secrets'].flatMap((resource) => ['create', 'patch', 'delete', 'watch'].map((verb) => ({ verb, resource, namespace: ns }))),
    { verb: 'list', resource: 'pods', namespace: ns },
    { verb: 'create', resource: 'events', namespace: ns },
    { verb: 'patch', group: 'events.k8s.io', resource: 'events', namespace: ns },
    { verb: 'patch', group: 'apps', resource: 'statefulsets', namespace: ns },
    { verb: 'delete', group: 'policy', resource: 'poddisruptionbudgets', namespace: ns },
    { verb: 'create', group: 'monitoring.coreos.com', resource: 'servicemonitors', namespace: ns },
  ];
  const never = (ns: string): Parameters<typeof may>[1][] => [
    { verb: 'create', group: 'smq.sestack.io', resource: 'smqclusters', namespace: ns },
    { verb: 'delete', group: 'smq.sestack.io', resource: 'smqclusters', namespace: ns },
    { verb: 'create', resource: 'pods', namespace: ns },
    { verb: 'delete', resource: 'pods', namespace: ns },
    { verb: 'create', resource: 'pods', subresource: 'exec', namespace: ns },
    { verb: 'create', group: 'apps', resource: 'deployments', namespace: ns },
    { verb: 'create', resource: 'serviceaccounts', subresource: 'token', namespace: ns },
    { verb: 'create', group: 'rbac.authorization.k8s.io', resource: 'roles', namespace: ns },
  ];
  // The operator reads one CRD, by name: whether ServiceMonitors exist.
  const cluster = [
    { verb: 'get', group: 'apiextensions.k8s.io', resource: 'customresourcedefinitions', name: 'servicemonitors.monitoring.coreos.com' },
  ];
  const clusterNever = [
    { verb: 'get', group: 'apiextensions.k8s.io', resource: 'customresourcedefinitions', name: 'smqclusters.smq.sestack.io' },
    { verb: 'list', group: 'apiextensions.k8s.io', resource: 'customresourcedefinitions' },
    { verb: 'create', group: 'apiextensions.k8s.io', resource: 'customresourcedefinitions' },
    { verb: 'list', resource: 'nodes' },
    { verb: 'create', resource: 'namespaces' },
    { verb: 'bind', group: 'rbac.authorization.k8s.io', resource: 'clusterroles' },
  ];
  const lease = (ns: string): [Parameters<typeof may>[1], boolean][] => [
    [{ verb: 'create', group: 'coordination.k8s.io', resource: 'leases', namespace: ns }, true],
    [{ verb: 'watch', group: 'coordination.k8s.io', resource: 'leases', namespace: ns }, false],
    [{ verb: 'get', group: 'coordination.k8s.io', resource: 'leases', namespace: ns, name: 'smq-operator-leader' }, true],
    [{ verb: 'update', group: 'coordination.k8s.io', resource: 'leases', namespace: ns, name: 'smq-operator-leader' }, true],
    [{ verb: 'update', group: 'coordination.k8s.io', resource: 'leases', namespace: ns, name: 'someone-elses-lease' }, false],
    [{ verb: 'delete', group: 'coordination.k8s.io', resource: 'leases', namespace: ns, name: 'smq-operator-leader' }, false],
  ];
  const expect = async (sa: string, attrs: Parameters<typeof may>[1], allowed: boolean): Promise<void> => {
    assert.equal(await may(sa, attrs), allowed, `${sa} ${allowed ? 'may' : 'may not'} ${JSON.stringify(attrs)}`);
  };

  // Watching every namespace: everything it needs anywhere, its Lease only at home.
  const all = 'smq/smq-operator';
  for (const ns of ['smq', 'anywhere']) {
    for (const a of needs(ns)) await expect(all, a, true);
    for (const a of never(ns)) await expect(all, a, false);
  }
  for (const a of cluster) await expect(all, a, true);
  for (const a of clusterNever) await expect(all, a, false);
  for (const [a, ok] of lease('smq')) await expect(all, a, ok);
  await expect(all, { verb: 'create', group: 'coordination.k8s.io', resource: 'leases', namespace: 'anywhere' }, false);
  await expect(all, { verb: 'update', group: 'coordination.k8s.io', resource: 'leases', namespace: 'anywhere', name: 'smq-operator-leader' }, false);

  // Watching iot: everything there, nothing namespaced elsewhere (no Secret of another namespace).
  const one = 'ops/r1-smq-operator';
  for (const a of needs('iot')) await expect(one, a, true);
  for (const ns of ['ops', 'anywhere']) for (const a of needs(ns)) await expect(one, a, false);
  for (const a of cluster) await expect(one, a, true);
  for (const a of clusterNever) await expect(one, a, false);
  for (const [a, ok] of lease('ops')) await expect(one, a, ok);
  await expect(one, { verb: 'create', group: 'coordination.k8s.io', resource: 'leases', namespace: 'iot' }, false);
});

/** The operator's log lines that tell of a request the API server refused. */
const refusals = (logs: string): string[] => logs.split('\n').filter((l) => /\b403\b|forbidden/i.test(l));

test('the operator, run with its ServiceAccount\'s token and the chart\'s RBAC, reconciles without one refusal', async () => {
  await createOperatorRbac();
  // [ServiceAccount namespace/name, WATCH_NAMESPACE, where its SmqCluster goes]
  for (const [sa, watch, target] of [['smq/smq-operator', '', 'anywhere'], ['ops/r1-smq-operator', 'iot', 'iot']] as const) {
    const [home, name] = sa.split('/') as [string, string];
    const kubeconfig = kube.kubeconfigFor(await kube.serviceAccountToken(home, name), name);
    await ensureNamespace(target);
    const clusterName = `rbac-${home}`;
    const path = `/apis/smq.sestack.io/v1alpha1/namespaces/${target}`;
    await apply({
      apiVersion: 'smq.sestack.io/v1alpha1', kind: 'SmqCluster', metadata: { name: clusterName, namespace: target },
      spec: { replicas: 1, image: 'smq:0.1.0', etcd: { endpoints: ['etcd:2379'] }, metrics: { serviceMonitor: true } },
    }, target, false);
    await apply({
      apiVersion: 'smq.sestack.io/v1alpha1', kind: 'SmqBridge', metadata: { name: clusterName, namespace: target },
      spec: { cluster: clusterName, kafka: { bootstrapServers: ['kafka:9092'] }, mappings: [{ topic: 'a/#', queue: 'a' }] },
    }, target, false);

    const httpPort = await freePort();
    const proc = spawn(process.execPath, [join(ROOT, 'bin', 'smq-operator.js')], {
      env: { ...process.env, KUBECONFIG: kubeconfig, WATCH_NAMESPACE: watch, POD_NAMESPACE: home, POD_NAME: `${name}-test`, HTTP_PORT: String(httpPort), LOG_LEVEL: 'debug' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let logs = '';
    proc.stdout.on('data', (d: Buffer) => { logs += d.toString(); });
    proc.stderr.on('data', (d: Buffer) => { logs += d.toString(); });
    const exited = new Promise((r) => proc.once('exit', r));
    try {
      const made = [
        `/api/v1/namespaces/${target}/configmaps/${clusterName}-config`,
        `/api/v1/namespaces/${target}/services/${clusterName}`,
        `/api/v1/namespaces/${target}/services/${clusterName}-headless`,
        `/api/v1/namespaces/${target}/secrets/${clusterName}-api-token`,
        `/apis/apps/v1/namespaces/${target}/statefulsets/${clusterName}`,
        `/apis/policy/v1/namespaces/${target}/poddisruptionbudgets/${clusterName}`,
        `/apis/coordination.k8s.io/v1/namespaces/${home}/leases/smq-operator-leader`,
      ];
      for (const deadline = Date.now() + 20_000; ;) {
        const missing: string[] = [];
        for (const p of made) if ((await kube.request('GET', p)).status !== 200) missing.push(p);
        const cluster = (await kube.request('GET', `${path}/smqclusters/${clusterName}`)).json<{ status?: { conditions?: unknown[] } }>();
        if (!cluster.status?.conditions?.length) missing.push('SmqCluster status');
        const bridge = (await kube.request('GET', `${path}/smqbridges/${clusterName}`)).json<{ metadata: { finalizers?: string[] } }>();
        if (!bridge.metadata.finalizers?.length) missing.push('SmqBridge finalizer');
        if (missing.length === 0) break;
        // A refusal fails at once, naming the request.
        assert.deepEqual(refusals(logs), [], `${sa} was refused`);
        assert.ok(Date.now() < deadline && proc.exitCode === null, `${sa}: not made within 20 s: ${missing.join(', ')}\n${logs}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const lease = (await kube.request('GET', `/apis/coordination.k8s.io/v1/namespaces/${home}/leases/smq-operator-leader`)).json<{ spec: { holderIdentity: string } }>();
      assert.equal(lease.spec.holderIdentity, `${name}-test`);
      const events = (await kube.request('GET', `/api/v1/namespaces/${target}/events`)).json<{ items: { reason: string }[] }>().items;
      assert.ok(events.some((e) => e.reason === 'NoServiceMonitorCRD'), `${sa}: Events are recorded: ${JSON.stringify(events.map((e) => e.reason))}`);
      const ready = await fetch(`http://127.0.0.1:${httpPort}/readyz`);
      assert.equal(ready.status, 200);
      assert.deepEqual(refusals(logs), [], `${sa} was refused`);
    } finally {
      proc.kill('SIGTERM');
      await exited;
    }
  }
});

test('helm install, upgrade and uninstall on the API server; NOTES name the Service, the token Secret and the ports', async () => {
  const k = await apiServer();
  await installCrds();
  const common = ['--kubeconfig', k.kubeconfigPath, '--namespace', 'demo'];
  const install = await helm(['install', 'demo', CHART, ...common, '--create-namespace', '--set', 'etcd.replicas=1',
    '--set-json', 'bridges=[{"name":"telemetry","kafka":{"bootstrapServers":["kafka:9092"]},"mappings":[{"topic":"devices/+/up","queue":"uplink"}]}]'], 60_000);
  assert.equal(install.code, 0, install.stderr);
  const notes = install.stdout;
  for (const want of [
    'kubectl -n demo get smqcluster demo-smq -w',
    'mqtt://demo-smq.demo.svc:1883',
    'ws://demo-smq.demo.svc:8083/mqtt',
    'kubectl -n demo port-forward svc/demo-smq 1883:1883 8083:8083',
    'kubectl -n demo port-forward svc/demo-smq-api 8888:8888',
    "kubectl -n demo get secret demo-smq-api-token -o jsonpath='{.data.token}' | base64 -d",
    'cluster: demo-smq',
    'kubectl apply --server-side -f charts/smq/crds/',
  ]) assert.ok(notes.includes(want), `NOTES lack ${JSON.stringify(want)}:\n${notes}`);

  const base = '/apis/smq.sestack.io/v1alpha1/namespaces/demo';
  const got = await k.request('GET', `${base}/smqclusters/demo-smq`);
  assert.equal(got.status, 200, got.body);
  const spec = got.json<{ spec: { replicas: number; etcd: { endpoints: string[] }; service: { type: string } } }>().spec;
  assert.equal(spec.replicas, 3);
  assert.deepEqual(spec.etcd.endpoints, ['demo-smq-etcd-0.demo-smq-etcd-headless:2379']);
  assert.equal(spec.service.type, 'ClusterIP');
  assert.equal((await k.request('GET', `${base}/smqbridges/telemetry`)).status, 200);
  assert.equal((await k.request('GET', '/apis/apps/v1/namespaces/demo/deployments/demo-smq-operator')).status, 200);

  const upgrade = await helm(['upgrade', 'demo', CHART, ...common, '--reuse-values', '--set', 'cluster.replicas=5'], 60_000);
  assert.equal(upgrade.code, 0, upgrade.stderr);
  assert.equal((await k.request('GET', `${base}/smqclusters/demo-smq`)).json<{ spec: { replicas: number } }>().spec.replicas, 5);

  const uninstall = await helm(['uninstall', 'demo', ...common], 60_000);
  assert.equal(uninstall.code, 0, uninstall.stderr);
  assert.equal((await k.request('GET', `${base}/smqclusters/demo-smq`)).status, 404);
  // CRDs stay (Helm never deletes a chart's crds/), and with them every other release's resources.
  assert.equal((await k.request('GET', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/smqclusters.smq.sestack.io')).status, 200);
});
