/**
 * Encoders for the packets of the message flow. mqtt-packet's generate() builds an accumulator and several
 * intermediate buffers per call; a PUBLISH going to many subscribers is encoded here once into one buffer that
 * every subscriber's socket is given (see Message.wire).
 */

/** Bytes the Remaining Length field takes for a value [MQTT-1.5.5]. */
function varintSize(n: number): number {
  return n < 128 ? 1 : n < 16384 ? 2 : n < 2097152 ? 3 : 4;
}

function writeVarint(buf: Buffer, pos: number, n: number): number {
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    buf[pos++] = b;
  } while (n > 0);
  return pos;
}

/**
 * Encodes a PUBLISH. `topic` is the UTF-8 topic name (possibly empty with a v5 alias); `properties` is the
 * encoded v5 property block including its length prefix (a single 0x00 for none), or null for v3.1/v3.1.1.
 */
export function encodePublish(
  topic: Buffer,
  payload: Buffer,
  qos: number,
  dup: boolean,
  retain: boolean,
  packetId: number,
  properties: Buffer | null,
): Buffer {
  const remaining = 2 + topic.length + (qos > 0 ? 2 : 0) + (properties === null ? 0 : properties.length) + payload.length;
  const buf = Buffer.allocUnsafe(1 + varintSize(remaining) + remaining);
  buf[0] = 0x30 | (dup ? 8 : 0) | (qos << 1) | (retain ? 1 : 0);
  let pos = writeVarint(buf, 1, remaining);
  buf[pos++] = topic.length >> 8;
  buf[pos++] = topic.length & 0xff;
  pos += topic.copy(buf, pos);
  if (qos > 0) {
    buf[pos++] = packetId >> 8;
    buf[pos++] = packetId & 0xff;
  }
  if (properties !== null) pos += properties.copy(buf, pos);
  payload.copy(buf, pos);
  return buf;
}

/** The v5 property block of a PUBLISH without properties. */
export const NO_PROPERTIES: Buffer = Buffer.from([0]);

/** Fixed-header first byte of each acknowledgement (PUBREL carries flags 0b0010 [MQTT-3.6.1-1]). */
export const PUBACK = 0x40;
export const PUBREC = 0x50;
export const PUBREL = 0x62;
export const PUBCOMP = 0x70;

/** Encodes a PUBACK, PUBREC, PUBREL or PUBCOMP with reason code 0 and no properties (valid in every version). */
export function encodeAck(first: number, packetId: number): Buffer {
  const buf = Buffer.allocUnsafe(4);
  buf[0] = first;
  buf[1] = 2;
  buf[2] = packetId >> 8;
  buf[3] = packetId & 0xff;
  return buf;
}

/** PINGRESP, shared: it never changes. */
export const PINGRESP: Buffer = Buffer.from([0xd0, 0]);
