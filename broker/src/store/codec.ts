import * as zlib from 'node:zlib';
import type { QoS } from 'mqtt-packet';
import type { MessageProperties } from '../message/message.js';
import type { StoredDelivery, StoredMessage, StoredSession, StoredSubscription, StoredWill } from './types.js';

/*
 * The on-disk encoding of the durable store's values. Every value is
 *
 *   [format u8 = 1][body][crc32 u32 LE]
 *
 * where the CRC covers the record's identity (its kind and the parts of its key: client id or topic, seq or
 * packet id), the format byte and the body. LMDB checks its page structure but not the bytes of a value, so
 * without the CRC a flipped bit in a payload, or in a key's sequence number, would be read back as a different
 * message without a word. Numbers are unsigned LEB128 varints, strings and byte strings a varint length and the
 * bytes; message properties (an open set of v5 properties) use a small tagged encoding that keeps Buffers,
 * arrays, undefined and null apart, so `userProperties` with array values and `correlationData` come back as
 * they went in.
 */

/** Format of every value written by this module; a different byte is refused on reading. */
export const FORMAT = 1;

/** What a record holds; the byte goes into the CRC so a value moved under another kind of key is caught. */
export const KIND_RETAINED = 0x72; // 'r'
export const KIND_SESSION = 0x73; // 's'
export const KIND_DELIVERY = 0x64; // 'd'
export const KIND_INCOMING = 0x69; // 'i'
export const KIND_BATCH = 0x62; // 'b': messages from one node to another (cluster inbox)
export const KIND_CONSUMED = 0x78; // 'x': a cluster inbox batch delivered here

/** One message in a cluster batch: for the target's ordinary subscribers and/or some of its shared groups. */
export interface BatchEntry {
  readonly message: StoredMessage;
  /** Deliver to the target's ordinary (non-shared) subscriptions. */
  readonly normal: boolean;
  /** Shared groups (`name` NUL `filter`) this message was given to on the target. */
  readonly groups: readonly string[];
}

/** A value that does not decode: damaged bytes or another format. */
export class CodecError extends Error {}

const SLAB = 64 * 1024;

/** zlib.crc32 is in Node from 20.15 and 22.2; older 20.x releases get the table-driven version below. */
const crc32: (data: string | Uint8Array, value?: number) => number =
  typeof zlib.crc32 === 'function' ? zlib.crc32 : crc32Table;

let table: Int32Array | null = null;
function crc32Table(input: string | Uint8Array, value = 0): number {
  const data = typeof input === 'string' ? Buffer.from(input) : input;
  if (table === null) {
    table = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c;
    }
  }
  let c = ~value;
  for (let i = 0; i < data.length; i++) c = (table[(c ^ (data[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return ~c >>> 0;
}

/**
 * Writes values into slabs that are never reused: LMDB keeps a pointer to each value until its batch commits
 * on the write thread, so a value's bytes must stay as they are after `put` returns. Small values share a slab
 * (one allocation per 64 KiB), a large one gets its own.
 */
class Writer {
  buf = Buffer.allocUnsafe(SLAB);
  pos = 0;
  start = 0;

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const used = this.pos - this.start;
    const next = Buffer.allocUnsafe(Math.max(SLAB, used + n + 1024));
    this.buf.copy(next, 0, this.start, this.pos);
    this.buf = next;
    this.start = 0;
    this.pos = used;
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }

  varuint(v: number, field: string): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`store: ${field} must be a non-negative integer, got ${v}`);
    this.ensure(8);
    while (v >= 0x80) {
      this.buf[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.pos++] = v;
  }

  str(s: string): void {
    const max = s.length * 3;
    this.ensure(max + 8);
    // Write the bytes after room for the longest length prefix, then move them if the prefix is shorter.
    const lenAt = this.pos;
    const lenSize = varuintSize(max);
    const n = this.buf.write(s, lenAt + lenSize, 'utf8');
    this.varuint(n, 'string length');
    if (this.pos !== lenAt + lenSize) this.buf.copy(this.buf, this.pos, lenAt + lenSize, lenAt + lenSize + n);
    this.pos += n;
  }

  bytes(b: Uint8Array): void {
    this.varuint(b.length, 'byte string length');
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  f64(v: number): void {
    this.ensure(8);
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
  }

  /** Starts a value with its format byte. */
  begin(): void {
    this.ensure(1);
    this.start = this.pos;
    this.buf[this.pos++] = FORMAT;
  }

  /** Seals the value begun last with the CRC over its identity, the format byte and the body; returns it. */
  end(kind: number, keyPart: string, n: number): Buffer {
    this.ensure(4);
    const crc = crc32(this.buf.subarray(this.start, this.pos), identityCrc(kind, keyPart, n));
    this.pos = this.buf.writeUInt32LE(crc, this.pos);
    const v = this.buf.subarray(this.start, this.pos);
    this.start = this.pos;
    return v;
  }
}

function varuintSize(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 0x80);
    n++;
  }
  return n;
}

/** CRC-32 of any data followed by its CRC-32 in little-endian order. */
const CRC_RESIDUE = 0x2144df1c;
const KIND = Buffer.alloc(1);
const NUMBER = Buffer.alloc(9);

/**
 * The CRC of a record's identity: kind byte, key part (as UTF-8), and for deliveries and incoming ids a zero byte
 * and the number as a float64. Computed piecewise into the CRC, so it costs no buffer per record.
 */
function identityCrc(kind: number, keyPart: string, n: number): number {
  KIND[0] = kind;
  const c = crc32(keyPart, crc32(KIND));
  if (n < 0) return c;
  NUMBER.writeDoubleLE(n, 1);
  return crc32(NUMBER, c);
}

/** Reads a value's body; every read is bounds-checked, so damaged bytes give a CodecError, not garbage. */
class Reader {
  private readonly buf: Buffer;
  /** Where the body ends: the CRC follows. */
  private readonly limit: number;
  private pos = 1;

  constructor(buf: Buffer) {
    this.buf = buf;
    this.limit = buf.length - 4;
  }

  private need(n: number): void {
    if (this.pos + n > this.limit) throw new CodecError(`value ends early (${this.buf.length} bytes)`);
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++] as number;
  }

  varuint(): number {
    let v = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.u8();
      v += (b & 0x7f) * scale;
      if (b < 0x80) {
        if (!Number.isSafeInteger(v)) throw new CodecError('number out of range');
        return v;
      }
      scale *= 0x80;
    }
    throw new CodecError('number too long');
  }

  str(): string {
    const n = this.varuint();
    this.need(n);
    const s = this.buf.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }

  /** A view into the value's own buffer (the store hands every value its own copy), not a copy. */
  bytes(): Buffer {
    const n = this.varuint();
    this.need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  f64(): number {
    this.need(8);
    const v = this.buf.readDoubleLE(this.pos);
    this.pos += 8;
    return v;
  }

  end(): void {
    if (this.pos !== this.limit) throw new CodecError(`${this.limit - this.pos} bytes left over`);
  }
}

/** Encodes records for the store; one per store, used from the event loop only. */
export class Encoder {
  private readonly w = new Writer();

  retained(keyPart: string, m: StoredMessage): Buffer {
    this.w.begin();
    writeMessage(this.w, m);
    return this.w.end(KIND_RETAINED, keyPart, -1);
  }

  /** `embedId`: the key holds a hash of the client id, so the value carries the id itself. */
  session(keyPart: string, embedId: boolean, s: StoredSession): Buffer {
    const w = this.w;
    w.begin();
    if (embedId) w.str(s.clientId);
    // Bit 0: a username follows; bit 1: an owner that is not the username follows (older records have neither
    // bit 1 nor an owner: their owner is the username, so such records stay readable by older nodes).
    const owner = s.owner !== undefined && s.owner !== (s.username ?? '') ? s.owner : undefined;
    w.u8((s.username === undefined ? 0 : 1) | (owner === undefined ? 0 : 2));
    if (s.username !== undefined) w.str(s.username);
    if (owner !== undefined) w.str(owner);
    w.varuint(s.expiryInterval, 'session expiry interval');
    w.varuint(s.disconnectedAt, 'disconnectedAt');
    w.varuint(s.subscriptions.length, 'subscription count');
    for (const sub of s.subscriptions) {
      w.str(sub.raw);
      w.u8(sub.qos | (sub.noLocal ? 4 : 0) | (sub.retainAsPublished ? 8 : 0) | (sub.retainHandling << 4));
      w.varuint(sub.id, 'subscription identifier');
    }
    if (s.will === null) w.u8(0);
    else {
      w.u8(1);
      writeMessage(w, s.will.message);
      w.varuint(s.will.at, 'will time');
    }
    return w.end(KIND_SESSION, keyPart, -1);
  }

  /** `ids`: write the message's identity (see writeMessage); false for a node that would refuse it. */
  delivery(keyPart: string, embedId: boolean, d: StoredDelivery, ids = true): Buffer {
    const w = this.w;
    w.begin();
    if (embedId) w.str(d.clientId);
    writeMessage(w, d.message, ids);
    w.u8(d.qos | (d.retain ? 4 : 0) | (d.state << 3));
    w.varuint(d.packetId, 'packet id');
    if (d.subIds === undefined) w.varuint(0, 'subscription identifier count');
    else {
      w.varuint(d.subIds.length + 1, 'subscription identifier count');
      for (const id of d.subIds) w.varuint(id, 'subscription identifier');
    }
    return w.end(KIND_DELIVERY, keyPart, d.seq);
  }

  /**
   * A batch of messages for a cluster inbox; `keyPart` is the inbox key, so a value cannot be moved. `ids`: the
   * target reads message identities (its member record says so); an older node would refuse them.
   */
  batch(keyPart: string, entries: readonly BatchEntry[], ids = true): Buffer {
    const w = this.w;
    w.begin();
    w.varuint(entries.length, 'batch length');
    for (const e of entries) {
      writeMessage(w, e.message, ids);
      w.u8(e.normal ? 1 : 0);
      w.varuint(e.groups.length, 'group count');
      for (const g of e.groups) w.str(g);
    }
    // A copy: the slab is shared, and the value leaves for the network after this returns.
    return Buffer.from(w.end(KIND_BATCH, keyPart, -1));
  }

  incoming(keyPart: string, embedId: boolean, clientId: string, packetId: number): Buffer {
    this.w.begin();
    if (embedId) this.w.str(clientId);
    return this.w.end(KIND_INCOMING, keyPart, packetId);
  }

  consumed(keyPart: string, embedKey: boolean, batchKey: string): Buffer {
    this.w.begin();
    if (embedKey) this.w.str(batchKey);
    return this.w.end(KIND_CONSUMED, keyPart, -1);
  }
}

/** Decodes what {@link Encoder} wrote; throws CodecError for a value that is damaged or of another format. */
export class Decoder {
  private open(kind: number, keyPart: string, n: number, value: Buffer): Reader {
    if (value.length < 5) throw new CodecError(`value of ${value.length} bytes is too short`);
    // The CRC of data followed by its own CRC (little-endian) is a constant, so the whole value is checked in one
    // call, without a view that leaves out the stored CRC.
    if (crc32(value, identityCrc(kind, keyPart, n)) !== CRC_RESIDUE) throw new CodecError('checksum mismatch');
    if (value[0] !== FORMAT) throw new CodecError(`value has format ${value[0]}, expected ${FORMAT}`);
    return new Reader(value);
  }

  batch(keyPart: string, value: Buffer): BatchEntry[] {
    const r = this.open(KIND_BATCH, keyPart, -1, value);
    const n = r.varuint();
    const out: BatchEntry[] = [];
    for (let i = 0; i < n; i++) {
      const message = readMessage(r);
      const normal = r.u8() === 1;
      const groups: string[] = [];
      for (let g = r.varuint(); g > 0; g--) groups.push(r.str());
      out.push({ message, normal, groups });
    }
    r.end();
    return out;
  }

  retained(keyPart: string, value: Buffer): StoredMessage {
    const r = this.open(KIND_RETAINED, keyPart, -1, value);
    const m = readMessage(r);
    r.end();
    return m;
  }

  /** `clientId`: from the key, or undefined when the key holds its hash and the value carries it. */
  session(keyPart: string, clientId: string | undefined, value: Buffer): StoredSession {
    const r = this.open(KIND_SESSION, keyPart, -1, value);
    const id = clientId ?? r.str();
    const who = r.u8();
    if (who > 3) throw new CodecError(`bad username flag ${who}`);
    const username = (who & 1) !== 0 ? r.str() : undefined;
    const owner = (who & 2) !== 0 ? r.str() : undefined; // undefined: the username (recovery.ts)
    const expiryInterval = r.varuint();
    const disconnectedAt = r.varuint();
    const count = r.varuint();
    const subscriptions: StoredSubscription[] = [];
    for (let i = 0; i < count; i++) {
      const raw = r.str();
      const flags = r.u8();
      const rh = flags >> 4;
      if ((flags & 3) === 3 || rh > 2) throw new CodecError(`bad subscription flags ${flags}`);
      subscriptions.push({
        raw,
        qos: (flags & 3) as QoS,
        noLocal: (flags & 4) !== 0,
        retainAsPublished: (flags & 8) !== 0,
        retainHandling: rh as 0 | 1 | 2,
        id: r.varuint(),
      });
    }
    let will: StoredWill | null = null;
    const hasWill = r.u8();
    if (hasWill > 1) throw new CodecError(`bad will flag ${hasWill}`);
    if (hasWill === 1) {
      const message = readMessage(r);
      will = { message, at: r.varuint() };
    }
    r.end();
    const session: StoredSession = { clientId: id, expiryInterval, disconnectedAt, subscriptions, will };
    const withUser = username === undefined ? session : { ...session, username };
    return owner === undefined ? withUser : { ...withUser, owner };
  }

  delivery(keyPart: string, clientId: string | undefined, seq: number, value: Buffer): StoredDelivery {
    const r = this.open(KIND_DELIVERY, keyPart, seq, value);
    const id = clientId ?? r.str();
    const message = readMessage(r);
    const flags = r.u8();
    if ((flags & 3) === 3 || flags > 15) throw new CodecError(`bad delivery flags ${flags}`);
    const packetId = r.varuint();
    const n = r.varuint();
    let subIds: number[] | undefined;
    if (n > 0) {
      subIds = [];
      for (let i = 1; i < n; i++) subIds.push(r.varuint());
    }
    r.end();
    return {
      clientId: id,
      seq,
      message,
      qos: (flags & 3) as QoS,
      retain: (flags & 4) !== 0,
      subIds,
      packetId,
      state: (flags >> 3) as 0 | 1,
    };
  }

  /** Returns the client id (from the value when the key holds its hash). */
  incoming(keyPart: string, clientId: string | undefined, packetId: number, value: Buffer): string {
    const r = this.open(KIND_INCOMING, keyPart, packetId, value);
    const id = clientId ?? r.str();
    r.end();
    return id;
  }

  /** Returns the batch key (from the value when the store key holds its hash). */
  consumed(keyPart: string, batchKey: string | undefined, value: Buffer): string {
    const r = this.open(KIND_CONSUMED, keyPart, -1, value);
    const key = batchKey ?? r.str();
    r.end();
    return key;
  }
}

/**
 * A message: flags bit 4 says an identity follows its properties. Older readers refuse flags above 15, so the
 * identity is written only where the reader is known to take it (`ids`: always in the local store; in batches and
 * session moves only for nodes whose member record announces it, see Keys/MemberInfo `features`).
 */
function writeMessage(w: Writer, m: StoredMessage, ids = true): void {
  const id = ids ? m.id : undefined;
  w.str(m.topic);
  w.bytes(m.payload);
  w.u8(m.qos | (m.retain ? 4 : 0) | (m.properties !== undefined ? 8 : 0) | (id !== undefined ? 16 : 0));
  w.str(m.origin);
  w.varuint(m.expiresAt, 'message expiresAt');
  if (m.properties !== undefined) writeValue(w, m.properties, 0);
  if (id !== undefined) w.str(id);
}

function readMessage(r: Reader): StoredMessage {
  const topic = r.str();
  const payload = r.bytes();
  const flags = r.u8();
  if ((flags & 3) === 3 || flags > 31) throw new CodecError(`bad message flags ${flags}`);
  const origin = r.str();
  const expiresAt = r.varuint();
  const properties = (flags & 8) !== 0 ? (readValue(r, 0) as MessageProperties) : undefined;
  const m: StoredMessage = { topic, payload, qos: (flags & 3) as QoS, retain: (flags & 4) !== 0, properties, origin, expiresAt };
  return (flags & 16) !== 0 ? { ...m, id: r.str() } : m;
}

// Tags of the property encoding.
const T_UNDEFINED = 0;
const T_NULL = 1;
const T_FALSE = 2;
const T_TRUE = 3;
const T_UINT = 4;
const T_F64 = 5;
const T_STRING = 6;
const T_BYTES = 7;
const T_ARRAY = 8;
const T_OBJECT = 9;
/** Properties are flat (userProperties is the deepest, at two levels); deeper data is refused, not recursed. */
const MAX_DEPTH = 8;

function writeValue(w: Writer, v: unknown, depth: number): void {
  if (depth > MAX_DEPTH) throw new RangeError('store: message properties nested too deeply');
  if (v === undefined) w.u8(T_UNDEFINED);
  else if (v === null) w.u8(T_NULL);
  else if (v === false) w.u8(T_FALSE);
  else if (v === true) w.u8(T_TRUE);
  else if (typeof v === 'number') {
    if (Number.isSafeInteger(v) && v >= 0) {
      w.u8(T_UINT);
      w.varuint(v, 'property');
    } else {
      w.u8(T_F64);
      w.f64(v);
    }
  } else if (typeof v === 'string') {
    w.u8(T_STRING);
    w.str(v);
  } else if (v instanceof Uint8Array) {
    w.u8(T_BYTES);
    w.bytes(v);
  } else if (Array.isArray(v)) {
    w.u8(T_ARRAY);
    w.varuint(v.length, 'array length');
    for (const item of v) writeValue(w, item, depth + 1);
  } else if (typeof v === 'object') {
    const keys = Object.keys(v);
    w.u8(T_OBJECT);
    w.varuint(keys.length, 'object size');
    for (const k of keys) {
      w.str(k);
      writeValue(w, (v as Record<string, unknown>)[k], depth + 1);
    }
  } else throw new RangeError(`store: cannot store a ${typeof v} in message properties`);
}

function readValue(r: Reader, depth: number): unknown {
  if (depth > MAX_DEPTH) throw new CodecError('properties nested too deeply');
  const tag = r.u8();
  switch (tag) {
    case T_UNDEFINED:
      return undefined;
    case T_NULL:
      return null;
    case T_FALSE:
      return false;
    case T_TRUE:
      return true;
    case T_UINT:
      return r.varuint();
    case T_F64:
      return r.f64();
    case T_STRING:
      return r.str();
    case T_BYTES:
      return r.bytes();
    case T_ARRAY: {
      const n = r.varuint();
      const a: unknown[] = [];
      for (let i = 0; i < n; i++) a.push(readValue(r, depth + 1));
      return a;
    }
    case T_OBJECT: {
      const n = r.varuint();
      const o: Record<string, unknown> = {};
      for (let i = 0; i < n; i++) {
        const k = r.str();
        const v = readValue(r, depth + 1);
        // A user property may be called __proto__; assignment would set the prototype instead.
        if (k === '__proto__') Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
        else o[k] = v;
      }
      return o;
    }
    default:
      throw new CodecError(`unknown property tag ${tag}`);
  }
}
