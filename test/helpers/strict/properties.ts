/**
 * The strict checker's reading of a v5 property list sent by a Server (5.0 section 2.2.2): the Property Length,
 * then each property's identifier, whether that identifier is valid in this packet (Table 2-4), how often it
 * appears, and its value (range, encoding, UTF-8).
 */
import { Cursor, Malformed, utf8Problem, varintSize } from './bytes.js';
import type { ClientLimits } from './client-packets.js';
import {
  BOOLEAN_PROPERTIES, CONNACK, DISCONNECT, MAX_SUBSCRIPTION_ID, PROPERTIES, PROPERTY_SECTIONS, PUBLISH, RULES, repeatable,
  ruleAt, typeName, type Level,
} from './spec.js';

/** Records one broken rule. */
export type Report = (rule: string, message: string) => void;

/** The properties of one packet: how often each identifier appeared, and the numeric values in order. */
export interface Props {
  readonly count: Map<number, number>;
  readonly numbers: Map<number, number[]>;
}

/** Whether `s` contains a wildcard character (4.7.1). */
export function hasWildcard(b: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (b[i] === 0x2b || b[i] === 0x23) return true;
  return false;
}

/** Checks the UTF-8 string at [start, end) of `c.buf`; `field` names it in the message. */
export function checkUtf8(c: Cursor, start: number, end: number, field: string, report: Report, level: Level = 5, pair = false): void {
  const p = utf8Problem(c.buf, start, end);
  if (p === null) return;
  const what = p.kind === 'null' ? 'U+0000' : p.kind === 'surrogate' ? 'a surrogate (U+D800..U+DFFF)' : 'ill-formed UTF-8';
  // [MQTT-1.5.4-1] / [MQTT-1.5.3-1] well-formed, no surrogates; [MQTT-1.5.4-2] / [MQTT-1.5.3-2] no U+0000;
  // [MQTT-1.5.7-1] both strings of a pair.
  const rule = pair ? '[MQTT-1.5.7-1]' : ruleAt(p.kind === 'null' ? RULES.utf8Null : RULES.utf8, level);
  report(rule, `${field} holds ${what} at byte ${p.at}`);
}

/**
 * Reads the Property Length and the properties of a `packet` sent by the Server, reporting every rule broken;
 * throws Malformed when the list cannot be read on (an unknown identifier, a value past the Property Length).
 */
export function readProperties(c: Cursor, packet: number, limits: ClientLimits | null, report: Report): Props {
  const props: Props = { count: new Map(), numbers: new Map() };
  const len = c.varint('Property Length');
  if (len.size > varintSize(len.value)) report('[MQTT-1.5.5-1]', `Property Length ${len.value} encoded in ${len.size} bytes`);
  if (len.value > c.left) throw new Malformed('§2.2.2.1', `Property Length ${len.value} runs past the packet (${c.left} bytes left)`);
  const outer = c.narrow(c.pos + len.value);
  const short = c.shortRule;
  const where = typeName(packet);
  try {
    while (c.left > 0) {
      const id = c.varint('property identifier');
      if (id.size > 1) report('[MQTT-1.5.5-1]', `property identifier ${id.value} encoded in ${id.size} bytes`);
      const spec = PROPERTIES.get(id.value);
      // 2.2.2.2: an Identifier not valid for its packet type is a Malformed Packet; an unknown one cannot be skipped.
      if (spec === undefined) throw new Malformed('§2.2.2.2', `unknown property identifier 0x${id.value.toString(16)} in ${where}`);
      const name = `${spec.name} (0x${id.value.toString(16).padStart(2, '0')})`;
      if (!spec.packets.includes(packet)) report('§2.2.2.2', `${name} is not a ${where} property`);
      const n = (props.count.get(id.value) ?? 0) + 1;
      props.count.set(id.value, n);
      if (n === 2 && !repeatable(id.value, packet)) report(PROPERTY_SECTIONS[packet] ?? '§2.2.2.2', `${name} appears more than once`);
      let value: number | null = null;
      switch (spec.type) {
        case 'byte': value = c.u8(name); break;
        case 'u16': value = c.u16(name); break;
        case 'u32': value = c.u32(name); break;
        case 'varint': {
          const v = c.varint(name);
          if (v.size > varintSize(v.value)) report('[MQTT-1.5.5-1]', `${name} ${v.value} encoded in ${v.size} bytes`);
          value = v.value;
          break;
        }
        case 'binary': c.lengthPrefixed(name); break;
        case 'utf8': {
          const s = c.lengthPrefixed(name);
          checkUtf8(c, s.start, s.end, name, report);
          // [MQTT-3.3.2-14] the Response Topic is a Topic Name: no wildcards.
          if (id.value === 0x08 && hasWildcard(c.buf, s.start, s.end)) report('[MQTT-3.3.2-14]', 'Response Topic contains a wildcard');
          break;
        }
        case 'pair': {
          const k = c.lengthPrefixed(`${name} name`);
          checkUtf8(c, k.start, k.end, `${name} name`, report, 5, true);
          const v = c.lengthPrefixed(`${name} value`);
          checkUtf8(c, v.start, v.end, `${name} value`, report, 5, true);
          break;
        }
      }
      if (value !== null) {
        const list = props.numbers.get(id.value);
        if (list === undefined) props.numbers.set(id.value, [value]);
        else list.push(value);
        checkValue(id.value, name, value, packet, limits, report);
      }
      // [MQTT-3.1.2-29] a client that asked for no problem information gets Reason String and User Property only in
      // PUBLISH, CONNACK and DISCONNECT.
      if ((id.value === 0x1f || id.value === 0x26) && limits !== null && !limits.requestProblemInformation
        && packet !== PUBLISH && packet !== CONNACK && packet !== DISCONNECT) {
        report('[MQTT-3.1.2-29]', `${name} in ${where} to a client that set Request Problem Information to 0`);
      }
    }
  } catch (err) {
    // A value that runs past the Property Length is a property list error, not a Remaining Length one.
    if (err instanceof Malformed && err.rule === short) throw new Malformed('§2.2.2.1', `${err.message} (inside the Property Length)`);
    throw err;
  } finally {
    c.narrow(outer);
  }
  return props;
}

/** The ranges of 3.x: the "It is a Protocol Error ... to have the value 0" and "other than 0 or 1" sentences. */
function checkValue(id: number, name: string, value: number, packet: number, limits: ClientLimits | null, report: Report): void {
  if (BOOLEAN_PROPERTIES.has(id) && value > 1) report(PROPERTY_SECTIONS[packet] ?? '§2.2.2.2', `${name} is ${value}, not 0 or 1`);
  switch (id) {
    case 0x0b:
      if (value === 0 || value > MAX_SUBSCRIPTION_ID) report('§3.3.2.3.8', `Subscription Identifier ${value} is outside 1..${MAX_SUBSCRIPTION_ID}`);
      break;
    case 0x21:
      if (value === 0) report('§3.2.2.3.3', 'Receive Maximum is 0');
      break;
    case 0x27:
      if (value === 0) report('§3.2.2.3.6', 'Maximum Packet Size is 0');
      break;
    case 0x23:
      if (value === 0) report('[MQTT-3.3.2-8]', 'Topic Alias is 0');
      else if (limits !== null && limits.topicAliasMaximum === 0) {
        report('[MQTT-3.1.2-27]', `Topic Alias ${value} to a client that accepts none (no Topic Alias Maximum in its CONNECT)`);
      } else if (limits !== null && value > limits.topicAliasMaximum) {
        report('[MQTT-3.3.2-11]', `Topic Alias ${value} above the client's Topic Alias Maximum ${limits.topicAliasMaximum}`);
      }
      break;
    default:
      break;
  }
}
