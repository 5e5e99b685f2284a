import mqtt, { type IConnectPacket, type IPublishPacket, type Packet } from 'mqtt-packet';
import { connectTrailer, type ConnectWithTrailer } from '../../agent/client-info.js';
import { MqttError } from '../errors.js';
import { RC } from '../reason-codes.js';
import { checkFrameProperties, isV5Connect } from './properties.js';

/** A PUBLISH decoded by the reader: the packet plus the frame it came in, for zero-copy forwarding. */
export interface InboundPublish extends IPublishPacket {
  payload: Buffer;
  /** The whole packet as received (fixed header included). */
  frame: Buffer;
  /** Where the topic name's bytes are in `frame`. */
  topicStart: number;
  topicEnd: number;
}

/** Where a reader delivers what it decodes (the connection; an object, so a reader costs no closures). */
export interface PacketSink {
  onPacket(packet: Packet): void;
  /** A malformed or oversized packet; an MqttError carries the reason code to close with. */
  onParseError(err: Error): void;
}

/**
 * mqtt-packet parsers shared by every connection, one per protocol level. They are only ever given one whole
 * frame and emit synchronously, so they hold no state between frames; sharing them saves each connection a
 * parser, a BufferList stream and two packet objects (about 2 KB of an idle connection).
 */
const shared = new Map<number, ReturnType<typeof mqtt.parser>>();
let decoded: Packet | null = null;
let failed: Error | null = null;

/** The parts of mqtt-packet's parser the typings leave out. */
interface ParserInternals {
  settings: { protocolVersion: number };
  _pos: number;
  _resetState(): void;
}

/** mqtt-packet's settings per protocol level, made once. */
const SETTINGS = [3, 4, 5].map((protocolVersion) => ({ protocolVersion }));

function sharedParser(version: number): ReturnType<typeof mqtt.parser> {
  let parser = shared.get(version);
  if (parser === undefined) {
    parser = mqtt.parser({ protocolVersion: version as 3 | 4 | 5 });
    parser.on('packet', (p: Packet) => {
      decoded = p;
    });
    parser.on('error', (err: Error) => {
      failed = err;
    });
    shared.set(version, parser);
  }
  // A CONNECT makes mqtt-packet adopt the packet as its settings; put the level back before each frame.
  (parser as unknown as ParserInternals).settings = SETTINGS[version - 3] ?? { protocolVersion: version };
  return parser;
}

/** Packet type of each fast-path command code (fixed header bits 7-4). */
const ACK_TYPES = ['', '', '', '', 'puback', 'pubrec', 'pubrel', 'pubcomp'] as const;
/** Fixed-header flags each acknowledgement must carry [MQTT-2.2.2-1]: PUBREL has 0b0010, the others 0. */
const ACK_FLAGS = [0, 0, 0, 0, 0, 0, 2, 0];

/**
 * Frames MQTT packets from a byte stream and decodes the ones that make up the message flow (PUBLISH without v5
 * properties, PUBACK/PUBREC/PUBREL/PUBCOMP without reason codes, PINGREQ) itself. Everything else (CONNECT,
 * SUBSCRIBE, properties, reason codes, malformed frames) is handed to mqtt-packet's parser one whole frame at a
 * time, so the rules for those stay in one well-tested place.
 *
 * Why not mqtt-packet for everything: on a fan-in profile its parser spent about a third of the broker's CPU
 * in `debug` calls (disabled, but still evaluated), BufferList bookkeeping and copies.
 */
export class PacketReader {
  /** Protocol level from the CONNECT (3, 4 or 5); decides whether PUBLISH carries properties. */
  version = 4;
  /** Set by the owner once the connection closes: no more packets are delivered. */
  halted = false;
  /** Unparsed bytes: the start of a frame that has not fully arrived. */
  private parts: Buffer[] | null = null;
  private partsLength = 0;
  /** Total bytes the pending frame needs (header included), or 0 while its header is incomplete. */
  private need = 0;
  private readonly maxPacketSize: number;
  private readonly sink: PacketSink;

  constructor(maxPacketSize: number, sink: PacketSink) {
    this.maxPacketSize = maxPacketSize;
    this.sink = sink;
  }

  /** Feeds bytes from the stream; delivers every complete packet in order. */
  parse(chunk: Buffer): void {
    let buf = chunk;
    let owned = false;
    if (this.partsLength > 0) {
      // Wait for the whole frame before joining, so a large packet is copied once, not once per chunk.
      const parts = this.parts as Buffer[];
      parts.push(chunk);
      if (this.need > 0 && this.partsLength + chunk.length < this.need) {
        this.partsLength += chunk.length;
        return;
      }
      buf = Buffer.concat(parts, this.partsLength + chunk.length);
      owned = true;
      this.parts = null;
      this.partsLength = 0;
      this.need = 0;
    }
    const end = buf.length;
    let off = 0;
    while (off < end && !this.halted) {
      // Remaining Length: 1 to 4 bytes, 7 bits each [MQTT-1.5.5] (v5 section 1.5.5).
      let len = 0;
      let mul = 1;
      let pos = off + 1;
      let complete = false;
      while (pos < end && pos - off <= 4) {
        const b = buf[pos++] as number;
        len += (b & 0x7f) * mul;
        mul *= 128;
        if ((b & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete) {
        if (pos - off > 4) {
          this.fail(new Error('Invalid variable byte integer'));
          return;
        }
        this.keep(buf, off, 0);
        return;
      }
      if (len > this.maxPacketSize) {
        // Refused as soon as the header announces it, before buffering the body.
        this.fail(new MqttError(RC.PACKET_TOO_LARGE, 'packet exceeds maximum packet size'));
        return;
      }
      const frameEnd = pos + len;
      if (frameEnd > end) {
        this.keep(buf, off, frameEnd - off);
        return;
      }
      // A payload may share the buffer we joined ourselves (it holds only this frame); else it is copied, so a
      // stored message does not pin the socket's whole read buffer.
      this.decode(buf, off, pos, frameEnd, owned && off === 0 && frameEnd === end);
      off = frameEnd;
    }
  }

  /** Keeps the unparsed tail for the next chunk. */
  private keep(buf: Buffer, off: number, need: number): void {
    const tail = buf.subarray(off);
    this.parts = [tail];
    this.partsLength = tail.length;
    this.need = need;
  }

  private fail(err: Error): void {
    this.halted = true;
    this.sink.onParseError(err);
  }

  /** Decodes one whole frame: `off` is its first byte, `body` the first byte after the Remaining Length. */
  private decode(buf: Buffer, off: number, body: number, end: number, shareable: boolean): void {
    const b0 = buf[off] as number;
    const type = b0 >> 4;
    const len = end - body;
    if (type === 3) {
      const p = this.publish(buf, off, body, end, shareable);
      if (p !== null) this.sink.onPacket(p);
      else this.delegate(buf, off, body, end);
      return;
    }
    if (type >= 4 && type <= 7 && len === 2 && (b0 & 0x0f) === ACK_FLAGS[type]) {
      const id = ((buf[body] as number) << 8) | (buf[body + 1] as number);
      // v5: Remaining Length 2 means reason code 0x00 and no properties (section 3.4.2.1).
      const ack = { cmd: ACK_TYPES[type], messageId: id, length: 2 } as Packet;
      if (this.version === 5) (ack as { reasonCode?: number }).reasonCode = 0;
      this.sink.onPacket(ack);
      return;
    }
    if (type === 12 && len === 0 && b0 === 0xc0) {
      this.sink.onPacket({ cmd: 'pingreq', length: 0 } as Packet);
      return;
    }
    this.delegate(buf, off, body, end);
  }

  /** A PUBLISH without v5 properties, or null to let mqtt-packet decode (or reject) it. */
  private publish(buf: Buffer, off: number, pos: number, end: number, shareable: boolean): InboundPublish | null {
    const b0 = buf[off] as number;
    const qos = (b0 >> 1) & 3;
    if (qos === 3 || pos + 2 > end) return null;
    const topicStart = pos + 2;
    const topicEnd = topicStart + (((buf[pos] as number) << 8) | (buf[pos + 1] as number));
    let p = topicEnd;
    if (p > end) return null;
    let messageId: number | undefined;
    if (qos > 0) {
      if (p + 2 > end) return null;
      messageId = ((buf[p] as number) << 8) | (buf[p + 1] as number);
      p += 2;
    }
    if (this.version === 5) {
      // Only an empty property list (a single 0x00) is ours; anything else goes to the full decoder.
      if (p >= end || buf[p] !== 0) return null;
      p++;
    }
    // The whole frame is kept (copied once, unless it is a buffer we joined for it alone): the payload and the
    // topic bytes are views of it, and a plain QoS 0 frame is forwarded to subscribers as it is (Message.wire).
    let frame: Buffer;
    if (shareable) frame = buf;
    else {
      frame = Buffer.allocUnsafe(end - off);
      buf.copy(frame, 0, off, end);
    }
    return {
      cmd: 'publish',
      topic: frame.toString('utf8', topicStart - off, topicEnd - off),
      payload: frame.subarray(p - off),
      qos: qos as 0 | 1 | 2,
      dup: (b0 & 8) !== 0,
      retain: (b0 & 1) !== 0,
      messageId,
      length: end - pos,
      frame,
      topicStart: topicStart - off,
      topicEnd: topicEnd - off,
    };
  }

  /** Decodes one whole frame with mqtt-packet, once its v5 property lists have passed the strict checks. */
  private delegate(buf: Buffer, off: number, body: number, end: number): void {
    if (this.version === 5 || isV5Connect(buf, off, body, end)) {
      try {
        checkFrameProperties(buf, off, body, end);
      } catch (err) {
        this.fail(err as Error);
        return;
      }
    }
    decoded = null;
    failed = null;
    const parser = sharedParser(this.version);
    parser.parse(buf.subarray(off, end));
    // Taken from the module slots before anything runs that could parse again (another connection's frame).
    const packet = decoded as Packet | null;
    const err = failed as Error | null;
    decoded = failed = null;
    if (err !== null || packet === null) {
      // A refused frame leaves bytes and state behind (mqtt-packet resets lazily, and keeps the read position,
      // which its length decoder then starts from): start the next frame, another connection's, clean.
      const internal = parser as unknown as ParserInternals;
      internal._resetState();
      internal._pos = 0;
    }
    if (err !== null) {
      this.fail(err);
      return;
    }
    if (packet === null) {
      this.fail(new Error('Packet too short')); // not expected for a whole frame
      return;
    }
    // mqtt-packet reads a PUBACK, PUBREC, PUBREL or PUBCOMP too short to hold its packet identifier as id -1
    // instead of refusing it; answering that id sent the client a truncated PUBREL or PUBCOMP [MQTT-2.3.1-1].
    if ((packet as { messageId?: number }).messageId === -1) {
      this.fail(new Error('Packet too short'));
      return;
    }
    // mqtt-packet learns the level from the CONNECT; keep ours in step for the fast path.
    if (packet.cmd === 'connect') {
      this.version = (packet as IConnectPacket).protocolVersion ?? 4;
      // Agent mode: mqtt-packet ignores bytes after the payload; the ClientInfo is there (agent/client-info.ts).
      const trailer = connectTrailer(buf, off, end);
      if (trailer !== null) (packet as ConnectWithTrailer).trailer = trailer;
    }
    this.sink.onPacket(packet);
  }
}
