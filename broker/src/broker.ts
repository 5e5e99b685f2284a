import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { IConnectPacket, IConnackPacket, QoS } from 'mqtt-packet';
import type { Logger } from 'pino';
import type { Config } from './config/types.js';
import { Connection, type Peer } from './connection/connection.js';
import { createAclHooks } from './acl/index.js';
import { createAuthHooks, createLoginGate } from './auth/index.js';
import type { LoginGate } from './auth/throttle.js';
import { HookRegistry } from './hooks/registry.js';
import type { ClientInfo, Hook } from './hooks/types.js';
import { CertificateStore } from './listeners/certificates.js';
import { TcpListener } from './listeners/tcp.js';
import { TlsListener, type SecureOptions } from './listeners/tls.js';
import type { ProxyOptions } from './listeners/proxy-front.js';
import { TrustedProxies } from './listeners/trusted-proxies.js';
import type { Bound, Listener } from './listeners/types.js';
import { WebSocketListener } from './listeners/websocket.js';
import { forwardable, Message } from './message/message.js';
import { RC } from './protocol/reason-codes.js';
import { Router } from './routing/router.js';
import type { SharedGroup } from './routing/shared.js';
import type { Subscription } from './routing/subscription.js';
import { Session, type SessionContext, type Will } from './session/session.js';
import { ConnectionGuard } from './limits/connection-guard.js';
import { FlappingDetector } from './limits/flapping.js';
import { Semaphore } from './limits/semaphore.js';
import { Stats } from './stats.js';
import { LongTimeout } from './timers/long-timeout.js';
import { openStore } from './store/index.js';
import { AWAIT_ACK, Delivery, storedDelivery } from './session/delivery.js';
import { restore, sessionRecord } from './store/recovery.js';
import type { Store, StoredDelivery } from './store/types.js';
import { SysPublisher } from './sys/sys.js';
import { Barriers, type Barrier } from './store/barrier.js';
import { Cluster } from './cluster/cluster.js';
import { HttpService } from './http/server.js';
import { ClusterView } from './admin/cluster-view.js';
import { BridgeMappings, type MappingBackend } from './bridge/mappings.js';
import { FileMappings } from './bridge/file-backend.js';
import { KafkaBridge, QUEUE_PREFIX } from './bridge/hook.js';
import { type MovingSession, snapshotOf } from './cluster/sessions.js';
import { type Claim, newer } from './cluster/claims.js';
import type { InboxLedger } from './cluster/inbox.js';
import type { DeliveryScope } from './routing/router.js';
import { AgentRegistry } from './agent/registry.js';
import { NotifyHook } from './notify/hook.js';
import { createNotifier } from './notify/notifier.js';

/** Session Expiry Interval meaning "never" (MQTT 5 section 3.1.2.11.2). */
const NEVER = 0xffffffff;

/** The barrier of a node without a store: nothing to wait for. */
const NO_BARRIER: Barrier = { dirty: false, flush: () => Promise.resolve() };

/** How often connect and keep-alive deadlines are checked: a client is closed at most this late. */
const SWEEP_MS = 250;

/**
 * Wiring and lifecycle of one smq node: listeners, connections, sessions, routing and hooks.
 */
export class Broker implements SessionContext {
  readonly config: Config;
  readonly log: Logger;
  readonly hooks: HookRegistry;
  readonly router: Router;
  readonly stats = new Stats();
  readonly version: string;
  /** Sessions by client id, live or waiting for their client. */
  readonly sessions = new Map<string, Session>();
  /** Open connections (connected or not yet). */
  readonly connections = new Set<Connection>();
  readonly maxInflight: number;
  readonly maxQueued: number;
  /** Admission limits for new connections. */
  readonly guard: ConnectionGuard;
  /** Client ids that reconnect too often. */
  readonly flapping: FlappingDetector;
  /** The `worker` pool: bounds concurrent authentication calls. */
  readonly workers: Semaphore;
  /** Where logins from addresses with too many failed logins wait their delay (auth.max_failures, ...). */
  readonly loginGate: LoginGate;
  /** The durable store, or null when `store.dir` is empty (memory only). Set by `listen()`. */
  store: Store | null = null;
  /** What acknowledgements wait for: the store's commits and, in a cluster, the etcd writes. */
  readonly barriers = new Barriers();
  /** This node's id (`broker`, or generated). */
  readonly nodeId: string;
  /** The cluster, when `etcd.endpoints` is set. */
  cluster: Cluster | null = null;
  /** Agents connected to this node (agent mode). */
  readonly agents = new AgentRegistry();
  /** The hook that tracks agents and sends notifications (`notify.*`). */
  readonly notifications: NotifyHook;
  /** What the management API sees: this node's clients and subscriptions, or the whole cluster's. */
  readonly view: ClusterView = new ClusterView(this);
  /** Kafka bridge mappings: in `store.dir` standalone, in etcd in a cluster, in memory without either. */
  readonly bridgeMappings = new BridgeMappings();
  /** The Kafka bridge (`bridge.enable`), or null. */
  readonly bridge: KafkaBridge | null = null;
  private readonly listeners: Listener[] = [];
  /** The TLS certificates, watched for rotation, when a TLS or wss listener runs. */
  private certificates: CertificateStore | null = null;
  private readonly sys: SysPublisher;
  private draining = false;
  /** Persistent sessions on their way to another node (snapshot taken, not yet finished or aborted). */
  private readonly leaving = new Set<Session>();
  /** Set once every listener is bound. */
  private listening = false;
  /** Numbers the identities of QoS 2 messages published here (with the start time: unique across restarts). */
  private messageSeq = Date.now() * 1000;
  /** Inbox batches the store says were delivered before this start (see InboxLedger). */
  private consumedAtStart: ReadonlySet<string> = new Set();
  /** The HTTP service (`http.enable`). */
  private http: HttpService | null = null;
  /** Checks every connection's connect and keep-alive deadlines; runs while there are connections. */
  private sweeper: NodeJS.Timeout | null = null;

  constructor(config: Config, log: Logger, version: string, nodeId?: string) {
    this.config = config;
    this.nodeId = nodeId ?? (config.broker || randomUUID());
    this.log = log;
    this.version = version;
    this.hooks = new HookRegistry(log, { authRequired: config.auth.enable, aclRequired: config.acl.enable });
    this.router = new Router(config.mqtt.shared_strategy);
    this.maxInflight = config.mqtt.max_inflight;
    this.maxQueued = config.mqtt.max_queued;
    this.sys = new SysPublisher(this);
    this.guard = new ConnectionGuard(config.limits);
    this.workers = new Semaphore(config.worker);
    const l = config.limits;
    this.flapping = new FlappingDetector(l.flapping_max, l.flapping_window, l.flapping_ban);
    // Authentication first (its order is the order of consultation), then access control.
    const { throttle, gate } = createLoginGate(config);
    this.loginGate = gate;
    for (const h of createAuthHooks(config, log, throttle)) this.addHook(h);
    for (const h of createAclHooks(config, log)) this.addHook(h);
    this.notifications = new NotifyHook(this, this.agents, createNotifier(config, log));
    this.addHook(this.notifications);
    if (config.bridge.enable) {
      this.bridge = new KafkaBridge(this);
      this.addHook(this.bridge);
    }
  }

  /** Adds a hook (auth, ACL, bridge, ...); the delivery path learns whether anyone checks reads. */
  addHook(hook: Hook): void {
    this.hooks.add(hook);
    const hooks = this.hooks;
    this.router.canRead = hooks.readAuthz === null ? null : (client, message) => hooks.authorizeRead(client, message);
  }

  /** Milliseconds since the epoch; one place, so tests and expiry agree. */
  now(): number {
    return Date.now();
  }

  /** Starts every configured listener and the $SYS publisher; resolves with the bound addresses. */
  async listen(): Promise<Bound[]> {
    const c = this.config;
    // Recover everything before serving anyone: sessions, queues, retained, incoming QoS 2 ids.
    this.store = await openStore(c, this.log);
    if (this.store) {
      const started = Date.now();
      const snapshot = await this.store.open();
      restore(this, snapshot);
      this.consumedAtStart = snapshot.consumed;
      this.log.info({ sessions: snapshot.sessions.length, deliveries: snapshot.deliveries.length,
        retained: snapshot.retained.length, ms: Date.now() - started }, 'store recovered');
      this.barriers.add(this.store);
    }
    if (c.etcd.endpoints.length > 0) {
      // Until the node has joined, a mapping change has nowhere safe to go: refused, not kept in memory.
      this.bridgeMappings.use(NOT_JOINED);
      await this.joinCluster();
    } else if (c.store.dir !== '') {
      const file = new FileMappings(c.store.dir, this.bridgeMappings);
      file.load();
      this.bridgeMappings.use(file);
    }
    const accept = (stream: Duplex, peer: Peer): void => this.attach(stream, peer);
    let secure: SecureOptions | null = null;
    if (c.tls.enable || c.wss.enable) {
      // Loaded before any port is bound: a missing or bad file (TlsConfigError) stops the start with nothing open.
      this.certificates = new CertificateStore(c.tls, this.log);
      secure = { store: this.certificates, verify: c.tls.verify, handshakeTimeoutMs: c.mqtt.connect_timeout * 1000, log: this.log };
    }
    // One list of trusted proxies for every listener; each listener says whether it expects PROXY headers.
    const trusted = new TrustedProxies(c.proxy.trusted);
    const proxy = (protocol: boolean): ProxyOptions => ({
      trusted,
      protocol,
      headerTimeoutMs: c.mqtt.connect_timeout * 1000,
      log: this.log,
      refused: (reason) => this.stats.proxyRefused.set(reason, (this.stats.proxyRefused.get(reason) ?? 0) + 1),
    });
    const maxPayload = c.mqtt.max_packet_size + 5;
    this.listeners.push(new TcpListener(c.host, c.port, accept, proxy(c.proxy_protocol)));
    if (c.tls.enable && secure) this.listeners.push(new TlsListener(c.host, c.tls.port, secure, accept, proxy(c.tls.proxy_protocol)));
    if (c.ws.enable) {
      this.listeners.push(new WebSocketListener(c.ws.host || c.host, c.ws.port, c.ws.path, maxPayload, accept,
        { proxy: proxy(c.ws.proxy_protocol), log: this.log }));
    }
    if (c.wss.enable && secure) {
      this.listeners.push(new WebSocketListener(c.wss.host || c.host, c.wss.port, c.wss.path, maxPayload, accept,
        { secure, proxy: proxy(c.wss.proxy_protocol), log: this.log }));
    }
    const bound: Bound[] = [];
    for (const l of this.listeners) bound.push(await l.listen());
    if (c.http.enable) {
      this.http = new HttpService(this);
      bound.push(await this.http.listen());
    }
    this.listening = true;
    this.certificates?.watch();
    this.sys.start();
    return bound;
  }

  /**
   * Starts the cluster before any listener opens, so retained messages and routes are known to the first
   * client. An etcd that does not answer within 10 s does not stop the node: it serves its own clients and
   * joins when etcd comes.
   */
  private async joinCluster(): Promise<void> {
    const c = this.config;
    const addresses = [`mqtt://${c.host}:${c.port}`];
    if (c.tls.enable) addresses.push(`mqtts://${c.host}:${c.tls.port}`);
    const cluster = new Cluster(this, this.nodeId, { name: c.name, addresses, version: this.version, started: Date.now() });
    this.cluster = cluster;
    cluster.queries.handler = this.view.answer;
    this.addHook(cluster);
    const joined = cluster.start();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((r) => { timer = setTimeout(() => r(true), 10_000); });
    if (await Promise.race([joined.then(() => false), late])) {
      this.log.warn({ endpoints: c.etcd.endpoints }, 'cluster: etcd has not answered: serving local clients meanwhile');
    }
    clearTimeout(timer);
  }

  /** Why the broker is not ready for traffic (for /readyz), or null when it is. */
  notReady(): string | null {
    if (this.draining) return 'draining';
    if (!this.listening) return 'starting';
    if (this.cluster !== null && !this.cluster.joined) return 'not joined the cluster (etcd unreachable)';
    return null;
  }

  /** ClusterHost: inbox batches delivered here, recorded in the store (nothing is without one). */
  get inboxLedger(): InboxLedger {
    const store = this.store;
    return {
      consumed: this.consumedAtStart,
      put: (key) => store?.putConsumed(key),
      delete: (key) => store?.deleteConsumed(key),
    };
  }

  /** ClusterHost: the local store's barrier (never dirty without a store). */
  get localBarrier(): Barrier {
    return this.store ?? NO_BARRIER;
  }

  /** ClusterHost: a message from another node, for this node's subscribers only. */
  deliverFromCluster(message: Message, scope: DeliveryScope): void {
    this.router.publish(message, scope);
  }

  /**
   * ClusterHost: the client id connected to another node; its connection here goes (v5 0x8E) [MQTT-3.1.4-3] if
   * it is the older one. A request about a connection that has since been replaced here by a newer one is ignored.
   */
  kickOlder(clientId: string, by: Claim): boolean {
    const conn = this.sessions.get(clientId)?.outlet as Connection | null | undefined;
    if (!conn || conn.closed || !newer(by, { node: this.nodeId, at: conn.connectedAt })) return false;
    conn.closeReason = `session taken over by node ${by.node}`;
    conn.close(RC.SESSION_TAKEN_OVER);
    return true;
  }

  /** ClusterHost: the clients connected here now. */
  *connectedClients(): Iterable<{ clientId: string; at: number }> {
    for (const c of this.connections) if (c.connected && !c.closed) yield { clientId: c.clientId, at: c.connectedAt };
  }

  /**
   * A promise while the publisher of `topic` must pause until it resolves, else null: while cross-node buffers
   * are congested (any publish may be forwarded), or while the Kafka bridge's buffer is, for a bridged topic.
   */
  congestion(topic: string): Promise<void> | null {
    const cluster = this.cluster === null ? null : this.cluster.congestion();
    const bridge = this.bridge === null ? null : this.bridge.congestion(topic);
    if (cluster === null) return bridge;
    return bridge === null ? cluster : Promise.all([cluster, bridge]).then(() => undefined);
  }

  /**
   * ClusterHost: a persistent session is leaving for another node. Its client, if here, is disconnected (v5
   * 0x8E); its timers stop (its will and expiry travel with it); it keeps queueing until finish() or abort().
   */
  snapshot(clientId: string, to: string): MovingSession | null {
    const session = this.sessions.get(clientId);
    if (session === undefined || session.ended || session.expiryInterval === 0 || this.leaving.has(session)) return null;
    const conn = session.outlet as Connection | null;
    if (conn !== null) {
      conn.closeReason = `session taken over by node ${to}`;
      conn.close(RC.SESSION_TAKEN_OVER);
      this.release(conn, true);
      session.disconnectedAt = this.now();
    }
    session.clearTimers();
    this.leaving.add(session);
    const deliveries = [...session.inflight.values(), ...session.queue].map((d) => storedDelivery(clientId, d));
    return { session: sessionRecord(session), deliveries, incoming: [...session.incomingQos2], mark: session.seq, seen: session.recentIdentities() };
  }

  /** ClusterHost: the session moved; what it queued after the snapshot goes along, and it ends here. */
  finish(clientId: string, mark: number): StoredDelivery[] {
    const session = this.sessions.get(clientId);
    if (session === undefined || !this.leaving.delete(session)) return [];
    const late = [...session.inflight.values(), ...session.queue].filter((d) => d.seq > mark)
      .map((d): StoredDelivery => ({ ...storedDelivery(clientId, d), packetId: 0, state: AWAIT_ACK }));
    session.pendingWill = null; // it travelled in the snapshot
    const conn = session.outlet as Connection | null;
    if (conn !== null) {
      // A client that came back here during the move would stay on an ended session: it goes, and finds its
      // session where it went.
      conn.closeReason = 'session moved to another node';
      conn.close(RC.SESSION_TAKEN_OVER);
      this.release(conn, true);
    }
    this.endSession(session);
    return late;
  }

  /** ClusterHost: the session did not move; it carries on here as before the snapshot. */
  abort(clientId: string): void {
    const session = this.sessions.get(clientId);
    if (session === undefined || !this.leaving.delete(session) || session.ended) return;
    if (session.outlet !== null) return; // its client came back here meanwhile
    this.persistSession(session);
    this.scheduleExpiry(session);
    if (session.pendingWill !== null && session.client !== null) {
      this.armWill(session, session.client, Math.max(0, session.willAt - this.now()));
    }
  }

  /** ClusterHost: a persistent session that came from another node. */
  adopt(moving: MovingSession): void {
    restore(this, snapshotOf(moving));
    const session = this.sessions.get(moving.session.clientId);
    if (session === undefined) return;
    if (moving.seen !== undefined) session.remember(moving.seen);
    if (moving.mark > session.seq) session.seq = moving.mark;
    session.stored = false; // not in this node's store yet: write it all
    this.persistSession(session);
  }

  /**
   * ClusterHost: messages the old node queued after its snapshot. They go ahead of those that reached the
   * session here since (renumbered after them, so the store keeps the order).
   */
  appendMoved(clientId: string, mark: number, deliveries: StoredDelivery[]): void {
    const session = this.sessions.get(clientId);
    if (session === undefined || session.ended || deliveries.length === 0) return;
    const store = session.store;
    const since = session.queue.filter((d) => d.seq <= mark); // takes out those that came here after the mark
    for (const d of since) store?.deleteDelivery(clientId, d.seq);
    // One that reached the session here directly during the move is not delivered twice (QoS 2).
    for (const d of [...arriving(session, deliveries), ...since]) {
      d.seq = ++session.seq;
      session.queue.push(d);
      store?.putDelivery(storedDelivery(clientId, d));
    }
    session.drain();
  }

  /** ClusterHost: a cluster-wide identity, `<node>:<n>` (n starts at the start time in microseconds: unique across restarts). */
  identify(message: Message): void {
    message.id ??= `${this.nodeId}:${++this.messageSeq}`;
  }

  /** ClusterHost: another copy of a session held here; its messages join the queue (see SessionHost.merge). */
  merge(moving: MovingSession): void {
    const session = this.sessions.get(moving.session.clientId);
    if (session === undefined || session.ended) {
      this.adopt(moving);
      return;
    }
    const store = session.store;
    // In flight on the other copy's connection or queued there: sent again from here (QoS 1 may repeat; a
    // message with an identity this session has taken already is not). What the other copy took is remembered
    // after its deliveries are sorted out: those are exactly the ones it has not completed.
    for (const d of arriving(session, moving.deliveries)) {
      d.seq = ++session.seq;
      session.queue.push(d);
      store?.putDelivery(storedDelivery(session.clientId, d));
    }
    // The client's own QoS 2 messages the other copy acknowledged: a resend must not be routed twice.
    for (const id of moving.incoming) if (!session.incomingQos2.has(id)) session.addIncoming(id);
    if (moving.seen !== undefined) {
      // What the other copy delivered to its client already (identities it took, less those it still had to
      // send) leaves this copy's queue: its client has it.
      const pending = new Set<string>();
      for (const d of moving.deliveries) if (d.message.id !== undefined) pending.add(d.message.id);
      const done = new Set(moving.seen.filter((id) => !pending.has(id)));
      const taken = (d: Delivery): boolean => d.message.id !== undefined && done.has(d.message.id);
      for (const d of session.queue.filter((d) => !taken(d))) {
        store?.deleteDelivery(session.clientId, d.seq);
        this.dropped(session.clientId, d.message, 'duplicate');
      }
      // In flight here too: sent from this copy to an earlier connection, completed through the other (the
      // client has released that packet id), so sending it again with DUP would be a second delivery.
      for (const d of [...session.inflight.values()]) {
        if (!taken(d)) continue;
        session.dropInflight(d);
        this.dropped(session.clientId, d.message, 'duplicate');
      }
      session.remember(moving.seen);
    }
    this.log.info({ clientId: session.clientId, messages: moving.deliveries.length }, 'cluster: another copy of this session merged into it');
    session.drain();
  }

  /** ClusterHost: the persistent sessions held here. */
  *heldSessions(): Iterable<string> {
    for (const s of this.sessions.values()) if (!s.ended && s.expiryInterval > 0) yield s.clientId;
  }

  /** ClusterHost: resolves once everything written to the store so far is durable (at once without a store). */
  durable(): Promise<void> {
    return this.store?.flush() ?? Promise.resolve();
  }

  /** A session of this client id is held here but on its way to another node (between snapshot and finish). */
  isLeaving(clientId: string): boolean {
    const session = this.sessions.get(clientId);
    return session !== undefined && this.leaving.has(session);
  }

  /** ClusterHost: a session of this client id is held here. */
  holds(clientId: string): boolean {
    const session = this.sessions.get(clientId);
    return session !== undefined && !session.ended;
  }

  /** ClusterHost: connected clients. */
  clientCount(): number {
    return this.stats.clientsConnected;
  }

  /** Serves one client over any duplex stream (listeners call this; so do in-process tests). */
  attach(stream: Duplex, peer: Peer): void {
    if (this.draining) {
      stream.destroy();
      return;
    }
    this.stats.connectionsTotal++;
    const refusal = this.guard.admit(peer.remoteAddress, this.now());
    if (refusal !== null) {
      this.limitHit(refusal.limit);
      // A refused connection is served until its CONNECT, so the client learns why from CONNACK; but only so
      // many at once, or a flood of them would hold every file descriptor.
      if (!this.guard.explain(peer.remoteAddress)) {
        this.guard.release(peer.remoteAddress);
        stream.destroy();
        return;
      }
    }
    const conn = new Connection(this, stream, peer);
    conn.refusal = refusal;
    this.connections.add(conn);
    if (this.sweeper === null) {
      this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
      this.sweeper.unref();
    }
  }

  /** Ends connections past their connect timeout or keep-alive. */
  private sweep(): void {
    if (this.connections.size === 0 && this.sweeper !== null) {
      clearInterval(this.sweeper);
      this.sweeper = null;
      return;
    }
    const now = Date.now(); // wall clock, like the connections' deadlines (tests may move now())
    for (const c of this.connections) c.checkTimers(now);
  }

  /**
   * Attaches a connection to its session after CONNECT: takes over a live connection with the same client id
   * [MQTT-3.1.4-2], starts clean or resumes [MQTT-3.1.2-4..6], and sets the session expiry.
   */
  openSession(conn: Connection, packet: IConnectPacket, props: NonNullable<IConnackPacket['properties']>): { sessionPresent: boolean } {
    const id = conn.clientId;
    let session = this.sessions.get(id);
    if (session?.outlet) {
      const old = session.outlet as Connection;
      old.closeReason = 'session taken over';
      old.close(RC.SESSION_TAKEN_OVER); // [MQTT-3.1.4-3] v5 gets DISCONNECT 0x8E
      this.release(old, true);
    }
    if (session && !packet.clean && session.owner !== conn.identity) {
      // A session belongs to the identity that made it: another one resuming its client id (bob with alice's)
      // gets a new, empty session, and the old one ends as if cleanly started over [MQTT-3.1.2-4].
      this.log.info({ clientId: id, username: conn.username, remote: conn.remoteAddress }, 'session belongs to another identity: starting a new one');
      this.endSession(session);
      session = undefined;
    }
    if (session && packet.clean) {
      this.endSession(session);
      session = undefined;
    }
    const present = session !== undefined;
    if (session === undefined) {
      session = new Session(id, this);
      session.owner = conn.identity;
      this.sessions.set(id, session);
    }
    session.clearTimers();
    session.pendingWill = null; // [MQTT-3.1.3-9] a reconnect within the will delay cancels the will
    const cfg = this.config.mqtt;
    if (conn.protocolVersion === 5) {
      const asked = packet.properties?.sessionExpiryInterval ?? 0;
      session.expiryInterval = Math.min(asked, cfg.max_session_expiry_interval);
      if (session.expiryInterval !== asked) props.sessionExpiryInterval = session.expiryInterval;
    } else {
      session.expiryInterval = packet.clean ? 0 : cfg.session_expiry_interval;
    }
    conn.session = session;
    session.client = conn;
    session.disconnectedAt = 0;
    this.persistSession(session);
    if (session.expiryInterval > 0) this.cluster?.claimSession(id);
    return { sessionPresent: present }; // [MQTT-3.2.2-1..3]
  }

  /** CONNACK is out: the session resumes sending and hooks hear of the client. */
  clientConnected(conn: Connection, packet: IConnectPacket): void {
    this.stats.clientsConnected++;
    if (this.stats.clientsConnected > this.stats.clientsMaximum) this.stats.clientsMaximum = this.stats.clientsConnected;
    // Through the broker's logger with the connection's fields: a child logger per connection cost ~1 KB each.
    this.log.info({ remote: conn.remoteAddress, transport: conn.transport, clientId: conn.clientId,
      protocolVersion: conn.protocolVersion, keepalive: packet.keepalive, clean: packet.clean }, 'client connected');
    conn.session?.attach(conn);
    this.hooks.connected(conn, packet);
  }

  /** The stream of a connection has closed. */
  connectionClosed(conn: Connection): void {
    if (this.connections.delete(conn)) this.guard.release(conn.remoteAddress, conn.refusal !== null);
    this.release(conn, false);
  }

  /**
   * Detaches a connection from its session: the will goes out (now or after its delay), and the session
   * ends now or when it expires. `takenOver` keeps the session for the connection that replaces it.
   */
  private release(conn: Connection, takenOver: boolean): void {
    const session = conn.session;
    conn.session = null;
    if (!conn.connected) return;
    conn.connected = false;
    this.stats.clientsConnected--;
    this.log.info({ remote: conn.remoteAddress, transport: conn.transport, clientId: conn.clientId,
      reason: conn.closeReason }, 'client disconnected');
    this.hooks.disconnected(conn, conn.closeReason);
    if (!session || session.outlet !== conn) return;
    session.detach();
    const will = conn.will;
    conn.will = null;
    if (will) this.scheduleWill(session, will, conn);
    if (takenOver) return;
    session.disconnectedAt = this.now();
    this.persistSession(session);
    this.scheduleExpiry(session);
  }

  /**
   * Writes a session's record (subscriptions, expiry, a waiting will) when it is persistent, or removes it when
   * it no longer is. A session that becomes persistent writes its queues too.
   */
  persistSession(session: Session): void {
    const store = this.store;
    if (store === null || session.ended) return;
    if (session.expiryInterval === 0) {
      if (session.stored) store.deleteSession(session.clientId);
      session.stored = false;
      return;
    }
    store.putSession(sessionRecord(session));
    if (!session.stored) {
      session.stored = true;
      for (const d of session.inflight.values()) store.putDelivery(storedDelivery(session.clientId, d));
      for (const d of session.queue) store.putDelivery(storedDelivery(session.clientId, d));
      for (const id of session.incomingQos2) store.putIncoming(session.clientId, id);
    }
  }

  /** Publishes a will now, or after its v5 delay unless the session is resumed first [MQTT-3.1.3-9]. */
  private scheduleWill(session: Session, will: Will, client: ClientInfo): void {
    const delay = will.properties?.willDelayInterval ?? 0;
    if (delay === 0 || session.expiryInterval === 0) {
      this.publishWill(will, client);
      return;
    }
    session.pendingWill = will;
    const ms = Math.min(delay, session.expiryInterval) * 1000;
    session.willAt = this.now() + ms;
    this.armWill(session, client, ms);
  }

  /** Publishes a session's pending will after `ms`, unless the client comes back first. */
  armWill(session: Session, client: ClientInfo, ms: number): void {
    session.willTimer = new LongTimeout(() => {
      session.willTimer = null;
      const w = session.pendingWill;
      session.pendingWill = null;
      if (w) this.publishWill(w, client);
      this.persistSession(session);
    }, ms);
  }

  private scheduleExpiry(session: Session): void {
    if (session.expiryInterval === 0) {
      this.endSession(session);
      return;
    }
    if (session.expiryInterval === NEVER) return;
    session.expiryTimer = new LongTimeout(() => this.endSession(session), session.expiryInterval * 1000);
  }

  /** Ends a session: subscriptions go, a will still waiting is published [MQTT-3.1.3-9? will at session end]. */
  endSession(session: Session): void {
    if (session.ended) return;
    session.ended = true;
    if (session.expiryInterval > 0 || session.stored) this.cluster?.releaseSession(session.clientId);
    session.clearTimers();
    for (const sub of session.end()) this.router.remove(sub);
    if (this.sessions.get(session.clientId) === session) this.sessions.delete(session.clientId);
    if (session.stored) {
      this.store?.deleteSession(session.clientId);
      session.stored = false;
    }
    const will = session.pendingWill;
    session.pendingWill = null;
    if (will && session.client) this.publishWill(will, session.client);
  }

  /** Publishes a will under the same rules as the client's own publishes: a will the ACL denies is dropped. */
  private publishWill(will: Will, client: ClientInfo): void {
    const payload = typeof will.payload === 'string' ? Buffer.from(will.payload) : will.payload;
    // Will Delay Interval is the broker's business; a will restored from an older store may hold worse.
    const message = new Message(will.topic, payload, will.qos ?? 0, will.retain ?? false,
      forwardable(will.properties), client.clientId, this.now());
    if (will.topic.startsWith('$') && !this.hooks.claims(will.topic)) return;
    const decide = (rc: number): void => {
      if (rc === RC.SUCCESS) this.route(client, message);
      else this.log.info({ clientId: client.clientId, reasonCode: rc }, 'will not published: not authorized');
    };
    const rc = this.hooks.authorizePublish(client, message);
    if (typeof rc === 'number') decide(rc);
    else rc.then(decide, (err: unknown) => this.log.error({ err }, 'will authorization failed'));
  }

  /**
   * Routes an accepted message: retained store, hooks, then subscribers. Returns what its acknowledgement must
   * wait for besides the store (the Kafka bridge's produce), or null. A `$queue/` message goes to the hooks
   * only (the bridge claims it): no subscriber can match it, and it is never retained.
   */
  route(client: ClientInfo | null, message: Message): Promise<void> | null {
    if (message.topic.startsWith(QUEUE_PREFIX)) return handled(this.hooks.publish(client, message));
    // QoS 2 messages get an identity that travels with them, so a session delivers each once (Session.deliver).
    if (message.qos === 2) this.identify(message);
    if (message.retain) {
      this.router.retain(message);
      // $SYS values are made again every interval; storing them would only churn the disk.
      const store = this.store;
      if (store !== null && !message.topic.startsWith('$SYS/')) {
        if (message.payload.length === 0) store.deleteRetained(message.topic);
        else store.putRetained(message);
      }
    }
    const hold = handled(this.hooks.publish(client, message));
    this.router.publish(message);
    return hold;
  }

  /** Sends the retained messages matching a new subscription, by its retain handling [MQTT-3.3.1-6] (MQTT 5 section 3.3.1.3). */
  sendRetained(session: Session, sub: Subscription, existed: boolean): void {
    if (sub.group !== null) return; // retained messages are not sent to shared subscriptions (v5 4.8.2)
    if (sub.retainHandling === 2 || (sub.retainHandling === 1 && existed)) return;
    for (const m of this.router.retainedFor(sub.filter, this.now())) {
      if (sub.filter.charCodeAt(0) !== 0x24 && m.topic.charCodeAt(0) === 0x24) continue;
      if (session.client !== null && !this.hooks.authorizeRead(session.client, m)) continue; // the ACL decides
      session.deliver(m, (m.qos < sub.qos ? m.qos : sub.qos), true, sub.id ? [sub.id] : undefined, null);
    }
  }

  /** Publishes a message made by the broker itself ($SYS), bypassing client rules. */
  publishInternal(topic: string, payload: string, retain: boolean): void {
    this.route(null, new Message(topic, Buffer.from(payload), 0, retain, undefined, '', this.now()));
  }

  /** Counts a limit that refused something. */
  limitHit(limit: string): void {
    this.stats.limitHits.set(limit, (this.stats.limitHits.get(limit) ?? 0) + 1);
  }

  /** SessionContext: read authorization (ACL) for deliveries, or null when no hook checks reads. */
  get canRead(): ((client: ClientInfo, message: Message) => boolean) | null {
    return this.router.canRead;
  }

  /** SessionContext: a message could not be delivered. */
  dropped(clientId: string, message: Message, reason: string): void {
    this.stats.messagesDropped++;
    this.stats.dropsByReason.set(reason, (this.stats.dropsByReason.get(reason) ?? 0) + 1);
    this.hooks.dropped(clientId, message, reason);
  }

  /** SessionContext: hands a leaving member's message to another member of its shared group. */
  redispatch(group: SharedGroup, message: Message, qos: QoS, leaving: Session): boolean {
    return this.router.redispatch(group, message, qos, leaving);
  }

  /**
   * A draining cluster node gives its persistent sessions to the other nodes, so messages for them keep being
   * queued (and reach their clients, which reconnect elsewhere) while this node is away. Those that cannot
   * move (no other node, or it did not answer) stay in the store and come back with this node.
   */
  private async handOverSessions(deadline: number): Promise<void> {
    const cluster = this.cluster;
    if (cluster === null || !cluster.joined) return;
    await cluster.membership.drain().catch(() => undefined); // no session is pushed to a node that leaves too
    const held = (): string[] => {
      const ids: string[] = [];
      for (const s of this.sessions.values()) if (!s.ended && s.expiryInterval > 0) ids.push(s.clientId);
      return ids;
    };
    const count = held().length;
    const fences = cluster.fences.requests;
    const moved = await cluster.sessions.pushAll(held, deadline); // from now on, it takes no sessions
    // The fences the moves shared (fences.ts): far fewer than the sessions when they are batched.
    if (count > 0) this.log.info({ sessions: count, moved, fences: cluster.fences.requests - fences }, 'drain: persistent sessions handed over to other nodes');
  }

  /**
   * Drains: stop accepting, tell each client the server is shutting down (v5 DISCONNECT 0x8B), wait for the
   * sockets to close (up to `deadlineMs`), stop hooks.
   */
  async close(deadlineMs = 10000): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    const started = Date.now();
    this.sys.stop();
    this.certificates?.close();
    // server.close() resolves only once every socket is gone, so it is awaited after the clients are told.
    const listenersClosed = Promise.all(this.listeners.map((l) => l.close().catch(() => undefined)));
    const closing = [...this.connections].map((c) => new Promise<void>((resolve) => {
      if (c.stream.destroyed) return resolve();
      c.stream.once('close', () => resolve());
      c.closeReason = 'server shutting down';
      c.close(RC.SERVER_SHUTTING_DOWN);
    }));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(closing),
      new Promise<void>((resolve) => { timer = setTimeout(resolve, deadlineMs); }),
    ]);
    clearTimeout(timer);
    for (const c of this.connections) c.stream.destroy();
    if (this.sweeper !== null) clearInterval(this.sweeper);
    this.sweeper = null;
    await listenersClosed;
    await this.handOverSessions(started + deadlineMs);
    // Every stored session gets its disconnect time, so expiry after a restart counts from the shutdown.
    for (const s of this.sessions.values()) {
      if (s.stored && s.outlet === null) this.persistSession(s);
    }
    await this.cluster?.stop();
    await this.http?.close();
    await this.store?.close();
    await this.hooks.stop();
  }
}

/** The mapping store of a clustered node that has not reached etcd yet. */
const NOT_JOINED: MappingBackend = {
  put: () => Promise.reject(new Error('not joined to the cluster: etcd unreachable')),
  remove: () => Promise.reject(new Error('not joined to the cluster: etcd unreachable')),
};

/** Marks a hold as handled: wills and API publishes do not wait for it, and its failure must not crash the process. */
function handled(hold: Promise<void> | null): Promise<void> | null {
  hold?.catch(() => undefined);
  return hold;
}

/** Deliveries of another copy of `session`, less the messages it has taken already (Session.firstTime). */
function arriving(session: Session, deliveries: readonly StoredDelivery[]): Delivery[] {
  const out: Delivery[] = [];
  for (const s of deliveries) {
    const m = Message.restore(s.message);
    if (s.qos > 0 && !session.firstTime(m)) continue;
    out.push(new Delivery(m, s.qos, s.retain, s.subIds ? [...s.subIds] : undefined, null));
  }
  return out;
}
