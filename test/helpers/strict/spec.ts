/**
 * The tables of the MQTT specifications the strict checker judges by, copied by hand from the OASIS texts
 * (MQTT 5.0 os, MQTT 3.1.1 os; MQTT 3.1 where it differs), never from the broker: the oracle must not share the
 * code it judges. Section numbers are MQTT 5.0's unless a name says otherwise.
 */

/** A protocol level: 3 is MQTT 3.1, 4 is MQTT 3.1.1, 5 is MQTT 5.0. */
export type Level = 3 | 4 | 5;

/** Control packet types (5.0 section 2.1.2, 3.1.1 section 2.2.1). */
export const CONNECT = 1, CONNACK = 2, PUBLISH = 3, PUBACK = 4, PUBREC = 5, PUBREL = 6, PUBCOMP = 7, SUBSCRIBE = 8,
  SUBACK = 9, UNSUBSCRIBE = 10, UNSUBACK = 11, PINGREQ = 12, PINGRESP = 13, DISCONNECT = 14, AUTH = 15;

/** Names by type, for messages. */
export const TYPE_NAMES: readonly string[] = [
  'RESERVED(0)', 'CONNECT', 'CONNACK', 'PUBLISH', 'PUBACK', 'PUBREC', 'PUBREL', 'PUBCOMP', 'SUBSCRIBE', 'SUBACK',
  'UNSUBSCRIBE', 'UNSUBACK', 'PINGREQ', 'PINGRESP', 'DISCONNECT', 'AUTH',
];

/** The name of packet type `t`. */
export function typeName(t: number): string {
  return TYPE_NAMES[t] ?? `TYPE(${t})`;
}

/**
 * True when a Server may send type `t` at `level` (the direction column of 5.0 Table 2-1 and 3.1.1 Table 2.1:
 * DISCONNECT goes both ways only from 5.0 on, AUTH exists only in 5.0; type 15 is reserved before 5.0).
 */
export function serverMaySend(t: number, level: Level): boolean {
  switch (t) {
    case CONNACK: case PUBLISH: case PUBACK: case PUBREC: case PUBREL: case PUBCOMP: case SUBACK: case UNSUBACK: case PINGRESP:
      return true;
    case DISCONNECT: case AUTH:
      return level === 5;
    default:
      return false;
  }
}

/** The fixed-header flags every type but PUBLISH must carry (5.0 Table 2-2, 3.1.1 Table 2.2). */
export function requiredFlags(t: number): number {
  return t === PUBREL || t === SUBSCRIBE || t === UNSUBSCRIBE ? 0b0010 : 0b0000;
}

/** How a property's value is encoded (5.0 section 1.5). */
export type PropType = 'byte' | 'u16' | 'u32' | 'varint' | 'utf8' | 'binary' | 'pair';

/** Where a property may appear: packet types, and 0 for the Will Properties of CONNECT. */
export interface PropSpec {
  readonly name: string;
  readonly type: PropType;
  readonly packets: readonly number[];
}

/** The Will Properties of CONNECT, as a place a property may appear. */
export const WILL = 0;

/** Reason String's packets: every acknowledgement, DISCONNECT and AUTH. */
const REASON_STRING_PACKETS = [CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, DISCONNECT, AUTH];

/** 5.0 section 2.2.2.2, Table 2-4: every property, its type and the packets it is valid in. */
export const PROPERTIES: ReadonlyMap<number, PropSpec> = new Map<number, PropSpec>([
  [0x01, { name: 'Payload Format Indicator', type: 'byte', packets: [PUBLISH, WILL] }],
  [0x02, { name: 'Message Expiry Interval', type: 'u32', packets: [PUBLISH, WILL] }],
  [0x03, { name: 'Content Type', type: 'utf8', packets: [PUBLISH, WILL] }],
  [0x08, { name: 'Response Topic', type: 'utf8', packets: [PUBLISH, WILL] }],
  [0x09, { name: 'Correlation Data', type: 'binary', packets: [PUBLISH, WILL] }],
  [0x0b, { name: 'Subscription Identifier', type: 'varint', packets: [PUBLISH, SUBSCRIBE] }],
  [0x11, { name: 'Session Expiry Interval', type: 'u32', packets: [CONNECT, CONNACK, DISCONNECT] }],
  [0x12, { name: 'Assigned Client Identifier', type: 'utf8', packets: [CONNACK] }],
  [0x13, { name: 'Server Keep Alive', type: 'u16', packets: [CONNACK] }],
  [0x15, { name: 'Authentication Method', type: 'utf8', packets: [CONNECT, CONNACK, AUTH] }],
  [0x16, { name: 'Authentication Data', type: 'binary', packets: [CONNECT, CONNACK, AUTH] }],
  [0x17, { name: 'Request Problem Information', type: 'byte', packets: [CONNECT] }],
  [0x18, { name: 'Will Delay Interval', type: 'u32', packets: [WILL] }],
  [0x19, { name: 'Request Response Information', type: 'byte', packets: [CONNECT] }],
  [0x1a, { name: 'Response Information', type: 'utf8', packets: [CONNACK] }],
  [0x1c, { name: 'Server Reference', type: 'utf8', packets: [CONNACK, DISCONNECT] }],
  [0x1f, { name: 'Reason String', type: 'utf8', packets: REASON_STRING_PACKETS }],
  [0x21, { name: 'Receive Maximum', type: 'u16', packets: [CONNECT, CONNACK] }],
  [0x22, { name: 'Topic Alias Maximum', type: 'u16', packets: [CONNECT, CONNACK] }],
  [0x23, { name: 'Topic Alias', type: 'u16', packets: [PUBLISH] }],
  [0x24, { name: 'Maximum QoS', type: 'byte', packets: [CONNACK] }],
  [0x25, { name: 'Retain Available', type: 'byte', packets: [CONNACK] }],
  [0x26, { name: 'User Property', type: 'pair', packets: [CONNECT, CONNACK, PUBLISH, WILL, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, DISCONNECT, AUTH] }],
  [0x27, { name: 'Maximum Packet Size', type: 'u32', packets: [CONNECT, CONNACK] }],
  [0x28, { name: 'Wildcard Subscription Available', type: 'byte', packets: [CONNACK] }],
  [0x29, { name: 'Subscription Identifier Available', type: 'byte', packets: [CONNACK] }],
  [0x2a, { name: 'Shared Subscription Available', type: 'byte', packets: [CONNACK] }],
]);

/** Properties that may appear more than once: User Property anywhere, Subscription Identifier in PUBLISH (3.3.2.3.8). */
export function repeatable(id: number, packet: number): boolean {
  return id === 0x26 || (id === 0x0b && packet === PUBLISH);
}

/** Byte properties whose only values are 0 and 1 ("It is a Protocol Error ... to have a value other than 0 or 1"). */
export const BOOLEAN_PROPERTIES: ReadonlySet<number> = new Set([0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2a]);

/** Where each packet's properties are described, for rules that have no conformance id of their own. */
export const PROPERTY_SECTIONS: Readonly<Record<number, string>> = {
  [CONNACK]: '§3.2.2.3', [PUBLISH]: '§3.3.2.3', [PUBACK]: '§3.4.2.2', [PUBREC]: '§3.5.2.2', [PUBREL]: '§3.6.2.2',
  [PUBCOMP]: '§3.7.2.2', [SUBACK]: '§3.9.2.1', [UNSUBACK]: '§3.11.2.1', [DISCONNECT]: '§3.14.2.2', [AUTH]: '§3.15.2.2',
};

/** The largest Subscription Identifier (3.3.2.3.8: 1 to 268,435,455). */
export const MAX_SUBSCRIPTION_ID = 268_435_455;

/** 5.0 reason codes a Server may send, per packet (the tables of 3.2.2.2, 3.4.2.1 ... 3.15.2.1), with their rule. */
export const SERVER_REASON_CODES: Readonly<Record<number, { readonly codes: ReadonlySet<number>; readonly rule: string }>> = {
  // Table 3-1 Connect Reason Code values.
  [CONNACK]: {
    rule: '[MQTT-3.2.2-8]',
    codes: new Set([0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8c, 0x90, 0x95, 0x97, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9f]),
  },
  // PUBACK and PUBREC share one table (3.4.2.1, 3.5.2.1).
  [PUBACK]: { rule: '[MQTT-3.4.2-1]', codes: new Set([0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]) },
  [PUBREC]: { rule: '[MQTT-3.5.2-1]', codes: new Set([0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]) },
  [PUBREL]: { rule: '[MQTT-3.6.2-1]', codes: new Set([0x00, 0x92]) },
  [PUBCOMP]: { rule: '[MQTT-3.7.2-1]', codes: new Set([0x00, 0x92]) },
  // Table 3-8 Subscribe Reason Codes (3.9.3).
  [SUBACK]: { rule: '[MQTT-3.9.3-2]', codes: new Set([0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8f, 0x91, 0x97, 0x9e, 0xa1, 0xa2]) },
  // Table 3-9 Unsubscribe Reason Codes (3.11.3).
  [UNSUBACK]: { rule: '[MQTT-3.11.3-2]', codes: new Set([0x00, 0x11, 0x80, 0x83, 0x87, 0x8f, 0x91]) },
  // Table 3-10 Disconnect Reason Codes, without 0x04 (Disconnect with Will Message), whose sender is the Client.
  [DISCONNECT]: {
    rule: '[MQTT-3.14.2-1]',
    codes: new Set([0x00, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8b, 0x8d, 0x8e, 0x8f, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f, 0xa0, 0xa1, 0xa2]),
  },
  // Table 3-11 Authenticate Reason Codes, without 0x19 (Re-authenticate), whose sender is the Client.
  [AUTH]: { rule: '[MQTT-3.15.2-1]', codes: new Set([0x00, 0x18]) },
};

/** 3.1.1 CONNACK return codes 0-5 (Table 3.1; 6-255 are reserved). */
export const V4_CONNACK_CODES: ReadonlySet<number> = new Set([0, 1, 2, 3, 4, 5]);
/** 3.1.1 SUBACK return codes [MQTT-3.9.3-2]. */
export const V4_SUBACK_CODES: ReadonlySet<number> = new Set([0x00, 0x01, 0x02, 0x80]);
/** MQTT 3.1 SUBACK codes: the granted QoS; 3.1 has no failure code (added by 3.1.1). */
// The one knowing exception to the tables: MQTT 3.1 has no refusal code, and a broker that refuses a
// subscription must say something. Like Mosquitto, smq answers 3.1 clients with 3.1.1's 0x80 rather than
// pretend the subscription was granted (3.1 clients read it as failure or as no QoS they asked for).
export const V3_SUBACK_CODES: ReadonlySet<number> = new Set([0x00, 0x01, 0x02, 0x80]);

/** A rule with its conformance id (or section) at 5.0 and at 3.1.1; MQTT 3.1 is judged by 3.1.1's. */
export interface Rule {
  readonly v5: string;
  readonly v4: string;
}

/** The id of `r` at `level`. */
export function ruleAt(r: Rule, level: Level): string {
  return level === 5 ? r.v5 : r.v4;
}

/** The rules that exist at both levels under different ids (or with no id at one of them). */
export const RULES = {
  packetType: { v5: '§2.1.2', v4: '§2.2.1' },
  flags: { v5: '[MQTT-2.1.3-1]', v4: '[MQTT-2.2.2-1]' },
  remainingLength: { v5: '§2.1.4', v4: '§2.2.3' },
  // 3.1.1 has no MUST for the shortest encoding, but its algorithm (2.2.3) only produces it.
  minimalVarint: { v5: '[MQTT-1.5.5-1]', v4: '§2.2.3' },
  utf8: { v5: '[MQTT-1.5.4-1]', v4: '[MQTT-1.5.3-1]' },
  utf8Null: { v5: '[MQTT-1.5.4-2]', v4: '[MQTT-1.5.3-2]' },
  firstConnack: { v5: '[MQTT-3.2.0-1]', v4: '[MQTT-3.2.0-1]' },
  oneConnack: { v5: '[MQTT-3.2.0-2]', v4: '§3.2' },
  afterRefusal: { v5: '[MQTT-3.2.2-7]', v4: '[MQTT-3.2.2-5]' },
  sessionPresentOnRefusal: { v5: '[MQTT-3.2.2-6]', v4: '[MQTT-3.2.2-4]' },
  sessionPresentOnCleanStart: { v5: '[MQTT-3.2.2-2]', v4: '[MQTT-3.2.2-1]' },
  connackFlags: { v5: '[MQTT-3.2.2-1]', v4: '§3.2.2.1' },
  connackCode: { v5: '[MQTT-3.2.2-8]', v4: '§3.2.2.3' },
  unsupportedLevel: { v5: '[MQTT-3.1.2-2]', v4: '[MQTT-3.1.2-2]' },
  publishPidNonZero: { v5: '[MQTT-2.2.1-4]', v4: '[MQTT-2.3.1-1]' },
  publishPidUnused: { v5: '[MQTT-2.2.1-4]', v4: '[MQTT-2.3.1-4]' },
  ackPid: { v5: '[MQTT-2.2.1-5]', v4: '[MQTT-2.3.1-6]' },
  subackPid: { v5: '[MQTT-2.2.1-6]', v4: '[MQTT-2.3.1-7]' },
  subackCount: { v5: '[MQTT-3.8.4-6]', v4: '[MQTT-3.8.4-5]' },
  unsubackCount: { v5: '[MQTT-3.11.3-2]', v4: '§3.11.3' },
} as const satisfies Record<string, Rule>;
