/**
 * Packets the fuzz targets put around the fuzzed bytes and start their corpora from, encoded with mqtt-packet
 * (a client library's encoder, not the broker's) or by hand where mqtt-packet cannot say it (a ClientInfo
 * trailer, properties given as raw bytes).
 */
import mqtt, { type IConnectPacket, type Packet } from 'mqtt-packet';
import { frame, str, varint } from './framing.js';

/** Encodes a packet for protocol level `v`. */
export function gen(p: Packet, v: 3 | 4 | 5 = 5): Buffer {
  return mqtt.generate(p, { protocolVersion: v });
}

/** A CONNECT for level `v` with `extra` fields. */
export function connect(v: 3 | 4 | 5, clientId: string, extra: Partial<IConnectPacket> = {}): Buffer {
  return gen({
    cmd: 'connect',
    protocolId: v === 3 ? 'MQIsdp' : 'MQTT',
    protocolVersion: v,
    clientId,
    clean: true,
    keepalive: 0,
    ...extra,
  } as IConnectPacket, v);
}

/**
 * A CONNECT written field by field, so that anything may follow its payload (`trailer`, agent mode's ClientInfo)
 * and its v5 properties may be any bytes (`props`, without their length).
 */
export function rawConnect(v: 3 | 4 | 5, clientId: string, opts: { props?: Buffer; trailer?: Buffer; willProps?: Buffer } = {}): Buffer {
  const will = opts.willProps !== undefined;
  const flags = 0x02 | (will ? 0x04 : 0); // clean session, will at QoS 0
  const parts = [
    str(v === 3 ? 'MQIsdp' : 'MQTT'),
    Buffer.from([v, flags, 0x00, 0x00]), // level, flags, keep-alive 0
  ];
  if (v === 5) parts.push(varint(opts.props?.length ?? 0), opts.props ?? Buffer.alloc(0));
  parts.push(str(clientId));
  if (will) {
    const wp = opts.willProps as Buffer;
    if (v === 5) parts.push(varint(wp.length), wp);
    parts.push(str('will/t'), str('bye'));
  }
  if (opts.trailer !== undefined) parts.push(opts.trailer);
  return frame(0x10, Buffer.concat(parts));
}

/** The v5 properties of the examples, one builder per property id (MQTT 5 section 2.2.2.2). */
export const prop = {
  byte: (id: number, b: number): Buffer => Buffer.from([id, b]),
  u16: (id: number, n: number): Buffer => Buffer.from([id, n >> 8, n & 0xff]),
  u32: (id: number, n: number): Buffer => {
    const b = Buffer.alloc(5);
    b[0] = id;
    b.writeUInt32BE(n >>> 0, 1);
    return b;
  },
  varint: (id: number, n: number): Buffer => Buffer.concat([Buffer.from([id]), varint(n)]),
  str: (id: number, s: string | Buffer): Buffer => Buffer.concat([Buffer.from([id]), str(s)]),
  pair: (k: string, v: string): Buffer => Buffer.concat([Buffer.from([0x26]), str(k), str(v)]),
};

/** Every property id of MQTT 5 once, with a plausible value (section 2.2.2.2, table 2-4). */
export function everyProperty(): Buffer[] {
  return [
    prop.byte(0x01, 1), // payload format indicator
    prop.u32(0x02, 60), // message expiry interval
    prop.str(0x03, 'text/plain'), // content type
    prop.str(0x08, 'reply/t'), // response topic
    prop.str(0x09, Buffer.from([1, 2, 3])), // correlation data
    prop.varint(0x0b, 7), // subscription identifier
    prop.u32(0x11, 30), // session expiry interval
    prop.str(0x12, 'id'), // assigned client identifier
    prop.u16(0x13, 30), // server keep alive
    prop.str(0x15, 'SCRAM'), // authentication method
    prop.str(0x16, Buffer.from('data')), // authentication data
    prop.byte(0x17, 1), // request problem information
    prop.u32(0x18, 5), // will delay interval
    prop.byte(0x19, 1), // request response information
    prop.str(0x1a, 'resp'), // response information
    prop.str(0x1c, 'other'), // server reference
    prop.str(0x1f, 'why'), // reason string
    prop.u16(0x21, 10), // receive maximum
    prop.u16(0x22, 10), // topic alias maximum
    prop.u16(0x23, 1), // topic alias
    prop.byte(0x24, 1), // maximum QoS
    prop.byte(0x25, 1), // retain available
    prop.pair('k', 'v'), // user property
    prop.u32(0x27, 1024), // maximum packet size
    prop.byte(0x28, 1), // wildcard subscription available
    prop.byte(0x29, 1), // subscription identifier available
    prop.byte(0x2a, 1), // shared subscription available
  ];
}
