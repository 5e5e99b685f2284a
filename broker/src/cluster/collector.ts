import type { EtcdContext } from './context.js';

/**
 * Removes the inboxes and routes of nodes that left the cluster and did not come back within `etcd.orphan_ttl`
 * seconds (a node scaled away without a drain, or one that came back under a new id): nobody would ever read
 * them. (A node with a store keeps its routes through a restart; every other key of a node is bound to its
 * lease and goes with it.) One node sweeps (the first member id in order), now and then.
 */
export class InboxCollector {
  /** Target -> when this node first saw its inbox without its member. */
  private readonly absentSince = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly ctx: EtcdContext,
    private readonly members: () => ReadonlySet<string> | Iterable<string>,
    /** Nodes that have routes (from the route watch). */
    private readonly routed: () => Iterable<string>,
    private readonly orphanTtlMs: number,
  ) {}

  start(): void {
    const every = Math.min(this.orphanTtlMs, 60_000);
    this.timer = setInterval(() => void this.sweep().catch((err: unknown) => {
      this.ctx.log.debug({ err: (err as Error).message }, 'cluster: inbox sweep failed');
    }), every);
    this.timer.unref();
  }

  /** One pass; returns the inboxes it removed. */
  async sweep(now = Date.now()): Promise<string[]> {
    const members = new Set(this.members());
    const first = [...members].sort()[0];
    if (first !== undefined && first !== this.ctx.self) return [];
    const keys = await this.ctx.client.getAll().prefix(this.ctx.keys.inboxes).keys();
    const targets = new Set<string>(this.routed());
    for (const key of keys) {
      const t = this.ctx.keys.inboxTarget(key);
      if (t !== null) targets.add(t);
    }
    const removed: string[] = [];
    for (const t of targets) {
      if (members.has(t) || t === this.ctx.self) {
        this.absentSince.delete(t);
        continue;
      }
      const since = this.absentSince.get(t) ?? now;
      this.absentSince.set(t, since);
      if (now - since < this.orphanTtlMs) continue;
      // Routes first: once they are gone nobody writes to the inbox any more.
      await this.ctx.client.delete().prefix(this.ctx.keys.route(t, '')).exec();
      await this.ctx.client.delete().prefix(this.ctx.keys.inbox(t)).exec();
      this.absentSince.delete(t);
      removed.push(t);
      this.ctx.log.info({ node: t }, 'cluster: removed the routes and inbox of a node that left the cluster');
    }
    for (const t of this.absentSince.keys()) if (!targets.has(t)) this.absentSince.delete(t);
    return removed;
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
  }
}
