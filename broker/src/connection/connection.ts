import type { Duplex } from 'node:stream';
import mqtt, { type IConnectPacket, type IPublishPacket, type Packet, type QoS } from 'mqtt-packet';
import type { Logger } from 'pino';
import type { Broker } from '../broker.js';
import { TokenBucket } from '../limits/token-bucket.js';
import type { ClientInfo, PeerCertificate } from '../hooks/types.js';
import type { AgentInfo } from '../agent/client-info.js';
import { dispatch } from '../protocol/handlers/index.js';
import { MqttError } from '../protocol/errors.js';
import { PacketReader } from '../protocol/codec/reader.js';
import { fitPacket } from '../protocol/fit.js';
import { encodeAck, encodePublish, NO_PROPERTIES, PUBREL } from '../protocol/codec/writer.js';
import { RC } from '../protocol/reason-codes.js';
import type { Message } from '../message/message.js';
import type { Outlet, Session, Will } from '../session/session.js';
import { HeldQueue, type HeldOwner } from './held.js';

// mqtt-packet would otherwise build a cache of 65,536 two-byte buffers (~7 MB) on its first generate(); it
// writes only the control packets here (the message flow has its own encoders), where the cache gains nothing.
mqtt.writeToStream.cacheNumbers = false;

/** The property of a stream that points to its connection. */
const OWNER = Symbol('smq.connection');
type Owned = Duplex & { [OWNER]: Connection };

function onStreamData(this: Owned, chunk: Buffer): void {
  this[OWNER].onData(chunk);
}
function onStreamDrain(this: Owned): void {
  this[OWNER].onDrain();
}
function onStreamError(this: Owned, err: Error): void {
  this[OWNER].log.debug({ err }, 'stream error');
}
function onStreamClose(this: Owned): void {
  this[OWNER].onClose();
}

/** Up to this many bytes of one turn's packets are joined into one buffer before writing. */
const JOIN_LIMIT = 64 * 1024;

/** How a connection reached us. */
export interface Peer {
  readonly transport: string;
  readonly remoteAddress: string;
  /** The verified client certificate (mutual TLS), if any. */
  readonly certificate?: PeerCertificate | undefined;
}

/**
 * One network connection: owns the stream, the parser, keep-alive, output buffering and backpressure. The
 * session (subscriptions, in-flight window, queue) is a separate object that outlives it.
 */
export class Connection implements Outlet, ClientInfo, HeldOwner {
  readonly broker: Broker;
  readonly stream: Duplex;
  readonly transport: string;
  readonly remoteAddress: string;
  readonly certificate: PeerCertificate | undefined;
  private logger: Logger | null = null;
  protocolVersion: 3 | 4 | 5 = 4;
  clientId = '';
  username: string | undefined = undefined;
  /** Who authentication says this client is (see connect.ts); the sessions it makes belong to it. */
  identity = '';
  /** Epoch ms at which the client's credentials (a JWT) expire and the connection is closed; 0 for never. */
  credentialsExpireAt = 0;
  /** Set once CONNACK 0x00 has been sent. */
  connected = false;
  /** Set once the close has begun; nothing more is read or written after it. */
  closed = false;
  session: Session | null = null;
  /** The will to publish if the connection ends without a normal DISCONNECT. */
  will: Will | null = null;
  /** Client's Receive Maximum (v5) or 65535. */
  receiveMaximum = 65535;
  /** Client's Maximum Packet Size (v5) or 0 (no limit). */
  maximumPacketSize = 0;
  /** Client's Topic Alias Maximum (v5): aliases we may use toward it. */
  topicAliasMaximum = 0;
  /** v5 Request Problem Information: reason strings only when true [MQTT-3.1.2-29]. */
  problemInfo = true;
  /** Inbound topic aliases (v5), created on first use. */
  aliasesIn: Map<number, string> | null = null;
  /** Outbound topic aliases (v5), by topic. */
  private aliasesOut: Map<string, number> | null = null;
  /** Packets that arrived while an asynchronous handler ran; processed in order afterwards. */
  private backlog: Packet[] | null = null;
  /** Agent mode: the ClientInfo sent with CONNECT, or null (agent/client-info.ts). */
  agentInfo: AgentInfo | null = null;
  /** Set when an admission limit refused this connection; its CONNECT is answered with this reason. */
  refusal: { rc: number; limit: string } | null = null;
  /** Aborted when the connection closes while its CONNECT is being authenticated; made on first use. */
  private loginAbort: AbortController | null = null;
  /** Set once a CONNECT has reached its handler (which may still be authenticating it). */
  private connectSeen = false;
  /** Per-client publish rate limit, or null when off. */
  private readonly publishBucket: TokenBucket | null;
  /** Encoded packets waiting for a store commit or the Kafka bridge, in order; null when none wait. */
  private held: HeldQueue | null = null;
  /** Epoch ms at which CONNACK accepted the client; 0 before. */
  connectedAt = 0;
  /** Why the connection closed, for the disconnect event. */
  closeReason = 'connection lost';
  private readonly reader: PacketReader;
  // Keep-alive and the connect timeout are deadlines the broker's sweep checks (checkTimers), not a timer per
  // connection: a Timeout is ~200 bytes with its list entry, and refreshing it on every packet costs too.
  /** Epoch ms by which CONNECT must have been accepted; 0 once it has. */
  private connectDeadline: number;
  /** Epoch ms of the last bytes received. */
  private lastSeen: number;
  /** How long the client may stay silent (1.5 times its keep-alive), in ms; 0 for no keep-alive. */
  private silenceMs = 0;
  private slowTimer: NodeJS.Timeout | null = null;
  /** Destroys a closing stream whose peer does not finish the close (see close()). */
  private closeTimer: NodeJS.Timeout | null = null;
  /** Bytes emitted this event-loop turn, written to the stream together at the end of it; null when none. */
  private out: Buffer[] | null = null;
  private outBytes = 0;
  private readonly maxPacketSize: number;
  private readonly maxOutput: number;

  constructor(broker: Broker, stream: Duplex, peer: Peer) {
    this.broker = broker;
    this.stream = stream;
    this.transport = peer.transport;
    this.remoteAddress = peer.remoteAddress;
    this.certificate = peer.certificate;
    const cfg = broker.config.mqtt;
    this.maxPacketSize = cfg.max_packet_size;
    this.maxOutput = cfg.max_output_buffer;
    const rate = broker.config.limits.publish_rate;
    this.publishBucket = rate > 0 ? new TokenBucket(rate, rate, broker.now()) : null;
    // A socket that never sends CONNECT is closed (slowloris protection).
    this.lastSeen = Date.now();
    this.connectDeadline = this.lastSeen + cfg.connect_timeout * 1000;
    this.reader = new PacketReader(this.maxPacketSize, this);
    // Shared handlers that find the connection on the stream: closures per connection would cost an idle
    // client some 600 bytes.
    (stream as Owned)[OWNER] = this;
    stream.on('data', onStreamData);
    stream.on('drain', onStreamDrain);
    stream.on('error', onStreamError);
    stream.on('close', onStreamClose);
  }

  /** The connection's logger (address, transport, client id), made on first use: most connections never log. */
  get log(): Logger {
    if (this.logger === null) {
      const fields: Record<string, string> = { remote: this.remoteAddress, transport: this.transport };
      if (this.clientId !== '') fields['clientId'] = this.clientId;
      this.logger = this.broker.log.child(fields);
    }
    return this.logger;
  }

  /** Sets the client id from CONNECT (the logger picks it up). */
  setClientId(id: string): void {
    this.clientId = id;
    this.logger = null;
  }

  /** Called by the broker's sweep a few times a second: closes a connection whose deadline has passed. */
  checkTimers(now: number): void {
    if (this.closed) return;
    if (this.connectDeadline !== 0) {
      if (now < this.connectDeadline) return;
      this.closeReason = 'connect timeout';
      this.close(undefined, true);
    } else if (this.credentialsExpireAt !== 0 && now >= this.credentialsExpireAt) {
      // A deadline the sweep checks, like keep-alive: no timer, so no 24.8-day ceiling on a token's lifetime.
      this.closeReason = 'credentials expired';
      this.close(RC.MAXIMUM_CONNECT_TIME);
    } else if (this.silenceMs > 0 && this.backlog === null && now - this.lastSeen > this.silenceMs) {
      // While the broker holds this client's packets (flow control, a slow ACL backend) it is the broker that
      // is not reading, not the client that is silent: the keep-alive counts from when reading resumes.
      // [MQTT-3.1.2-24] one and a half times the keep-alive without a packet ends the connection.
      this.closeReason = 'keep-alive timeout';
      this.close(RC.KEEP_ALIVE_TIMEOUT);
    }
  }

  private static slowTimeout(conn: Connection): void {
    conn.broker.stats.slowConsumers++;
    conn.log.warn({ clientId: conn.clientId, buffered: conn.stream.writableLength }, 'slow consumer disconnected');
    conn.closeReason = 'slow consumer';
    conn.close(RC.QUOTA_EXCEEDED, true);
  }

  private static flushLater(conn: Connection): void {
    conn.flush();
  }

  private static drainLater(conn: Connection): void {
    conn.drainBacklog();
  }

  /** Stream event: bytes arrived. */
  onData(chunk: Buffer): void {
    if (this.closed) return;
    this.broker.stats.bytesReceived += chunk.length;
    this.lastSeen = Date.now(); // once per read, not per packet
    this.reader.parse(chunk);
  }

  /** PacketSink: a decoded packet. */
  onPacket(packet: Packet): void {
    if (this.closed) return;
    if (this.backlog !== null) {
      this.backlog.push(packet);
      return;
    }
    this.admit(packet);
  }

  /**
   * Applies the publish rate limit, then handles the packet. Over its rate the client is slowed, not refused:
   * the packet and everything after it wait in the backlog, reading stops, and TCP flow control pushes back on
   * the publisher.
   */
  private admit(packet: Packet): void {
    const bucket = this.publishBucket;
    if (bucket !== null && packet.cmd === 'publish') {
      const wait = bucket.take(this.broker.now());
      if (wait > 0) {
        this.broker.limitHit('publish_rate');
        this.hold(packet);
        setTimeout(Connection.drainLater, wait, this);
        return;
      }
    }
    this.handle(packet);
  }

  private handle(packet: Packet): void {
    if ((packet.length ?? 0) > this.maxPacketSize) {
      this.fail(new MqttError(RC.PACKET_TOO_LARGE, 'packet exceeds maximum packet size'));
      return;
    }
    try {
      const pending = dispatch(this, packet);
      if (pending) {
        // An asynchronous handler (authentication, an HTTP ACL): later packets wait so order is kept.
        this.hold(null);
        pending.then(() => this.drainBacklog(), (err: unknown) => {
          this.backlog = null;
          this.fail(err);
        });
      }
    } catch (err) {
      this.fail(err);
    }
  }

  /** Starts holding packets (with `first` at the head, if given) and stops reading. */
  private hold(first: Packet | null): void {
    this.backlog = first === null ? [] : [first];
    this.stream.pause();
  }

  /** Handles held packets in order until one must wait again; resumes reading when all are done. */
  private drainBacklog(): void {
    const backlog = this.backlog;
    if (backlog === null) return;
    this.backlog = null;
    for (let i = 0; i < backlog.length && !this.closed; i++) {
      // admit() may start holding again (an asynchronous handler, the rate limit): keep the rest behind it.
      const held = this.backlog as Packet[] | null;
      if (held !== null) {
        held.push(...backlog.slice(i));
        return;
      }
      this.admit(backlog[i] as Packet);
    }
    if (!this.closed && (this.backlog as Packet[] | null) === null) {
      this.lastSeen = Date.now();
      this.stream.resume();
    }
  }

  /** PacketSink: a malformed or oversized packet. */
  onParseError(err: Error): void {
    if (this.closed) return;
    if (err instanceof MqttError) {
      // Too large (refused as soon as the fixed header announced it), or a v5 property list that broke the
      // rules of its packet type (codec/properties.ts).
      if (err.reasonCode === RC.MALFORMED_PACKET) this.broker.stats.malformed++;
      this.fail(err);
      return;
    }
    // mqtt-packet rejects unknown protocol levels before we see the CONNECT; 3.1.1 answers 0x01 [MQTT-3.1.2-2].
    // Only a first CONNECT: after one (say a v5 CONNECT still authenticating) a second is a protocol error,
    // and the 3.1.1 CONNACK at the first one's level 5 made mqtt-packet throw out of the socket's data event.
    if (!this.connectSeen && err.message === 'Invalid protocol version') {
      this.write({ cmd: 'connack', returnCode: 1, sessionPresent: false });
      this.closeReason = 'unsupported protocol version';
      this.close(undefined);
      return;
    }
    this.broker.stats.malformed++;
    this.fail(new MqttError(RC.MALFORMED_PACKET, err.message));
  }

  /**
   * Ends the connection because of an error: the one place that turns a reason code into what the client sees
   * (v5 DISCONNECT with the code; v3.1.x a plain close, which is all it has) [MQTT-4.13.1-1].
   */
  fail(err: unknown): void {
    if (this.closed) return;
    if (err instanceof MqttError) {
      this.log.info({ clientId: this.clientId, reasonCode: err.reasonCode, reason: err.message }, 'closing connection: protocol error');
      this.closeReason = err.message;
      this.close(err.reasonCode, false, err.message);
    } else {
      this.log.error({ err, clientId: this.clientId }, 'closing connection: internal error');
      this.closeReason = 'internal error';
      this.close(RC.UNSPECIFIED_ERROR);
    }
  }

  /**
   * Closes the connection. With a reason code and a connected v5 client, DISCONNECT goes first
   * [MQTT-3.14.0-1]. `now` skips flushing what is buffered (for clients that stopped reading).
   */
  close(reasonCode: number | undefined, now = false, reason?: string): void {
    if (this.closed) return;
    if (reasonCode !== undefined && this.protocolVersion === 5 && this.connected && !now) {
      this.write({
        cmd: 'disconnect',
        reasonCode,
        properties: reason && this.problemInfo ? { reasonString: reason } : undefined,
      });
    }
    this.closed = true;
    this.reader.halted = true;
    this.clearTimers();
    if (now) {
      this.out = null;
      this.outBytes = 0;
      this.stream.destroy();
      return;
    }
    this.flush();
    this.stream.end();
    // A peer that never reads must not keep a half-closed socket open forever.
    this.closeTimer = setTimeout(Connection.destroyLate, 2000, this);
    this.closeTimer.unref();
  }

  private static destroyLate(conn: Connection): void {
    conn.closeTimer = null;
    conn.stream.destroy();
  }

  /** A signal that aborts when this connection closes: what a pending login holds is released at once. */
  loginSignal(): AbortSignal {
    if (this.closed) return AbortSignal.abort(new Error('the client went away'));
    return (this.loginAbort ??= new AbortController()).signal;
  }

  /** The login has its answer: nothing waits on the signal any more, and an idle client should not carry it. */
  loginDone(): void {
    this.loginAbort = null;
  }

  /** Stream event: the stream has closed. */
  onClose(): void {
    this.closed = true;
    if (this.loginAbort !== null) {
      this.loginAbort.abort(new Error('the client went away'));
      this.loginAbort = null;
    }
    this.clearTimers();
    // Closed already: the timer would hold this connection and its buffers for up to 2 s more.
    if (this.closeTimer !== null) clearTimeout(this.closeTimer);
    this.closeTimer = null;
    this.broker.connectionClosed(this);
  }

  private clearTimers(): void {
    if (this.slowTimer) clearTimeout(this.slowTimer);
    this.slowTimer = null;
    this.connectDeadline = 0;
    this.silenceMs = 0;
  }

  /** Called once CONNACK 0x00 is sent: keep-alive takes over from the connect timeout. */
  startKeepalive(seconds: number): void {
    this.connectedAt = Date.now();
    this.connectDeadline = 0;
    this.silenceMs = seconds * 1500;
  }

  /**
   * Writes a packet once what it depends on is durable: an acknowledgement (PUBACK, PUBREC, PUBREL, PUBCOMP,
   * SUBACK) of something written to the store. At once when the store has nothing pending, else after the
   * store's next commit.
   */
  ack(packet: Packet): void {
    if (this.closed) return;
    this.afterCommit(mqtt.generate(packet, { protocolVersion: this.protocolVersion }));
  }

  /** ack() for a PUBACK, PUBREC, PUBREL or PUBCOMP with reason code 0 (`first`: a writer.ts constant). */
  ackId(first: number, packetId: number): void {
    if (this.closed) return;
    this.afterCommit(encodeAck(first, packetId));
  }

  /**
   * ackId() once `wait` has resolved too (the Kafka bridge's produce) besides the store's commit; later packets
   * stay behind it, so acknowledgements keep the order of the PUBLISH packets [MQTT-4.6.0-2].
   */
  ackAfter(wait: Promise<void>, first: number, packetId: number): void {
    if (this.closed) return;
    const store = this.broker.barriers;
    const until = store.dirty ? Promise.all([store.flush(), wait]).then(() => undefined) : wait;
    (this.held ??= new HeldQueue(this)).hold(until, encodeAck(first, packetId));
  }

  /**
   * Writes bytes that need not keep their place behind held acknowledgements: a PINGRESP. The ordering rules
   * [MQTT-4.6.0-2..4] are about acknowledgements and PUBLISH packets only, and a PINGRESP held behind PUBACKs that
   * wait for Kafka would make the client give up on its keep-alive and disconnect during a Kafka outage.
   */
  writeNow(buf: Buffer): void {
    if (this.closed) return;
    this.emit(buf);
  }

  /** Writes pre-encoded bytes (in order, like write()). */
  writeBytes(buf: Buffer): void {
    if (this.closed) return;
    if (this.held !== null) this.held.push(buf);
    else this.emit(buf);
  }

  /** Encodes and writes a packet, behind any packet that waits for the store, so order is kept [MQTT-4.6.0-2]. */
  write(packet: Packet): void {
    if (this.closed) return;
    let buf = mqtt.generate(packet, { protocolVersion: this.protocolVersion });
    if (this.maximumPacketSize > 0 && buf.length > this.maximumPacketSize) {
      // [MQTT-3.1.2-24] nothing larger than the client's Maximum Packet Size: optional properties go first.
      const fitted = fitPacket(packet, this.maximumPacketSize, this.protocolVersion);
      if (fitted === null) {
        this.closeReason = `a ${packet.cmd} packet of ${buf.length} bytes exceeds the client's maximum packet size (${this.maximumPacketSize})`;
        this.close(undefined, true);
        return;
      }
      buf = fitted;
    }
    if (this.held !== null) this.held.push(buf);
    else this.emit(buf);
  }

  /** Queues bytes behind the store's next commit when it has writes pending; one wait serves a whole commit. */
  private afterCommit(buf: Buffer): void {
    const store = this.broker.barriers;
    if (!store.dirty) {
      if (this.held === null) this.emit(buf);
      else this.held.push(buf); // behind what waits already (covered by the commit already awaited)
      return;
    }
    const commit = store.flush();
    const held = (this.held ??= new HeldQueue(this));
    if (held.lastWait === commit) held.push(buf);
    else held.hold(commit, buf);
  }

  /** HeldOwner: bytes whose wait is over. */
  emitHeld(buf: Buffer): void {
    if (!this.closed) this.emit(buf);
  }

  /** HeldOwner: a store commit or a bridge produce failed. */
  heldFailed(err: unknown): void {
    if (this.closed) return;
    // Nothing held was acknowledged, so nothing is lost: the client sends again after reconnecting.
    this.log.error({ err }, 'an acknowledgement could not be made good (store or bridge): closing the connection unacknowledged');
    this.held = null;
    this.close(RC.UNSPECIFIED_ERROR, true);
  }

  /** HeldOwner: nothing waits any more. */
  heldDrained(): void {
    this.held = null;
  }

  /**
   * Queues bytes for the stream. Everything emitted in one event-loop turn goes out in one write at its end:
   * one stream.write() per client per turn instead of one per packet (each allocates a request in Node's
   * Writable), and one system call.
   */
  private emit(buf: Buffer): void {
    // Between a reset and its 'close' event, writes would each build an error object (a measured 11% of CPU
    // in a fan-in run where the subscriber went away): drop them; QoS 1/2 stays in flight for the session.
    if (this.stream.destroyed) return;
    this.broker.stats.bytesSent += buf.length;
    if (this.out === null) {
      this.out = [buf];
      this.outBytes = buf.length;
      process.nextTick(Connection.flushLater, this);
    } else {
      this.out.push(buf);
      this.outBytes += buf.length;
    }
  }

  /** Writes what emit() queued. Small packets are joined (copying is cheaper than a vector of many); large ones go as they are. */
  private flush(): void {
    const out = this.out;
    if (out === null) return;
    const bytes = this.outBytes;
    this.out = null;
    this.outBytes = 0;
    const stream = this.stream;
    if (stream.destroyed) return;
    let ok: boolean;
    if (out.length === 1) ok = stream.write(out[0] as Buffer);
    else if (bytes <= JOIN_LIMIT) ok = stream.write(Buffer.concat(out, bytes));
    else {
      stream.cork();
      ok = true;
      for (const b of out) ok = stream.write(b);
      stream.uncork();
    }
    if (!ok && stream.writableLength > this.maxOutput && this.slowTimer === null) {
      this.slowTimer = setTimeout(Connection.slowTimeout, this.broker.config.mqtt.slow_consumer_timeout * 1000, this);
    }
  }

  /** Stream event: the output buffer has drained. */
  onDrain(): void {
    if (this.slowTimer) {
      clearTimeout(this.slowTimer);
      this.slowTimer = null;
    }
    if (this.session !== null && this.session.queued > 0) this.session.drain();
  }

  /** False while more than `max_output_buffer` bytes wait to be sent to this client. */
  get writable(): boolean {
    return this.stream.writableLength + this.outBytes < this.maxOutput;
  }

  /**
   * Writes one PUBLISH of a message. Returns false when it exceeds the client's Maximum Packet Size. A plain
   * QoS 0 PUBLISH is the message's shared encoding; others are encoded here; only v5 deliveries with
   * properties (message properties, subscription ids, expiry, topic aliases) go through mqtt-packet.
   */
  sendPublish(m: Message, qos: QoS, packetId: number, retain: boolean, subIds: number[] | undefined, dup: boolean): boolean {
    const v5 = this.protocolVersion === 5;
    let buf: Buffer;
    if (v5 && (m.properties !== undefined || subIds !== undefined || m.expiresAt !== 0 || this.topicAliasMaximum > 0)) {
      buf = this.encodeWithProperties(m, qos, packetId, retain, subIds, dup);
    } else if (qos === 0 && !retain) {
      buf = m.wire(v5);
    } else {
      buf = encodePublish(m.topicBytes, m.payload, qos, dup, retain, packetId, v5 ? NO_PROPERTIES : null);
    }
    if (this.maximumPacketSize > 0 && buf.length > this.maximumPacketSize) return false; // [MQTT-3.1.2-25]
    this.broker.stats.messagesSent++;
    if (qos === 1) this.broker.stats.sentQos1++;
    else if (qos === 2) this.broker.stats.sentQos2++;
    // A QoS 2 PUBLISH of a stored session goes out only once its packet id is durable: a client that got it
    // under an id the broker forgot in a crash would be released (PUBREL 0x92) and then get it again.
    if (qos === 2 && this.session !== null && this.session.stored) this.afterCommit(buf);
    else if (this.held !== null) this.held.push(buf);
    else this.emit(buf);
    return true;
  }

  /** A v5 PUBLISH with properties, encoded by mqtt-packet. */
  private encodeWithProperties(
    m: Message,
    qos: QoS,
    packetId: number,
    retain: boolean,
    subIds: number[] | undefined,
    dup: boolean,
  ): Buffer {
    const packet: IPublishPacket = {
      cmd: 'publish',
      topic: m.topic,
      payload: m.payload,
      qos,
      dup,
      retain,
      messageId: qos > 0 ? packetId : undefined,
    };
    const props = m.properties;
    const p: NonNullable<IPublishPacket['properties']> = props ? { ...props } : {};
    if (m.expiresAt !== 0) {
      // [MQTT-3.3.2-6] the expiry sent is the time that remains.
      p.messageExpiryInterval = Math.max(1, Math.ceil((m.expiresAt - this.broker.now()) / 1000));
    }
    if (subIds !== undefined) p.subscriptionIdentifier = subIds.length === 1 ? (subIds[0] as number) : subIds;
    if (this.topicAliasMaximum > 0 && !dup) this.applyAlias(packet, p);
    packet.properties = p;
    return mqtt.generate(packet, { protocolVersion: 5 });
  }

  /** Uses (or assigns) an outbound topic alias for the packet's topic. */
  private applyAlias(packet: IPublishPacket, props: NonNullable<IPublishPacket['properties']>): void {
    const aliases = (this.aliasesOut ??= new Map());
    const known = aliases.get(packet.topic);
    if (known !== undefined) {
      props.topicAlias = known;
      packet.topic = '';
    } else if (aliases.size < this.topicAliasMaximum) {
      const alias = aliases.size + 1;
      aliases.set(packet.topic, alias);
      props.topicAlias = alias;
    }
  }

  /** Writes PUBREL for an outgoing QoS 2 message. */
  sendPubrel(packetId: number): void {
    this.writeBytes(encodeAck(PUBREL, packetId));
  }

  /** The keep-alive in force, in seconds (0: none). */
  get keepAlive(): number {
    return this.silenceMs / 1500;
  }

  /** A packet-free view of this client for hooks. */
  get info(): ClientInfo {
    return this;
  }

  /** The CONNECT packet's will, kept until the connection ends. */
  setConnect(packet: IConnectPacket): void {
    this.connectSeen = true;
    this.protocolVersion = packet.protocolVersion ?? 4;
    this.username = packet.username;
    this.will = packet.will ?? null;
  }
}
