import { randomUUID } from 'node:crypto';
import { BatchCodec, type EncodedItem, type MoveBatch } from './batch-codec.js';
import type { EtcdContext } from './context.js';
import { SessionCodec, routesOf } from './session-codec.js';
import type { MoveRouting, MovingSession, SessionHost } from './sessions.js';

/** The feature a node announces when it reads batch frames (members.ts FEATURES). */
export const MOVE_BATCH = 'move-batch';
/** Sessions one batch carries at most: the new node installs them and waits for their routes within one step. */
const BATCH_SESSIONS = 256;
/**
 * Bytes of snapshots a batch takes before it is closed. A session whose own frame is larger than half of it moves
 * alone (as before batches), so a batch value stays under 1.5 times this: well under etcd's 1.5 MiB request.
 */
const BATCH_BYTES = 512 * 1024;
/** Batches to one node in flight at once: the acknowledgement of one overlaps the fence and delta of another. */
const BATCHES_IN_FLIGHT = 4;
/** The value of a `batched/` key by which a node declines a whole batch. */
const REFUSED = 'refused';

/** What a drain sends where: batches to the nodes that read them, single moves to the others. */
export interface DrainPlan {
  readonly batches: Map<string, string[]>;
  readonly single: string[];
}

/**
 * Splits the sessions of a drain by their target (`target(id)`, null when there is none): a target that announces
 * `move-batch` gets batches, an older one (a rolling upgrade) single moves, as it did before batches.
 */
export function planDrain(ids: Iterable<string>, target: (id: string) => string | null, reads: (node: string) => boolean): DrainPlan {
  const batches = new Map<string, string[]>();
  const single: string[] = [];
  for (const id of ids) {
    const to = target(id);
    if (to === null || !reads(to)) {
      single.push(id);
      continue;
    }
    const list = batches.get(to);
    if (list === undefined) batches.set(to, [id]);
    else list.push(id);
  }
  return { batches, single };
}

/**
 * The new node's acknowledgement: the sessions it could not install stay with the old node, as single moves do;
 * `recorded` when its claims on all the others (`sessions/<id>`) are in etcd, so the old node has none to release.
 */
interface Ack {
  readonly node: string;
  readonly failed: string[];
  readonly recorded: boolean;
}

/** What batches use of the single-session mover (sessions.ts), so that both keep one `busy` and `arrivals`. */
export interface MoverParts {
  readonly ctx: EtcdContext;
  readonly host: SessionHost;
  readonly routing: MoveRouting;
  readonly stepMs: number;
  busy(clientId: string): boolean;
  track<T>(clientId: string, work: Promise<T>): Promise<T>;
  /** Marks `clientId` busy until its delta arrives (or `ms`), unless a pull waits for it already. */
  awaitDelta(clientId: string, ms: number): void;
  /** Tells a waiting pull or push of `clientId` its delta arrived. */
  adopted(clientId: string): void;
  /** Records this node as the holder of `clientId` (sessions/<id>), tried again until etcd takes it. */
  claim(clientId: string): void;
  /** Records this node as the holder of all of them, many to a transaction; true once all are in etcd. */
  claimAll(clientIds: readonly string[]): Promise<boolean>;
  /** The session moved away and its new node recorded itself: this node has no record of it left to release. */
  forget(clientId: string): void;
  /** Whether this node drains (and takes no sessions). */
  leaving(): boolean;
  /** Whether `node` reads message identities. */
  readsIds(node: string): boolean;
  /** Puts a value under this node's lease. */
  put(key: string, value: Buffer): Promise<void>;
  remove(key: string): Promise<void>;
  /** Moves one session that a batch could not take (busy, or refused by the nodes in `refused`) the single way. */
  pushOne(clientId: string, refused: ReadonlySet<string>): Promise<boolean>;
  /** Sends one snapshot taken already (a session too large for a batch) the single way. */
  sendOne(clientId: string, moving: MovingSession, to: string): Promise<'moved' | 'refused' | 'failed'>;
}

/**
 * Batch moves: a draining node sends many sessions to one node in one value, and the steps of sessions.ts run
 * once per batch: one snapshot value (`batches/<new>/<batch id>`), one acknowledgement once the new node's routes
 * for all of them are in etcd (`batched/<old>/<batch id>`), the fences of all of them (shared anyway, fences.ts),
 * then one delta value with what each session queued since its snapshot. Each session keeps the guarantees of a
 * single move: its old copy queues until its delta is taken, its delta follows the new routes and the fence that
 * names them, and a batch refused or not acknowledged leaves every session of it here, intact.
 */
export class BatchMoves {
  private readonly single = new SessionCodec();
  private readonly codec = new BatchCodec();
  /** Batches sent, awaiting their acknowledgement. */
  private readonly acks = new Map<string, (ack: Ack | null) => void>();

  constructor(private readonly m: MoverParts) {}

  /** An acknowledgement (or refusal) of a batch this node sent. */
  acked(batchId: string, value: Buffer): void {
    const text = value.toString();
    let ack: Ack | null = null;
    if (text !== REFUSED) {
      try {
        const parsed = JSON.parse(text) as Partial<Ack>;
        ack = { node: String(parsed.node), failed: Array.isArray(parsed.failed) ? parsed.failed.map(String) : [], recorded: parsed.recorded === true };
      } catch {
        this.m.ctx.log.warn({ batchId }, 'cluster: unreadable batch acknowledgement: taken as a refusal');
      }
    }
    this.acks.get(batchId)?.(ack);
  }

  /** Pushes `ids` to `to` in batches; resolves with the number moved (those a batch could not take included). */
  async pushTo(to: string, ids: string[], deadline: number): Promise<number> {
    let moved = 0;
    let next = 0;
    const aside: Promise<boolean>[] = [];
    const refusedBy = new Set([to]);
    const worker = async (): Promise<void> => {
      while (next < ids.length && Date.now() < deadline) {
        const items: { clientId: string; moving: MovingSession; frame: Buffer }[] = [];
        let bytes = 0;
        // No await from the busy check to track(): a pull cannot start on a session between the two.
        while (next < ids.length && items.length < BATCH_SESSIONS && bytes < BATCH_BYTES) {
          const clientId = ids[next++] as string;
          if (this.m.busy(clientId)) {
            aside.push(this.m.pushOne(clientId, new Set()));
            continue;
          }
          const moving = this.m.host.snapshot(clientId, to);
          if (moving === null) continue;
          const frame = this.single.encode(clientId, { kind: 'snapshot', from: this.m.ctx.self, moving }, this.m.readsIds(to));
          if (frame.length > BATCH_BYTES / 2) {
            const alone = this.m.track(clientId, this.m.sendOne(clientId, moving, to));
            aside.push(alone.then((r) => (r === 'refused' ? this.m.pushOne(clientId, refusedBy) : r === 'moved')));
            continue;
          }
          items.push({ clientId, moving, frame });
          bytes += frame.length + clientId.length + 6;
        }
        if (items.length === 0) continue;
        const sent = this.send(to, items);
        for (const { clientId } of items) void this.m.track(clientId, sent);
        const { moved: n, refused } = await sent;
        moved += n;
        // Declined as a whole (the node drains too, or etcd did not take its routes): each tries another node.
        for (const clientId of refused) aside.push(this.m.pushOne(clientId, refusedBy));
      }
    };
    await Promise.all(Array.from({ length: BATCHES_IN_FLIGHT }, worker));
    for (const ok of await Promise.all(aside)) if (ok) moved++;
    return moved;
  }

  /** Steps 1 and 3 for a batch on the old node. What did not move stays here. */
  private async send(to: string, items: { clientId: string; moving: MovingSession; frame: Buffer }[]): Promise<{ moved: number; refused: string[] }> {
    const { ctx, host, routing, stepMs } = this.m;
    const batchId = randomUUID();
    const ids = items.map((i) => i.clientId);
    let resolveAck!: (ack: Ack | null | 'late') => void;
    // Longer than the new node's own bound on its routes (stepMs): a batch late by a little is not lost to a race.
    const acked = new Promise<Ack | null | 'late'>((resolve) => {
      const timer = setTimeout(() => resolve('late'), 2 * stepMs);
      resolveAck = (ack) => {
        clearTimeout(timer);
        resolve(ack);
      };
    });
    this.acks.set(batchId, resolveAck);
    const key = ctx.keys.batches(to, batchId);
    let fenced: Promise<unknown> = Promise.resolve();
    const stay = (which: string[], why: string): void => {
      for (const id of which) {
        host.abort(id);
        this.m.claim(id);
      }
      ctx.log.warn({ to, sessions: which.length, err: why }, 'cluster: moving a batch of sessions failed: they stay here');
    };
    let ack: Ack;
    try {
      await this.m.put(key, this.codec.encode('snapshots', ctx.self, items));
      // Beside the acknowledgement, as for one session; each session's routes are in a fence request it waits for.
      fenced = Promise.all(items.map((i) => routing.fence(to, routesOf(i.moving)))).catch((err: unknown) => {
        ctx.log.warn({ to, err: (err as Error).message }, 'cluster: fencing a batch of moves failed');
      });
      const answer = await acked;
      if (answer === null) {
        for (const id of ids) host.abort(id);
        return { moved: 0, refused: ids };
      }
      if (answer === 'late') throw new Error(`node ${to} did not acknowledge`);
      ack = answer;
    } catch (err) {
      stay(ids, (err as Error).message);
      return { moved: 0, refused: [] };
    } finally {
      this.acks.delete(batchId);
    }
    const failed = new Set(ack.failed);
    if (failed.size > 0) stay(ids.filter((id) => failed.has(id)), 'the new node could not install them');
    const taken = items.filter((i) => !failed.has(i.clientId));
    // Ending a copy releases its record, one transaction each; the new node has replaced them all already.
    if (ack.recorded) for (const { clientId } of taken) this.m.forget(clientId);
    if (!await routing.seen(to, [...new Set(taken.flatMap((i) => routesOf(i.moving)))], stepMs)) {
      ctx.log.warn({ to, sessions: taken.length }, 'cluster: the moved sessions\' routes are not visible here yet: ending the old copies anyway');
    }
    await fenced;
    let deliveries = 0;
    const deltas: EncodedItem[] = taken.map(({ clientId, moving }) => {
      const late = host.finish(clientId, moving.mark);
      deliveries += moving.deliveries.length + late.length;
      const delta = { kind: 'delta' as const, from: ctx.self, mark: moving.mark, deliveries: late };
      return { clientId, frame: this.single.encode(clientId, delta, this.m.readsIds(to)) };
    });
    let part = 0;
    for (const chunk of chunks(deltas)) {
      try {
        await this.m.put(ctx.keys.batches(to, `${batchId}.${part++}`), this.codec.encode('deltas', ctx.self, chunk));
      } catch (err) {
        const lost = chunk.map((c) => c.clientId);
        ctx.log.error({ to, lost, err: (err as Error).message }, 'cluster: sending the last messages of moved sessions failed');
      }
    }
    ctx.log.info({ to, sessions: taken.length, deliveries }, 'cluster: persistent sessions moved to another node');
    return { moved: taken.length, refused: [] };
  }

  /** Step 2 for a batch on the new node, and its deltas. */
  async arrive(batchId: string, value: Buffer, key: string): Promise<void> {
    const { ctx, host } = this.m;
    let batch: MoveBatch;
    try {
      batch = this.codec.decode(batchId, value);
    } catch (err) {
      ctx.log.error({ batchId, err: (err as Error).message }, 'cluster: damaged session batch dropped');
      await this.m.remove(key);
      return;
    }
    if (batch.kind === 'deltas') {
      for (const { clientId, frame } of batch.items) {
        if (frame.kind !== 'delta') continue;
        host.appendMoved(clientId, frame.mark, frame.deliveries);
        this.m.adopted(clientId);
      }
      // Deleted once in the store: after a crash before that, the restarted node reads the deltas again.
      await host.durable().catch(() => undefined);
      await this.m.remove(key);
      return;
    }
    await this.m.remove(key);
    const ackKey = ctx.keys.batched(batch.from, batchId);
    if (this.m.leaving()) {
      await this.m.put(ackKey, Buffer.from(REFUSED)).catch(() => undefined);
      return;
    }
    const until = Date.now() + this.m.stepMs;
    const failed: string[] = [];
    const installed: string[] = [];
    for (const { clientId, frame } of batch.items) {
      if (frame.kind !== 'snapshot') continue;
      this.m.awaitDelta(clientId, 2 * this.m.stepMs);
      try {
        // As for one session: a copy held here already is merged, never installed beside it.
        if (host.holds(clientId)) host.merge(frame.moving);
        else host.adopt(frame.moving);
        installed.push(clientId);
      } catch (err) {
        failed.push(clientId);
        ctx.log.warn({ clientId, from: batch.from, err: (err as Error).message }, 'cluster: taking a session over failed');
      }
    }
    try {
      // The claims go while the routes are written; both within one step. Claims etcd did not take in time are
      // tried again one by one (as a single move's are), and the old node then releases its records itself.
      const recorded = await Promise.race([
        this.m.claimAll(installed),
        new Promise<false>((resolve) => setTimeout(() => resolve(false), this.m.stepMs).unref()),
      ]);
      // In the store before the old node ends its copies: a crash here then loses nothing.
      await host.durable();
      // Acknowledged once every session of it is reachable; routes etcd did not take in time decline all of them.
      if (!await this.m.routing.written(Math.max(until - Date.now(), 100))) {
        ctx.log.warn({ from: batch.from, sessions: batch.items.length }, 'cluster: the routes of a batch taken over are not in etcd in time: declining it');
        await this.m.put(ackKey, Buffer.from(REFUSED));
        return;
      }
      await this.m.put(ackKey, Buffer.from(JSON.stringify({ node: ctx.self, failed, recorded } satisfies Ack)));
    } catch (err) {
      ctx.log.warn({ from: batch.from, err: (err as Error).message }, 'cluster: taking a batch of sessions over failed');
    }
  }
}

/** Deltas in values of at most BATCH_BYTES (one delta larger than that goes alone). */
function* chunks(items: EncodedItem[]): Generator<EncodedItem[]> {
  let chunk: EncodedItem[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = item.frame.length + item.clientId.length + 6;
    if (chunk.length > 0 && bytes + size > BATCH_BYTES) {
      yield chunk;
      chunk = [];
      bytes = 0;
    }
    chunk.push(item);
    bytes += size;
  }
  if (chunk.length > 0) yield chunk;
}
