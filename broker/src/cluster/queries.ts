import type { Lease } from 'etcd3';
import type { EtcdContext } from './context.js';
import { watchPrefix, type PrefixWatch } from './watch.js';

/** Answers a question about this node (its clients, subscriptions, ...) with something JSON can carry. */
export type QueryHandler = (kind: string, params: Readonly<Record<string, unknown>>) => unknown;

/** What every asked node answered, and which ones did not answer in time. */
export interface Answers {
  readonly answers: Map<string, unknown>;
  readonly unreachable: string[];
}

/** An error a node answered with (the asker gets it as a rejection). */
export class QueryError extends Error {
  readonly code = 'QUERY_FAILED';
}

/** The largest answer a node writes: etcd refuses requests over 1.5 MiB. */
const ANSWER_MAX = 1024 * 1024;

/**
 * Questions between nodes, through etcd (nodes never connect to each other): the asker writes
 * `query/<node>/<id>` = {kind, params, from} under its lease; the node answers in `answer/<asker>/<id>` under
 * its own lease, and deletes the question; the asker deletes the answer once read. Both keys vanish with a
 * node that dies, so nothing piles up. The management API uses it for cluster-wide lists and for kicking a
 * client on another node.
 */
export class Queries {
  private readonly pending = new Map<string, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private seq = 0;
  private watches: PrefixWatch[] = [];
  /** Set by the broker: what this node answers. */
  handler: QueryHandler = () => null;

  constructor(
    private readonly ctx: EtcdContext,
    private readonly lease: () => Lease | null,
  ) {}

  async start(): Promise<void> {
    const { keys, self, client, log } = this.ctx;
    const asked = keys.query(self);
    const answered = keys.answer(self);
    this.watches.push(await watchPrefix(client, asked, log, {
      put: (key, value) => void this.answer(key, key.slice(asked.length), value),
      delete: () => undefined,
    }));
    this.watches.push(await watchPrefix(client, answered, log, {
      put: (key, value) => {
        void client.delete().key(key).exec().catch(() => undefined);
        const p = this.pending.get(key.slice(answered.length));
        if (p === undefined) return;
        this.pending.delete(key.slice(answered.length));
        clearTimeout(p.timer);
        try {
          const { ok, value: v, error } = JSON.parse(value.toString()) as { ok: boolean; value?: unknown; error?: string };
          if (ok) p.resolve(v);
          else p.reject(new QueryError(error ?? 'the node could not answer'));
        } catch {
          p.reject(new QueryError('the node answered with something unreadable'));
        }
      },
      delete: () => undefined,
    }));
  }

  /** Asks one node (this one directly, others through etcd); rejects after `timeoutMs`. */
  ask(node: string, kind: string, params: Record<string, unknown>, timeoutMs = 3000): Promise<unknown> {
    if (node === this.ctx.self) {
      try {
        return Promise.resolve(this.handler(kind, params));
      } catch (err) {
        return Promise.reject(err as Error);
      }
    }
    const lease = this.lease();
    if (lease === null) return Promise.reject(new QueryError('not joined to the cluster'));
    const id = `${this.ctx.self}.${Date.now().toString(36)}.${(this.seq++).toString(36)}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        void this.ctx.client.delete().key(this.ctx.keys.query(node, id)).exec().catch(() => undefined);
        reject(new QueryError(`node ${node} did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      lease.put(this.ctx.keys.query(node, id)).value(JSON.stringify({ kind, params, from: this.ctx.self })).exec().catch((err: unknown) => {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(new QueryError(`asking node ${node} failed: ${(err as Error).message}`));
      });
    });
  }

  /** Asks every node at once; the ones that fail or stay silent are listed as unreachable. */
  async askAll(nodes: Iterable<string>, kind: string, params: Record<string, unknown>): Promise<Answers> {
    const list = [...nodes];
    const settled = await Promise.allSettled(list.map((n) => this.ask(n, kind, params)));
    const answers = new Map<string, unknown>();
    const unreachable: string[] = [];
    settled.forEach((s, i) => {
      const node = list[i] as string;
      if (s.status === 'fulfilled') answers.set(node, s.value);
      else unreachable.push(node);
    });
    return { answers, unreachable };
  }

  private async answer(key: string, id: string, value: Buffer): Promise<void> {
    const { client, keys, log } = this.ctx;
    void client.delete().key(key).exec().catch(() => undefined);
    let reply: string;
    let from: string;
    try {
      const q = JSON.parse(value.toString()) as { kind: string; params: Record<string, unknown>; from: string };
      from = q.from;
      try {
        reply = JSON.stringify({ ok: true, value: await this.handler(q.kind, q.params ?? {}) });
        if (reply.length > ANSWER_MAX) reply = JSON.stringify({ ok: false, error: 'answer too large; narrow the question' });
      } catch (err) {
        reply = JSON.stringify({ ok: false, error: (err as Error).message });
      }
    } catch {
      log.warn({ key }, 'cluster: unreadable query ignored');
      return;
    }
    const lease = this.lease();
    if (lease === null) return;
    await lease.put(keys.answer(from, id)).value(reply).exec().catch((err: unknown) => {
      log.warn({ asker: from, err: (err as Error).message }, 'cluster: answering a query failed');
    });
  }

  async stop(): Promise<void> {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new QueryError('the node is stopping'));
    }
    this.pending.clear();
    await Promise.all(this.watches.map((w) => w.cancel()));
    this.watches = [];
  }
}
