import type { Logger } from 'pino';
import { collectionPath, type KubeClient, KubeError, objectPath } from './client.js';

interface Lease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: { holderIdentity?: string; leaseDurationSeconds?: number; acquireTime?: string; renewTime?: string; leaseTransitions?: number };
}

/**
 * Leader election with a coordination.k8s.io Lease (client-go's leaderelection): one operator replica works,
 * the others wait. The holder renews every `renewMs`; another replica takes the Lease once it has not been
 * renewed for its duration. Updates carry the resourceVersion read, so two replicas never both win.
 */
export class LeaderElection {
  private timer: NodeJS.Timeout | null = null;
  private leading = false;
  private stopped = false;

  constructor(
    private readonly client: KubeClient,
    private readonly namespace: string,
    private readonly name: string,
    private readonly identity: string,
    private readonly log: Logger,
    private readonly durationS = 15,
    private readonly renewMs = 2000,
  ) {}

  /** Resolves once this replica leads; `lost` is called if it stops leading later. */
  async acquire(lost: () => void): Promise<void> {
    for (;;) {
      if (this.stopped) throw new Error('stopped');
      if (await this.tryOnce()) break;
      await new Promise((r) => setTimeout(r, this.renewMs));
    }
    this.leading = true;
    this.log.info({ lease: `${this.namespace}/${this.name}`, identity: this.identity }, 'leading');
    const renew = async (): Promise<void> => {
      if (this.stopped) return;
      let ok = false;
      try {
        ok = await this.tryOnce();
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'renewing the leader lease failed');
      }
      if (!ok && this.expired()) {
        this.leading = false;
        this.log.error({ lease: `${this.namespace}/${this.name}` }, 'lost the leader lease');
        lost();
        return;
      }
      if (ok) this.renewedAt = Date.now();
      this.timer = setTimeout(() => void renew(), this.renewMs);
    };
    this.renewedAt = Date.now();
    this.timer = setTimeout(() => void renew(), this.renewMs);
  }

  private renewedAt = 0;

  private expired(): boolean {
    return Date.now() - this.renewedAt > this.durationS * 1000;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** Gives the Lease up (so another replica takes over at once) and stops renewing. */
  async release(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    if (!this.leading) return;
    this.leading = false;
    const lease = await this.client.get<Lease>('Lease', this.namespace, this.name).catch(() => null);
    if (lease === null || lease.spec.holderIdentity !== this.identity) return;
    lease.spec.holderIdentity = '';
    await this.client.request('PUT', objectPath('Lease', this.namespace, this.name), lease).catch(() => undefined);
  }

  /** Takes or renews the Lease when it is free, expired or ours; false when another holder has it. */
  private async tryOnce(): Promise<boolean> {
    const now = new Date();
    const time = microTime(now);
    const lease = await this.client.get<Lease>('Lease', this.namespace, this.name);
    if (lease === null) {
      try {
        await this.client.request('POST', collectionPath('Lease', this.namespace), {
          apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: this.name, namespace: this.namespace },
          spec: { holderIdentity: this.identity, leaseDurationSeconds: this.durationS, acquireTime: time, renewTime: time, leaseTransitions: 0 },
        });
        return true;
      } catch (err) {
        if (err instanceof KubeError && err.status === 409) return false;
        throw err;
      }
    }
    const s = lease.spec;
    const renewed = s.renewTime ? Date.parse(s.renewTime) : 0;
    const free = !s.holderIdentity || renewed + (s.leaseDurationSeconds ?? this.durationS) * 1000 < now.getTime();
    if (s.holderIdentity !== this.identity && !free) return false;
    const taking = s.holderIdentity !== this.identity;
    lease.spec = {
      holderIdentity: this.identity,
      leaseDurationSeconds: this.durationS,
      acquireTime: taking ? time : s.acquireTime ?? time,
      renewTime: time,
      leaseTransitions: (s.leaseTransitions ?? 0) + (taking ? 1 : 0),
    };
    try {
      await this.client.request('PUT', objectPath('Lease', this.namespace, this.name), lease);
      return true;
    } catch (err) {
      if (err instanceof KubeError && err.status === 409) return false; // someone else wrote it first
      throw err;
    }
  }
}

/** A Lease time: RFC 3339 with microseconds (metav1.MicroTime); the API server refuses milliseconds. */
function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}
