import { type Claim, decodeClaim, newer, releaseClaim, swapClaim, swapClaims } from './claims.js';
import { MAX_TXN_OPS } from './etcd.js';
import type { EtcdContext } from './context.js';
import { watchPrefix, type PrefixWatch } from './watch.js';

/** How often a session claim etcd did not take is tried again. */
const RETRY_MS = 500;

/**
 * `sessions/<id>`: which node holds a client's persistent session, and since when. A node claims a session when
 * its client connects there or the session moves there, with the time of the claim, by compare-and-swap: a claim
 * replaces only an older one, so a claim that reaches etcd late (the client has gone to another node since)
 * cannot take the session back. A node that finds the record naming another node, newer than its own claim, while
 * it holds a copy of the session, hands that copy's messages to the holder (`lost`): two copies of one session
 * never both live on.
 */
export class SessionRecords {
  private watch: PrefixWatch | null = null;
  /** What this node last claimed (or wanted to claim), by client id. */
  private readonly mine = new Map<string, number>();
  /** Claims not yet in etcd. */
  private readonly pending = new Set<string>();
  private retryTimer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    private readonly ctx: EtcdContext,
    /** A newer claim of another node names a session this node claimed: its copy must go there. */
    private readonly lost: (clientId: string, holder: string) => void,
  ) {}

  /** Reads every record and follows changes; each record naming another node newer than ours is reported. */
  async start(): Promise<void> {
    const prefix = this.ctx.keys.session('');
    this.watch = await watchPrefix(this.ctx.client, prefix, this.ctx.log, {
      put: (key, value) => this.seen(key.slice(prefix.length), decodeClaim(value.toString())),
      delete: () => undefined,
    });
  }

  private seen(clientId: string, claim: Claim): void {
    const at = this.mine.get(clientId);
    if (claim.node === this.ctx.self) {
      // A record this node wrote before a restart: remember its time, so release() can find it.
      if (at === 0) this.mine.set(clientId, claim.at);
      return;
    }
    if (at === undefined || !newer(claim, { node: this.ctx.self, at })) return;
    this.mine.delete(clientId);
    this.pending.delete(clientId);
    this.lost(clientId, claim.node);
  }

  /** Records of sessions held here at start-up (from the store), so that one claimed elsewhere since is found. */
  known(clientId: string): void {
    if (!this.mine.has(clientId)) this.mine.set(clientId, 0);
  }

  /** The node holding the session of `clientId` by its record, or null. Throws when etcd does not answer. */
  async holder(clientId: string): Promise<string | null> {
    const value = await this.ctx.client.get(this.ctx.keys.session(clientId)).string();
    return value === null ? null : decodeClaim(value).node;
  }

  /** The session of `clientId` is held here now: claim it (tried again until etcd takes it). */
  claim(clientId: string, at = Date.now()): void {
    this.mine.set(clientId, at);
    this.pending.add(clientId);
    void this.write(clientId, at);
  }

  /**
   * Many sessions arrived here at once (a batch): claimed MAX_TXN_OPS to a transaction. Resolves with true once
   * every claim is in etcd; a claim a transaction did not take is tried again alone, as claim() does.
   */
  async claimAll(clientIds: readonly string[], at = Date.now()): Promise<boolean> {
    for (const id of clientIds) {
      this.mine.set(id, at);
      this.pending.add(id);
    }
    let all = true;
    for (let i = 0; i < clientIds.length; i += MAX_TXN_OPS) {
      const ids = clientIds.slice(i, i + MAX_TXN_OPS).filter((id) => this.mine.get(id) === at);
      const claim: Claim = { node: this.ctx.self, at };
      let results: Awaited<ReturnType<typeof swapClaims>> = [];
      try {
        if (!this.stopped) results = await swapClaims(this.ctx, ids.map((id) => ({ key: this.ctx.keys.session(id), claim })));
      } catch (err) {
        this.ctx.log.debug({ sessions: ids.length, err: (err as Error).message }, 'cluster: recording sessions failed: retrying one by one');
      }
      ids.forEach((id, k) => {
        const r = results[k];
        if (r?.taken === true) this.pending.delete(id);
        else if (r?.taken === false) {
          all = false; // another node's record (a newer claim): not ours to vouch for
          this.seen(id, r.newer);
        } else {
          all = false;
          void this.write(id, at);
        }
      });
    }
    return all;
  }

  /**
   * A session moved away whose new node recorded itself (a batch acknowledged after its claims): its record is
   * that node's now, so nothing of this node's is left to release.
   */
  forget(clientId: string): void {
    this.mine.delete(clientId);
    this.pending.delete(clientId);
  }

  private async write(clientId: string, at: number): Promise<void> {
    if (this.stopped) return;
    const claim: Claim = { node: this.ctx.self, at };
    try {
      // While wanted: not released, lost or claimed again since.
      const r = await swapClaim(this.ctx, this.ctx.keys.session(clientId), claim, null, () => this.mine.get(clientId) === at);
      if (r !== null) {
        if (r.taken) this.pending.delete(clientId);
        else this.seen(clientId, r.newer);
        return;
      }
      if (this.mine.get(clientId) !== at) return;
    } catch (err) {
      this.ctx.log.debug({ clientId, err: (err as Error).message }, 'cluster: recording a session failed: retrying');
    }
    this.retryLater();
  }

  private retryLater(): void {
    if (this.retryTimer !== null || this.stopped || this.pending.size === 0) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      for (const id of this.pending) {
        const at = this.mine.get(id);
        if (at !== undefined) void this.write(id, at);
      }
    }, RETRY_MS);
    this.retryTimer.unref();
  }

  /** The session of `clientId` ended here (or left): its record goes, unless another node's claim is there. */
  release(clientId: string): void {
    const at = this.mine.get(clientId);
    this.mine.delete(clientId);
    this.pending.delete(clientId);
    if (at === undefined) return;
    releaseClaim(this.ctx, this.ctx.keys.session(clientId), { node: this.ctx.self, at }).catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    await this.watch?.cancel();
  }
}
