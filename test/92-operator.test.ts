/**
 * 92 operator: the smq operator against a real kube-apiserver (with its etcd, as envtest runs it: no kubelet,
 * no controller-manager, so a real smq process stands in for the pods, and StatefulSet status is written by
 * the test as the StatefulSet controller would). An SmqCluster becomes its ConfigMap, Services, StatefulSet
 * and PodDisruptionBudget; updates and scaling patch them; status and Events follow; an SmqBridge's mappings
 * reach a running smq through its HTTP API and leave when the resource is deleted; a restarted operator
 * changes nothing that is already right.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { parse } from 'yaml';
import { Operator } from '../operator/src/operator.js';
import { startBroker, ROOT, type RunningBroker, httpBase } from './helpers/broker.js';
import { startKube, type RunningKube } from './helpers/kube.js';

let kube: RunningKube;
let operator: Operator;
let broker: RunningBroker;
const ns = 'op';
const smq = `/apis/smq.sestack.io/v1alpha1/namespaces/${ns}`;
const log = pino({ level: 'warn' });

function startOperator(): Operator {
  const kc = new KubeConfig();
  kc.loadFromFile(kube.kubeconfigPath);
  const op = new Operator({ kubeConfig: kc, log, namespace: '', leader: { namespace: 'default', identity: `test-${Date.now()}` }, httpPort: null });
  void op.start();
  return op;
}

before(async () => {
  kube = await startKube();
  await kube.request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } } });
  for (const file of ['smqclusters', 'smqbridges']) {
    const crd = parse(readFileSync(`${ROOT}/crds/${file}.smq.sestack.io.yaml`, 'utf8')) as { metadata: { name: string } };
    await kube.request('PATCH', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}?fieldManager=smq-test`, { body: crd, contentType: 'application/apply-patch+yaml' });
  }
  await until(async () => (await kube.request('GET', `${smq}/smqbridges`)).status === 200, 'the CRDs are served');
  operator = startOperator();
});

after(async () => {
  await operator?.stop();
  await broker?.stop();
  await kube?.stop();
});

/** Asks until `cond` holds (the operator works from watches, a moment after each change). */
async function until(cond: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function get(path: string): Promise<unknown> {
  const res = await kube.request('GET', path);
  return res.status === 200 ? res.json() : null;
}

/** The value at a dotted path of a JSON object (`spec.template.metadata`), undefined when absent. */
function at(obj: unknown, path: string): unknown {
  let v: unknown = obj;
  for (const part of path.split('.')) v = v === null || typeof v !== 'object' ? undefined : (v as Record<string, unknown>)[part];
  return v;
}

/** The condition of `type` in an object's status. */
function condition(obj: unknown, type: string): { status: string; reason: string } | undefined {
  return ((at(obj, 'status.conditions') ?? []) as { type: string; status: string; reason: string }[]).find((c) => c.type === type);
}

async function apply(obj: Record<string, unknown>, path: string): Promise<void> {
  const res = await kube.request('PATCH', `${path}?fieldManager=smq-test&force=true`, { body: obj, contentType: 'application/apply-patch+yaml' });
  assert.ok(res.status === 200 || res.status === 201, `${path}: ${res.status} ${res.body}`);
}

const cluster = (spec: Record<string, unknown>, annotations: Record<string, string> = {}): Record<string, unknown> => ({
  apiVersion: 'smq.sestack.io/v1alpha1', kind: 'SmqCluster', metadata: { name: 'demo', namespace: ns, annotations },
  spec: { etcd: { endpoints: ['etcd.op.svc:2379'] }, ...spec },
});

test('an SmqCluster becomes its ConfigMap, Services, StatefulSet and PodDisruptionBudget, owned by it, with status', async () => {
  await apply(cluster({ config: { mqtt: { max_inflight: 64 } } }), `${smq}/smqclusters/demo`);
  await until(async () => (await get(`/apis/apps/v1/namespaces/${ns}/statefulsets/demo`)) !== null, 'the StatefulSet');
  const sts = await get(`/apis/apps/v1/namespaces/${ns}/statefulsets/demo`);
  assert.equal(at(sts, 'spec.replicas'), 3);
  assert.equal((at(sts, 'metadata.ownerReferences') as { kind: string }[])[0]?.kind, 'SmqCluster');
  const cm = await get(`/api/v1/namespaces/${ns}/configmaps/demo-config`);
  const config = parse((at(cm, 'data') as Record<string, string>)['smq.yaml'] as string) as unknown;
  assert.equal(at(config, 'mqtt.max_inflight'), 64);
  assert.deepEqual(at(config, 'etcd.endpoints'), ['etcd.op.svc:2379']);
  assert.equal(at(config, 'cluster'), `${ns}-demo`);
  assert.ok(await get(`/api/v1/namespaces/${ns}/services/demo`), 'client Service');
  assert.equal(at(await get(`/api/v1/namespaces/${ns}/services/demo-api`), 'spec.type'), 'ClusterIP', 'the API on its own ClusterIP Service');
  assert.ok(await get(`/api/v1/namespaces/${ns}/services/demo-headless`), 'headless Service');
  assert.ok(await get(`/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets/demo`), 'PodDisruptionBudget');
  assert.ok(await get(`/api/v1/namespaces/${ns}/secrets/demo-api-token`), 'the API token Secret the operator made');
  await until(async () => {
    const c = await get(`${smq}/smqclusters/demo`);
    const ready = condition(c, 'Ready');
    return ready?.status === 'False' && at(c, 'status.selector') !== undefined;
  }, 'status: not ready yet, with the selector');
  // The StatefulSet controller's part (no controller-manager here): all replicas ready.
  await kube.request('PATCH', `/apis/apps/v1/namespaces/${ns}/statefulsets/demo/status`, {
    body: { status: { replicas: 3, readyReplicas: 3, updatedReplicas: 3, currentReplicas: 3, observedGeneration: at(sts, 'metadata.generation') } },
    contentType: 'application/merge-patch+json',
  });
  await until(async () => {
    const c = await get(`${smq}/smqclusters/demo`);
    const ready = condition(c, 'Ready');
    return ready?.status === 'True' && at(c, 'status.readyReplicas') === 3;
  }, 'status: Ready with 3 ready replicas');
});

test('a config change rewrites the ConfigMap and rolls the pods (new hash on the pod template), with an Event; scaling patches replicas', async () => {
  const hashOf = async (): Promise<string> => (at(await get(`/apis/apps/v1/namespaces/${ns}/statefulsets/demo`), 'spec.template.metadata.annotations') as Record<string, string>)['smq.sestack.io/config-hash'] as string;
  const before = await hashOf();
  await apply(cluster({ config: { mqtt: { max_inflight: 128 } } }), `${smq}/smqclusters/demo`);
  await until(async () => (await hashOf()) !== before, 'a new config hash');
  const cm = await get(`/api/v1/namespaces/${ns}/configmaps/demo-config`);
  assert.match((at(cm, 'data') as Record<string, string>)['smq.yaml'] as string, /max_inflight: 128/);
  await until(async () => {
    const events = await get(`/api/v1/namespaces/${ns}/events`);
    return ((at(events, 'items') ?? []) as { reason: string }[]).some((e) => e.reason === 'ConfigChanged');
  }, 'a ConfigChanged Event');
  const scaled = await kube.request('PATCH', `${smq}/smqclusters/demo/scale`, { body: { spec: { replicas: 5 } }, contentType: 'application/merge-patch+json' });
  assert.equal(scaled.status, 200, scaled.body);
  await until(async () => at(await get(`/apis/apps/v1/namespaces/${ns}/statefulsets/demo`), 'spec.replicas') === 5, 'the StatefulSet scaled to 5');
});

test('an SmqBridge\'s mappings reach the running smq through its HTTP API, and leave when the SmqBridge is deleted', async () => {
  const token = Buffer.from(at(await get(`/api/v1/namespaces/${ns}/secrets/demo-api-token`), 'data.token') as string, 'base64').toString();
  broker = await startBroker({ config: { http: { enable: true, host: '127.0.0.1', port: 0, tokens: [token] } } });
  const api = await httpBase(broker);
  // No pods here: the annotation points the operator at the stand-in broker.
  await apply(cluster({ replicas: 5, config: { mqtt: { max_inflight: 128 } } }, { 'smq.sestack.io/api-url': api }), `${smq}/smqclusters/demo`);
  await apply({
    apiVersion: 'smq.sestack.io/v1alpha1', kind: 'SmqBridge', metadata: { name: 'uplink', namespace: ns },
    spec: { cluster: 'demo', kafka: { bootstrapServers: ['kafka.op.svc:9092'] }, mappings: [{ topic: 'devices/+/up', queue: 'uplink', key: 'clientid' }, { topic: 'agents/results', queue: 'results' }] },
  }, `${smq}/smqbridges/uplink`);
  const mappings = async (): Promise<{ topic: string; queue: string; key?: string }[]> =>
    ((await (await fetch(`${api}/api/v1/bridge/`, { headers: { 'x-token': token } })).json()) as { mappings: { topic: string; queue: string; key?: string }[] }).mappings;
  await until(async () => (await mappings()).length === 2, 'both mappings on the broker');
  assert.deepEqual((await mappings()).map((m) => [m.topic, m.queue, m.key]), [['agents/results', 'results', 'topic'], ['devices/+/up', 'uplink', 'clientid']]);
  const b = await get(`${smq}/smqbridges/uplink`);
  assert.deepEqual(at(b, 'metadata.finalizers'), ['smq.sestack.io/mappings']);
  await until(async () => ((at(await get(`${smq}/smqbridges/uplink`), 'status.mappings') ?? []) as unknown[]).length === 2, 'status lists the applied mappings');
  // The bridge's Kafka goes into the cluster's configuration.
  await until(async () => /addr:\s*\n\s*- kafka\.op\.svc:9092/.test((at(await get(`/api/v1/namespaces/${ns}/configmaps/demo-config`), 'data') as Record<string, string>)['smq.yaml'] as string), 'bridge.kafka.addr in the ConfigMap');
  // A second SmqBridge naming another Kafka for the same cluster is not applied: a cluster has one Kafka.
  await apply({
    apiVersion: 'smq.sestack.io/v1alpha1', kind: 'SmqBridge', metadata: { name: 'vlink', namespace: ns },
    spec: { cluster: 'demo', kafka: { bootstrapServers: ['other-kafka.op.svc:9092'] }, mappings: [{ topic: 'x/#', queue: 'x' }] },
  }, `${smq}/smqbridges/vlink`);
  await until(async () => condition(await get(`${smq}/smqbridges/vlink`), 'Ready')?.reason === 'ConflictingKafka', 'the conflicting SmqBridge says why it waits');
  assert.equal((await mappings()).length, 2, 'its mapping was not applied');
  assert.equal((await kube.request('DELETE', `${smq}/smqbridges/vlink`)).status, 200);
  await until(async () => (await get(`${smq}/smqbridges/vlink`)) === null, 'the conflicting SmqBridge deleted');
  // One mapping dropped from the spec leaves the broker.
  await apply({
    apiVersion: 'smq.sestack.io/v1alpha1', kind: 'SmqBridge', metadata: { name: 'uplink', namespace: ns },
    spec: { cluster: 'demo', kafka: { bootstrapServers: ['kafka.op.svc:9092'] }, mappings: [{ topic: 'devices/+/up', queue: 'uplink', key: 'clientid' }] },
  }, `${smq}/smqbridges/uplink`);
  await until(async () => (await mappings()).length === 1, 'the dropped mapping leaves the broker');
  assert.equal((await kube.request('DELETE', `${smq}/smqbridges/uplink`)).status, 200);
  await until(async () => (await mappings()).length === 0 && (await get(`${smq}/smqbridges/uplink`)) === null, 'mappings removed, then the SmqBridge gone');
});

test('a restarted operator changes nothing that is already right', async () => {
  await operator.idle();
  const versions = async (): Promise<string[]> => Promise.all([
    `/apis/apps/v1/namespaces/${ns}/statefulsets/demo`, `/api/v1/namespaces/${ns}/configmaps/demo-config`,
    `/api/v1/namespaces/${ns}/services/demo`, `/api/v1/namespaces/${ns}/services/demo-headless`,
    `/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets/demo`, `/api/v1/namespaces/${ns}/secrets/demo-api-token`,
  ].map(async (p) => at(await get(p), 'metadata.resourceVersion') as string));
  const beforeRestart = await versions();
  await operator.stop();
  // start() resolves once the caches are filled, every object queued; idle() once each was reconciled.
  operator = await startOperator();
  await operator.idle();
  assert.deepEqual(await versions(), beforeRestart);
});
