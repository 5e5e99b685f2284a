import type { Lease } from 'etcd3';
import { watchPrefix, type PrefixWatch } from './watch.js';
import type { EtcdContext } from './context.js';
import { type Claim, decodeClaim, encodeClaim, releaseClaim, swapClaim } from './claims.js';


/** What the registry needs from the broker. */
export interface ClientHost {
  /** Disconnects this node's connection of `clientId` (v5 0x8E) if it is older than `by`; true when it did. */
  kickOlder(clientId: string, by: Claim): boolean;
  /** The connections of this node, to claim again after the lease was lost. */
  connected(): Iterable<{ clientId: string; at: number }>;
}

/** How often a claim is tried again while etcd does not take it. */
const RETRY_MS = 500;

/**
 * Client ids are unique cluster-wide: one live connection per client id, the newest one (MQTT's session
 * takeover, v5 0x8E, across nodes). A node claims `clients/<id>` for each connection under its lease, with the
 * connection's CONNACK time, by compare-and-swap: a claim only replaces an older one, so a claim that reaches
 * etcd late (the client has reconnected elsewhere since) loses instead of dropping the newer connection. The
 * node whose claim was replaced is asked through `takeover/<node>/<id>` to disconnect its connection, which it
 * does only if that connection is older than the claim. A claim that etcd does not take (no lease, etcd away) is
 * tried again until it is taken or its connection ends, and every claim is written again under a new lease.
 */
export class ClientRegistry {
  private watch: PrefixWatch | null = null;
  /** Claims of this node's connections not yet in etcd, by client id. */
  private readonly pending = new Map<string, number>();
  private retryTimer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    private readonly ctx: EtcdContext,
    private readonly lease: () => Lease | null,
    private readonly host: ClientHost,
  ) {}

  async start(): Promise<void> {
    const prefix = this.ctx.keys.takeover(this.ctx.self);
    this.watch = await watchPrefix(this.ctx.client, prefix, this.ctx.log, {
      put: (key, value) => {
        const clientId = key.slice(prefix.length);
        const by = decodeClaim(value.toString());
        if (this.host.kickOlder(clientId, by)) this.pending.delete(clientId);
        void this.ctx.client.delete().key(key).exec().catch(() => undefined);
      },
      delete: () => undefined,
    });
  }

  /** A client connected here at `at` (its CONNACK): claim its id, and have the node it was on let go of it. */
  connected(clientId: string, at: number): void {
    this.pending.set(clientId, at);
    void this.claim(clientId, at);
  }

  /** The lease is new (etcd lost the old one): every connection of this node claims its id again. */
  reclaimAll(): void {
    for (const { clientId, at } of this.host.connected()) this.connected(clientId, at);
  }

  private async claim(clientId: string, at: number): Promise<void> {
    const lease = this.lease();
    if (lease === null || this.stopped) return this.retryLater();
    const mine: Claim = { node: this.ctx.self, at };
    try {
      // While pending: the connection has not ended and no newer one of the id claims on this node.
      const r = await swapClaim(this.ctx, this.ctx.keys.client(clientId), mine, lease, () => this.pending.get(clientId) === at);
      if (r !== null) {
        this.pending.delete(clientId);
        // A newer connection of this id is elsewhere: this one goes, as it would have if it had been asked.
        if (!r.taken) this.host.kickOlder(clientId, r.newer);
        else if (r.replaced !== null && r.replaced.node !== this.ctx.self) {
          this.ctx.log.info({ clientId, node: r.replaced.node }, 'cluster: client id was connected to another node: taking it over');
          await lease.put(this.ctx.keys.takeover(r.replaced.node, clientId)).value(encodeClaim(mine)).exec();
        }
        return;
      }
      if (this.pending.get(clientId) !== at) return;
    } catch (err) {
      this.ctx.log.debug({ clientId, err: (err as Error).message }, 'cluster: recording a client failed: retrying');
    }
    this.retryLater();
  }

  /** Tries the claims still pending again a little later. */
  private retryLater(): void {
    if (this.retryTimer !== null || this.stopped || this.pending.size === 0) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      for (const [clientId, at] of this.pending) void this.claim(clientId, at);
    }, RETRY_MS);
    this.retryTimer.unref();
  }

  /** The connection of `clientId` that connected at `at` left this node: its claim goes, unless a newer one holds. */
  disconnected(clientId: string, at: number): void {
    if (this.pending.get(clientId) === at) this.pending.delete(clientId);
    releaseClaim(this.ctx, this.ctx.keys.client(clientId), { node: this.ctx.self, at })
      .catch((err: unknown) => this.ctx.log.debug({ clientId, err: (err as Error).message }, 'cluster: releasing a client failed'));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    await this.watch?.cancel();
  }
}
