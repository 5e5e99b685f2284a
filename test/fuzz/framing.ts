/**
 * MQTT framing for the fuzz harness, written apart from the broker's reader on purpose: the oracle must not
 * share the code it judges. It knows only what section 2.2 says: one type byte, a Remaining Length of one to
 * four bytes (7 bits each, the high bit meaning "more"), then that many bytes.
 */

/** PINGREQ: what the harness sends to ask "are you still there?" [MQTT-3.12.4-1]. */
export const PINGREQ = Buffer.from([0xc0, 0x00]);

/** Packet type 13, PINGRESP. */
const PINGRESP_TYPE = 13;

/** A Remaining Length (variable byte integer, section 1.5.5) of `n` < 268435456. */
export function varint(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}

/** One frame: type byte, Remaining Length, body. */
export function frame(first: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([first]), varint(body.length), body]);
}

/** A two-byte-length MQTT string or binary field (section 1.5.4, 1.5.6). */
export function str(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  const len = Buffer.alloc(2);
  len.writeUInt16BE(b.length & 0xffff);
  return Buffer.concat([len, b]);
}

/**
 * The bytes that complete the frame `stream` is cut inside of, or none when it ends on a frame boundary or
 * cannot be framed at all (a fifth length byte, a frame over `max`: the receiver must close). Zero bytes do:
 * a 0x00 ends a Remaining Length without adding to it. The oracle sends them before it asks for a PINGRESP,
 * because a receiver still waiting for bytes it was promised is not hanging.
 */
export function completion(stream: Buffer, max: number): Buffer {
  let off = 0;
  const end = stream.length;
  while (off < end) {
    let len = 0;
    let mul = 1;
    let pos = off + 1;
    let done = false;
    while (pos < end && pos - off <= 4) {
      const b = stream[pos++] as number;
      len += (b & 0x7f) * mul;
      mul *= 128;
      if ((b & 0x80) === 0) {
        done = true;
        break;
      }
    }
    if (!done) {
      if (pos - off > 4) return Buffer.alloc(0);
      // Cut inside the Remaining Length (or right after the type byte): the 0x00 ends it; an announced length
      // over the limit needs no body, the receiver refuses it on the header.
      return len > max ? Buffer.alloc(1) : Buffer.alloc(1 + len);
    }
    if (len > max) return Buffer.alloc(0);
    if (pos + len > end) return Buffer.alloc(pos + len - end);
    off = pos + len;
  }
  return Buffer.alloc(0);
}

/** Splits what the broker sent into frames; stops at a frame that is not complete. Returns the type bytes. */
export function frameTypes(stream: Buffer): number[] {
  const types: number[] = [];
  let off = 0;
  while (off < stream.length) {
    let len = 0;
    let mul = 1;
    let pos = off + 1;
    let done = false;
    while (pos < stream.length && pos - off <= 4) {
      const b = stream[pos++] as number;
      len += (b & 0x7f) * mul;
      mul *= 128;
      if ((b & 0x80) === 0) {
        done = true;
        break;
      }
    }
    if (!done || pos + len > stream.length) break;
    types.push((stream[off] as number) >> 4);
    off = pos + len;
  }
  return types;
}

/** True when the output holds a PINGRESP frame. */
export function hasPingresp(stream: Buffer): boolean {
  return frameTypes(stream).includes(PINGRESP_TYPE);
}
