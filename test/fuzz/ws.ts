/**
 * The `websocket` target: a real WebSocketListener (ws on node:http) on loopback in front of the fuzzed broker.
 * Each input is the byte stream a client sends after a fixed HTTP upgrade request: WebSocket frames (RFC 6455
 * section 5) that should carry MQTT. The oracle is the harness's, spoken through WebSocket: any frame or
 * message the input left unfinished is completed, then a PINGREQ goes in a binary frame, and a PINGRESP (in a
 * binary frame) or a close must come back.
 */
import { connect, type Server, type Socket } from 'node:net';
import type { Broker } from '../../broker/src/broker.js';
import { WebSocketListener } from '../../broker/src/listeners/websocket.js';
import { completion, hasPingresp, PINGREQ } from './framing.js';
import { connect as mqttConnect, gen } from './packets.js';
import type { Connection } from '../../broker/src/connection/connection.js';
import { StrictChecker } from '../helpers/strict/checker.js';
import { AnswerWait, checkOutput, checkStrict, FuzzFinding, Harness, HANG_MS, MAX_PACKET_SIZE, newest, type Answer } from './harness.js';

const PATH = '/mqtt';
/** What the listener allows per message, as the broker configures it (broker.ts). */
const MAX_PAYLOAD = MAX_PACKET_SIZE + 5;

/** The upgrade request every input starts with (the key is RFC 6455's example). */
const UPGRADE = Buffer.from([
  `GET ${PATH} HTTP/1.1`, 'Host: 127.0.0.1', 'Upgrade: websocket', 'Connection: Upgrade',
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Protocol: mqtt', '', '',
].join('\r\n'));

/** A client frame (masked, as a client's must be [RFC 6455 5.3]) with FIN and `opcode`. */
export function wsFrame(opcode: number, payload: Buffer, fin = true, mask: readonly number[] = [0x37, 0xfa, 0x21, 0x3d]): Buffer {
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0, 0x80 | n]) : n < 65536 ? Buffer.from([0, 0x80 | 126, n >> 8, n & 0xff]) : (() => {
    const b = Buffer.alloc(10);
    b[1] = 0x80 | 127;
    b.writeUInt32BE(Math.floor(n / 2 ** 32), 2);
    b.writeUInt32BE(n >>> 0, 6);
    return b;
  })();
  head[0] = (fin ? 0x80 : 0) | opcode;
  const body = Buffer.alloc(n);
  for (let i = 0; i < n; i++) body[i] = (payload[i] as number) ^ (mask[i & 3] as number);
  return Buffer.concat([head, Buffer.from(mask), body]);
}

/**
 * What a WebSocket server (ws) makes of the client's bytes, far enough to finish them: the MQTT bytes of the
 * messages it has delivered, and the bytes (`rest`) that complete the frame and the fragmented message the
 * stream ends inside of. `done` when the server must close once it has `rest` (a protocol error, a close
 * frame): then no PINGREQ can follow. Bytes the stream lacks are taken as the zeros the completion sends.
 */
export function wsCompletion(stream: Buffer): { mqtt: Buffer; rest: Buffer; done: boolean } {
  const delivered: Buffer[] = [];
  let message: Buffer[] = [];
  let total = 0;
  let fragmented = 0; // opcode of the message being continued, 0 when none
  let off = 0;
  /** The server closes once it has the first `need` bytes of the frame at `off`. */
  const fail = (need: number): { mqtt: Buffer; rest: Buffer; done: boolean } =>
    ({ mqtt: Buffer.alloc(0), rest: Buffer.alloc(Math.max(0, off + need - stream.length)), done: true });
  while (off < stream.length) {
    const avail = stream.length - off;
    const at = (i: number): number => (i < avail ? (stream[off + i] as number) : 0);
    const b0 = at(0);
    const b1 = at(1);
    if ((b0 & 0x70) !== 0 || (b1 & 0x80) === 0) return fail(2); // RSV bits; an unmasked client frame
    const fin = (b0 & 0x80) !== 0;
    let opcode = b0 & 0x0f;
    let len = b1 & 0x7f;
    let head = 2;
    if (opcode === 0) {
      if (fragmented === 0) return fail(2);
      opcode = fragmented;
    } else if (opcode === 1 || opcode === 2) {
      if (fragmented !== 0) return fail(2);
    } else if (opcode >= 8 && opcode <= 10) {
      if (!fin || len > 125 || (opcode === 8 && len === 1)) return fail(2);
    } else return fail(2);
    if (len === 126) {
      len = (at(2) << 8) | at(3);
      head = 4;
    } else if (len === 127) {
      const hi = ((at(2) << 24) | (at(3) << 16) | (at(4) << 8) | at(5)) >>> 0;
      if (hi > 2 ** 21 - 1) return fail(10);
      len = hi * 2 ** 32 + (((at(6) << 24) | (at(7) << 16) | (at(8) << 8) | at(9)) >>> 0);
      head = 10;
    }
    if (opcode < 8 && len > 0) {
      total += len;
      if (total > MAX_PAYLOAD) return fail(head);
    }
    const mask = [at(head), at(head + 1), at(head + 2), at(head + 3)];
    const start = off + head + 4;
    const end = start + len;
    if (opcode === 8) return fail(head + 4 + len);
    const have = Math.max(0, Math.min(stream.length, end) - start);
    const payload = Buffer.alloc(len);
    for (let i = 0; i < len; i++) payload[i] = (i < have ? (stream[start + i] as number) : 0) ^ (mask[i & 3] as number);
    const rest = Buffer.alloc(Math.max(0, end - stream.length));
    if (opcode < 8) {
      if (!fin && fragmented === 0) fragmented = opcode;
      message.push(payload);
      if (fin) {
        // A text message closes the connection [MQTT-6.0.0-1]: ws with 1007 when it is not UTF-8, the listener
        // itself otherwise.
        if (opcode === 1) return fail(head + 4 + len);
        delivered.push(Buffer.concat(message));
        message = [];
        total = 0;
        fragmented = 0;
      }
    }
    off = end;
    if (off >= stream.length) {
      // The stream ends in or after this frame: finish it, then a fragmented message with an empty final
      // continuation (which delivers the message).
      if (fragmented === 0) return { mqtt: Buffer.concat(delivered), rest, done: false };
      const last = Buffer.concat([rest, wsFrame(0, Buffer.alloc(0))]);
      // Finishing a text message makes the server close [MQTT-6.0.0-1].
      if (fragmented === 1) return { mqtt: Buffer.concat(delivered), rest: last, done: true };
      delivered.push(Buffer.concat(message));
      return { mqtt: Buffer.concat(delivered), rest: last, done: false };
    }
  }
  return { mqtt: Buffer.concat(delivered), rest: Buffer.alloc(0), done: false };
}

/** Reads the server's side: the HTTP response, then unmasked frames (binary ones carry MQTT). */
class WsPeer extends AnswerWait {
  private raw: Buffer = Buffer.alloc(0);
  private closed = false;
  /** Set when the response is not 101: the fixed upgrade should never be refused. */
  refused: string | null = null;
  /** The MQTT bytes of the binary frames received so far. */
  mqtt: Buffer = Buffer.alloc(0);

  constructor(private readonly socket: Socket) {
    super();
    socket.on('data', (d: Buffer) => {
      this.raw = this.raw.length === 0 ? d : Buffer.concat([this.raw, d]);
      this.wake?.();
    });
    socket.on('end', () => {
      this.closed = true;
      this.wake?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    socket.on('error', () => undefined);
  }

  protected answered(): Answer | null {
    const head = this.raw.indexOf('\r\n\r\n');
    if (head < 0) return this.closed ? 'closed' : null;
    const status = this.raw.subarray(0, this.raw.indexOf('\r\n')).toString('latin1');
    if (!status.startsWith('HTTP/1.1 101')) {
      this.refused = status;
      return 'closed';
    }
    const mqtt: Buffer[] = [];
    const s = this.raw;
    let off = head + 4;
    while (off + 2 <= s.length) {
      const opcode = (s[off] as number) & 0x0f;
      let len = (s[off + 1] as number) & 0x7f;
      let p = off + 2;
      if (len === 126) {
        if (p + 2 > s.length) break;
        len = s.readUInt16BE(p);
        p += 2;
      } else if (len === 127) {
        if (p + 8 > s.length) break;
        len = s.readUInt32BE(p) * 2 ** 32 + s.readUInt32BE(p + 4);
        p += 8;
      }
      if (p + len > s.length) break;
      if (opcode === 8) return 'closed';
      if (opcode === 0 || opcode === 2) mqtt.push(s.subarray(p, p + len));
      off = p + len;
    }
    this.mqtt = Buffer.concat(mqtt);
    if (hasPingresp(this.mqtt)) return 'pingresp';
    return this.closed ? 'closed' : null;
  }

}

/** The listener in front of the harness's broker, and the oracle over a loopback socket. */
export class WsHarness {
  readonly base = new Harness();
  private listener: WebSocketListener | null = null;
  private port = 0;
  private current: Broker | null = null;
  /** The connection the listener attached last. */
  private conn: Connection | null = null;

  private async ensureListening(): Promise<void> {
    if (this.listener !== null) return;
    this.listener = new WebSocketListener('127.0.0.1', 0, PATH, MAX_PAYLOAD, (stream, peer) => {
      if (this.current === null) {
        stream.destroy();
        return;
      }
      this.current.attach(stream, peer);
      this.conn = newest(this.current);
    });
    this.port = (await this.listener.listen()).port;
    // The fuzzer, not this server, decides when a run is over: Jazzer.js ends a run without finding by letting
    // the event loop empty, which a listening server would keep from happening. The listener keeps its server
    // to itself; this reaches in for that one call.
    const server = (this.listener as unknown as { http?: Server }).http;
    if (server === undefined) throw new Error('WebSocketListener has no http server field any more: update test/fuzz/ws.ts');
    server.unref();
  }

  /** Runs one input (the bytes after the upgrade request). */
  async exchange(data: Buffer): Promise<Answer> {
    await this.ensureListening();
    const broker = this.base.take();
    this.current = broker;
    this.conn = null;
    const socket = connect(this.port, '127.0.0.1');
    socket.setNoDelay(true);
    const peer = new WsPeer(socket);
    const { mqtt, rest, done } = wsCompletion(data);
    const parts = [UPGRADE, data, rest];
    /** The MQTT bytes the client sends inside its frames, for the strict checker. */
    const sent = [mqtt];
    if (!done) {
      const more = completion(mqtt, MAX_PACKET_SIZE);
      if (more.length > 0) parts.push(wsFrame(2, more));
      parts.push(wsFrame(2, PINGREQ));
      sent.push(more, PINGREQ);
    }
    socket.write(Buffer.concat(parts));
    const answer = await peer.answer(HANG_MS);
    // A reset, not a FIN: a long run would otherwise fill the port range with TIME_WAIT entries.
    if (!socket.destroyed) socket.resetAndDestroy();
    if (peer.refused !== null) throw new FuzzFinding('HANDSHAKE', `upgrade answered ${peer.refused}`);
    if (answer === null) {
      await this.base.settle(broker).catch(() => undefined);
      throw new FuzzFinding('HANG', `no PINGRESP and no close within ${HANG_MS} ms`);
    }
    checkOutput(peer.mqtt, this.conn);
    // The frames are unwrapped once the answer is in, so each direction is fed whole: the checker matches client
    // acknowledgements recorded ahead of the PUBLISH they answer (StrictChecker, `early`).
    const strict = new StrictChecker();
    strict.client(Buffer.concat(sent));
    strict.server(peer.mqtt);
    await this.base.finish(broker, answer);
    checkStrict(strict);
    return answer;
  }

  async close(): Promise<void> {
    this.current = null;
    await this.listener?.close();
    this.listener = null;
    await this.base.close();
  }
}

/** The corpus the websocket target starts from. */
export function wsSeeds(): Buffer[] {
  const hello = mqttConnect(4, 'ws1');
  const hello5 = mqttConnect(5, 'ws5');
  const sub = gen({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'w/#', qos: 1 }] }, 4);
  const pub = gen({ cmd: 'publish', topic: 'w/t', payload: Buffer.from('hi'), qos: 1, messageId: 2, retain: false, dup: false }, 4);
  const both = Buffer.concat([hello, sub, pub]);
  return [
    wsFrame(2, hello),
    wsFrame(2, hello5),
    wsFrame(2, both),
    Buffer.concat([wsFrame(2, hello, false), wsFrame(0, sub, false), wsFrame(0, pub)]), // one message in three frames
    Buffer.concat([wsFrame(2, hello.subarray(0, 5)), wsFrame(2, hello.subarray(5))]), // one packet in two messages
    Buffer.concat([wsFrame(2, hello), wsFrame(9, Buffer.from('ping')), wsFrame(2, sub)]),
    Buffer.concat([wsFrame(2, hello, false), wsFrame(9, Buffer.alloc(0)), wsFrame(0, sub)]), // ping inside a message
    Buffer.concat([wsFrame(2, hello), wsFrame(10, Buffer.alloc(0))]),
    Buffer.concat([wsFrame(2, hello), wsFrame(8, Buffer.from([0x03, 0xe8]))]), // close 1000
    wsFrame(1, hello), // MQTT in a text frame: closed
    wsFrame(2, Buffer.concat([hello, Buffer.alloc(300, 0x41)])), // 16-bit length
    (() => { // 64-bit length with a small value
      const f = wsFrame(2, hello);
      const len = hello.length;
      return Buffer.concat([Buffer.from([0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, len]), f.subarray(2)]);
    })(),
    Buffer.from([0x82, 0x00, 0x10]), // unmasked
    Buffer.from([0xc2, 0x80, 0, 0, 0, 0]), // RSV1 without an extension
    Buffer.concat([wsFrame(2, hello), wsFrame(2, Buffer.from([0x30]))]), // PUBLISH cut after its type byte
  ];
}
