import type { Lease } from 'etcd3';
import type { Snapshot, StoredDelivery } from '../store/types.js';
import { type MoveFrame, type MovingSession, SessionCodec, routesOf } from './session-codec.js';
import { BatchMoves, MOVE_BATCH, planDrain } from './batch-moves.js';
import { watchPrefix, type PrefixWatch } from './watch.js';
import type { EtcdContext } from './context.js';
import type { MemberInfo } from './members.js';
import { SessionRecords } from './session-records.js';

export type { MovingSession } from './session-codec.js';

/** How long each step of a move (the new node's acknowledgement, the delta, an answer) may take. */
const STEP_TIMEOUT_MS = 5000;
/**
 * Single moves under way at once while a node drains (to nodes that read no batch frames). The moves to one node
 * share their fences (fences.ts), so the more at once, the fewer fences per session; each move in flight holds
 * one snapshot in memory.
 */
const PUSH_CONCURRENCY = 256;
/** The value of a `moved/` key by which a draining node declines a session. */
const REFUSED = 'refused';

/** What moving sessions needs from the broker. */
export interface SessionHost {
  /**
   * A persistent session is leaving: its client, if connected here, is disconnected (v5 0x8E) and its timers
   * stop, but it stays here and keeps queueing until finish() or abort(). Null if there is none to move.
   */
  snapshot(clientId: string, to: string): MovingSession | null;
  /** The new node holds the session: returns what was queued here after the snapshot, and ends it here. */
  finish(clientId: string, mark: number): StoredDelivery[];
  /** The move failed: the session stays here as it was before the snapshot. */
  abort(clientId: string): void;
  /** Installs a session that came from another node. */
  adopt(moving: MovingSession): void;
  /**
   * Another copy of a session held here (the late answer to a request given up on, a copy a node kept through a
   * crash): its messages join this session's queue, and nothing else of it is kept.
   */
  merge(moving: MovingSession): void;
  /** The persistent sessions held here (at start-up: those restored from the store). */
  heldSessions(): Iterable<string>;
  /** Deliveries queued on the old node after its snapshot go in ahead of those that arrived here since. */
  appendMoved(clientId: string, mark: number, deliveries: StoredDelivery[]): void;
  /** True when a session of this client id is held here. */
  holds(clientId: string): boolean;
  /**
   * Resolves once what this node has written to its store so far is durable. A move is acknowledged, and its
   * delta let go of (its key deleted), only after that: a crash of the new node right after would otherwise lose
   * what the old node has ended already.
   */
  durable(): Promise<void>;
}

/** What a move needs from routing. */
export interface MoveRouting {
  /** Resolves with true once this node's route changes so far are written to etcd, or with false after `ms`. */
  written(ms: number): Promise<boolean>;
  /** Resolves once this node sees `routes` of `node` (or after `ms`, with false). */
  seen(node: string, routes: string[], ms: number): Promise<boolean>;
  /** Resolves once nothing routed by a view without `routes` of `node` can still reach this node (fences.ts). */
  fence(node: string, routes: string[]): Promise<void>;
}

type Outcome = 'adopted' | 'none' | 'redirect' | 'late';

/**
 * Persistent sessions move to the node their client connects to, and away from a node that drains, without a
 * gap in which a message for them has nowhere to go. `sessions/<id>` names the node holding a session.
 *
 * 1. The old node snapshots the session (subscriptions, queued and in-flight messages, incoming QoS 2 ids, a
 *    waiting will) into `moves/<new>/<id>` and keeps the session, which keeps queueing.
 * 2. The new node installs it, records itself in `sessions/<id>`, waits until its routes for the session's
 *    filters are in etcd, and acknowledges in `moved/<old>/<id>`.
 * 3. Once it sees the new node's routes itself, and every other node has written out what it routed by an
 *    older view and that has reached the old copy (a fence, fences.ts), the old node sends what was queued
 *    since the snapshot (the delta) and ends its copy. Each message reaches one copy or the other; one
 *    published in between may reach both (delivered twice, as QoS 1 allows; never lost).
 *
 * A node where a client connects without its session asks the holder through `handoff/<holder>/<id>` (a pull);
 * a draining node pushes each persistent session it holds to a live node, many to a value where that node reads
 * batch frames (batch-moves.ts: the same steps, once per batch), one at a time otherwise.
 */
export class SessionMover {
  private readonly codec = new SessionCodec();
  private readonly watches: PrefixWatch[] = [];
  /** Moves in progress by client id (out of here or into here); a new move of the same id waits for them. */
  private readonly busy = new Map<string, Promise<unknown>>();
  /** Outgoing moves awaiting the new node's acknowledgement. */
  private readonly acks = new Map<string, (accepted: boolean) => void>();
  /** Set once this node drains: it takes no more sessions. */
  private leaving = false;
  /** Incoming moves between the snapshot and the delta, and pulls awaiting an answer. */
  private readonly arrivals = new Map<string, (outcome: Outcome) => void>();
  /** Who holds which session (`sessions/<id>`), and the copies this node must hand over. */
  private readonly records: SessionRecords;
  /** Moves of many sessions at once, to nodes that read them (a drain). */
  private readonly batches: BatchMoves;

  constructor(
    private readonly ctx: EtcdContext,
    private readonly lease: () => Lease | null,
    private readonly host: SessionHost,
    /** The live members. */
    private readonly members: () => ReadonlyMap<string, MemberInfo>,
    private readonly routing: MoveRouting,
    /** Whether a node (live or last seen) announced a feature (Membership.reads). */
    private readonly reads: (node: string, feature: string) => boolean = (node, feature) =>
      this.members().get(node)?.features?.includes(feature) === true,
  ) {
    this.records = new SessionRecords(ctx, (clientId, holder) => void this.handOver(clientId, holder));
    this.batches = new BatchMoves({
      ctx, host, routing, stepMs: STEP_TIMEOUT_MS,
      busy: (id) => this.busy.has(id),
      track: (id, work) => this.track(id, work),
      awaitDelta: (id, ms) => {
        if (!this.arrivals.has(id)) void this.track(id, this.expect(id, ms));
      },
      adopted: (id) => this.arrivals.get(id)?.('adopted'),
      claim: (id) => this.records.claim(id),
      claimAll: (ids) => this.records.claimAll(ids),
      forget: (id) => this.records.forget(id),
      leaving: () => this.leaving,
      readsIds: (node) => this.readsIds(node),
      put: (key, value) => this.put(key, value),
      remove: (key) => this.remove(key),
      pushOne: (id, refused) => this.push(id, new Set(refused)),
      sendOne: (id, moving, to) => this.send(id, moving, to),
    });
  }

  async start(): Promise<void> {
    const { keys, self } = this.ctx;
    // Sessions restored from the store: one claimed by another node meanwhile is handed over (records.start).
    for (const id of this.host.heldSessions()) this.records.known(id);
    const on = (prefix: string, put: (id: string, value: Buffer, key: string) => void): Promise<PrefixWatch> =>
      watchPrefix(this.ctx.client, prefix, this.ctx.log, {
        put: (key, value) => put(key.slice(prefix.length), value, key),
        delete: () => undefined,
      });
    this.watches.push(await on(keys.moved(self), (id, value, key) => {
      void this.remove(key);
      this.acks.get(id)?.(value.toString() !== REFUSED);
    }));
    this.watches.push(await on(keys.moves(self), (id, value, key) => void this.arrive(id, value, key)));
    this.watches.push(await on(keys.handoff(self), (id, value, key) => void this.give(id, value.toString(), key)));
    this.watches.push(await on(keys.batched(self), (id, value, key) => {
      void this.remove(key);
      this.batches.acked(id, value);
    }));
    this.watches.push(await on(keys.batches(self), (id, value, key) => void this.batches.arrive(id, value, key)));
    await this.records.start();
  }

  /**
   * Another node holds the session of `clientId` by a newer record while a copy is here (this node was away, or
   * gave an answer too late): the copy's messages go to that node, and the copy ends here.
   */
  private async handOver(clientId: string, holder: string): Promise<void> {
    while (this.busy.has(clientId)) await this.settled(clientId);
    if (!this.host.holds(clientId) || holder === this.ctx.self) return;
    const moving = this.host.snapshot(clientId, holder);
    if (moving === null) return;
    this.ctx.log.info({ clientId, holder }, 'cluster: another node holds this session now: handing this copy\'s messages to it');
    await this.track(clientId, this.send(clientId, moving, holder));
  }

  /**
   * Brings the persistent session of `clientId` here from the node holding it, if another node does. Resolves
   * once it is installed, when there is none, or at `deadline` (`etcd.session_wait`): then the client starts anew
   * and the copy follows when its node answers (SessionRecords hands it over). A holder that is away (crashed and
   * restarting, stopped, cut from etcd) is waited for: it reads the request when it is back, and a client that
   * waits keeps its session and the order of its messages, where a new session would get the copy's queue late.
   */
  async fetch(clientId: string, deadline: number, gone?: AbortSignal): Promise<void> {
    const left = (): boolean => gone?.aborted === true;
    for (let attempt = 0; attempt < 3 && !left(); attempt++) {
      while (this.busy.has(clientId)) await this.settled(clientId);
      if (this.host.holds(clientId)) return; // it was pushed here meanwhile
      const holder = await this.untilAnswered(() => this.records.holder(clientId), deadline);
      if (holder === null || holder === this.ctx.self) return;
      if (!this.members().has(holder)) this.ctx.log.info({ clientId, holder }, 'cluster: the node holding this session is away: waiting for it');
      const outcome = await this.track(clientId, this.ask(holder, clientId, Math.max(deadline - Date.now(), STEP_TIMEOUT_MS), gone));
      if (outcome === 'late' && !left()) {
        const away = !this.members().has(holder);
        this.ctx.log.warn({ clientId, holder, away }, 'cluster: the session did not arrive in time: starting a new one (the copy follows later)');
      }
      if (outcome !== 'redirect') return;
    }
  }

  /** `ask()`, asked again while etcd does not answer, until `deadline` (then its error). */
  private async untilAnswered<T>(ask: () => Promise<T>, deadline: number): Promise<T> {
    for (let delay = 100; ; delay = Math.min(delay * 2, 1000)) {
      try {
        return await ask();
      } catch (err) {
        if (Date.now() + delay > deadline) throw err;
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /**
   * Pushes the persistent sessions held here to live nodes that are not draining themselves (a draining node
   * calls this once its clients are gone; `held` lists them, again after each round, since a node draining at
   * the same time may have pushed some here). Resolves with the number moved; a session that cannot move stays
   * here, in the store.
   */
  async pushAll(held: () => string[], deadline: number): Promise<number> {
    this.leaving = true;
    let moved = 0;
    const tried = new Set<string>();
    for (let round = 0; round < 3 && Date.now() < deadline; round++) {
      const queue = held().filter((id) => !tried.has(id));
      if (queue.length === 0) break;
      const targets = this.targets(new Set());
      // Nodes that read batch frames get batches; older ones (a rolling upgrade) single moves.
      const plan = planDrain(queue, (id) => pick(id, targets), (node) => this.reads(node, MOVE_BATCH));
      const worker = async (): Promise<void> => {
        for (let id = plan.single.shift(); id !== undefined && Date.now() < deadline; id = plan.single.shift()) {
          tried.add(id);
          if (await this.push(id)) moved++;
        }
      };
      const batched = [...plan.batches].map(async ([to, ids]) => {
        for (const id of ids) tried.add(id);
        moved += await this.batches.pushTo(to, ids, deadline);
      });
      await Promise.all([...Array.from({ length: PUSH_CONCURRENCY }, worker), ...batched]);
    }
    return moved;
  }

  /** Live nodes that are not draining and did not refuse, in a stable order. */
  private targets(refused: ReadonlySet<string>): string[] {
    return [...this.members()]
      .filter(([n, info]) => n !== this.ctx.self && info.draining !== true && !refused.has(n)).map(([n]) => n).sort();
  }

  /** Pushes one session to a live node, chosen by its client id; another one if that node refuses. */
  private async push(clientId: string, refused = new Set<string>()): Promise<boolean> {
    for (;;) {
      while (this.busy.has(clientId)) await this.settled(clientId);
      const to = pick(clientId, this.targets(refused));
      if (to === null) return false;
      const moving = this.host.snapshot(clientId, to);
      if (moving === null) return false;
      const result = await this.track(clientId, this.send(clientId, moving, to));
      if (result !== 'refused') return result === 'moved';
      refused.add(to);
    }
  }

  /**
   * A pull: asks `holder` for the session and waits up to `ms` for the outcome. A request not answered is taken
   * back, and so is one whose client went away (`gone`) meanwhile: answered later, it would take the session
   * from wherever that client went instead.
   */
  private async ask(holder: string, clientId: string, ms: number, gone?: AbortSignal): Promise<Outcome> {
    const deadline = Date.now() + ms;
    const outcome = this.expect(clientId, ms);
    const giveUp = (): void => this.arrivals.get(clientId)?.('late');
    gone?.addEventListener('abort', giveUp, { once: true });
    const key = this.ctx.keys.handoff(holder, clientId);
    try {
      if (gone?.aborted === true) giveUp();
      else await this.untilAnswered(() => this.put(key, Buffer.from(this.ctx.self)), deadline);
      const result = await outcome;
      if (result === 'late') await this.remove(key);
      return result;
    } finally {
      gone?.removeEventListener('abort', giveUp);
    }
  }

  /** Another node asked for a session held here. */
  private async give(clientId: string, to: string, requestKey: string): Promise<void> {
    try {
      while (this.busy.has(clientId)) await this.settled(clientId);
      const moving = this.host.snapshot(clientId, to);
      if (moving !== null) {
        await this.track(clientId, this.send(clientId, moving, to));
        return;
      }
      const holder = await this.records.holder(clientId);
      const kind = holder !== null && holder !== this.ctx.self && this.members().has(holder) ? 'redirect' : 'none';
      await this.put(this.ctx.keys.moves(to, clientId), this.codec.encode(clientId, { kind, from: this.ctx.self }));
    } catch (err) {
      this.ctx.log.warn({ clientId, to, err: (err as Error).message }, 'cluster: answering a session request failed');
    } finally {
      await this.remove(requestKey);
    }
  }

  /** Steps 1 and 3 on the old node. Unless the session moved, it stays here. */
  private async send(clientId: string, moving: MovingSession, to: string): Promise<'moved' | 'refused' | 'failed'> {
    let resolveAck!: (accepted: boolean) => void;
    const acked = new Promise<'accepted' | 'refused' | 'late'>((resolve) => {
      const timer = setTimeout(() => resolve('late'), STEP_TIMEOUT_MS);
      resolveAck = (accepted) => {
        clearTimeout(timer);
        resolve(accepted ? 'accepted' : 'refused');
      };
    });
    this.acks.set(clientId, resolveAck);
    const key = this.ctx.keys.moves(to, clientId);
    const routes = routesOf(moving);
    let fenced: Promise<void> | null = null;
    try {
      await this.put(key, this.codec.encode(clientId, { kind: 'snapshot', from: this.ctx.self, moving }, this.readsIds(to)));
      // The fence runs beside the acknowledgement (the other nodes wait for the new routes themselves): the
      // shorter the time both copies queue, the fewer messages arrive twice.
      fenced = this.routing.fence(to, routes).catch((err: unknown) => {
        this.ctx.log.warn({ clientId, to, err: (err as Error).message }, 'cluster: fencing a session move failed');
      });
      const answer = await acked;
      if (answer === 'refused') {
        this.host.abort(clientId);
        return 'refused';
      }
      if (answer === 'late') throw new Error(`node ${to} did not acknowledge`);
    } catch (err) {
      this.host.abort(clientId);
      this.claim(clientId);
      this.ctx.log.warn({ clientId, to, err: (err as Error).message }, 'cluster: moving a session failed: it stays here');
      return 'failed';
    } finally {
      this.acks.delete(clientId);
    }
    // Until this node sees the new routes, a message published here would find only the old copy; until the
    // other nodes have written out what they routed by an older view, one could still arrive here.
    if (!await this.routing.seen(to, routes, STEP_TIMEOUT_MS)) {
      this.ctx.log.warn({ clientId, to }, 'cluster: the moved session\'s routes are not visible here yet: ending the old copy anyway');
    }
    await fenced;
    const deliveries = this.host.finish(clientId, moving.mark);
    try {
      await this.put(key, this.codec.encode(clientId, { kind: 'delta', from: this.ctx.self, mark: moving.mark, deliveries }, this.readsIds(to)));
    } catch (err) {
      this.ctx.log.error({ clientId, to, lost: deliveries.length, err: (err as Error).message }, 'cluster: sending the last messages of a moved session failed');
    }
    this.ctx.log.info({ clientId, to, deliveries: moving.deliveries.length + deliveries.length }, 'cluster: persistent session moved to another node');
    return 'moved';
  }

  /** Step 2 on the new node, and the answers to a pull. */
  private async arrive(clientId: string, value: Buffer, key: string): Promise<void> {
    let frame: MoveFrame;
    try {
      frame = this.codec.decode(clientId, value);
    } catch (err) {
      this.ctx.log.error({ clientId, err: (err as Error).message }, 'cluster: damaged session move dropped');
      await this.remove(key);
      return;
    }
    if (frame.kind === 'delta') {
      // Deleted once in the store: after a crash before that, the restarted node reads the delta again.
      this.host.appendMoved(clientId, frame.mark, frame.deliveries);
      this.arrivals.get(clientId)?.('adopted');
      await this.host.durable().catch(() => undefined);
      await this.removeIfSame(key, value);
      return;
    }
    await this.remove(key);
    if (frame.kind === 'none' || frame.kind === 'redirect') {
      this.arrivals.get(clientId)?.(frame.kind);
      return;
    }
    if (this.leaving) {
      // Draining too: the sender keeps the session and tries another node.
      await this.put(this.ctx.keys.moved(frame.from, clientId), Buffer.from(REFUSED)).catch(() => undefined);
      return;
    }
    // A snapshot: the delta follows our acknowledgement. A push has nobody waiting; the wait marks the id busy.
    if (!this.arrivals.has(clientId)) void this.track(clientId, this.expect(clientId, 2 * STEP_TIMEOUT_MS));
    try {
      // A copy of a session already held here (a late answer, a copy kept through a crash) is merged, never
      // installed beside or over it: one session per client id.
      if (this.host.holds(clientId)) this.host.merge(frame.moving);
      else this.host.adopt(frame.moving);
      this.records.claim(clientId);
      // Acknowledged only once the session is reachable. Routes etcd has not taken in time (etcd away, no lease)
      // make this node decline: the old node keeps its copy and tries another node (or keeps it), and the copy
      // installed here meets the newer record of the node that takes it and is handed over (records.ts).
      // In the store before the old node ends its copy: a crash here then loses nothing.
      await this.host.durable();
      if (!await this.routing.written(STEP_TIMEOUT_MS)) {
        this.ctx.log.warn({ clientId, from: frame.from }, 'cluster: the routes of a session taken over are not in etcd in time: declining it');
        await this.put(this.ctx.keys.moved(frame.from, clientId), Buffer.from(REFUSED));
        return;
      }
      const lease = this.lease();
      const ack = this.ctx.keys.moved(frame.from, clientId);
      await (lease !== null ? lease.put(ack) : this.ctx.client.put(ack)).value(this.ctx.self).exec();
    } catch (err) {
      this.ctx.log.warn({ clientId, from: frame.from, err: (err as Error).message }, 'cluster: taking a session over failed');
    }
  }

  /** Whether `node` reads message identities in moves (its member record announces it). */
  private readsIds(node: string): boolean {
    return this.reads(node, 'message-id');
  }

  /** Resolves with the next outcome for `clientId`, or 'late' after `ms`. */
  private expect(clientId: string, ms: number): Promise<Outcome> {
    return new Promise<Outcome>((resolve) => {
      const timer = setTimeout(() => done('late'), ms);
      const done = (outcome: Outcome): void => {
        clearTimeout(timer);
        if (this.arrivals.get(clientId) === done) this.arrivals.delete(clientId);
        resolve(outcome);
      };
      this.arrivals.set(clientId, done);
    });
  }

  /** Marks `clientId` busy until `work` ends. */
  private track<T>(clientId: string, work: Promise<T>): Promise<T> {
    const settled = work.finally(() => {
      if (this.busy.get(clientId) === settled) this.busy.delete(clientId);
    });
    this.busy.set(clientId, settled);
    return work;
  }

  /**
   * Waits for moves of `clientId` in progress. A caller about to start a move checks `busy` again when it resumes,
   * with no await between that check and its track(): two callers waiting on one move resume one after the other,
   * and the first may start another (seed 17 of the checker: two nodes asked for one session, the second was told
   * there was none while the first took it, and its client got an empty session).
   */
  private async settled(clientId: string): Promise<void> {
    for (let b = this.busy.get(clientId); b !== undefined; b = this.busy.get(clientId)) await b.catch(() => undefined);
  }



  private async put(key: string, value: Buffer): Promise<void> {
    const lease = this.lease();
    await (lease !== null ? lease.put(key) : this.ctx.client.put(key)).value(value).exec();
  }

  /** Deletes `key` unless it holds another value by now (a frame put there since, by another node). */
  async removeIfSame(key: string, value: Buffer): Promise<void> {
    const { client } = this.ctx;
    await client.if(key, 'Value', '==', value).then(client.delete().key(key)).commit().catch(() => undefined);
  }

  private async remove(key: string): Promise<void> {
    await this.ctx.client.delete().key(key).exec().catch(() => undefined);
  }

  /** True while a move of `clientId` is under way here (out, or in and waiting for its delta). */
  moving(clientId: string): boolean {
    return this.busy.has(clientId);
  }

  /** A persistent session is held here now. */
  claim(clientId: string): void {
    this.records.claim(clientId);
  }

  /** A persistent session ended here (expired, replaced by a clean one, or moved away). */
  release(clientId: string): void {
    this.records.release(clientId);
  }

  /** Waits for the moves in progress (each ends within its timeouts), then stops watching. */
  async stop(): Promise<void> {
    await Promise.all([...this.busy.values()].map((b) => b.catch(() => undefined)));
    await Promise.all(this.watches.map((w) => w.cancel()));
    await this.records.stop();
  }
}

/** FNV-1a: spreads the sessions of a draining node over the others. */
export function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** The node of `targets` a session goes to, spread by its client id; null when there is none. */
function pick(clientId: string, targets: readonly string[]): string | null {
  return targets.length === 0 ? null : targets[hash(clientId) % targets.length] as string;
}

/** For tests and callers that build a snapshot of one moving session. */
export function snapshotOf(m: MovingSession): Snapshot {
  return { retained: [], sessions: [m.session], deliveries: m.deliveries, incoming: new Map([[m.session.clientId, m.incoming]]), consumed: new Set() };
}
