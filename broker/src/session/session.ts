import type { IConnectPacket, QoS } from 'mqtt-packet';
import type { ClientInfo } from '../hooks/types.js';
import type { Message } from '../message/message.js';
import type { Store } from '../store/types.js';
import type { SharedGroup } from '../routing/shared.js';
import type { Subscription } from '../routing/subscription.js';
import { AWAIT_ACK, AWAIT_COMP, Delivery, storedDelivery } from './delivery.js';
import { Ring } from './ring.js';
import type { LongTimeout } from '../timers/long-timeout.js';

/** QoS 2 message identities a session remembers (firstTime()): ~40 bytes each, only for sessions that get QoS 2. */
const RECENT_IDS = 4096;

/** The connection side a session sends through; implemented by Connection. */
export interface Outlet {
  /** Writes a PUBLISH; returns false when it was not sent (too large for the client). */
  sendPublish(m: Message, qos: QoS, packetId: number, retain: boolean, subIds: number[] | undefined, dup: boolean): boolean;
  sendPubrel(packetId: number): void;
  /** False while the client's output buffer is over its bound; QoS 0 messages are then dropped. */
  readonly writable: boolean;
  /** How many QoS 1/2 messages the client accepts unacknowledged (v5 Receive Maximum; 65535 otherwise). */
  readonly receiveMaximum: number;
}

/** What sessions need from the broker, passed once at creation. */
export interface SessionContext {
  readonly maxInflight: number;
  readonly maxQueued: number;
  /** The durable store, or null when state lives in memory only (then persistence costs nothing). */
  readonly store: Store | null;
  /** A message that could not be delivered; counted and reported to hooks. */
  dropped(clientId: string, message: Message, reason: string): void;
  /**
   * May this client receive this message (the ACL's read check), or null when nothing checks reads. Asked again
   * when a queued or in-flight message is sent, for the client that is connected then.
   */
  readonly canRead: ((client: ClientInfo, message: Message) => boolean) | null;
  /** Sends a message of a leaving member to another member of its group; false when none can take it. */
  redispatch(group: SharedGroup, message: Message, qos: QoS, leaving: Session): boolean;
  now(): number;
}

/** A will message waiting for its connection to end, or for its delay to pass. */
export type Will = NonNullable<IConnectPacket['will']>;

/**
 * The state of one client id that outlives its connections (MQTT "session"): subscriptions, the outgoing
 * in-flight window and queue, and the incoming QoS 2 packet ids awaiting PUBREL.
 */
export class Session {
  readonly clientId: string;
  private readonly ctx: SessionContext;
  /** The live connection, or null while the client is away. */
  outlet: Outlet | null = null;
  /** Who the client was at its last connection (for read authorization while it is away). */
  client: ClientInfo | null = null;
  /**
   * The identity the session belongs to (username, certificate, a token's subject; '' for anonymous): a client
   * of another identity resuming this client id gets a new session, never this one.
   */
  owner = '';
  // The collections below are made on first use: an idle client has none, and the four cost ~700 bytes.
  private subscriptionMap: Map<string, Subscription> | null = null;
  private inflightMap: Map<number, Delivery> | null = null;
  private queueRing: Ring<Delivery> | null = null;
  private incomingSet: Set<number> | null = null;
  /** Session Expiry Interval in seconds; 0xFFFFFFFF never expires. */
  expiryInterval = 0;
  /** Timer that ends the session after expiry while the client is away (up to 2^32-1 s: a LongTimeout). */
  expiryTimer: LongTimeout | null = null;
  /** Timer that publishes a delayed will (v5 Will Delay Interval, up to 2^32-1 s). */
  willTimer: LongTimeout | null = null;
  /** The will of a connection that ended abnormally, kept while its delay runs. */
  pendingWill: Will | null = null;
  /** Epoch ms when the client went away; 0 while connected. */
  disconnectedAt = 0;
  /** Epoch ms at which `pendingWill` is published. */
  willAt = 0;
  /** True while the store holds a record of this session. */
  stored = false;
  /** Set when the session has ended; a late callback must not use it. */
  ended = false;
  private nextId = 1;
  /** Identities of the messages with one that this session took lately (see firstTime), made on first use. */
  private recentIds: Set<string> | null = null;
  /** In-flight deliveries waiting for room in the window to be sent again (see attach()). */
  private heldCount = 0;
  /** Last delivery sequence number handed out (store order). */
  seq = 0;
  // Scratch fields the router uses to merge overlapping subscriptions of one publish (no allocation).
  /** @internal */ stamp = 0;
  /** @internal */ mergeQos: QoS = 0;
  /** @internal */ mergeRap = false;
  /** @internal */ mergeIds: number[] | undefined = undefined;

  constructor(clientId: string, ctx: SessionContext) {
    this.clientId = clientId;
    this.ctx = ctx;
  }

  /** Subscriptions keyed by the filter string the client sent. */
  get subscriptions(): Map<string, Subscription> {
    return (this.subscriptionMap ??= new Map());
  }

  /** Outgoing QoS 1/2 messages awaiting acknowledgement, by packet id, in send order. */
  get inflight(): Map<number, Delivery> {
    return (this.inflightMap ??= new Map());
  }

  /** Number of subscriptions (without making the map). */
  get subscriptionCount(): number {
    return this.subscriptionMap === null ? 0 : this.subscriptionMap.size;
  }

  /** Number of outgoing QoS 1/2 messages awaiting acknowledgement (without making the map). */
  get inflightCount(): number {
    return this.inflightMap === null ? 0 : this.inflightMap.size;
  }

  /** Outgoing QoS 1/2 messages waiting for room in the in-flight window. */
  get queue(): Ring<Delivery> {
    return (this.queueRing ??= new Ring());
  }

  /** Incoming QoS 2 packet ids whose PUBREL has not arrived yet (section 4.3.3). */
  get incomingQos2(): Set<number> {
    return (this.incomingSet ??= new Set());
  }

  /** Ends the session's state: returns its subscriptions (for the router to drop) and forgets everything queued. */
  end(): Subscription[] {
    const subs = this.subscriptionMap === null ? [] : [...this.subscriptionMap.values()];
    this.subscriptionMap = null;
    this.inflightMap = null;
    this.queueRing = null;
    return subs;
  }

  /** Number of messages waiting for room in the in-flight window (without making the queue). */
  get queued(): number {
    return this.queueRing === null ? 0 : this.queueRing.length;
  }

  /** The store this session writes to: only persistent sessions (expiry not 0) are stored. */
  get store(): Store | null {
    return this.expiryInterval > 0 ? this.ctx.store : null;
  }

  /** True while a client is connected to this session. */
  get online(): boolean {
    return this.outlet !== null;
  }

  private get window(): number {
    const o = this.outlet;
    const max = this.ctx.maxInflight;
    return o && o.receiveMaximum < max ? o.receiveMaximum : max;
  }

  /**
   * True, and remembered, when this session has not taken a message with this identity lately; false for a
   * second copy (one that reached both copies of a moving session, a merged copy's, an inbox batch read again).
   * The last RECENT_IDS identities are kept: what QoS 2 exactly-once needs across moves, at bounded memory.
   */
  firstTime(m: Message): boolean {
    const id = m.id;
    if (id === undefined) return true;
    const seen = (this.recentIds ??= new Set());
    if (seen.has(id)) return false;
    seen.add(id);
    if (seen.size > RECENT_IDS) seen.delete(seen.values().next().value as string);
    return true;
  }

  /** Drops an in-flight delivery that another copy of this session completed (Broker.merge); counted there. */
  dropInflight(d: Delivery): void {
    if (this.inflight.get(d.packetId) !== d) return;
    this.inflight.delete(d.packetId);
    if (d.held) {
      d.held = false;
      this.heldCount--;
    }
    this.store?.deleteDelivery(this.clientId, d.seq);
  }

  /** The identities firstTime() remembers, oldest first (they travel with the session when it moves). */
  recentIdentities(): string[] {
    return this.recentIds === null ? [] : [...this.recentIds];
  }

  /** Remembers identities another copy of this session took (a move, a merge), as if firstTime() had seen them. */
  remember(ids: Iterable<string>): void {
    const seen = (this.recentIds ??= new Set());
    for (const id of ids) {
      if (seen.has(id)) continue;
      seen.add(id);
      if (seen.size > RECENT_IDS) seen.delete(seen.values().next().value as string);
    }
  }

  /** Hands a message to this session: sent now, queued, or dropped (counted). */
  deliver(message: Message, qos: QoS, retain: boolean, subIds: number[] | undefined, group: SharedGroup | null): void {
    if (qos > 0 && message.id !== undefined && !this.firstTime(message)) {
      this.ctx.dropped(this.clientId, message, 'duplicate'); // [MQTT-4.3.3] exactly once, across nodes too
      return;
    }
    const o = this.outlet;
    if (qos === 0) {
      if (o === null) return; // QoS 0 is not queued for absent clients (as Mosquitto's default)
      if (!o.writable) {
        this.ctx.dropped(this.clientId, message, 'slow_consumer');
        return;
      }
      // Too large for this client [MQTT-3.1.2-25]: discarded, and counted like the QoS 1/2 case.
      if (!o.sendPublish(message, 0, 0, retain, subIds, false)) this.ctx.dropped(this.clientId, message, 'too_large');
      return;
    }
    const d = new Delivery(message, qos, retain, subIds, group);
    d.seq = ++this.seq;
    if (o !== null && this.queue.length === 0 && this.inflight.size < this.window) {
      if (this.send(o, d)) this.store?.putDelivery(storedDelivery(this.clientId, d));
      return;
    }
    if (this.queue.length >= this.ctx.maxQueued) {
      this.ctx.dropped(this.clientId, message, 'queue_full');
      return;
    }
    this.queue.push(d);
    this.store?.putDelivery(storedDelivery(this.clientId, d));
  }

  /** Puts a delivery in flight and writes it; false when it could not be sent (then it is gone). */
  private send(o: Outlet, d: Delivery): boolean {
    d.packetId = this.allocateId();
    this.inflight.set(d.packetId, d);
    if (o.sendPublish(d.message, d.qos, d.packetId, d.retain, d.subIds, false)) return true;
    // Too large for this client [MQTT-3.1.2-25]: treat as delivered and discarded.
    this.inflight.delete(d.packetId);
    this.ctx.dropped(this.clientId, d.message, 'too_large');
    return false;
  }

  /** Moves queued messages into the in-flight window while there is room. */
  drain(): void {
    const o = this.outlet;
    if (o === null || this.queued === 0) return;
    const canRead = this.ctx.canRead;
    while (this.queue.length > 0 && this.inflight.size < this.window) {
      const d = this.queue.shift() as Delivery;
      const store = this.store;
      if (d.message.expiresAt !== 0 && d.message.expired(this.ctx.now())) {
        this.ctx.dropped(this.clientId, d.message, 'expired');
        store?.deleteDelivery(this.clientId, d.seq);
        continue;
      }
      // Authorized when it was queued, for whoever was connected then: asked again for the client here now.
      if (canRead !== null && this.client !== null && !canRead(this.client, d.message)) {
        this.ctx.dropped(this.clientId, d.message, 'not_authorized');
        store?.deleteDelivery(this.clientId, d.seq);
        continue;
      }
      // Re-written with its packet id, which a resend after a restart must reuse [MQTT-4.4.0-1].
      if (this.send(o, d)) store?.putDelivery(storedDelivery(this.clientId, d));
      else store?.deleteDelivery(this.clientId, d.seq);
    }
  }

  /** PUBACK (QoS 1) or PUBCOMP (QoS 2) received: frees the packet id. Returns false for an unknown id. */
  complete(packetId: number): boolean {
    const d = this.inflight.get(packetId);
    if (d === undefined) return false;
    this.inflight.delete(packetId);
    this.store?.deleteDelivery(this.clientId, d.seq);
    if (d.held) {
      // Acknowledged from an earlier connection before it was sent again: no slot on this one came free.
      this.heldCount--;
      return true;
    }
    if (this.heldCount > 0) this.resendHeld();
    else if (this.queue.length > 0) this.drain();
    return true;
  }

  /**
   * Slots came free: held deliveries are sent again, oldest first, with DUP=1 [MQTT-4.4.0-1], while fewer than
   * the window are unacknowledged on this connection (PUBREL-stage ones count: no PUBCOMP yet).
   */
  private resendHeld(): void {
    const o = this.outlet;
    if (o === null) return;
    for (const d of this.inflight.values()) {
      if (this.heldCount === 0 || this.inflight.size - this.heldCount >= this.window) return;
      if (!d.held) continue;
      d.held = false;
      this.heldCount--;
      if (!o.sendPublish(d.message, d.qos, d.packetId, d.retain, d.subIds, true)) {
        this.inflight.delete(d.packetId);
        this.ctx.dropped(this.clientId, d.message, 'too_large');
        this.store?.deleteDelivery(this.clientId, d.seq);
      }
    }
    if (this.heldCount === 0 && this.queue.length > 0) this.drain();
  }

  /** PUBREC received: the message moves to the PUBREL stage. Returns false for an unknown id. */
  received(packetId: number): boolean {
    const d = this.inflight.get(packetId);
    if (!d || d.qos !== 2) return false;
    d.state = AWAIT_COMP;
    if (d.held) {
      // The client had it from an earlier connection: nothing left to send again.
      d.held = false;
      this.heldCount--;
    }
    this.store?.putDelivery(storedDelivery(this.clientId, d));
    return true;
  }

  /**
   * A connection attaches: in-flight messages are sent again, PUBLISH with DUP=1 [MQTT-4.4.0-1, 3.3.1-1] or
   * PUBREL (section 4.4), in their original order, then the queue drains. A client that came back with a
   * smaller Receive Maximum gets no more unacknowledged PUBLISH packets than it allows [MQTT-3.3.4-9]: the
   * rest keep their packet ids and are sent again as acknowledgements make room.
   */
  attach(o: Outlet): void {
    this.outlet = o;
    const inflight = this.inflightMap;
    if (inflight === null) {
      this.drain();
      return;
    }
    const now = this.ctx.now();
    const window = this.window;
    const canRead = this.ctx.canRead;
    let sent = 0;
    for (const d of inflight.values()) {
      if (d.state === AWAIT_COMP) {
        o.sendPubrel(d.packetId);
        sent++;
      } else if (d.message.expired(now) && d.qos > 0) {
        this.inflight.delete(d.packetId);
        this.ctx.dropped(this.clientId, d.message, 'expired');
        this.store?.deleteDelivery(this.clientId, d.seq);
      } else if (canRead !== null && this.client !== null && !canRead(this.client, d.message)) {
        // Sent before to an earlier connection: not again unless this client may still read it.
        this.inflight.delete(d.packetId);
        this.ctx.dropped(this.clientId, d.message, 'not_authorized');
        this.store?.deleteDelivery(this.clientId, d.seq);
      } else if (sent >= window) {
        d.held = true;
        this.heldCount++;
      } else if (o.sendPublish(d.message, d.qos, d.packetId, d.retain, d.subIds, true)) {
        sent++;
      } else {
        // The new connection takes smaller packets than the last one did [MQTT-3.1.2-25]: gone, so counted.
        this.inflight.delete(d.packetId);
        this.ctx.dropped(this.clientId, d.message, 'too_large');
        this.store?.deleteDelivery(this.clientId, d.seq);
      }
    }
    this.drain();
  }

  /**
   * The connection went away. Messages that reached this session through a shared group and are not yet
   * acknowledged go to another member of the group when one is online.
   */
  detach(): void {
    this.outlet = null;
    if (this.heldCount > 0) {
      for (const d of this.inflight.values()) d.held = false;
      this.heldCount = 0;
    }
    for (const d of this.inflightMap?.values() ?? []) {
      if (d.group !== null && d.state === AWAIT_ACK && this.ctx.redispatch(d.group, d.message, d.qos, this)) {
        this.inflight.delete(d.packetId);
        this.store?.deleteDelivery(this.clientId, d.seq);
      }
    }
    if (this.queued > 0) {
      const moved = this.queue.filter((d) => d.group === null || !this.ctx.redispatch(d.group, d.message, d.qos, this));
      for (const d of moved) this.store?.deleteDelivery(this.clientId, d.seq);
    }
  }

  /** Records an incoming QoS 2 packet id until its PUBREL. */
  addIncoming(packetId: number): void {
    this.incomingQos2.add(packetId);
    this.store?.putIncoming(this.clientId, packetId);
  }

  /** Writes an incoming QoS 2 packet id already known in memory to the store (see the bridge in publish.ts). */
  storeIncoming(packetId: number): void {
    this.store?.putIncoming(this.clientId, packetId);
  }

  /** PUBREL: forgets an incoming QoS 2 packet id; false when it was not known. */
  releaseIncoming(packetId: number): boolean {
    if (!this.incomingQos2.delete(packetId)) return false;
    this.store?.deleteIncoming(this.clientId, packetId);
    return true;
  }

  /** Next free outgoing packet id, 1..65535, skipping ids still in flight [MQTT-2.2.1-3]. */
  private allocateId(): number {
    for (;;) {
      const id = this.nextId;
      this.nextId = id === 65535 ? 1 : id + 1;
      if (!this.inflight.has(id)) return id;
    }
  }

  /** Stops this session's timers. */
  clearTimers(): void {
    this.expiryTimer?.clear();
    this.willTimer?.clear();
    this.expiryTimer = null;
    this.willTimer = null;
  }
}
