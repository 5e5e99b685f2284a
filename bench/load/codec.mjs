// MQTT 3.1.1 for the load generator: packets encoded once before a measurement (mqtt-packet is fine there)
// and a counting parser for the measured path. The parser never decodes a payload: it reads the fixed header
// and the remaining-length varint, counts the packet by type and skips it by length. It looks inside only
// where the generator must act: a PUBLISH's QoS and packet id (to acknowledge it) and, for latency, the
// first 8 payload bytes (the send time); the packet id of PUBACK/PUBREC/PUBREL/PUBCOMP; and the short
// bodies of CONNACK and SUBACK.
import mqtt from 'mqtt-packet';

export const CONNACK = 2;
export const PUBLISH = 3;
export const PUBACK = 4;
export const PUBREC = 5;
export const PUBREL = 6;
export const PUBCOMP = 7;
export const SUBACK = 9;

const gen = (packet) => mqtt.generate({ protocolVersion: 4, ...packet });

/** CONNECT for MQTT 3.1.1; clean session and no keepalive unless told otherwise. */
export function connectPacket(clientId, { clean = true, keepalive = 0 } = {}) {
  return gen({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean, keepalive });
}

/** SUBSCRIBE for [{ topic, qos }]. */
export function subscribePacket(messageId, subscriptions) {
  return gen({ cmd: 'subscribe', messageId, subscriptions });
}

export const DISCONNECT = Buffer.from([0xe0, 0x00]);

/** A 4-byte acknowledgement (PUBACK, PUBREC, PUBREL or PUBCOMP) for packet id `id`. */
export function ackPacket(type, id) {
  // PUBREL carries the flags 0b0010 (MQTT 3.1.1, 3.6.1); the others 0.
  return Buffer.from([(type << 4) | (type === PUBREL ? 2 : 0), 2, id >> 8, id & 0xff]);
}

/** Writes the acks for `ids` (type `type`) into one new Buffer, so one read's acks go out in one write. */
export function ackBatch(type, ids, count) {
  const out = Buffer.allocUnsafe(count * 4);
  const b0 = (type << 4) | (type === PUBREL ? 2 : 0);
  for (let i = 0; i < count; i++) {
    const o = i * 4;
    out[o] = b0;
    out[o + 1] = 2;
    out[o + 2] = ids[i] >> 8;
    out[o + 3] = ids[i] & 0xff;
  }
  return out;
}

/**
 * `count` PUBLISH packets to `topic` back to back in one Buffer, every one the same size. With QoS 1/2 the
 * packets carry the ids 1..count in order, so a publisher walks the run as a ring and never reuses an id that
 * can still be in flight (it keeps far fewer than `count` unacknowledged). Returns { buf, size, count,
 * payloadOffset } where payloadOffset is where the payload starts inside each packet.
 */
export function publishRun(topic, qos, count, payloadSize = 64) {
  const payload = Buffer.alloc(payloadSize, 0x61);
  const one = gen({ cmd: 'publish', topic, qos, payload, retain: false, dup: false, messageId: qos ? 1 : undefined });
  const size = one.length;
  const buf = Buffer.allocUnsafe(size * count);
  for (let i = 0; i < count; i++) {
    one.copy(buf, i * size);
    if (qos) buf.writeUInt16BE(i + 1, i * size + size - payloadSize - 2);
  }
  return { buf, size, count, payloadOffset: size - payloadSize };
}

/** Does nothing; a handler overrides what it needs. */
export class Handler {
  /** A PUBLISH with QoS > 0, or any PUBLISH when timestamps are wanted; `payloadOff` indexes `buf`. */
  onPublish(qos, id, buf, payloadOff) {}
  /** PUBACK, PUBREC, PUBREL or PUBCOMP with packet id `id`. */
  onAck(type, id) {}
  /** Any other packet: `buf[off .. off + len)` is its body (len 0 when the body is over 1 KB and skipped). */
  onControl(type, buf, off, len) {}
}

/**
 * Counts MQTT packets by type in a byte stream that arrives in chunks split anywhere. `counts[type]` is the
 * number of packets of that type seen so far. A packet whose interesting prefix spans two chunks is
 * assembled in a small scratch buffer; the rest of any packet is skipped by count, never copied.
 */
export class CountingParser {
  constructor(handler, { timestamps = false } = {}) {
    this.handler = handler;
    this.timestamps = timestamps;
    this.counts = new Float64Array(16);
    this.skip = 0;
    this.part = Buffer.allocUnsafe(256);
    this.partLen = 0;
  }

  /** Feeds bytes chunk[0 .. end); the parser keeps no reference to chunk, so its memory may be reused. */
  push(chunk, end = chunk.length) {
    let off = 0;
    while (this.partLen > 0) {
      const before = this.partLen;
      const take = Math.min(this.part.length - before, end - off);
      chunk.copy(this.part, before, off, off + take);
      this.partLen += take;
      const n = this.parse(this.part, 0, this.partLen);
      if (n >= 0) {
        // The packet was incomplete with `before` bytes, so it used some of this chunk: n > before.
        off += n - before;
        this.partLen = 0;
        break;
      }
      off += take;
      if (off === end) return;
      // Scratch full and still not enough: a long topic. Grow it and keep copying.
      const bigger = Buffer.allocUnsafe(this.part.length * 2);
      this.part.copy(bigger, 0, 0, this.partLen);
      this.part = bigger;
    }
    if (this.skip > 0) {
      const n = Math.min(this.skip, end - off);
      this.skip -= n;
      off += n;
    }
    while (off < end) {
      const n = this.parse(chunk, off, end);
      if (n < 0) {
        const rest = end - off;
        if (rest > this.part.length) this.part = Buffer.allocUnsafe(rest * 2);
        chunk.copy(this.part, 0, off, end);
        this.partLen = rest;
        return;
      }
      off += n;
    }
  }

  /**
   * Handles the packet at buf[off]: returns the bytes it consumed (the whole packet, or up to `end` with
   * this.skip set to what is left of it), or -1 when the bytes up to `end` are too few to handle it.
   */
  parse(buf, off, end) {
    if (end - off < 2) return -1;
    const b0 = buf[off];
    let rl = 0;
    let mul = 1;
    let i = off + 1;
    let byte;
    do {
      if (i >= end) return -1;
      if (i - off > 4) throw new Error('malformed remaining length');
      byte = buf[i++];
      rl += (byte & 127) * mul;
      mul *= 128;
    } while (byte & 128);
    const type = b0 >> 4;
    const have = end - i;
    if (type === PUBLISH) {
      if (have < 2) return -1;
      const qos = (b0 >> 1) & 3;
      const idOff = i + 2 + ((buf[i] << 8) | buf[i + 1]);
      const payloadOff = idOff + (qos ? 2 : 0);
      if (qos || this.timestamps) {
        const need = Math.min(payloadOff - i + (this.timestamps ? 8 : 0), rl);
        if (have < need) return -1;
        this.handler.onPublish(qos, qos ? (buf[idOff] << 8) | buf[idOff + 1] : 0, buf, payloadOff);
      }
    } else if (type >= PUBACK && type <= PUBCOMP) {
      if (have < 2) return -1;
      this.handler.onAck(type, (buf[i] << 8) | buf[i + 1]);
    } else {
      const len = rl <= 1024 ? rl : 0;
      if (have < len) return -1;
      this.handler.onControl(type, buf, i, len);
    }
    this.counts[type]++;
    const total = i - off + rl;
    const avail = end - off;
    if (avail >= total) return total;
    this.skip = total - avail;
    return avail;
  }
}
