import type { Lease } from 'etcd3';
import type { RouteListener } from '../routing/router.js';
import { TopicTree } from '../routing/topic-tree.js';
import { MAX_TXN_OPS } from './etcd.js';
import { watchPrefix, type PrefixWatch } from './watch.js';
import type { EtcdContext } from './context.js';
import { VIEW_MARKER } from './view.js';

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
 * and loses its last; the changes are written to `routes/<self>/...`, many per transaction. Everyone else's: a
 * watch keeps them in a topic tree, so matching a publish against the whole cluster is one lookup.
 *
 * A node that comes back as itself (`durable`: its id is configured, or kept in its store) writes its routes
 * without a lease: its persistent sessions outlive a cut from etcd (and, with a store, a crash), so their routes
 * do too, and what is published meanwhile waits in its inbox. On its return it deletes the routes it no longer
 * has (prune); a node that never returns loses them with its inbox after `etcd.orphan_ttl` (collector.ts). A
 * node with a new id at each start keeps them under its lease.
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
  /** Callers of seen() waiting for other nodes' routes to arrive through the watch. */
  private watching: { node: string; routes: string[]; resolve: () => void }[] = [];

  /** Told of this node's view marker coming back through the watch, and of the watch's health (view.ts). */
  view: { seen(value: string): void; health(ok: boolean): void } | null = null;

  /** Nodes with routes here, and how many: for the collector, which also removes those of departed nodes. */
  private readonly counts = new Map<string, number>();

  constructor(
    private readonly ctx: EtcdContext,
    private readonly durable: boolean,
  ) {}

  /** The nodes that have routes. */
  nodes(): IterableIterator<string> {
    return this.counts.keys();
  }

  /**
   * Deletes the routes etcd holds for this node that it no longer has (those of sessions that ended while it was
   * away). Called once the router's routes are known (after listen()), so none that is wanted goes even briefly.
   */
  async prune(): Promise<number> {
    const prefix = this.ctx.keys.route(this.ctx.self, '');
    const keys = await this.ctx.client.getAll().prefix(prefix).keys();
    const stale = keys.filter((k) => {
      const route = k.slice(prefix.length);
      return route !== VIEW_MARKER && !this.local.has(route) && !this.pending.has(route);
    });
    for (let i = 0; i < stale.length; i += MAX_TXN_OPS) {
      const ops = stale.slice(i, i + MAX_TXN_OPS).map((k) => this.ctx.client.delete().key(k));
      await this.ctx.client.if(this.ctx.keys.member(this.ctx.self), 'Version', '>', -1).then(...ops).commit();
    }
    return stale.length;
  }

  /** Starts following everyone's routes. */
  async start(): Promise<void> {
    const marker = this.ctx.keys.route(this.ctx.self, VIEW_MARKER);
    this.watch = await watchPrefix(this.ctx.client, this.ctx.keys.routes, this.ctx.log, {
      put: (key, value) => {
        if (key === marker) this.view?.seen(value.toString());
        else this.remoteChange(key, true);
      },
      delete: (key) => this.remoteChange(key, false),
      health: (ok) => this.view?.health(ok),
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

  /**
   * Resolves once this node's view has each of `routes` of `node` (the routes of a session that moved there),
   * or after `ms`: until then a message published here could still go only to the session's old place.
   */
  seen(node: string, routes: string[], ms: number): Promise<boolean> {
    if (routes.every((r) => this.hasRemote(node, r))) return Promise.resolve(true);
    return new Promise((resolve) => {
      const entry = { node, routes, resolve: () => { clearTimeout(timer); resolve(true); } };
      const timer = setTimeout(() => {
        this.watching = this.watching.filter((w) => w !== entry);
        resolve(false);
      }, ms);
      this.watching.push(entry);
    });
  }

  private hasRemote(node: string, route: string): boolean {
    const { group, filter } = splitRoute(route);
    return this.remote.get(filter, group === null ? node : `${node}\u0000${group}`) !== undefined;
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
    if (route.charCodeAt(0) === 0) return; // another node's view marker, not a route
    const { group, filter } = splitRoute(route);
    const id = group === null ? node : `${node}\u0000${group}`;
    if (present) {
      if (this.remote.set(filter, id, { node, group, filter })) this.counts.set(node, (this.counts.get(node) ?? 0) + 1);
    } else if (this.remote.delete(filter, id)) {
      const n = (this.counts.get(node) ?? 1) - 1;
      if (n > 0) this.counts.set(node, n);
      else this.counts.delete(node);
    }
    if (present && this.watching.length > 0) {
      const done = this.watching.filter((w) => w.node === node && w.routes.every((r) => this.hasRemote(node, r)));
      if (done.length === 0) return;
      this.watching = this.watching.filter((w) => !done.includes(w));
      for (const w of done) w.resolve();
    }
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
      if (!put) return this.ctx.client.delete().key(key);
      return this.durable ? this.ctx.client.put(key).value('') : this.ctx.client.put(key).value('').lease(lease.grant());
    });
    // etcd transactions start with a comparison; this one always holds.
    await this.ctx.client.if(this.ctx.keys.member(this.ctx.self), 'Version', '>', -1).then(...ops).commit();
  }

  async stop(): Promise<void> {
    await this.watch?.cancel();
  }
}

/** A route's shared group (null for ordinary subscriptions) and filter: `$share/<group>/<filter>` or `<filter>`. */
export function splitRoute(route: string): { group: string | null; filter: string } {
  if (!route.startsWith('$share/')) return { group: null, filter: route };
  const slash = route.indexOf('/', 7);
  if (slash < 0) return { group: null, filter: route };
  return { group: route.slice(7, slash), filter: route.slice(slash + 1) };
}
