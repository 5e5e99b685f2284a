import type { Lease } from 'etcd3';
import type { RouteListener } from '../routing/router.js';
import { TopicTree } from '../routing/topic-tree.js';
import { MAX_TXN_OPS } from './etcd.js';
import { watchPrefix, type PrefixWatch } from './watch.js';
import type { EtcdContext } from './context.js';

/** A route of another node: it has ordinary subscribers for a filter, or members of a shared group. */
export interface RemoteRoute {
  readonly node: string;
  /** Shared group name, or null for ordinary subscriptions. */
  readonly group: string | null;
  readonly filter: string;
}

/** Transactions of route changes in flight at once: 100,000 new routes take ~800 transactions. */
const PIPELINE = 8;

/**
 * Routes in both directions. Ours: the router tells us when a filter (or shared group) gets its first subscriber
 * and loses its last; the changes are written to `routes/<self>/...` under our lease, many per transaction.
 * Everyone else's: a watch keeps them in a topic tree, so matching a publish against the whole cluster is one
 * lookup.
 */
export class Routes implements RouteListener {
  private readonly remote = new TopicTree<RemoteRoute>();
  /** Our routes as etcd should have them: route -> wanted. */
  private readonly local = new Set<string>();
  /** Changes not yet written: route -> true (put) or false (delete). */
  private pending = new Map<string, boolean>();
  private inFlight = 0;
  private scheduled = false;
  private lease: Lease | null = null;
  private watch: PrefixWatch | null = null;
  /** Callers of written() waiting for the pending changes to reach etcd. */
  private waiting: (() => void)[] = [];

  constructor(
    private readonly ctx: EtcdContext,
  ) {}

  /** Starts following everyone's routes. */
  async start(): Promise<void> {
    this.watch = await watchPrefix(this.ctx.client, this.ctx.keys.routes, this.ctx.log, {
      put: (key) => this.remoteChange(key, true),
      delete: (key) => this.remoteChange(key, false),
    });
  }

  /** A (new) lease: every route of ours is written again under it (the old lease took them along). */
  useLease(lease: Lease): void {
    this.lease = lease;
    for (const route of this.local) this.pending.set(route, true);
    this.schedule();
  }

  /** Resolves once every route change made so far is in etcd (a session that moved here is reachable). */
  written(): Promise<void> {
    if (this.pending.size === 0 && this.inFlight === 0 && !this.scheduled) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** The other nodes' routes matching a topic name. */
  match(topic: string): readonly RemoteRoute[] {
    return this.remote.match(topic);
  }

  routeAdded(route: string): void {
    this.local.add(route);
    this.pending.set(route, true);
    this.schedule();
  }

  routeRemoved(route: string): void {
    this.local.delete(route);
    this.pending.set(route, false);
    this.schedule();
  }

  private remoteChange(key: string, present: boolean): void {
    const parsed = this.ctx.keys.parseRoute(key);
    if (parsed === null || parsed.node === this.ctx.self) return;
    const { node, route } = parsed;
    let group: string | null = null;
    let filter = route;
    if (route.startsWith('$share/')) {
      const slash = route.indexOf('/', 7);
      if (slash < 0) return;
      group = route.slice(7, slash);
      filter = route.slice(slash + 1);
    }
    const id = group === null ? node : `${node}\u0000${group}`;
    if (present) this.remote.set(filter, id, { node, group, filter });
    else this.remote.delete(filter, id);
  }

  /** Writes pending changes on the next turn, so a burst of subscriptions shares transactions. */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.writeSome();
    });
  }

  private writeSome(): void {
    const lease = this.lease;
    if (lease === null) return; // written once a lease is granted (useLease)
    if (this.pending.size === 0 && this.inFlight === 0) {
      const waiting = this.waiting;
      this.waiting = [];
      for (const resolve of waiting) resolve();
      return;
    }
    while (this.pending.size > 0 && this.inFlight < PIPELINE) {
      const batch: [string, boolean][] = [];
      for (const entry of this.pending) {
        batch.push(entry);
        this.pending.delete(entry[0]);
        if (batch.length === MAX_TXN_OPS) break;
      }
      this.inFlight++;
      this.write(lease, batch).then(
        () => {
          this.inFlight--;
          this.writeSome();
        },
        (err: unknown) => {
          this.inFlight--;
          // Put back what is still wanted as it was (a newer change wins), and try again shortly.
          for (const [route, put] of batch) if (!this.pending.has(route)) this.pending.set(route, put);
          this.ctx.log.warn({ err: (err as Error).message, routes: batch.length }, 'cluster: writing routes failed: retrying');
          setTimeout(() => this.writeSome(), 1000).unref();
        },
      );
    }
  }

  private async write(lease: Lease, batch: [string, boolean][]): Promise<void> {
    const ops = batch.map(([route, put]) => {
      const key = this.ctx.keys.route(this.ctx.self, route);
      return put ? this.ctx.client.put(key).value('').lease(lease.grant()) : this.ctx.client.delete().key(key);
    });
    // etcd transactions start with a comparison; this one always holds.
    await this.ctx.client.if(this.ctx.keys.member(this.ctx.self), 'Version', '>', -1).then(...ops).commit();
  }

  async stop(): Promise<void> {
    await this.watch?.cancel();
  }
}
