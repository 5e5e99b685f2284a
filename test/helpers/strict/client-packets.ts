/**
 * What the strict checker needs from the packets a client sends: its protocol level and limits (CONNECT), and
 * the packet identifiers it opens and closes (PUBLISH, the acknowledgements, SUBSCRIBE, UNSUBSCRIBE). Lenient on
 * purpose: judging the client is not the checker's job, so a field it cannot read makes that packet
 * `unreadable` and the checker stops drawing conclusions that would depend on it.
 */
import { Cursor, Malformed } from './bytes.js';
import type { Frame } from './framer.js';
import {
  CONNECT, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBSCRIBE, UNSUBSCRIBE, type Level,
} from './spec.js';

/** The client's side of the v5 CONNECT properties that bound what the Server may send (3.1.2.11). */
export interface ClientLimits {
  /** Receive Maximum (65,535 when absent). */
  readonly receiveMaximum: number;
  /** Maximum Packet Size (0 when absent: no limit but the protocol's). */
  readonly maximumPacketSize: number;
  /** Topic Alias Maximum (0 when absent: no aliases). */
  readonly topicAliasMaximum: number;
  /** Request Problem Information (true when absent). */
  readonly requestProblemInformation: boolean;
  /** Request Response Information (false when absent). */
  readonly requestResponseInformation: boolean;
  /** Whether an Authentication Method was given. */
  readonly authenticationMethod: boolean;
}

/** The defaults of a CONNECT without properties. */
export const DEFAULT_LIMITS: ClientLimits = {
  receiveMaximum: 65535, maximumPacketSize: 0, topicAliasMaximum: 0,
  requestProblemInformation: true, requestResponseInformation: false, authenticationMethod: false,
};

/** A client packet, as far as the checker reads it. */
export type ClientPacket =
  | {
    readonly kind: 'connect'; readonly level: number; readonly cleanStart: boolean;
    /** Null when the CONNECT could not be read that far (then its limits are null too). */
    readonly clientId: string | null; readonly limits: ClientLimits | null;
  }
  | { readonly kind: 'publish'; readonly qos: number; readonly id: number }
  | { readonly kind: 'ack'; readonly type: number; readonly id: number; readonly reason: number }
  | { readonly kind: 'request'; readonly type: number; readonly id: number; readonly filters: number | null }
  | { readonly kind: 'other'; readonly type: number }
  | { readonly kind: 'unreadable'; readonly type: number; readonly why: string };

/** Reads `f`, sent by a client at `level`. */
export function readClientPacket(f: Frame, level: Level): ClientPacket {
  const c = new Cursor(f.bytes, f.body, f.bytes.length, 'client');
  try {
    switch (f.type) {
      case CONNECT: return readConnect(c);
      case PUBLISH: {
        const qos = (f.flags >> 1) & 3;
        c.lengthPrefixed('topic');
        return { kind: 'publish', qos, id: qos > 0 ? c.u16('packet id') : 0 };
      }
      case PUBACK: case PUBREC: case PUBREL: case PUBCOMP: {
        const id = c.u16('packet id');
        return { kind: 'ack', type: f.type, id, reason: level === 5 && c.left > 0 ? c.u8('reason code') : 0 };
      }
      case SUBSCRIBE: case UNSUBSCRIBE: return readRequest(c, f.type, level);
      default: return { kind: 'other', type: f.type };
    }
  } catch (err) {
    if (err instanceof Malformed) return { kind: 'unreadable', type: f.type, why: err.message };
    throw err;
  }
}

/** SUBSCRIBE or UNSUBSCRIBE: the packet id, and how many topic filters (null when they cannot be counted). */
function readRequest(c: Cursor, type: number, level: Level): ClientPacket {
  const id = c.u16('packet id');
  try {
    if (level === 5) {
      const props = c.varint('property length').value; // read before the sum: `c.pos +=` would reread pos first
      c.pos += props;
    }
    let filters = 0;
    while (c.left > 0) {
      c.lengthPrefixed('topic filter');
      if (type === SUBSCRIBE) c.u8('subscription options');
      filters++;
    }
    return { kind: 'request', type, id, filters: c.pos === c.end ? filters : null };
  } catch (err) {
    if (err instanceof Malformed) return { kind: 'request', type, id, filters: null };
    throw err;
  }
}

/**
 * CONNECT: the level byte (whatever the protocol name), Clean Start, the client id and the v5 limits. The level
 * is kept even when what follows cannot be read: the Server's answer (a refusal, often) is in that level's format.
 */
function readConnect(c: Cursor): ClientPacket {
  c.lengthPrefixed('protocol name');
  const byte = c.u8('protocol level');
  // Bit 7 set is the bridge convention of Mosquitto (0x83, 0x84), which mqtt-packet and so smq accept at every
  // level: the level is the low bits.
  const level = byte >= 0x83 && byte <= 0x85 ? byte & 0x7f : byte;
  let cleanStart = false;
  try {
    const flags = c.u8('connect flags');
    cleanStart = (flags & 0x02) !== 0;
    c.u16('keep alive');
    let limits: ClientLimits | null = DEFAULT_LIMITS;
    if (level === 5) {
      const { value } = c.varint('property length');
      const end = c.pos + value;
      limits = readLimits(new Cursor(c.buf, c.pos, Math.min(end, c.end), 'client'));
      c.pos = end;
    }
    const id = c.lengthPrefixed('client id');
    return { kind: 'connect', level, cleanStart, clientId: c.buf.toString('utf8', id.start, id.end), limits };
  } catch (err) {
    if (err instanceof Malformed) return { kind: 'connect', level, cleanStart, clientId: null, limits: null };
    throw err;
  }
}

/** The CONNECT properties that bound the Server; null when they cannot be read or one is given twice. */
function readLimits(c: Cursor): ClientLimits | null {
  const l = { ...DEFAULT_LIMITS };
  const seen = new Set<number>();
  try {
    while (c.left > 0) {
      const id = c.varint('property id').value;
      if (id !== 0x26 && seen.has(id)) return null; // a Protocol Error: which value would the Server use?
      seen.add(id);
      switch (id) {
        case 0x21: l.receiveMaximum = c.u16('Receive Maximum'); break;
        case 0x27: l.maximumPacketSize = c.u32('Maximum Packet Size'); break;
        case 0x22: l.topicAliasMaximum = c.u16('Topic Alias Maximum'); break;
        case 0x17: l.requestProblemInformation = c.u8('Request Problem Information') !== 0; break;
        case 0x19: l.requestResponseInformation = c.u8('Request Response Information') !== 0; break;
        case 0x15: c.lengthPrefixed('Authentication Method'); l.authenticationMethod = true; break;
        case 0x11: c.u32('Session Expiry Interval'); break;
        case 0x16: c.lengthPrefixed('Authentication Data'); break;
        case 0x26: c.lengthPrefixed('user property name'); c.lengthPrefixed('user property value'); break;
        default: return null; // not a CONNECT property: the Server must refuse, and the checker cannot read on
      }
    }
  } catch (err) {
    if (err instanceof Malformed) return null;
    throw err;
  }
  // Zero for either is a Protocol Error (3.1.2.11.3, 3.1.2.11.4); what the Server then honours is not defined.
  return l.receiveMaximum === 0 || (seen.has(0x27) && l.maximumPacketSize === 0) ? null : l;
}
