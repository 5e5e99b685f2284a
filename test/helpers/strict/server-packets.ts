/**
 * The strict checker's rules for one frame sent by a Server, by packet type: fixed-header flags, the variable
 * header and payload field by field, reason codes, and that the fields fill the Remaining Length exactly. What
 * the per-connection rules need (packet ids, CONNACK's flags, the topic alias) is returned; the rules that
 * depend on earlier packets are the checker's (checker.ts).
 */
import { Cursor, Malformed, varintSize } from './bytes.js';
import type { ClientLimits } from './client-packets.js';
import type { Frame } from './framer.js';
import { checkUtf8, hasWildcard, readProperties, type Props, type Report } from './properties.js';
import {
  AUTH, CONNACK, DISCONNECT, PINGRESP, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, RULES, SERVER_REASON_CODES, SUBACK,
  UNSUBACK, V3_SUBACK_CODES, V4_CONNACK_CODES, V4_SUBACK_CODES, requiredFlags, ruleAt, serverMaySend, typeName,
  type Level,
} from './spec.js';

/** What the per-connection rules need from a Server packet. */
export type ServerPacket =
  | { readonly kind: 'connack'; readonly sessionPresent: boolean; readonly code: number; readonly props: Props | null }
  | { readonly kind: 'publish'; readonly qos: number; readonly dup: boolean; readonly id: number; readonly topic: string; readonly alias: number | null }
  | { readonly kind: 'ack'; readonly type: number; readonly id: number; readonly reason: number }
  | { readonly kind: 'reply'; readonly type: number; readonly id: number; readonly codes: number }
  | { readonly kind: 'disconnect' | 'auth'; readonly reason: number }
  | { readonly kind: 'pingresp' };

/** The connection as far as a single frame's rules need it. */
export interface FrameContext {
  readonly level: Level;
  /** The client's v5 limits, or null when unknown (then the rules that need them are skipped). */
  readonly limits: ClientLimits | null;
}

/** Where each fixed-size packet's length is stated (3.1.1 numbering, the same in 5.0 for PINGRESP). */
const FIXED_SIZE_SECTIONS: Readonly<Record<number, string>> = {
  [CONNACK]: '§3.2.1', [PUBACK]: '§3.4.1', [PUBREC]: '§3.5.1', [PUBREL]: '§3.6.1', [PUBCOMP]: '§3.7.1', [UNSUBACK]: '§3.11.1', [PINGRESP]: '§3.13.1',
};

/** "has no Payload" sections of 5.0, for bytes left after the properties. */
const NO_PAYLOAD: Readonly<Record<number, string>> = {
  [CONNACK]: '§3.2.3', [PUBACK]: '§3.4.3', [PUBREC]: '§3.5.3', [PUBREL]: '§3.6.3', [PUBCOMP]: '§3.7.3', [DISCONNECT]: '§3.14.3', [AUTH]: '§3.15.3',
};

/**
 * Checks one frame the Server sent on a connection at `ctx.level`, reporting each rule broken. Returns what the
 * connection's rules need, or null when the frame could not be read that far.
 */
export function checkServerFrame(f: Frame, ctx: FrameContext, report: Report): ServerPacket | null {
  const { level } = ctx;
  const name = typeName(f.type);
  if (!serverMaySend(f.type, level)) {
    report(ruleAt(RULES.packetType, level), `${name} is not a packet a Server sends at level ${level}`);
    return null;
  }
  if (f.lengthSize > varintSize(f.remaining)) {
    report(ruleAt(RULES.minimalVarint, level), `Remaining Length ${f.remaining} encoded in ${f.lengthSize} bytes`);
  }
  // [MQTT-3.1.2-24] never a packet larger than the client's Maximum Packet Size.
  if (level === 5 && ctx.limits !== null && ctx.limits.maximumPacketSize > 0 && f.bytes.length > ctx.limits.maximumPacketSize) {
    report('[MQTT-3.1.2-24]', `${name} of ${f.bytes.length} bytes to a client whose Maximum Packet Size is ${ctx.limits.maximumPacketSize}`);
  }
  if (f.type !== PUBLISH && f.flags !== requiredFlags(f.type)) {
    // [MQTT-2.1.3-1] / [MQTT-2.2.2-1] reserved flag bits hold the value of Table 2-2.
    report(ruleAt(RULES.flags, level), `${name} flags are ${f.flags.toString(2).padStart(4, '0')}, must be ${requiredFlags(f.type).toString(2).padStart(4, '0')}`);
  }
  const fixed = FIXED_SIZE_SECTIONS[f.type];
  // The section that fixes this packet's length, when it has one at this level (5.0 adds reason codes).
  const fixedSize = fixed !== undefined && (level < 5 || f.type === PINGRESP) ? fixed : null;
  if (fixedSize !== null) {
    const size = f.type === PINGRESP ? 0 : 2;
    if (f.remaining !== size) report(fixedSize, `${name} Remaining Length is ${f.remaining}, must be ${size}`);
  }
  const c = new Cursor(f.bytes, f.body, f.bytes.length, ruleAt(RULES.remainingLength, level));
  try {
    const p = readBody(f, c, ctx, report);
    // Bytes past the last field; fixed-size packets were judged by their length above.
    if (c.left > 0 && f.type !== PUBLISH && fixedSize === null) {
      report(NO_PAYLOAD[f.type] ?? ruleAt(RULES.remainingLength, level), `${c.left} byte(s) after the last field of ${name}`);
    }
    return p;
  } catch (err) {
    if (err instanceof Malformed) {
      report(err.rule, `${name}: ${err.message}`);
      return null;
    }
    throw err;
  }
}

function readBody(f: Frame, c: Cursor, ctx: FrameContext, report: Report): ServerPacket {
  const { level, limits } = ctx;
  switch (f.type) {
    case CONNACK: return readConnack(c, ctx, report);
    case PUBLISH: return readPublish(f, c, ctx, report);
    case PUBACK: case PUBREC: case PUBREL: case PUBCOMP: {
      const id = c.u16('packet identifier');
      let reason = 0;
      if (level === 5 && c.left > 0) {
        reason = c.u8('reason code');
        checkReason(f.type, reason, report);
        // Fewer than 4 bytes of Remaining Length: no Property Length, 0 is used (3.4.2.2.1 and the like).
        if (c.left > 0) readProperties(c, f.type, limits, report);
      }
      return { kind: 'ack', type: f.type, id, reason };
    }
    case SUBACK: case UNSUBACK: {
      const id = c.u16('packet identifier');
      if (level === 5) readProperties(c, f.type, limits, report);
      if (f.type === UNSUBACK && level < 5) return { kind: 'reply', type: f.type, id, codes: 0 }; // no payload in 3.1.1
      if (c.left === 0) report(f.type === SUBACK ? '§3.9.3' : '§3.11.3', `${typeName(f.type)} without a single reason code`);
      const codes = c.left;
      while (c.left > 0) {
        const code = c.u8('reason code');
        if (level === 5) checkReason(f.type, code, report);
        else if (!(level === 4 ? V4_SUBACK_CODES : V3_SUBACK_CODES).has(code)) {
          // [MQTT-3.9.3-2] 3.1.1 allows 0, 1, 2 and 0x80; MQTT 3.1 (3.9) has only the granted QoS.
          report(level === 4 ? '[MQTT-3.9.3-2]' : 'MQTT 3.1 §3.9', `SUBACK return code 0x${code.toString(16)}`);
        }
      }
      return { kind: 'reply', type: f.type, id, codes };
    }
    case PINGRESP: return { kind: 'pingresp' };
    case DISCONNECT: case AUTH: {
      // Remaining Length 0: reason 0x00 and no properties (3.14.2.1, 3.15.2.1); under 2 bytes, no Property Length.
      const reason = c.left > 0 ? c.u8('reason code') : 0;
      checkReason(f.type, reason, report);
      const props = c.left > 0 ? readProperties(c, f.type, limits, report) : null;
      // [MQTT-3.14.2-2] the Server never sends a Session Expiry Interval in DISCONNECT.
      if (f.type === DISCONNECT && props?.count.has(0x11) === true) report('[MQTT-3.14.2-2]', 'DISCONNECT from the Server carries a Session Expiry Interval');
      return { kind: f.type === DISCONNECT ? 'disconnect' : 'auth', reason };
    }
    default:
      throw new Malformed(ruleAt(RULES.packetType, level), `${typeName(f.type)} is not a Server packet`);
  }
}

/** A v5 reason code must be in its packet's table, as sent by a Server. */
function checkReason(type: number, code: number, report: Report): void {
  const table = SERVER_REASON_CODES[type];
  if (table !== undefined && !table.codes.has(code)) report(table.rule, `${typeName(type)} reason code 0x${code.toString(16).padStart(2, '0')} is not one a Server may send`);
}

function readConnack(c: Cursor, ctx: FrameContext, report: Report): ServerPacket {
  const { level, limits } = ctx;
  const flags = c.u8('Connect Acknowledge Flags');
  const code = c.u8(level === 5 ? 'reason code' : 'return code');
  if (level === 3 && flags !== 0) report('MQTT 3.1 §3.2', `CONNACK byte 1 is 0x${flags.toString(16)}; it is reserved (no Session Present in 3.1)`);
  else if ((flags & 0xfe) !== 0) report(ruleAt(RULES.connackFlags, level), `CONNACK flags 0x${flags.toString(16)}: bits 7-1 are reserved`);
  const sessionPresent = (flags & 0x01) !== 0;
  if (level === 5) checkReason(CONNACK, code, report);
  else if (!V4_CONNACK_CODES.has(code)) report(ruleAt(RULES.connackCode, level), `CONNACK return code ${code} is reserved`);
  if (code !== 0 && sessionPresent) report(ruleAt(RULES.sessionPresentOnRefusal, level), `Session Present with refusal code 0x${code.toString(16)}`);
  let props: Props | null = null;
  if (level === 5) {
    props = readProperties(c, CONNACK, limits, report);
    // [MQTT-3.1.2-28] no Response Information unless asked for; [MQTT-4.12.0-6] no Authentication Method unless
    // the client gave one.
    if (limits !== null && !limits.requestResponseInformation && props.count.has(0x1a)) {
      report('[MQTT-3.1.2-28]', 'CONNACK carries Response Information the client did not request');
    }
    if (limits !== null && !limits.authenticationMethod && props.count.has(0x15)) {
      report('[MQTT-4.12.0-6]', 'CONNACK carries an Authentication Method; the CONNECT had none');
    }
  }
  return { kind: 'connack', sessionPresent, code, props };
}

function readPublish(f: Frame, c: Cursor, ctx: FrameContext, report: Report): ServerPacket {
  const { level, limits } = ctx;
  const qos = (f.flags >> 1) & 0x03;
  const dup = (f.flags & 0x08) !== 0;
  if (qos === 3) report('[MQTT-3.3.1-4]', 'PUBLISH with both QoS bits set');
  if (dup && qos === 0) report('[MQTT-3.3.1-2]', 'PUBLISH QoS 0 with DUP set');
  const t = c.lengthPrefixed('Topic Name');
  checkUtf8(c, t.start, t.end, 'Topic Name', report, level);
  if (hasWildcard(c.buf, t.start, t.end)) report('[MQTT-3.3.2-2]', 'Topic Name contains a wildcard (+ or #)');
  const topic = c.buf.toString('utf8', t.start, t.end);
  let id = 0;
  if (qos > 0) {
    id = c.u16('packet identifier');
    if (id === 0) report(ruleAt(RULES.publishPidNonZero, level), `PUBLISH QoS ${qos} with packet identifier 0`);
  }
  let alias: number | null = null;
  if (level === 5) {
    const props = readProperties(c, PUBLISH, limits, report);
    alias = props.numbers.get(0x23)?.[0] ?? null;
  }
  // [MQTT-4.7.3-1] a Topic Name is at least one character; 5.0 3.3.2.3.4 allows an empty one only with a Topic Alias.
  if (t.end === t.start && alias === null) report('[MQTT-4.7.3-1]', 'PUBLISH with an empty Topic Name and no Topic Alias');
  return { kind: 'publish', qos, dup, id, topic, alias };
}
