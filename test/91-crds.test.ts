/**
 * 91 CRDs: the SmqCluster and SmqBridge CRDs of crds/ on a real kube-apiserver (built from the Go module
 * proxy, started with its etcd as envtest does): they install and become established, defaults are applied,
 * invalid resources are rejected with the rule that says why, and the scale subresource works.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { parse } from 'yaml';
import { ROOT } from './helpers/broker.js';
import { startKube, type RunningKube } from './helpers/kube.js';

let kube: RunningKube;
const ns = 'crds';
const base = `/apis/smq.sestack.io/v1alpha1/namespaces/${ns}`;

before(async () => {
  kube = await startKube();
  await kube.request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } } });
  for (const file of ['smqclusters', 'smqbridges']) {
    const crd = parse(readFileSync(`${ROOT}/crds/${file}.smq.sestack.io.yaml`, 'utf8')) as { metadata: { name: string } };
    const res = await kube.request('PATCH', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}?fieldManager=smq-test&force=true`, {
      body: crd, contentType: 'application/apply-patch+yaml',
    });
    assert.ok(res.status === 200 || res.status === 201, `apply ${file}: ${res.status} ${res.body}`);
    await established(crd.metadata.name);
  }
});

after(async () => {
  await kube?.stop();
});

async function established(name: string): Promise<void> {
  for (const deadline = Date.now() + 20_000; ;) {
    const res = await kube.request('GET', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`);
    const conds = ((res.json() as { status?: { conditions?: { type: string; status: string }[] } }).status?.conditions) ?? [];
    if (conds.some((c) => c.type === 'Established' && c.status === 'True')) return;
    if (Date.now() > deadline) throw new Error(`${name} not established: ${res.body}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const cluster = (name: string, spec: Record<string, unknown>): Record<string, unknown> => ({
  apiVersion: 'smq.sestack.io/v1alpha1', kind: 'SmqCluster', metadata: { name, namespace: ns }, spec,
});

test('an SmqCluster with only etcd endpoints is taken, with every default filled in', async () => {
  const res = await kube.request('POST', `${base}/smqclusters`, { body: cluster('minimal', { etcd: { endpoints: ['etcd:2379'] } }) });
  assert.equal(res.status, 201, res.body);
  const spec = (res.json() as { spec: Record<string, unknown> }).spec;
  assert.equal(spec['replicas'], 3);
  assert.deepEqual(spec['service'], { type: 'ClusterIP', ports: { mqtt: 1883, mqtts: 8883, ws: 8083, wss: 8084 } });
  assert.deepEqual(spec['storage'], { size: '1Gi' });
  assert.deepEqual(spec['podDisruptionBudget'], { enabled: true, maxUnavailable: 1 });
  assert.equal(spec['terminationGracePeriodSeconds'], 60);
});

test('invalid SmqClusters are rejected, each naming what is wrong', async () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{}, /spec\.etcd: Required value/],
    [{ etcd: { endpoints: [] } }, /spec\.etcd\.endpoints/],
    [{ etcd: { endpoints: ['e:2379'] }, replicas: -1 }, /spec\.replicas/],
    [{ etcd: { endpoints: ['e:2379'] }, config: { mqtt: { max_inflight: 'many' } } }, /spec\.config\.mqtt\.max_inflight/],
    [{ etcd: { endpoints: ['e:2379'] }, config: { mqtt: { shared_strategy: 'fastest' } } }, /spec\.config\.mqtt\.shared_strategy/],
    // A key the operator sets is no field of spec.config: kubectl's strict field validation names it.
    [{ etcd: { endpoints: ['e:2379'] }, config: { port: 1884 } }, /unknown field \W*spec\.config\.port/],
    [{ etcd: { endpoints: ['e:2379'] }, storage: { size: 'lots' } }, /spec\.storage\.size/],
  ];
  for (const [i, [spec, why]] of cases.entries()) {
    const res = await kube.request('POST', `${base}/smqclusters?fieldValidation=Strict`, { body: cluster(`bad-${i}`, spec) });
    assert.ok(res.status === 422 || (res.status === 400 && /strict decoding error/.test(res.body)), `${JSON.stringify(spec)}: ${res.status} ${res.body}`);
    assert.match(res.body, why, JSON.stringify(spec));
  }
});

test('kubectl scale: the scale subresource sets spec.replicas', async () => {
  await kube.request('POST', `${base}/smqclusters`, { body: cluster('scaled', { etcd: { endpoints: ['etcd:2379'] } }) });
  const res = await kube.request('PATCH', `${base}/smqclusters/scaled/scale`, {
    body: { spec: { replicas: 5 } }, contentType: 'application/merge-patch+json',
  });
  assert.equal(res.status, 200, res.body);
  const got = (await kube.request('GET', `${base}/smqclusters/scaled`)).json() as { spec: { replicas: number } };
  assert.equal(got.spec.replicas, 5);
});

test('SmqBridge: mappings are checked (Kafka topic names, each (topic, queue) pair once), the key defaults to the topic', async () => {
  const bridge = (name: string, mappings: unknown[]): Record<string, unknown> => ({
    apiVersion: 'smq.sestack.io/v1alpha1', kind: 'SmqBridge', metadata: { name, namespace: ns },
    spec: { cluster: 'minimal', kafka: { bootstrapServers: ['kafka:9092'] }, mappings },
  });
  const ok = await kube.request('POST', `${base}/smqbridges`, { body: bridge('good', [{ topic: 'devices/+/up', queue: 'uplink' }]) });
  assert.equal(ok.status, 201, ok.body);
  assert.equal((ok.json() as { spec: { mappings: { key: string }[] } }).spec.mappings[0]?.key, 'topic');
  const twice = await kube.request('POST', `${base}/smqbridges`, { body: bridge('twice', [{ topic: 'a', queue: 'q' }, { topic: 'a', queue: 'q' }]) });
  assert.equal(twice.status, 422);
  assert.match(twice.body, /Duplicate value/);
  const badQueue = await kube.request('POST', `${base}/smqbridges`, { body: bridge('bad-queue', [{ topic: 'a', queue: 'no spaces' }]) });
  assert.equal(badQueue.status, 422);
  assert.match(badQueue.body, /spec\.mappings\[0\]\.queue/);
});

test('a name too long for its pods and Services is refused, and storage cannot change after creation', async () => {
  const long = await kube.request('POST', `${base}/smqclusters`, { body: cluster('x'.repeat(48), { etcd: { endpoints: ['e:2379'] } }) });
  assert.equal(long.status, 422, long.body);
  assert.match(long.body, /at most 47 characters/);
  await kube.request('POST', `${base}/smqclusters`, { body: cluster('stored', { etcd: { endpoints: ['e:2379'] }, storage: { size: '1Gi' } }) });
  const grown = await kube.request('PATCH', `${base}/smqclusters/stored`, { body: { spec: { storage: { size: '2Gi' } } }, contentType: 'application/merge-patch+json' });
  assert.equal(grown.status, 422, grown.body);
  assert.match(grown.body, /storage cannot change after creation/);
  const other = await kube.request('PATCH', `${base}/smqclusters/stored`, { body: { spec: { replicas: 4, imagePullSecrets: [{ name: 'registry' }] } }, contentType: 'application/merge-patch+json' });
  assert.equal(other.status, 200, 'other fields still change');
});
