/**
 * The checker's workload: persistent QoS 1 and QoS 2 publishers (windowed, paced, each message with a unique id
 * and a per-publisher sequence number), persistent subscribers of every data topic that the schedule moves
 * between nodes, a shared group of persistent members, and retained writers (one topic each, last value wins).
 */
import type { Roles } from './checker.js';
import { payloadOf } from './history.js';
import { Peer, type PeerContext } from './peer.js';

/** A publisher's pace: `rate` messages per second, at most `window` unacknowledged. */
class Pump {
  sent = 0;
  settled = 0;
  private tokens = 0;
  private readonly timer: NodeJS.Timeout;
  private running = true;

  constructor(readonly peer: Peer, private readonly ctx: PeerContext, readonly topic: string, readonly qos: 1 | 2,
    private readonly retain: boolean, private readonly rate: number, private readonly window: number) {
    this.timer = setInterval(() => this.tick(), 50);
  }

  get inFlight(): number {
    return this.sent - this.settled;
  }

  private tick(): void {
    if (!this.running) return;
    this.tokens = Math.min(this.tokens + this.rate / 20, this.window);
    while (this.tokens >= 1 && this.inFlight < this.window) {
      this.tokens--;
      this.send();
    }
  }

  private send(): void {
    const seq = this.sent++;
    const id = `${this.peer.id}:${seq}`;
    const h = this.ctx.history;
    h.add({ type: 'publish', client: this.peer.id, id, seq, topic: this.topic, qos: this.qos, retain: this.retain, conn: this.peer.conn });
    this.peer.publish(this.topic, payloadOf(id, seq), this.qos, this.retain, (err) => {
      this.settled++;
      h.add({ type: 'ack', client: this.peer.id, id, ok: err === null, conn: this.peer.conn, ...(err === null ? {} : { error: err.message }) });
    });
  }

  /** Sends nothing more; what is in flight stays in flight. */
  stop(): void {
    this.running = false;
    clearInterval(this.timer);
  }
}

/** Every client of the run, by role. */
export class Workload {
  readonly peers = new Map<string, Peer>();
  readonly roles: Roles;
  private readonly pumps: Pump[] = [];
  private readonly prefix: string;

  constructor(private readonly ctx: PeerContext, private readonly o: { subscribers: number; rate: number; run: string }) {
    this.prefix = `chk/${o.run}/`;
    const subs = Array.from({ length: o.subscribers }, (_, i) => `s${i + 1}`);
    this.roles = {
      dataSubscribers: subs, dataPrefix: `${this.prefix}data/`,
      sharedMembers: ['g1', 'g2', 'g3'], sharedPrefix: `${this.prefix}shared/`,
      retainedPrefix: `${this.prefix}retained/`,
    };
  }

  private nodeAt(i: number): string {
    return this.ctx.nodes[i % this.ctx.nodes.length] as string;
  }

  /** Connects the subscribers and shared members, and resolves once each has its SUBACK. */
  async subscribe(timeoutMs: number): Promise<void> {
    this.roles.dataSubscribers.forEach((id, i) => {
      this.peers.set(id, new Peer(id, this.nodeAt(i), { version: i % 2 === 0 ? 5 : 4, filters: [`${this.roles.dataPrefix}#`] }, this.ctx));
    });
    this.roles.sharedMembers.forEach((id, i) => {
      this.peers.set(id, new Peer(id, this.nodeAt(i + 1), { version: 5, filters: [`$share/g/${this.roles.sharedPrefix}#`] }, this.ctx));
    });
    const want = [...this.peers.keys()];
    await this.until('every subscriber has its SUBACK', () => want.every((id) => this.ctx.history.events.some((e) => e.type === 'subscribed' && e.client === id)), timeoutMs);
  }

  /** Starts the publishers: 2 QoS 1 and 2 QoS 2 data publishers (v3.1.1 and v5), a QoS 1 and a QoS 2 publisher to the shared group, 2 retained writers. */
  startPublishers(): void {
    const add = (id: string, i: number, version: 4 | 5, topic: string, qos: 1 | 2, retain: boolean, rate: number, window: number): void => {
      const peer = new Peer(id, this.nodeAt(i), { version, filters: [] }, this.ctx);
      this.peers.set(id, peer);
      this.pumps.push(new Pump(peer, this.ctx, topic, qos, retain, rate, window));
    };
    const r = this.o.rate;
    add('p1', 0, 4, `${this.roles.dataPrefix}p1`, 1, false, r, 10);
    add('p2', 1, 5, `${this.roles.dataPrefix}p2`, 1, false, r, 10);
    add('p3', 2, 4, `${this.roles.dataPrefix}p3`, 2, false, r, 10);
    add('p4', 3, 5, `${this.roles.dataPrefix}p4`, 2, false, r, 10);
    add('h1', 1, 5, `${this.roles.sharedPrefix}h1`, 1, false, Math.ceil(r / 3), 5);
    add('h2', 2, 5, `${this.roles.sharedPrefix}h2`, 2, false, Math.ceil(r / 3), 5);
    add('r1', 0, 4, `${this.roles.retainedPrefix}r1`, 1, true, 3, 1);
    add('r2', 2, 5, `${this.roles.retainedPrefix}r2`, 1, true, 3, 1);
  }

  /** Resolves once every data subscriber got a message of every data publisher: routes are known cluster-wide. */
  routed(timeoutMs: number): Promise<void> {
    const pubs = this.pumps.filter((p) => p.topic.startsWith(this.roles.dataPrefix)).map((p) => `${p.peer.id}:`);
    return this.until('every data subscriber hears every publisher', () => {
      const heard = new Set<string>();
      for (const e of this.ctx.history.events) if (e.type === 'deliver') heard.add(`${e.client}>${e.id.slice(0, e.id.indexOf(':') + 1)}`);
      return this.roles.dataSubscribers.every((s) => pubs.every((p) => heard.has(`${s}>${p}`)));
    }, timeoutMs);
  }

  /** Stops every publisher and waits (at most `timeoutMs`) until nothing is unacknowledged; false if something still is. */
  async stopPublishing(timeoutMs: number): Promise<boolean> {
    for (const p of this.pumps) p.stop();
    return this.until('every publish settled', () => this.pumps.every((p) => p.inFlight === 0), timeoutMs).then(() => true, () => false);
  }

  /** Messages still unacknowledged, by publisher. */
  unsettled(): string {
    return this.pumps.filter((p) => p.inFlight > 0).map((p) => `${p.peer.id}: ${p.inFlight}`).join(', ');
  }

  /**
   * Waits until every acknowledged data message sent after `since` ms reached every data subscriber and every
   * acknowledged shared one reached the group, and every client is connected; false at the deadline.
   */
  async drained(since: number, timeoutMs: number): Promise<boolean> {
    let seen = 0;
    const acked = new Map<string, string>();
    const got = new Map<string, Set<string>>();
    const sent = new Map<string, { t: number; topic: string }>();
    const done = (): boolean => {
      const ev = this.ctx.history.events;
      for (; seen < ev.length; seen++) {
        const e = ev[seen];
        if (e?.type === 'publish') sent.set(e.id, { t: e.t, topic: e.topic });
        else if (e?.type === 'ack' && e.ok && (sent.get(e.id)?.t ?? 0) > since) acked.set(e.id, sent.get(e.id)?.topic ?? '');
        else if (e?.type === 'deliver') {
          const who = this.roles.sharedMembers.includes(e.client) ? 'group' : e.client;
          const set = got.get(who) ?? new Set<string>();
          set.add(e.id);
          got.set(who, set);
        }
      }
      if (![...this.peers.values()].every((p) => p.connected)) return false;
      for (const [id, topic] of acked) {
        if (topic.startsWith(this.roles.sharedPrefix) && !got.get('group')?.has(id)) return false;
        if (topic.startsWith(this.roles.dataPrefix) && !this.roles.dataSubscribers.every((s) => got.get(s)?.has(id))) return false;
      }
      return true;
    };
    return this.until('everything acknowledged delivered', done, timeoutMs).then(() => true, () => false);
  }

  /** The node each connected client is on. */
  connected(): Record<string, string> {
    return Object.fromEntries([...this.peers.values()].filter((p) => p.connected).map((p) => [p.id, p.node]));
  }

  /** Ends every client. */
  close(): void {
    for (const p of this.pumps) p.stop();
    for (const p of this.peers.values()) p.close();
  }

  /** Polls `cond` every 200 ms until it holds; rejects after `timeoutMs`. */
  private async until(what: string, cond: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
