/**
 * Byte fixtures for the strict checker's tests, mochi-mqtt style: raw bytes written as hex, one field per line,
 * each commented. The openings every conversation needs (a CONNECT per level, an accepting CONNACK) are here;
 * the packets a rule is about are written in the test beside it.
 */
import { StrictChecker } from './checker.js';
import type { Level } from './spec.js';

/** Bytes from hex with spaces, newlines and `#` comments. */
export function bytes(src: string): Buffer {
  const digits = src.split('\n').map((l) => l.replace(/#.*$/, '')).join('').replace(/\s+/g, '');
  if (!/^([0-9a-fA-F]{2})*$/.test(digits)) throw new Error(`bad hex fixture: ${digits}`);
  return Buffer.from(digits, 'hex');
}

/** CONNECT at 3.1.1, clean session, client id "c". */
export const CONNECT_V4 = bytes(`
  10 0d             # CONNECT, remaining length 13
  00 04 4d 51 54 54 # protocol name "MQTT"
  04                # level 4
  02                # flags: clean session
  00 3c             # keep alive 60
  00 01 63          # client id "c"
`);

/** CONNECT at 3.1 (MQIsdp), clean session, client id "c". */
export const CONNECT_V3 = bytes(`
  10 0f                   # CONNECT, remaining length 15
  00 06 4d 51 49 73 64 70 # protocol name "MQIsdp"
  03                      # level 3
  02                      # flags: clean session
  00 3c                   # keep alive 60
  00 01 63                # client id "c"
`);

/** CONNECT at 5.0, clean start, no properties, client id "c". */
export const CONNECT_V5 = bytes(`
  10 0e             # CONNECT, remaining length 14
  00 04 4d 51 54 54 # protocol name "MQTT"
  05                # level 5
  02                # flags: clean start
  00 3c             # keep alive 60
  00                # property length 0
  00 01 63          # client id "c"
`);

/** CONNECT at 5.0 with limits: Topic Alias Maximum 2, Receive Maximum 1, Maximum Packet Size 64. */
export const CONNECT_V5_LIMITS = bytes(`
  10 19             # CONNECT, remaining length 25
  00 04 4d 51 54 54 # protocol name "MQTT"
  05                # level 5
  02                # flags: clean start
  00 3c             # keep alive 60
  0b                # property length 11
  22 00 02          # Topic Alias Maximum 2
  21 00 01          # Receive Maximum 1
  27 00 00 00 40    # Maximum Packet Size 64
  00 01 63          # client id "c"
`);

/** CONNECT at 5.0 with Request Problem Information 0. */
export const CONNECT_V5_NO_PROBLEMS = bytes(`
  10 10             # CONNECT, remaining length 16
  00 04 4d 51 54 54 # protocol name "MQTT"
  05                # level 5
  02                # flags: clean start
  00 3c             # keep alive 60
  02                # property length 2
  17 00             # Request Problem Information 0
  00 01 63          # client id "c"
`);

/** CONNACK accepting at 3.1.1 (and 3.1): no session, return code 0. */
export const CONNACK_V4 = bytes('20 02 00 00 # CONNACK, length 2, no session present, accepted');
/** CONNACK accepting at 5.0: no session, reason 0, no properties. */
export const CONNACK_V5 = bytes('20 03 00 00 00 # CONNACK, length 3, no session present, success, property length 0');

/** The opening of a conversation at `level`: its CONNECT and an accepting CONNACK. */
export function opening(level: Level): Step[] {
  const connect = level === 3 ? CONNECT_V3 : level === 4 ? CONNECT_V4 : CONNECT_V5;
  return [['c', connect], ['s', level === 5 ? CONNACK_V5 : CONNACK_V4]];
}

/** One step of a conversation: bytes from the client (`c`) or from the server (`s`). */
export type Step = readonly ['c' | 's', Buffer];

/** Plays `steps` through a new checker (whole chunks, or one byte at a time with `split`). */
export function play(steps: readonly Step[], split = false): StrictChecker {
  const checker = new StrictChecker({ label: 'fixture' });
  for (const [side, b] of steps) {
    const chunks = split ? [...b].map((x) => Buffer.from([x])) : [b];
    for (const chunk of chunks) {
      if (side === 'c') checker.client(chunk);
      else checker.server(chunk);
    }
  }
  return checker;
}

/** The rule ids the conversation broke, in order. */
export function broken(steps: readonly Step[]): string[] {
  return play(steps).violations.map((v) => v.rule);
}

/** A server PUBLISH no server may send (Session Expiry Interval is not a PUBLISH property): what the tap tests feed. */
export const BAD_PUBLISH = bytes(`
  30 0a          # PUBLISH QoS 0, remaining length 10
  00 01 74       # topic "t"
  05             # property length 5
  11 00 00 00 3c # Session Expiry Interval 60: not a PUBLISH property
  78             # payload "x"
`);
