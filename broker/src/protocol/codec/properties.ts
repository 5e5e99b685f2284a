/**
 * Strict checks of the MQTT 5 property lists of an inbound frame, on its raw bytes, before mqtt-packet decodes
 * it. mqtt-packet accepts any known property in any packet and turns a repeated one into an array (or, when the
 * first value is falsy, silently keeps the last), so a PUBLISH carrying Session Expiry Interval or two Payload
 * Format Indicators used to be acknowledged and forwarded as it was, and the forwarded packet was malformed for
 * every subscriber (a retained one for every future subscriber). Here (MQTT 5.0 section 2.2.2.2):
 *   - an identifier not valid for its packet type, a value not of its data type (a truncated value, a Variable
 *     Byte Integer longer than four bytes, ill-formed UTF-8 or U+0000 in a string) is a Malformed Packet (0x81);
 *   - a property other than User Property given twice, or a value out of its range (a flag other than 0 or 1,
 *     Subscription Identifier 0), is a Protocol Error (0x82), as each property's own section says.
 * Only v5 frames have property lists; only frames with one that is not empty reach this code from the hot path.
 */
import { isUtf8 } from 'node:buffer';
import { MqttError } from '../errors.js';
import { RC } from '../reason-codes.js';

/** Where a property list may appear; each bit is one list of the specification's Table 2-4. */
const CONNECT = 1 << 1;
const WILL = 1 << 2;
const PUBLISH = 1 << 3;
const ACK = 1 << 4; // PUBACK, PUBREC, PUBREL, PUBCOMP
const SUBSCRIBE = 1 << 5;
const UNSUBSCRIBE = 1 << 6;
const DISCONNECT = 1 << 7;
const AUTH = 1 << 8;
const CONNACK = 1 << 9;
const SUBACK = 1 << 10; // SUBACK, UNSUBACK
const ALL = CONNECT | WILL | PUBLISH | ACK | SUBSCRIBE | UNSUBSCRIBE | DISCONNECT | AUTH | CONNACK | SUBACK;

/** The list a packet type (fixed header bits 7-4) carries; 0 for types without properties. */
const LIST_OF_TYPE = [0, CONNECT, CONNACK, PUBLISH, ACK, ACK, ACK, ACK, SUBSCRIBE, SUBACK, UNSUBSCRIBE, SUBACK, 0, 0, DISCONNECT, AUTH];

type Kind = 'byte' | 'flag' | 'u16' | 'u32' | 'varint' | 'string' | 'binary' | 'pair';

/** One row of Table 2-4: the value's data type and where the identifier is valid. */
interface PropertySpec {
  readonly name: string;
  readonly kind: Kind;
  readonly where: number;
}

/** MQTT 5.0 Table 2-4, by identifier. A `flag` is a Byte whose only values are 0 and 1. */
const TABLE = new Map<number, PropertySpec>([
  [0x01, { name: 'Payload Format Indicator', kind: 'flag', where: PUBLISH | WILL }],
  [0x02, { name: 'Message Expiry Interval', kind: 'u32', where: PUBLISH | WILL }],
  [0x03, { name: 'Content Type', kind: 'string', where: PUBLISH | WILL }],
  [0x08, { name: 'Response Topic', kind: 'string', where: PUBLISH | WILL }],
  [0x09, { name: 'Correlation Data', kind: 'binary', where: PUBLISH | WILL }],
  [0x0b, { name: 'Subscription Identifier', kind: 'varint', where: PUBLISH | SUBSCRIBE }],
  [0x11, { name: 'Session Expiry Interval', kind: 'u32', where: CONNECT | CONNACK | DISCONNECT }],
  [0x12, { name: 'Assigned Client Identifier', kind: 'string', where: CONNACK }],
  [0x13, { name: 'Server Keep Alive', kind: 'u16', where: CONNACK }],
  [0x15, { name: 'Authentication Method', kind: 'string', where: CONNECT | CONNACK | AUTH }],
  [0x16, { name: 'Authentication Data', kind: 'binary', where: CONNECT | CONNACK | AUTH }],
  [0x17, { name: 'Request Problem Information', kind: 'flag', where: CONNECT }],
  [0x18, { name: 'Will Delay Interval', kind: 'u32', where: WILL }],
  [0x19, { name: 'Request Response Information', kind: 'flag', where: CONNECT }],
  [0x1a, { name: 'Response Information', kind: 'string', where: CONNACK }],
  [0x1c, { name: 'Server Reference', kind: 'string', where: CONNACK | DISCONNECT }],
  [0x1f, { name: 'Reason String', kind: 'string', where: CONNACK | ACK | SUBACK | DISCONNECT | AUTH }],
  [0x21, { name: 'Receive Maximum', kind: 'u16', where: CONNECT | CONNACK }],
  [0x22, { name: 'Topic Alias Maximum', kind: 'u16', where: CONNECT | CONNACK }],
  [0x23, { name: 'Topic Alias', kind: 'u16', where: PUBLISH }],
  [0x24, { name: 'Maximum QoS', kind: 'flag', where: CONNACK }],
  [0x25, { name: 'Retain Available', kind: 'flag', where: CONNACK }],
  [0x26, { name: 'User Property', kind: 'pair', where: ALL }],
  [0x27, { name: 'Maximum Packet Size', kind: 'u32', where: CONNECT | CONNACK }],
  [0x28, { name: 'Wildcard Subscription Available', kind: 'flag', where: CONNACK }],
  [0x29, { name: 'Subscription Identifier Available', kind: 'flag', where: CONNACK }],
  [0x2a, { name: 'Shared Subscription Available', kind: 'flag', where: CONNACK }],
]);

const USER_PROPERTY = 0x26;
const SUBSCRIPTION_IDENTIFIER = 0x0b;

/** A reading position that refuses to pass the end of its frame (a truncated value is malformed). */
class Cursor {
  pos: number;
  constructor(readonly buf: Buffer, pos: number, readonly end: number) {
    this.pos = pos;
  }

  need(n: number, what: string): void {
    if (this.pos + n > this.end) throw malformed(`${what} runs past the end of the packet`);
  }

  byte(what: string): number {
    this.need(1, what);
    return this.buf[this.pos++] as number;
  }

  u16(what: string): number {
    this.need(2, what);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  /** A Variable Byte Integer of at most four bytes (section 1.5.5). */
  varint(what: string): number {
    let value = 0;
    let mul = 1;
    for (let i = 0; i < 4; i++) {
      const b = this.byte(what);
      value += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return value;
      mul *= 128;
    }
    throw malformed(`${what} is not a valid Variable Byte Integer`);
  }

  /** Skips a two-byte-length field; returns where its bytes start. */
  skipPrefixed(what: string): number {
    const n = this.u16(what);
    this.need(n, what);
    const start = this.pos;
    this.pos += n;
    return start;
  }

  /** A UTF-8 Encoded String: well-formed, without U+0000 [MQTT-1.5.4-1, 1.5.4-2]. */
  string(what: string): void {
    const start = this.skipPrefixed(what);
    const bytes = this.buf.subarray(start, this.pos);
    if (!isUtf8(bytes) || bytes.includes(0)) throw malformed(`${what} is not a well-formed UTF-8 string`);
  }
}

function malformed(reason: string): MqttError {
  return new MqttError(RC.MALFORMED_PACKET, reason);
}

function protocol(reason: string): MqttError {
  return new MqttError(RC.PROTOCOL_ERROR, reason);
}

/**
 * Checks one property list at the cursor (its length, then the properties) for the list kind `list`, and leaves
 * the cursor after it.
 */
function checkList(c: Cursor, list: number, packet: string): void {
  const length = c.varint(`${packet} property length`);
  c.need(length, `${packet} properties`);
  const end = c.pos + length;
  // Identifiers seen so far, as bits (they are all below 64).
  let seenLow = 0;
  let seenHigh = 0;
  while (c.pos < end) {
    const id = c.varint(`${packet} property identifier`);
    const spec = TABLE.get(id);
    // [MQTT 5.0 section 2.2.2.2] an identifier not valid for its packet type makes a Malformed Packet.
    if (spec === undefined || (spec.where & list) === 0) {
      throw malformed(`property 0x${id.toString(16).padStart(2, '0')}${spec ? ` (${spec.name})` : ''} is not allowed in ${packet}`);
    }
    if (id !== USER_PROPERTY) {
      // Only User Property may repeat (and Subscription Identifier in a server's PUBLISH, which clients never send).
      const bit = 1 << (id & 31);
      const seen = id < 32 ? seenLow : seenHigh;
      if ((seen & bit) !== 0) throw protocol(`${spec.name} given more than once in ${packet}`);
      if (id < 32) seenLow |= bit;
      else seenHigh |= bit;
    }
    checkValue(c, id, spec, packet);
    if (c.pos > end) throw malformed(`${packet} property ${spec.name} runs past its property length`);
  }
}

function checkValue(c: Cursor, id: number, spec: PropertySpec, packet: string): void {
  const what = `${spec.name} in ${packet}`;
  switch (spec.kind) {
    case 'byte':
      c.byte(what);
      return;
    case 'flag':
      if (c.byte(what) > 1) throw protocol(`${what} must be 0 or 1`); // 3.1.2.11.7, 3.1.2.11.6, 3.3.2.3.2
      return;
    case 'u16':
      c.u16(what);
      return;
    case 'u32':
      c.need(4, what);
      c.pos += 4;
      return;
    case 'varint': {
      const v = c.varint(what);
      // [MQTT 5.0 3.8.2.1.2] a Subscription Identifier of 0 is a Protocol Error.
      if (id === SUBSCRIPTION_IDENTIFIER && v === 0) throw protocol(`${what} is 0`);
      return;
    }
    case 'string':
      c.string(what);
      return;
    case 'binary':
      c.skipPrefixed(what);
      return;
    case 'pair':
      c.string(`${what} (name)`);
      c.string(`${what} (value)`);
      return;
  }
}

/**
 * Checks every property list of one whole v5 frame: `off` is its first byte, `body` the first byte after the
 * Remaining Length, `end` one past its last. Throws an MqttError (0x81 or 0x82) for the first fault. Frames whose
 * layout is broken elsewhere (a topic length past the end, say) are left to mqtt-packet, which refuses them.
 */
export function checkFrameProperties(buf: Buffer, off: number, body: number, end: number): void {
  const b0 = buf[off] as number;
  const type = b0 >> 4;
  const list = LIST_OF_TYPE[type] ?? 0;
  if (list === 0) return;
  const len = end - body;
  const c = new Cursor(buf, body, end);
  switch (type) {
    case 1:
      checkConnect(c);
      return;
    case 3: {
      c.skipPrefixed('PUBLISH topic name');
      if (((b0 >> 1) & 3) > 0) c.u16('PUBLISH packet identifier');
      checkList(c, PUBLISH, 'PUBLISH');
      return;
    }
    case 4: case 5: case 6: case 7:
      // Packet identifier, then a reason code and properties only when the Remaining Length has room (3.4.2.1).
      if (len < 4) return;
      c.pos += 3;
      checkList(c, ACK, ACK_NAMES[type - 4] as string);
      return;
    case 8: case 10:
      c.u16('packet identifier');
      checkList(c, list, type === 8 ? 'SUBSCRIBE' : 'UNSUBSCRIBE');
      return;
    case 14: case 15:
      if (len < 2) return; // a reason code alone, or nothing (3.14.2.1, 3.15.2.1)
      c.pos += 1;
      checkList(c, list, type === 14 ? 'DISCONNECT' : 'AUTH');
      return;
    default:
      // CONNACK, SUBACK, UNSUBACK come from servers only: the dispatcher refuses them.
      return;
  }
}

const ACK_NAMES = ['PUBACK', 'PUBREC', 'PUBREL', 'PUBCOMP'];

/** A v5 CONNECT: the CONNECT properties and, with the Will Flag, the Will Properties (3.1.2.11, 3.1.3.2). */
function checkConnect(c: Cursor): void {
  c.skipPrefixed('protocol name');
  const level = c.byte('protocol level');
  if (level !== 5) return; // only v5 has properties; other levels are refused or parsed without them
  const flags = c.byte('connect flags');
  c.u16('keep alive');
  checkList(c, CONNECT, 'CONNECT');
  c.skipPrefixed('client identifier');
  if ((flags & 0x04) !== 0) checkList(c, WILL, 'Will Properties');
}

/** True when a frame's fixed header says it is a CONNECT announcing protocol level 5 (for a reader still at 4). */
export function isV5Connect(buf: Buffer, off: number, body: number, end: number): boolean {
  if ((buf[off] as number) >> 4 !== 1 || body + 2 > end) return false;
  const at = body + 2 + buf.readUInt16BE(body); // after the protocol name
  return at < end && buf[at] === 5;
}
