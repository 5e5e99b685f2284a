import type { Lease } from 'etcd3';
import type { Message } from '../message/message.js';
import type { EtcdContext } from './context.js';

/** The route (under `routes/<node>/`) of a node's view marker: U+0000 never starts a real route. */
export const VIEW_MARKER = '\u0000view';

/** Messages held at most while the view is stale; past it, publishers are held too (congestion). */
const HELD_MAX = 100_000;
/** How often the event loop proves it runs (see stalled()). */
const TICK_MS = 100;
/** A gap between ticks this long means the node was stopped or its event loop blocked: the view is stale. */
const STALL_MS = 1000;

/**
 * Whether this node can trust its view of the other nodes' routes (issue 17). The view comes from a watch on
 * `routes/`; while that watch is broken (etcd restarting, this node cut off from it) other nodes may add routes
 * this node does not see, and a QoS 1/2 message it acknowledged after routing it by the old view would never
 * reach them. So: when the watch breaks, the view is stale; QoS 1/2 messages routed meanwhile are kept and
 * their acknowledgements wait (hold()). The view is stale too after the node was stopped (SIGSTOP, a paused VM, a
 * blocked event loop): when it runs again it reads its clients' publishes before the watch events etcd sent
 * meanwhile, and the others may have dropped it from the cluster and moved sessions without fencing it. When
 * the watch is back (or the stall is over), the node writes a marker under its own routes and waits to see it
 * come back through the watch: every route change etcd had before the marker has then been seen. It sends the
 * kept messages again to every node that matches them now (a session may have moved between two nodes that got
 * the first copy; identities keep a session from taking one twice), and acknowledges. Local delivery never
 * waits; nothing acknowledged is lost.
 */
export class ViewGuard {
  private current = false;
  private held: Message[] = [];
  private waiters: (() => void)[] = [];
  /** The marker value this node waits to see, or null. */
  private expecting: string | null = null;
  private seq = 0;
  private catchingUp = false;
  private relief: { promise: Promise<void>; resolve: () => void } | null = null;
  /** When the event loop last proved it runs (performance.now()). */
  private lastTick = performance.now();
  private readonly ticker: NodeJS.Timeout;

  constructor(
    private readonly ctx: EtcdContext,
    private readonly lease: () => Lease | null,
    /** Sends the kept messages to every node matching them now; resolves once written. */
    private readonly resend: (held: Message[]) => Promise<void>,
  ) {
    this.ticker = setInterval(() => {
      this.stalled();
      this.lastTick = performance.now();
    }, TICK_MS);
    this.ticker.unref();
  }

  /** True while routing by this node's view reaches every node it should. */
  get trusted(): boolean {
    if (this.current) this.stalled();
    return this.current;
  }

  /**
   * Checked on every publish and tick: after a stall the publishes read first may be routed by a view that
   * misses what etcd sent meanwhile (still unread), so the view is stale until a marker comes back.
   */
  private stalled(): void {
    const gap = performance.now() - this.lastTick;
    if (gap < STALL_MS || !this.current) return;
    this.ctx.log.warn({ ms: Math.round(gap) }, 'cluster: this node was stopped or blocked: acknowledgements wait until it sees the routes again');
    this.lastTick = performance.now();
    this.current = false;
    this.expecting = null;
    void this.catchUp();
  }

  /** The node has joined: its first full read of the routes is its view; what was held before goes on. */
  start(): void {
    this.becomeCurrent();
  }

  /** The routes watch broke, or came back (then the view is current once a marker has come back through it). */
  health(ok: boolean): void {
    if (!ok) {
      if (this.current) this.ctx.log.warn('cluster: the routes watch is broken: acknowledgements wait until this node sees the routes again');
      this.current = false;
      this.expecting = null;
      return;
    }
    if (!this.current) void this.catchUp();
  }

  /** Writes a marker until etcd takes it; the watch brings it back (seen()). */
  private async catchUp(): Promise<void> {
    if (this.catchingUp) return;
    this.catchingUp = true;
    try {
      for (let delay = 100; !this.current; delay = Math.min(delay * 2, 1000)) {
        const value = `${Date.now()}-${++this.seq}`;
        this.expecting = value;
        try {
          const key = this.ctx.keys.route(this.ctx.self, VIEW_MARKER);
          const lease = this.lease();
          await (lease !== null ? lease.put(key) : this.ctx.client.put(key)).value(value).exec();
          return; // seen() finishes it
        } catch {
          await new Promise((r) => setTimeout(r, delay));
        }
      }
    } finally {
      this.catchingUp = false;
    }
  }

  /** The routes watch delivered this node's marker `value`. */
  seen(value: string): void {
    if (this.current || value !== this.expecting) return;
    this.ctx.log.info({ held: this.held.length }, 'cluster: the routes watch has caught up: acknowledgements resume');
    this.becomeCurrent();
  }

  /** The view can be trusted: what was held goes to the nodes it missed, then its acknowledgements go out. */
  private becomeCurrent(): void {
    this.expecting = null;
    this.current = true;
    const held = this.held;
    this.held = [];
    this.resend(held).then(() => this.release(), (err: unknown) => {
      // Not written (etcd went away again): kept for the next catch-up.
      this.held = [...held, ...this.held];
      this.current = false;
      this.ctx.log.warn({ err: (err as Error).message }, 'cluster: sending the held messages on failed');
      void this.catchUp();
    });
  }

  /**
   * A QoS 1/2 message routed while the view is stale; resolves once the view is current and the message has gone
   * to every node it matches then (its acknowledgement waits for that).
   */
  hold(message: Message): Promise<void> {
    this.held.push(message);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** While too many messages are held, publishers pause (the connection stops reading). */
  congestion(): Promise<void> | null {
    if (this.held.length < HELD_MAX) return null;
    if (this.relief === null) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => { resolve = r; });
      this.relief = { promise, resolve };
    }
    return this.relief.promise;
  }

  private release(): void {
    if (!this.current) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
    this.relief?.resolve();
    this.relief = null;
  }

  /** Lets everyone waiting go (the node is stopping). */
  stop(): void {
    clearInterval(this.ticker);
    this.current = true;
    this.held = [];
    this.release();
  }
}
