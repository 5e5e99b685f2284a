import type { Etcd3, Lease } from 'etcd3';
import type { EtcdContext } from './context.js';
import type { Logger } from 'pino';
import type { SharedStrategy } from '../config/types.js';
import type { ClientInfo, Hook } from '../hooks/types.js';
import { Message } from '../message/message.js';
import type { DeliveryScope, Router } from '../routing/router.js';
import type { Barrier, Barriers } from '../store/barrier.js';
import type { BatchEntry } from '../store/codec.js';
import type { Claim } from './claims.js';
import { ClientRegistry } from './clients.js';
import { InboxCollector } from './collector.js';
import { type SessionHost, SessionMover } from './sessions.js';
import { connectEtcd } from './etcd.js';
import { Fences } from './fences.js';
import { Inbox, type InboxLedger } from './inbox.js';
import { Keys } from './keys.js';
import { FEATURES, type MemberInfo, Membership } from './members.js';
import { Outbox } from './outbox.js';
import { Queries } from './queries.js';
import { MappingSync } from './bridge.js';
import type { BridgeMappings } from '../bridge/mappings.js';
import { RetainedSync } from './retained.js';
import { Routes } from './routes.js';
import { ViewGuard } from './view.js';
import type { Config } from '../config/types.js';

/** What the cluster needs from the broker. */
export interface ClusterHost extends SessionHost {
  readonly config: Config;
  readonly log: Logger;
  readonly router: Router;
  readonly barriers: Barriers;
  /** The Kafka bridge's mappings, kept cluster-wide in etcd. */
  readonly bridgeMappings: BridgeMappings;
  /** The local store's barrier (inbox batches are deleted once their deliveries are durable). */
  readonly localBarrier: Barrier;
  /** Where inbox batches delivered here are recorded until etcd has deleted them (the local store). */
  readonly inboxLedger: InboxLedger;
  /** Delivers a message from another node to this node's subscribers (no hooks, no retained). */
  deliverFromCluster(message: Message, scope: DeliveryScope): void;
  /** Connected clients, for the member record. */
  clientCount(): number;
  /** Gives a message its cluster-wide identity (Message.id) unless it has one: sessions take each identity once. */
  identify(message: Message): void;
  /** Disconnects this node's connection of `clientId` (v5 0x8E) if it is older than `by`; true when it did. */
  kickOlder(clientId: string, by: Claim): boolean;
  /** This node's connected clients and their CONNACK times, to claim their ids again under a new lease. */
  connectedClients(): Iterable<{ clientId: string; at: number }>;
}

/** The scope of a held message delivered here again once the view is current: ordinary subscriptions only. */
const LOCAL_AGAIN: DeliveryScope = { normal: true, groups: [] };

/** One message on its way to one node. */
class Target implements BatchEntry {
  normal = false;
  readonly groups: string[] = [];
  constructor(readonly message: Message) {}
}

/**
 * Clustering through etcd (section "Cluster" of the README): membership, routes, inboxes and retained messages.
 * Nodes never talk to each other; each writes to etcd and watches it. As a hook it sees every message published
 * on this node and sends it to the nodes with matching routes.
 */
export class Cluster implements Hook {
  readonly name = 'cluster';
  readonly keys: Keys;
  private readonly client: Etcd3;
  private readonly log: Logger;
  readonly membership: Membership;
  readonly routes: Routes;
  readonly outbox: Outbox;
  readonly inbox: Inbox;
  readonly retained: RetainedSync;
  readonly clients: ClientRegistry;
  readonly collector: InboxCollector;
  readonly sessions: SessionMover;
  readonly fences: Fences;
  /** Questions between nodes, for the management API's cluster-wide answers. */
  readonly queries: Queries;
  /** Bridge mappings in etcd, the same on every node. */
  readonly bridge: MappingSync;
  /** Whether this node's view of the routes can be trusted; acknowledgements wait while it cannot (view.ts). */
  readonly view: ViewGuard;
  /** The node each shared group of a held message was sent to (see regroup()). */
  private readonly heldGroups = new WeakMap<Message, Map<string, string>>();
  private readonly strategy: SharedStrategy;
  /** Round-robin position per shared group, for picking the node that gets a message. */
  private readonly turns = new Map<string, number>();
  private started = false;
  private stopped = false;
  /** Resolves once the node has joined (or stops trying): what a resuming client waits on (fetchSession). */
  private readonly joinedOrStopped: Promise<void>;
  private settleJoin!: () => void;

  constructor(
    private readonly host: ClusterHost,
    readonly nodeId: string,
    self: Omit<MemberInfo, 'id' | 'clients'>,
  ) {
    const cfg = host.config;
    this.joinedOrStopped = new Promise((resolve) => { this.settleJoin = resolve; });
    this.log = host.log.child({ component: 'cluster' });
    this.client = connectEtcd(cfg.etcd);
    this.keys = new Keys(cfg.cluster);
    this.strategy = cfg.mqtt.shared_strategy;
    const ctx: EtcdContext = { client: this.client, keys: this.keys, self: nodeId, log: this.log };
    // Routes outlive the lease where the node id does (a configured `broker`, or one kept in the store).
    this.routes = new Routes(ctx, cfg.broker !== '' || cfg.store.dir !== '');
    this.outbox = new Outbox(ctx, (node) => this.membership.reads(node, 'message-id'));
    this.inbox = new Inbox(ctx, (e) => this.deliver(e), host.localBarrier, host.inboxLedger);
    this.retained = new RetainedSync(ctx, {
      set: (topic, m) => host.router.retained.set(topic, m),
      delete: (topic) => host.router.retained.delete(topic),
    });
    const lease = (): Lease | null => this.membership.current;
    this.clients = new ClientRegistry(ctx, lease, { kickOlder: (id, by) => host.kickOlder(id, by), connected: () => host.connectedClients() });
    this.fences = new Fences(ctx, lease, {
      members: () => this.membership.members.keys(),
      seen: (node, routes, ms) => this.routes.seen(node, routes, ms),
      outboxWritten: () => this.outbox.settled(),
      inboxDelivered: (id) => this.inbox.mark(id),
    });
    this.sessions = new SessionMover(ctx, lease, host, () => this.membership.members, {
      written: (ms) => this.routes.written(ms),
      seen: (node, routes, ms) => this.routes.seen(node, routes, ms),
      fence: (node, routes) => this.fences.fence(node, routes),
    }, (node, feature) => this.membership.reads(node, feature));
    this.queries = new Queries(ctx, lease);
    this.view = new ViewGuard(ctx, lease, (held) => this.resend(held));
    this.routes.view = this.view;
    this.bridge = new MappingSync(ctx, host.bridgeMappings);
    this.collector = new InboxCollector(ctx, () => this.membership.members.keys(), () => this.routes.nodes(), cfg.etcd.orphan_ttl * 1000);
    this.membership = new Membership(
      this.client, this.keys, { ...self, id: nodeId, clients: 0, features: FEATURES }, cfg.etcd.lease_ttl, this.log,
      (lease) => {
        this.routes.useLease(lease);
        if (this.started) this.clients.reclaimAll();
      },
      () => host.clientCount(),
    );
  }

  /**
   * Joins the cluster: retained messages and routes are read first, then the inbox (what waited while this node
   * was away), then the node registers and publishes its routes. Retries until etcd answers or stop() is called.
   */
  async start(): Promise<void> {
    const steps: (() => Promise<void>)[] = [
      () => this.retained.start(),
      () => this.bridge.start(),
      () => this.routes.start(),
      () => this.inbox.start(),
      () => this.membership.start(),
      () => this.clients.start(),
      () => this.fences.start(),
      () => this.sessions.start(),
      () => this.queries.start(),
    ];
    let step = 0;
    for (let delay = 500; step < steps.length && !this.stopped; ) {
      try {
        await (steps[step] as () => Promise<void>)();
        step++;
      } catch (err) {
        this.log.warn({ err: (err as Error).message, endpoints: this.host.config.etcd.endpoints }, 'cluster: etcd not reachable: retrying');
        await new Promise((r) => setTimeout(r, delay).unref());
        delay = Math.min(delay * 2, 5000);
      }
    }
    if (this.stopped) return;
    this.host.router.listen(this.routes);
    // Routes of sessions that ended while this node was away (it keeps routes through a crash): gone now.
    this.routes.prune().then(
      (n) => { if (n > 0) this.log.info({ routes: n }, 'cluster: deleted routes this node no longer has'); },
      (err: unknown) => this.log.warn({ err: (err as Error).message }, 'cluster: deleting stale routes failed'),
    );
    this.host.barriers.add(this.outbox);
    this.host.barriers.add(this.retained);
    this.view.start();
    this.collector.start();
    this.started = true;
    this.settleJoin();
    this.log.info({ node: this.nodeId, cluster: this.host.config.cluster, members: [...this.membership.members.keys()] }, 'joined the cluster');
  }

  /**
   * Hook: a message published on this node goes to every other node with a matching route. While this node's view
   * of the routes cannot be trusted, a QoS 1/2 message's acknowledgement waits (the returned promise) until it has
   * been sent to every node that matches it by the current view (view.ts).
   */
  onPublish(_client: ClientInfo | null, message: Message): Promise<void> | undefined {
    // $SYS topics describe this node; each node publishes its own.
    if (message.topic.startsWith('$SYS/')) return undefined;
    // Not joined yet: no view of the routes at all. Sent on once it has one, and acknowledged then.
    if (!this.started) return message.qos > 0 ? this.hold(message) : undefined;
    if (message.retain) this.retained.set(message);
    const routes = this.routes.match(message.topic);
    // Routed by a view that may be missing routes: kept, to be sent again to the nodes it missed (view.ts).
    const unsure = message.qos > 0 && !this.view.trusted;
    if (unsure) this.host.identify(message); // before its first copy leaves: it is sent again (resend())
    if (routes.length === 0) return unsure ? this.view.hold(message) : undefined;
    const targets = new Map<string, Target>();
    let groups: Map<string, string[]> | null = null;
    let local: string[] | null = null;
    for (const r of routes) {
      if (r.group === null) {
        let t = targets.get(r.node);
        if (t === undefined) targets.set(r.node, (t = new Target(message)));
        t.normal = true;
        continue;
      }
      // A group with a member here keeps the message here (the local router delivers it).
      if (this.host.router.hasGroup(r.group, r.filter)) {
        if (unsure) (local ??= []).push(`${r.group}\u0000${r.filter}`);
        continue;
      }
      const key = `${r.group}\u0000${r.filter}`;
      groups ??= new Map();
      const nodes = groups.get(key);
      if (nodes === undefined) groups.set(key, [r.node]);
      else nodes.push(r.node);
    }
    if (groups !== null) {
      for (const [key, nodes] of groups) {
        const node = this.pickNode(key, nodes, message);
        let t = targets.get(node);
        if (t === undefined) targets.set(node, (t = new Target(message)));
        t.groups.push(key);
      }
    }
    for (const [node, t] of targets) this.outbox.add(node, t);
    if (!unsure) return undefined;
    const picked = new Map<string, string>();
    for (const [node, t] of targets) for (const key of t.groups) picked.set(key, node);
    for (const key of local ?? []) picked.set(key, this.nodeId);
    this.heldGroups.set(message, picked);
    return this.view.hold(message);
  }

  /** A QoS 1/2 message published before the node has any view: held, with an identity for its one copy later. */
  private hold(message: Message): Promise<void> {
    this.host.identify(message);
    return this.view.hold(message);
  }

  /**
   * The view has caught up: messages routed while it could not be trusted go again to every node with ordinary
   * subscriptions that match them now. Sending only to the nodes the first copy missed is not enough: a session
   * may have moved between two nodes that both got it, after the one it left had read it and before the one it
   * went to did, by a move that did not wait for this node (dropped from the cluster while it was stopped, or
   * its fence given up on). Each message has an identity, so a session takes it once. A shared group got its one
   * copy already, here or on the node then picked. Resolves once they are written to etcd.
   */
  private async resend(held: readonly Message[]): Promise<void> {
    let sent = 0;
    for (const message of held) {
      // Here too: a session may have come here since (pushed by a draining node that had it when this one
      // routed the first copy there); those that took the first copy here drop this one by its identity.
      this.host.deliverFromCluster(message, LOCAL_AGAIN);
      sent += this.regroup(message);
      const nodes = new Set<string>();
      for (const r of this.routes.match(message.topic)) if (r.group === null) nodes.add(r.node);
      for (const node of nodes) {
        const t = new Target(message);
        t.normal = true;
        this.outbox.add(node, t);
        sent++;
      }
    }
    if (sent > 0) this.log.info({ messages: sent }, 'cluster: messages routed by a stale view sent again to the nodes they match now');
    await this.outbox.settled();
  }

  /**
   * A held message's shared groups: each got its one copy by the stale view, here or on the node then picked. A
   * group that node no longer has a member of (it drained, or its members moved), or that the stale view did
   * not show at all, gets the message from a node picked now; the others keep their copy (a member that moved
   * took it along). Returns the copies sent.
   */
  private regroup(message: Message): number {
    const picked = this.heldGroups.get(message);
    this.heldGroups.delete(message);
    const groups = new Map<string, string[]>();
    const still = new Set<string>();
    for (const r of this.routes.match(message.topic)) {
      if (r.group === null) continue;
      const key = `${r.group}\u0000${r.filter}`;
      if (picked?.get(key) === this.nodeId || this.host.router.hasGroup(r.group, r.filter)) continue;
      if (picked?.get(key) === r.node) still.add(key);
      const nodes = groups.get(key);
      if (nodes === undefined) groups.set(key, [r.node]);
      else nodes.push(r.node);
    }
    let sent = 0;
    for (const [key, nodes] of groups) {
      if (still.has(key)) continue;
      const t = new Target(message);
      t.groups.push(key);
      this.outbox.add(this.pickNode(key, nodes, message), t);
      sent++;
    }
    return sent;
  }

  /** A promise while publishers must pause: too many messages wait for the view to catch up. */
  congestion(): Promise<void> | null {
    return this.view.congestion() ?? this.outbox.congestion();
  }

  /** True once the node has joined (etcd answered and everything was read). */
  get joined(): boolean {
    return this.started;
  }

  /**
   * Before a client resumes a persistent session: fetches it when another node holds it, waiting at most
   * `etcd.session_wait` for the node to join the cluster, for etcd and for the holder. Past that the client gets
   * a new session here; the old copy's messages follow once its node can hand them over (session-records.ts).
   */
  /** True while a move of the session of `clientId` is under way on this node (a resuming client waits). */
  moving(clientId: string): boolean {
    return this.started && this.sessions.moving(clientId);
  }

  async fetchSession(clientId: string, gone?: AbortSignal): Promise<void> {
    const deadline = Date.now() + this.host.config.etcd.session_wait * 1000;
    if (!this.started) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<void>((resolve) => { timer = setTimeout(resolve, deadline - Date.now()); });
      await Promise.race([this.joinedOrStopped, late]);
      clearTimeout(timer);
    }
    if (!this.started) {
      this.log.warn({ clientId }, 'cluster: not joined yet: the session starts here, and a copy elsewhere follows later');
      return;
    }
    try {
      await this.sessions.fetch(clientId, deadline, gone);
    } catch (err) {
      this.log.warn({ clientId, err: (err as Error).message }, 'cluster: fetching a session failed: it starts here, and a copy elsewhere follows later');
    }
  }

  /** A persistent session is held here now (or no longer). */
  claimSession(clientId: string): void {
    if (this.started) this.sessions.claim(clientId);
  }

  releaseSession(clientId: string): void {
    if (this.started) this.sessions.release(clientId);
  }

  /** Hook: a client connected here claims its id cluster-wide. */
  onConnected(client: ClientInfo): void {
    if (this.started) this.clients.connected(client.clientId, client.connectedAt ?? Date.now());
  }

  /** Hook: a client left. */
  onDisconnected(client: ClientInfo): void {
    if (this.started) this.clients.disconnected(client.clientId, client.connectedAt ?? 0);
  }

  /**
   * One node of those with members of a shared group, by the configured strategy; a node that is away (its
   * routes outlive it) only when no live node has members.
   */
  private pickNode(group: string, all: string[], message: Message): string {
    const members = this.membership.members;
    let nodes = all;
    if (all.some((n) => !members.has(n))) {
      const live = all.filter((n) => members.has(n));
      if (live.length > 0) nodes = live;
    }
    if (nodes.length === 1) return nodes[0] as string;
    nodes.sort();
    let i: number;
    if (this.strategy === 'random') i = Math.floor(Math.random() * nodes.length);
    else if (this.strategy === 'hash_clientid') i = hash(message.origin) % nodes.length;
    else if (this.strategy === 'hash_topic') i = hash(message.topic) % nodes.length;
    else {
      i = (this.turns.get(group) ?? 0) % nodes.length;
      this.turns.set(group, i + 1);
    }
    return nodes[i] as string;
  }

  private deliver(entry: BatchEntry): void {
    const m = entry.message;
    this.host.deliverFromCluster(m instanceof Message ? m : Message.restore(m), entry);
  }

  /** Leaves the cluster: pending writes are given up to 2 s, then the lease is revoked. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.settleJoin();
    if (this.started) {
      // Route removals too: a node with a store keeps its routes through a restart, so the ones of sessions
      // that ended at the drain must be gone from etcd before it leaves.
      const written = Promise.all([this.outbox.flush(), this.retained.flush(), this.routes.written(2000)]).catch(() => undefined);
      await Promise.race([written, new Promise((r) => setTimeout(r, 2000).unref())]);
    }
    // Session moves in progress end first: they use the inbox, routes and fences.
    await this.sessions.stop().catch(() => undefined);
    this.view.stop();
    this.outbox.stop();
    this.collector.stop();
    await Promise.all([this.routes.stop(), this.inbox.stop(), this.retained.stop(), this.clients.stop(), this.fences.stop(), this.queries.stop(), this.bridge.stop()]).catch(() => undefined);
    await this.membership.stop().catch(() => undefined);
    this.client.close();
  }
}

/** FNV-1a: a stable spread of client ids over nodes for the `hash` strategy. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}
