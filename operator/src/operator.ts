import type { Server } from 'node:http';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { LABEL, MANAGED_BY } from './build/names.js';
import { reconcileBridge } from './controllers/bridge.js';
import { reconcileCluster, type Result } from './controllers/cluster.js';
import type { BridgeObject, ClusterObject, ControllerContext } from './controllers/context.js';
import { OperatorMetrics, operatorHttp } from './http.js';
import { KubeClient, type KubeObject } from './kube/client.js';
import { EventRecorder } from './kube/events.js';
import { Informer, keyOf } from './kube/informer.js';
import { LeaderElection } from './kube/leader.js';
import { WorkQueue } from './kube/queue.js';

/** How the operator runs (from the environment, see main.ts). */
export interface OperatorOptions {
  readonly kubeConfig: KubeConfig;
  readonly log: Logger;
  /** The namespace to watch; '' for every namespace. */
  readonly namespace: string;
  /** Leader election: the Lease's namespace and this replica's identity; null runs without it. */
  readonly leader: { readonly namespace: string; readonly identity: string } | null;
  /** Port of /healthz, /readyz and /metrics; null for none (tests). */
  readonly httpPort: number | null;
}

/**
 * The smq operator: informers on SmqCluster, SmqBridge and the StatefulSets it owns feed two work queues (one
 * reconcile per object at a time); the reconciles (controllers/) turn resources into Kubernetes objects and
 * mappings. Only the leader reconciles.
 */
export class Operator {
  readonly client: KubeClient;
  private readonly metrics = new OperatorMetrics();
  private readonly clusters: Informer<ClusterObject>;
  private readonly bridges: Informer<BridgeObject>;
  private readonly statefulSets: Informer;
  private readonly clusterQueue: WorkQueue;
  private readonly bridgeQueue: WorkQueue;
  private readonly election: LeaderElection | null;
  private server: Server | null = null;
  private synced = false;
  /** The generation each SmqCluster was last reconciled at: an update that does not change it is skipped. */
  private readonly seen = new Map<string, number>();

  constructor(private readonly options: OperatorOptions) {
    const log = options.log;
    this.client = new KubeClient(options.kubeConfig);
    const ns = options.namespace;
    this.clusters = new Informer<ClusterObject>(this.client, 'SmqCluster', ns, log, (c, deleted) => this.clusterChanged(c, deleted));
    this.bridges = new Informer<BridgeObject>(this.client, 'SmqBridge', ns, log, (b) => {
      this.bridgeQueue.add(keyOf(b));
      this.clusterQueue.add(`${b.metadata.namespace}/${b.spec.cluster}`);
    });
    this.statefulSets = new Informer(this.client, 'StatefulSet', ns, log, (s) => this.ownedChanged(s), `${LABEL.managedBy}=${MANAGED_BY}`);
    const ctx: ControllerContext = {
      client: this.client, log, metrics: this.metrics, events: new EventRecorder(this.client, log),
      clusters: this.clusters, bridges: this.bridges, now: () => new Date(),
    };
    this.clusterQueue = this.queue('SmqCluster', (ns2, name) => reconcileCluster(ctx, ns2, name));
    this.bridgeQueue = this.queue('SmqBridge', (ns2, name) => reconcileBridge(ctx, ns2, name));
    this.election = options.leader === null ? null
      : new LeaderElection(this.client, options.leader.namespace, 'smq-operator-leader', options.leader.identity, log);
  }

  /** Serves the probes, waits to lead, then watches and reconciles. */
  async start(): Promise<void> {
    if (this.options.httpPort !== null) {
      this.server = operatorHttp(this.metrics, () => this.synced);
      await new Promise<void>((resolve) => this.server?.listen(this.options.httpPort ?? 0, resolve));
    }
    if (this.election !== null) {
      await this.election.acquire(() => {
        this.metrics.leader.set(0);
        // Another replica leads now: stop at once rather than reconcile alongside it.
        this.options.log.fatal('leadership lost: exiting');
        process.exit(1);
      });
    }
    this.metrics.leader.set(1);
    for (const i of [this.clusters, this.bridges, this.statefulSets]) i.start();
    await Promise.all([this.clusters.ready, this.bridges.ready, this.statefulSets.ready]);
    this.synced = true;
    this.options.log.info({ namespace: this.options.namespace || '(all)' }, 'operator started');
  }

  /** Resolves once no reconcile waits or runs (tests). */
  async idle(): Promise<void> {
    await Promise.all([this.clusterQueue.idle(), this.bridgeQueue.idle()]);
  }

  async stop(): Promise<void> {
    for (const i of [this.clusters, this.bridges, this.statefulSets]) i.stop();
    this.clusterQueue.stop();
    this.bridgeQueue.stop();
    await this.election?.release();
    // Reconciles still running finish their requests before the caller (a test) takes the API server away.
    await Promise.all([this.clusterQueue.idle(), this.bridgeQueue.idle()].map((p) => Promise.race([p, new Promise((r) => setTimeout(r, 5000).unref())])));
    await this.client.idle();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private clusterChanged(c: ClusterObject, deleted: boolean): void {
    const key = keyOf(c);
    if (deleted) {
      this.seen.delete(key);
      return;
    }
    // Our own status writes come back as updates with the same generation: nothing to do for them.
    const gen = c.metadata.generation ?? 0;
    if (this.seen.get(key) === gen && !c.metadata.deletionTimestamp) return;
    this.seen.set(key, gen);
    this.clusterQueue.add(key);
    for (const b of this.bridges.list()) {
      if (b.metadata.namespace === c.metadata.namespace && b.spec.cluster === c.metadata.name) this.bridgeQueue.add(keyOf(b));
    }
  }

  /** A StatefulSet the operator made changed (pods became ready, a rollout moved): its SmqCluster's status follows. */
  private ownedChanged(obj: KubeObject): void {
    const owners = (obj.metadata['ownerReferences'] ?? []) as { kind: string; name: string }[];
    const owner = owners.find((o) => o.kind === 'SmqCluster');
    if (owner !== undefined) this.clusterQueue.add(`${obj.metadata.namespace}/${owner.name}`);
  }

  private queue(kind: string, reconcile: (ns: string, name: string) => Promise<Result>): WorkQueue {
    const q: WorkQueue = new WorkQueue(async (key) => {
      const [ns = '', name = ''] = key.split('/');
      const end = this.metrics.duration.startTimer({ kind });
      try {
        const result = await reconcile(ns, name);
        this.metrics.reconciles.inc({ kind, result: 'success' });
        if (result.requeueMs !== undefined) q.add(key, result.requeueMs);
      } catch (err) {
        this.metrics.reconciles.inc({ kind, result: 'error' });
        throw err;
      } finally {
        end();
        this.metrics.queue.set({ kind }, q.length);
      }
    }, (key, err, retryInMs) => this.options.log.warn({ kind, key, retryInMs, err: (err as Error).message }, 'reconcile failed: retrying'));
    return q;
  }
}
