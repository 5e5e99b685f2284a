import type { Etcd3, Lease } from 'etcd3';
import type { Logger } from 'pino';
import type { Keys } from './keys.js';
import { watchPrefix, type PrefixWatch } from './watch.js';

/** What a node says about itself in `members/<id>`. */
export interface MemberInfo {
  readonly id: string;
  readonly name: string;
  /** MQTT listener addresses, `transport://host:port`. */
  readonly addresses: readonly string[];
  readonly version: string;
  /** Epoch ms of the node's start. */
  readonly started: number;
  /** Connected clients at the last refresh. */
  clients: number;
  /** Set while the node drains: it takes no sessions from others. */
  draining?: boolean;
  /**
   * What this node's version reads that older ones refuse, so that others write it only to nodes that take it
   * during a rolling upgrade: `message-id` (message identities in batches and session moves), `move-batch`
   * (many sessions in one move at a drain, batch-moves.ts).
   */
  features?: readonly string[];
}

/** The features this version announces in its member record (see MemberInfo.features). */
export const FEATURES: readonly string[] = ['message-id', 'move-batch'];

/**
 * Membership: this node's registration under a lease (gone `etcd.lease_ttl` seconds after the node stops
 * renewing it), and everyone's registrations from a watch. When etcd loses the lease (etcd was away for longer
 * than the TTL), a new one is taken and `onLease` lets the owners of other lease-bound keys write them again.
 */
export class Membership {
  readonly members = new Map<string, MemberInfo>();
  /**
   * The features of every node seen since this one started, kept after it leaves the member list: a node is
   * out of the list while its lease is lost (a stall, an etcd cut) and comes back as the same version, and what
   * is written for it meanwhile (inbox batches it reads on its return) must keep what it reads, message
   * identities above all. A node that returns as another version replaces the entry with its new record.
   */
  private readonly known = new Map<string, readonly string[]>();
  private lease: Lease | null = null;
  private watch: PrefixWatch | null = null;
  private refresh: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    private readonly client: Etcd3,
    private readonly keys: Keys,
    private readonly self: MemberInfo,
    private readonly ttl: number,
    private readonly log: Logger,
    private readonly onLease: (lease: Lease) => void,
    private readonly load: () => number,
  ) {}

  /** The current lease (keys written with it vanish with this node). */
  get current(): Lease | null {
    return this.lease;
  }

  async start(): Promise<void> {
    await this.register();
    this.watch = await watchPrefix(this.client, this.keys.members, this.log, {
      put: (key, value) => this.seen(key, value),
      delete: (key) => this.gone(key),
    });
    // The load figure goes out now and then, under the same lease.
    this.refresh = setInterval(() => void this.publishSelf().catch(() => undefined), this.ttl * 1000);
    this.refresh.unref();
  }

  private async register(): Promise<void> {
    const lease = this.client.lease(this.ttl, { autoKeepAlive: true });
    lease.on('lost', (err) => {
      if (this.stopped || this.lease !== lease) return;
      this.log.warn({ err: err.message }, 'cluster lease lost: registering again');
      this.lease = null;
      void this.retry();
    });
    await lease.grant();
    this.lease = lease;
    await this.publishSelf();
    this.onLease(lease);
  }

  private async retry(): Promise<void> {
    for (let delay = 500; !this.stopped; delay = Math.min(delay * 2, 5000)) {
      try {
        await this.register();
        this.log.info({ node: this.self.id }, 'cluster lease renewed');
        return;
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'cluster registration failed: retrying');
        await new Promise((r) => setTimeout(r, delay).unref());
      }
    }
  }

  private async publishSelf(): Promise<void> {
    const lease = this.lease;
    if (lease === null) return;
    this.self.clients = this.load();
    await lease.put(this.keys.member(this.self.id)).value(JSON.stringify(this.self));
  }

  private seen(key: string, value: Buffer): void {
    const id = key.slice(this.keys.members.length);
    let info: MemberInfo;
    try {
      info = JSON.parse(value.toString()) as MemberInfo;
    } catch {
      this.log.warn({ key }, 'cluster: unreadable member record ignored');
      return;
    }
    if (!this.members.has(id) && id !== this.self.id) this.log.info({ member: id, name: info.name, addresses: info.addresses }, 'cluster member joined');
    this.members.set(id, info);
    this.known.set(id, info.features ?? []);
  }

  /** Whether `node` (live or last seen) announced `feature` in its member record. */
  reads(node: string, feature: string): boolean {
    return (this.members.get(node)?.features ?? this.known.get(node) ?? []).includes(feature);
  }

  private gone(key: string): void {
    const id = key.slice(this.keys.members.length);
    if (this.members.delete(id) && id !== this.self.id) this.log.info({ member: id }, 'cluster member left');
  }

  /** Tells the others this node is draining (and waits until etcd has it). */
  async drain(): Promise<void> {
    this.self.draining = true;
    await this.publishSelf();
  }

  /** Leaves the cluster at once (the lease is revoked, so every lease-bound key of this node goes). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.refresh !== null) clearInterval(this.refresh);
    await this.watch?.cancel();
    const lease = this.lease;
    this.lease = null;
    await lease?.revoke().catch(() => undefined);
  }
}
