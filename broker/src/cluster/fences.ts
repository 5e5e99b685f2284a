import { randomUUID } from 'node:crypto';
import type { Lease } from 'etcd3';
import { watchPrefix, type PrefixWatch } from './watch.js';
import type { EtcdContext } from './context.js';
import { GroupRuns } from './group-runs.js';

/** What a fence asks: flush what was routed before `node`'s `routes` were seen. */
interface FenceRequest {
  readonly node: string;
  readonly routes: string[];
}

/** What fences need from the rest of the cluster. */
export interface FenceHost {
  /** The live members' ids. */
  members(): Iterable<string>;
  /** Resolves once this node sees `routes` of `node` (or after `ms`, with false). */
  seen(node: string, routes: string[], ms: number): Promise<boolean>;
  /** Resolves once everything this node routed so far is in etcd. */
  outboxWritten(): Promise<void>;
  /** Resolves once every batch written to this node's inbox so far has been delivered. */
  inboxDelivered(id: string): Promise<void>;
}

/** How long a fence waits for the other nodes; one that does not answer is taken as gone. */
const FENCE_TIMEOUT_MS = 5000;
/**
 * Routes one fence request carries at most. Bounds the request's size, and the work of a node of the previous
 * version answering it (its seen() checks every route of a request again at each route change of the node).
 */
const MAX_FENCE_ROUTES = 1000;

/**
 * Fences close the last gap of a session move (sessions.ts). A node that routed a message by an old view (only
 * the old holder's route) may write its batch to the old holder's inbox after the session has left. Before the
 * old holder ends its copy, it puts `fence/<self>/<id>` naming the new holder and the session's routes; every
 * other node waits until it sees those routes (from then on it routes to the new holder), writes out what it
 * routed before (its outbox), and answers `fenced/<asker>/<id>/<self>`. With every answer in, the asker puts a
 * marker in its own inbox; when its watch delivers the marker, every batch routed by an old view has reached
 * the old copy, which is then sent on as part of the move.
 *
 * Fences for the same new holder share requests (GroupRuns): fence() calls made while one request is out join
 * the next, which carries the union of their routes. Each caller's routes are in the request it waits for, so
 * every answer still comes after the answering node saw them and wrote out what it routed before; the marker
 * still follows every answer. A draining node moving thousands of sessions pays one fence per group, not one
 * per session. The request's format is unchanged: a node of the previous version answers it as it is.
 */
export class Fences {
  private watches: PrefixWatch[] = [];
  /** Our fences awaiting answers: id -> the nodes that answered, and a wake-up. */
  private readonly open = new Map<string, { answered: Set<string>; wake: () => void }>();
  /** Fence requests made so far (the drain reports how many its moves took). */
  requests = 0;
  /** Fences waiting to share the next request for the same new holder. */
  private readonly groups = new GroupRuns<string[]>(
    (node, routeLists) => this.request(node, [...new Set(routeLists.flat())]),
    (routes) => routes.length,
    MAX_FENCE_ROUTES,
  );

  constructor(
    private readonly ctx: EtcdContext,
    private readonly lease: () => Lease | null,
    private readonly host: FenceHost,
  ) {}

  async start(): Promise<void> {
    const { keys, self } = this.ctx;
    const answers = keys.fenced(self);
    this.watches.push(await watchPrefix(this.ctx.client, answers, this.ctx.log, {
      put: (key) => {
        const [id, node] = key.slice(answers.length).split('/');
        const fence = id === undefined ? undefined : this.open.get(id);
        if (fence === undefined || node === undefined) return;
        fence.answered.add(node);
        fence.wake();
      },
      delete: () => undefined,
    }));
    const requests = keys.fence();
    this.watches.push(await watchPrefix(this.ctx.client, requests, this.ctx.log, {
      put: (key, value) => {
        const [asker, id] = key.slice(requests.length).split('/');
        if (asker === undefined || id === undefined || asker === self) return;
        void this.answer(asker, id, value);
      },
      delete: () => undefined,
    }));
  }

  /**
   * Waits until no message routed by a view without `routes` of `node` can still reach this node's inbox:
   * every other live node answered (or was silent for FENCE_TIMEOUT_MS) and this node's inbox caught up.
   * Shares a request with the other fences for `node` made meanwhile; at most the request under way and its own.
   */
  fence(node: string, routes: string[]): Promise<void> {
    return this.groups.add(node, routes);
  }

  /** One fence request for `routes` of `node`, and its answers and marker. */
  private async request(node: string, routes: string[]): Promise<void> {
    this.requests++;
    const id = randomUUID();
    const { keys, self } = this.ctx;
    let wake: () => void = () => undefined;
    const answered = new Set<string>();
    this.open.set(id, { answered, wake: () => wake() });
    const request = keys.fence(self, id);
    try {
      await this.put(request, JSON.stringify({ node, routes } satisfies FenceRequest));
      const deadline = Date.now() + FENCE_TIMEOUT_MS;
      for (;;) {
        const waiting = [...this.host.members()].filter((n) => n !== self && !answered.has(n));
        if (waiting.length === 0) break;
        const left = deadline - Date.now();
        if (left <= 0) {
          this.ctx.log.warn({ node, waiting }, 'cluster: nodes did not answer a fence in time: going on without them');
          break;
        }
        // Woken by each answer, and now and then to see members that left.
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.min(left, 500));
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      await this.host.inboxDelivered(id);
    } finally {
      this.open.delete(id);
      await this.ctx.client.delete().key(request).exec().catch(() => undefined);
      await this.ctx.client.delete().prefix(keys.fenced(self, id)).exec().catch(() => undefined);
    }
  }

  /** Another node's fence: once the routes are seen here and what was routed before is written, answer. */
  private async answer(asker: string, id: string, value: Buffer): Promise<void> {
    try {
      const req = JSON.parse(value.toString()) as FenceRequest;
      if (req.node !== this.ctx.self) await this.host.seen(req.node, req.routes, FENCE_TIMEOUT_MS);
      await this.host.outboxWritten();
      await this.put(this.ctx.keys.fenced(asker, id, this.ctx.self), '');
    } catch (err) {
      this.ctx.log.warn({ asker, err: (err as Error).message }, 'cluster: answering a fence failed');
    }
  }

  private async put(key: string, value: string): Promise<void> {
    const lease = this.lease();
    await (lease !== null ? lease.put(key) : this.ctx.client.put(key)).value(value).exec();
  }

  async stop(): Promise<void> {
    await Promise.all(this.watches.map((w) => w.cancel()));
    this.watches = [];
  }
}
