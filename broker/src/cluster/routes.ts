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
  /** Changes not yet written: route -> put (true) or delete, and the change's number (see written()). */
  private pending = new Map<string, { put: boolean; seq: number }>();
  /** Changes made so far: each one gets the next number. */
  private seq = 0;
  /** The lowest change number of each batch being written. */
  private readonly flying = new Set<{ low: number }>();
  /** A failed batch went back into `pending` out of number order (until `pending` empties). */
  private reordered = false;
  private scheduled = false;
  private lease: Lease | null = null;
  private watch: PrefixWatch | null = null;
  /** Callers of written() waiting for the changes up to `upTo` to reach etcd. */
  private waiting: { upTo: number; resolve: () => void }[] = [];
  /** Callers of seen() waiting for other nodes' routes, by `<node>\0<route>`: each counts the routes it misses. */
  private watching = new Map<string, { missing: number; resolve: () => void }[]>();

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
    for (const route of this.local) this.change(route, true);
  }

  /**
   * Resolves with true once every route change made so far is in etcd (a session that moved here is reachable),
   * or with false after `ms`: etcd did not take them in time (it is away, or this node has no lease) and they
   * are still being tried. Changes made after the call are not waited for, so a steady stream of them (sessions
   * arriving by the thousand at a drain) delays no one.
   */
  written(ms: number): Promise<boolean> {
    const upTo = this.seq;
    if (this.lowestUnwritten() > upTo) return Promise.resolve(true);
    return new Promise((resolve) => {
      const entry = { upTo, resolve: () => { clearTimeout(timer); resolve(true); } };
      const timer = setTimeout(() => {
        this.waiting = this.waiting.filter((w) => w !== entry);
        resolve(false);
      }, ms);
      this.waiting.push(entry);
    });
  }

  /** The number of the oldest change not yet in etcd (Infinity when there is none). */
  private lowestUnwritten(): number {
    let low = Infinity;
    for (const b of this.flying) low = Math.min(low, b.low);
    if (!this.reordered) {
      // In number order (change() appends): the first is the oldest.
      for (const { seq } of this.pending.values()) return Math.min(low, seq);
      return low;
    }
    for (const { seq } of this.pending.values()) low = Math.min(low, seq);
    return low;
  }

  /** Wakes the callers of written() whose changes are all in etcd. */
  private wake(): void {
    if (this.waiting.length === 0) return;
    const low = this.lowestUnwritten();
    const done = this.waiting.filter((w) => w.upTo < low);
    if (done.length === 0) return;
    this.waiting = this.waiting.filter((w) => w.upTo >= low);
    for (const w of done) w.resolve();
  }

  /**
   * Resolves once this node's view has each of `routes` of `node` (the routes of a session that moved there),
   * or after `ms`: until then a message published here could still go only to the session's old place. Each
   * waiter counts the routes it still misses, so thousands of waiters (a drain) cost one lookup per change.
   */
  seen(node: string, routes: string[], ms: number): Promise<boolean> {
    const missing = [...new Set(routes)].filter((r) => !this.hasRemote(node, r));
    if (missing.length === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const entry = { missing: missing.length, resolve: () => { clearTimeout(timer); resolve(true); } };
      const keys = missing.map((r) => `${node}\u0000${r}`);
      const timer = setTimeout(() => {
        for (const k of keys) this.unwatch(k, entry);
        resolve(false);
      }, ms);
      for (const k of keys) {
        const list = this.watching.get(k);
        if (list === undefined) this.watching.set(k, [entry]);
        else list.push(entry);
      }
    });
  }

  private unwatch(key: string, entry: { missing: number }): void {
    const list = this.watching.get(key)?.filter((e) => e !== entry);
    if (list === undefined || list.length === 0) this.watching.delete(key);
    else this.watching.set(key, list);
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
    this.change(route, true);
  }

  routeRemoved(route: string): void {
    this.local.delete(route);
    this.change(route, false);
  }

  /** A change to write; a newer one of the same route replaces it (and goes to the end, keeping number order). */
  private change(route: string, put: boolean): void {
    this.pending.delete(route);
    this.pending.set(route, { put, seq: ++this.seq });
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
    if (!present || this.watching.size === 0) return;
    const wanted = `${node}\u0000${route}`;
    const list = this.watching.get(wanted);
    if (list === undefined) return;
    this.watching.delete(wanted);
    for (const w of list) if (--w.missing === 0) w.resolve();
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
    if (lease === null) return; // written once a lease is granted (useLease); written() callers time out meanwhile
    if (this.pending.size === 0) this.reordered = false;
    while (this.pending.size > 0 && this.flying.size < PIPELINE) {
      const batch: [string, { put: boolean; seq: number }][] = [];
      let low = Infinity;
      for (const entry of this.pending) {
        batch.push(entry);
        low = Math.min(low, entry[1].seq);
        this.pending.delete(entry[0]);
        if (batch.length === MAX_TXN_OPS) break;
      }
      const flight = { low };
      this.flying.add(flight);
      this.write(lease, batch).then(
        () => {
          this.flying.delete(flight);
          this.wake();
          this.writeSome();
        },
        (err: unknown) => {
          this.flying.delete(flight);
          // Put back what is still wanted as it was (a newer change wins), and try again shortly.
          for (const [route, change] of batch) {
            if (this.pending.has(route)) continue;
            this.pending.set(route, change);
            this.reordered = true;
          }
          this.ctx.log.warn({ err: (err as Error).message, routes: batch.length }, 'cluster: writing routes failed: retrying');
          setTimeout(() => this.writeSome(), 1000).unref();
        },
      );
    }
  }

  private async write(lease: Lease, batch: [string, { put: boolean }][]): Promise<void> {
    const ops = batch.map(([route, { put }]) => {
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
