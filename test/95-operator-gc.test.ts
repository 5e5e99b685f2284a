/**
 * 95 operator, with controllers: the smq operator against a real kube-apiserver with kube-controller-manager's
 * garbage collector, StatefulSet and namespace controllers (startKube({ controllers: true }); still no
 * scheduler or kubelet, so pods stay Pending). What 92 cannot show without them: the StatefulSet the operator
 * writes makes real Pod objects from its template (config hash, the smq container) and PersistentVolumeClaims
 * from its volumeClaimTemplates, scaling through the SmqCluster's /scale subresource removes pods, and deleting
 * the SmqCluster removes everything the operator made for it through owner references alone, while the
 * PersistentVolumeClaims stay (persistentVolumeClaimRetentionPolicy Retain: the data outlives the cluster);
 * a foreground deletion waits for them all (blockOwnerDeletion).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { Operator } from '../operator/src/operator.js';
import { ROOT } from './helpers/broker.js';
import { startKube, type RunningKube } from './helpers/kube.js';

let kube: RunningKube;
let operator: Operator | undefined;
const ns = 'gc';
const smq = `/apis/smq.sestack.io/v1alpha1/namespaces/${ns}`;
const core = `/api/v1/namespaces/${ns}`;
const apps = `/apis/apps/v1/namespaces/${ns}`;
const log = pino({ level: 'warn' });

/** Every object the operator makes for SmqCluster `demo`, by API path. */
const owned = [
  `${core}/configmaps/demo-config`,
  `${core}/services/demo`,
  `${core}/services/demo-headless`,
  `${core}/services/demo-api`,
  `${core}/secrets/demo-api-token`,
  `${apps}/statefulsets/demo`,
  `/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets/demo`,
];
const pods = ['demo-0', 'demo-1', 'demo-2'];
const claims = pods.map((p) => `data-${p}`);

before(async () => {
  const t0 = Date.now();
  kube = await startKube({
    controllers: true,
    // Applied before the garbage collector starts, so it watches SmqClusters from the beginning.
    crds: ['smqclusters', 'smqbridges'].map((f) => `${ROOT}/crds/${f}.smq.sestack.io.yaml`),
  });
  process.stderr.write(`startKube with controllers: ${Date.now() - t0} ms (kube-controller-manager to a garbage-collected probe: ${kube.controllersReadyMs} ms)\n`);
  const res = await kube.request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } } });
  assert.equal(res.status, 201, res.body);
  const kc = new KubeConfig();
  kc.loadFromFile(kube.kubeconfigPath);
  operator = new Operator({ kubeConfig: kc, log, namespace: '', leader: { namespace: 'default', identity: `test-${Date.now()}` }, httpPort: null });
  void operator.start();
});

after(async () => {
  await operator?.stop();
  await kube?.stop();
});

/** Asks until `cond` holds, failing after `timeoutMs` with the controller manager's log. */
async function until(cond: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<number> {
  const t0 = Date.now();
  const deadline = t0 + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms\n${kube.logTail(30)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return Date.now() - t0;
}

async function get(path: string): Promise<unknown> {
  const res = await kube.request('GET', path);
  if (res.status === 404) return null;
  assert.equal(res.status, 200, `GET ${path}: ${res.body}`);
  return res.json();
}

async function gone(path: string): Promise<boolean> {
  return (await get(path)) === null;
}

/** The value at a dotted path of a JSON object (`spec.template.metadata`), undefined when absent. */
function at(obj: unknown, path: string): unknown {
  let v: unknown = obj;
  for (const part of path.split('.')) v = v === null || typeof v !== 'object' ? undefined : (v as Record<string, unknown>)[part];
  return v;
}

type OwnerRef = { apiVersion: string; kind: string; name: string; uid: string; controller?: boolean; blockOwnerDeletion?: boolean };
const ownersOf = (obj: unknown): OwnerRef[] => (at(obj, 'metadata.ownerReferences') ?? []) as OwnerRef[];

test('the StatefulSet controller makes Pending pods from the operator\'s template; /scale removes pods, not claims', async () => {
  const applied = await kube.request('PATCH', `${smq}/smqclusters/demo?fieldManager=smq-test&force=true`, {
    body: { apiVersion: 'smq.sestack.io/v1alpha1', kind: 'SmqCluster', metadata: { name: 'demo', namespace: ns }, spec: { etcd: { endpoints: ['etcd.gc.svc:2379'] } } },
    contentType: 'application/apply-patch+yaml',
  });
  assert.ok(applied.status === 200 || applied.status === 201, applied.body);
  const uid = at(applied.json(), 'metadata.uid') as string;

  await until(async () => (await Promise.all(owned.map(gone))).every((g) => !g), 'every object of the SmqCluster');
  for (const path of owned) {
    const refs = ownersOf(await get(path));
    assert.deepEqual(refs.map((r) => [r.kind, r.name, r.uid, r.controller, r.blockOwnerDeletion]), [['SmqCluster', 'demo', uid, true, true]], `${path}: owned by the SmqCluster`);
  }

  // Pods, by the StatefulSet controller (Parallel: all at once), from the template the operator wrote.
  const podsMs = await until(async () => (await Promise.all(pods.map((p) => gone(`${core}/pods/${p}`)))).every((g) => !g), 'pods demo-0..2');
  process.stderr.write(`pods demo-0..2 made ${podsMs} ms after the operator's objects\n`);
  const sts = await get(`${apps}/statefulsets/demo`);
  const stsUid = at(sts, 'metadata.uid') as string;
  const hash = (at(sts, 'spec.template.metadata.annotations') as Record<string, string>)['smq.sestack.io/config-hash'];
  assert.match(hash ?? '', /^[0-9a-f]{8,}$/, 'the StatefulSet\'s pod template carries the config hash');
  const image = (at(sts, 'spec.template.spec.containers') as { name: string; image: string }[]).find((c) => c.name === 'smq')?.image;
  assert.ok(image, 'the template has the smq container');
  for (const name of pods) {
    const pod = await get(`${core}/pods/${name}`);
    assert.equal((at(pod, 'metadata.annotations') as Record<string, string>)['smq.sestack.io/config-hash'], hash, `${name}: config hash`);
    assert.deepEqual((at(pod, 'spec.containers') as { name: string; image: string }[]).map((c) => [c.name, c.image]).filter(([n]) => n === 'smq'), [['smq', image]], `${name}: the smq container`);
    assert.deepEqual(ownersOf(pod).map((r) => [r.kind, r.name, r.uid, r.controller]), [['StatefulSet', 'demo', stsUid, true]], `${name}: owned by the StatefulSet`);
    assert.equal(at(pod, 'status.phase'), 'Pending', `${name}: no scheduler, no kubelet`);
    assert.equal(at(pod, 'spec.nodeName'), undefined, `${name}: never scheduled`);
  }
  // The StatefulSet controller creates each pod's claim before the pod; Retain: the claims have no owner.
  for (const claim of claims) {
    const pvc = await get(`${core}/persistentvolumeclaims/${claim}`);
    assert.ok(pvc, `${claim} exists`);
    assert.deepEqual(ownersOf(pvc), [], `${claim}: no owner (whenDeleted: Retain)`);
    assert.equal(at(pvc, 'status.phase'), 'Pending', `${claim}: nothing provisions it`);
  }
  // The controller writes the StatefulSet's status (92 writes it by hand).
  await until(async () => at(await get(`${apps}/statefulsets/demo`), 'status.replicas') === 3, 'StatefulSet status.replicas 3 from the controller');

  const scaled = await kube.request('PATCH', `${smq}/smqclusters/demo/scale`, { body: { spec: { replicas: 1 } }, contentType: 'application/merge-patch+json' });
  assert.equal(scaled.status, 200, scaled.body);
  const scaleMs = await until(async () => at(await get(`${apps}/statefulsets/demo`), 'spec.replicas') === 1 &&
    (await gone(`${core}/pods/demo-1`)) && (await gone(`${core}/pods/demo-2`)), 'pods demo-1 and demo-2 gone after scaling to 1');
  assert.ok(await get(`${core}/pods/demo-0`), 'demo-0 stays');
  for (const claim of claims) assert.ok(await get(`${core}/persistentvolumeclaims/${claim}`), `${claim} kept on scale-down (whenScaled: Retain)`);
  process.stderr.write(`scaled to 1, pods gone in ${scaleMs} ms\n`);
});

test('deleting the SmqCluster removes everything it owns, through the garbage collector; the claims stay', async () => {
  assert.ok(await get(`${core}/pods/demo-0`), 'the pod is there to be collected');
  const revisions = async (): Promise<unknown[]> => (at(await get(`${apps}/controllerrevisions`), 'items') ?? []) as unknown[];
  assert.ok((await revisions()).length > 0, 'the StatefulSet controller made ControllerRevisions (owned by the StatefulSet)');

  const res = await kube.request('DELETE', `${smq}/smqclusters/demo`);
  assert.equal(res.status, 200, res.body);
  const gcMs = await until(async () => (await gone(`${smq}/smqclusters/demo`)) &&
    (await Promise.all([...owned, `${core}/pods/demo-0`].map(gone))).every(Boolean) && (await revisions()).length === 0,
  'the SmqCluster, its objects, its pod and revisions garbage-collected', 30_000);
  process.stderr.write(`SmqCluster deleted: everything it owned gone in ${gcMs} ms\n`);

  for (const claim of claims) assert.ok(await get(`${core}/persistentvolumeclaims/${claim}`), `${claim} kept (whenDeleted: Retain)`);
  // The operator made nothing again for the deleted cluster.
  await operator?.idle();
  assert.deepEqual((await Promise.all(owned.map(gone))), owned.map(() => true));
});

test('a foreground deletion keeps the SmqCluster until the objects that block it are gone', async () => {
  const name = 'fg';
  const paths = owned.map((p) => p.replace(/\/demo(?=-|$)/, `/${name}`));
  const res = await kube.request('POST', `${smq}/smqclusters`, {
    body: { apiVersion: 'smq.sestack.io/v1alpha1', kind: 'SmqCluster', metadata: { name, namespace: ns }, spec: { replicas: 1, etcd: { endpoints: ['etcd.gc.svc:2379'] } } },
  });
  assert.equal(res.status, 201, res.body);
  await until(async () => (await Promise.all([...paths, `${core}/pods/${name}-0`].map(gone))).every((g) => !g), `every object of SmqCluster ${name}, and its pod`);
  await operator?.idle();

  const del = await kube.request('DELETE', `${smq}/smqclusters/${name}`, { body: { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Foreground' } });
  assert.equal(del.status, 200, del.body);
  // What DELETE answered: the SmqCluster itself, still there, now deleting its dependents first.
  assert.ok(at(del.json(), 'metadata.deletionTimestamp'), 'deletionTimestamp set');
  assert.deepEqual(at(del.json(), 'metadata.finalizers'), ['foregroundDeletion']);
  const ms = await until(async () => gone(`${smq}/smqclusters/${name}`), `SmqCluster ${name} gone`, 30_000);
  // blockOwnerDeletion on every owner reference: by the time the owner goes, its dependents went (the pod,
  // owned by the StatefulSet with blockOwnerDeletion too, before the StatefulSet).
  const left = (await Promise.all([...paths, `${core}/pods/${name}-0`].map(async (p) => ((await gone(p)) ? null : p)))).filter((p) => p !== null);
  assert.deepEqual(left, [], 'nothing the SmqCluster owned outlives it');
  process.stderr.write(`foreground deletion: SmqCluster and everything it owned gone in ${ms} ms\n`);
  assert.ok(await get(`${core}/persistentvolumeclaims/data-${name}-0`), `data-${name}-0 kept (whenDeleted: Retain)`);
});
