/**
 * The strict checker's rules for single frames: for each rule a frame that passes and one that breaks it, as
 * commented bytes. Each conversation opens with a CONNECT and an accepting CONNACK (fixtures.ts) unless the rule
 * is about the opening.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { utf8Problem } from './bytes.js';
import { broken, bytes, CONNECT_V3, CONNECT_V5, CONNECT_V5_LIMITS, CONNECT_V5_NO_PROBLEMS, CONNACK_V4, CONNACK_V5, opening, type Step } from './fixtures.js';
import type { Level } from './spec.js';

const S = (src: string): Step => ['s', bytes(src)];
const C = (src: string): Step => ['c', bytes(src)];
/** The rules broken by `steps` after the opening at `level`. */
const at = (level: Level, ...steps: Step[]): string[] => broken([...opening(level), ...steps]);
/** The same after a v5 CONNECT with Topic Alias Maximum 2, Receive Maximum 1, Maximum Packet Size 64. */
const limited = (...steps: Step[]): string[] => broken([['c', CONNECT_V5_LIMITS], ['s', CONNACK_V5], ...steps]);

/** A client QoS 1 PUBLISH (id 1) at 3.1.1 and at 5.0, so a PUBACK has something to answer. */
const PUB1_V4 = C('32 06 00 01 74 00 01 78 # PUBLISH QoS 1, topic "t", id 1, payload "x"');
const PUB1_V5 = C('32 07 00 01 74 00 01 00 78 # PUBLISH QoS 1, topic "t", id 1, no properties, payload "x"');

describe('strict checker: fixed header', () => {
  test('packet types a Server may send', () => {
    assert.deepEqual(at(4, S('82 06 00 01 00 01 61 00 # SUBSCRIBE from the server')), ['§2.2.1']);
    assert.deepEqual(at(4, S('e0 00 # DISCONNECT: client-to-server only in 3.1.1')), ['§2.2.1']);
    assert.deepEqual(at(4, S('f0 00 # type 15: reserved in 3.1.1')), ['§2.2.1']);
    assert.deepEqual(at(5, S('e0 00 # DISCONNECT, normal: a 5.0 server may send it')), []);
  });

  test('reserved flag bits [MQTT-2.2.2-1] [MQTT-2.1.3-1]', () => {
    assert.deepEqual(at(4, S('d0 00 # PINGRESP')), []);
    assert.deepEqual(at(4, S('d1 00 # PINGRESP, flags 0001')), ['[MQTT-2.2.2-1]']);
    assert.deepEqual(at(5, S('d8 00 # PINGRESP, flags 1000')), ['[MQTT-2.1.3-1]']);
    const qos2 = [S('34 06 00 01 74 00 01 78 # PUBLISH QoS 2, "t", id 1'), C('50 02 00 01 # PUBREC 1')];
    assert.deepEqual(at(4, ...qos2, S('62 02 00 01 # PUBREL, flags 0010')), []);
    assert.deepEqual(at(4, ...qos2, S('60 02 00 01 # PUBREL, flags 0000')), ['[MQTT-2.2.2-1]']);
  });

  test('PUBLISH QoS 3 [MQTT-3.3.1-4] and DUP on QoS 0 [MQTT-3.3.1-2]', () => {
    assert.deepEqual(at(4, S('36 06 00 01 74 00 01 78 # PUBLISH, QoS bits 11')), ['[MQTT-3.3.1-4]']);
    assert.deepEqual(at(4, S('38 04 00 01 74 78 # PUBLISH QoS 0 with DUP')), ['[MQTT-3.3.1-2]']);
    assert.deepEqual(at(4, S('31 04 00 01 74 78 # PUBLISH QoS 0, retained')), []);
  });

  test('Remaining Length: shortest encoding [MQTT-1.5.5-1], at most 4 bytes', () => {
    assert.deepEqual(at(5, S('d0 80 00 # PINGRESP, length 0 in two bytes')), ['[MQTT-1.5.5-1]']);
    assert.deepEqual(at(4, S('d0 80 00 # the same at 3.1.1')), ['§2.2.3']);
    const c = broken([...opening(5), S('d0 ff ff ff ff 01 # a fifth length byte'), S('d0 00 # unreadable after it')]);
    assert.deepEqual(c, ['§1.5.5']);
  });

  test('Remaining Length equals what the fields take', () => {
    assert.deepEqual(at(4, PUB1_V4, S('40 03 00 01 00 # PUBACK of 3 bytes at 3.1.1')), ['§3.4.1']);
    assert.deepEqual(at(5, PUB1_V5, S('40 05 00 01 00 00 ff # PUBACK: id, reason, no properties, then a stray byte')), ['§3.4.3']);
    assert.deepEqual(at(5, S('d0 01 00 # PINGRESP with a body')), ['§3.13.1']);
    assert.deepEqual(at(4, S('30 03 00 05 61 # PUBLISH: topic length 5, one byte follows')), ['§2.2.3']);
    assert.deepEqual(broken([...opening(4).slice(0, 1), S('20 03 00 00 00 # CONNACK of 3 bytes at 3.1.1')]), ['§3.2.1']);
  });
});

describe('strict checker: packet identifiers', () => {
  test('PUBLISH QoS > 0 has a non-zero id [MQTT-2.3.1-1] [MQTT-2.2.1-4]', () => {
    assert.deepEqual(at(4, S('32 06 00 01 74 00 05 78 # PUBLISH QoS 1, id 5')), []);
    assert.deepEqual(at(4, S('32 06 00 01 74 00 00 78 # PUBLISH QoS 1, id 0')), ['[MQTT-2.3.1-1]']);
    assert.deepEqual(at(5, S('32 07 00 01 74 00 00 00 78 # PUBLISH QoS 1, id 0, no properties')), ['[MQTT-2.2.1-4]']);
  });

  test('acknowledgements never carry id 0 [MQTT-2.3.1-6]', () => {
    assert.deepEqual(at(4, PUB1_V4, S('40 02 00 01 # PUBACK 1')), []);
    assert.deepEqual(at(4, PUB1_V4, S('40 02 00 00 # PUBACK 0')), ['[MQTT-2.3.1-6]']);
  });
});

describe('strict checker: UTF-8 strings [MQTT-1.5.3-1/2] [MQTT-1.5.4-1/2]', () => {
  test('the decoder', () => {
    const cases: [string, string | null][] = [
      ['61 2f 62', null], ['e2 82 ac', null], ['f0 9f 98 80', null], ['ef bb bf', null], // ASCII, €, U+1F600, BOM
      ['00', 'null'], ['ed a0 80', 'surrogate'], ['ed bf bf', 'surrogate'], // U+0000, U+D800, U+DFFF
      ['c0 af', 'ill-formed'], ['e0 80 af', 'ill-formed'], ['f0 80 80 af', 'ill-formed'], // overlong
      ['f4 90 80 80', 'ill-formed'], ['f8 88 80 80 80', 'ill-formed'], // above U+10FFFF
      ['e2 82', 'ill-formed'], ['80', 'ill-formed'], ['c3 28', 'ill-formed'], // cut, stray continuation
    ];
    for (const [src, kind] of cases) assert.equal(utf8Problem(bytes(src))?.kind ?? null, kind, src);
  });

  test('in a Topic Name', () => {
    assert.deepEqual(at(4, S('30 06 00 03 e2 82 ac 78 # PUBLISH, topic "€"')), []);
    assert.deepEqual(at(4, S('30 06 00 03 ed a0 80 78 # topic holds the surrogate U+D800')), ['[MQTT-1.5.3-1]']);
    assert.deepEqual(at(5, S('30 07 00 03 ed a0 80 00 78 # the same at 5.0')), ['[MQTT-1.5.4-1]']);
    assert.deepEqual(at(4, S('30 05 00 02 61 00 78 # topic "a\\0"')), ['[MQTT-1.5.3-2]']);
    assert.deepEqual(at(5, S('30 06 00 02 c0 af 00 78 # overlong "/"')), ['[MQTT-1.5.4-1]']);
  });

  test('in properties: strings and string pairs [MQTT-1.5.7-1]', () => {
    assert.deepEqual(at(5, S('30 0c 00 01 74 07 26 00 01 6b 00 01 ff 78 # User Property value 0xff')), ['[MQTT-1.5.7-1]']);
    assert.deepEqual(at(5, S('30 09 00 01 74 04 03 00 01 00 78 # Content Type "\\0"')), ['[MQTT-1.5.4-2]']);
  });
});

describe('strict checker: Topic Names', () => {
  test('no wildcards [MQTT-3.3.2-2], not empty [MQTT-4.7.3-1]', () => {
    assert.deepEqual(at(4, S('30 06 00 03 61 2f 2b 78 # topic "a/+"')), ['[MQTT-3.3.2-2]']);
    assert.deepEqual(at(5, S('30 05 00 01 23 00 78 # topic "#"')), ['[MQTT-3.3.2-2]']);
    assert.deepEqual(at(4, S('30 03 00 00 78 # empty topic')), ['[MQTT-4.7.3-1]']);
    assert.deepEqual(at(5, S('30 04 00 00 00 78 # empty topic, no Topic Alias')), ['[MQTT-4.7.3-1]']);
  });

  test('Topic Alias: non-zero [MQTT-3.3.2-8], within the client\'s maximum [MQTT-3.3.2-11] [MQTT-3.1.2-27], mapped before use', () => {
    assert.deepEqual(limited(S('30 08 00 01 74 03 23 00 01 78 # "t" as alias 1'), S('30 07 00 00 03 23 00 01 78 # alias 1')), []);
    assert.deepEqual(limited(S('30 08 00 01 74 03 23 00 00 78 # alias 0')), ['[MQTT-3.3.2-8]']);
    assert.deepEqual(limited(S('30 08 00 01 74 03 23 00 03 78 # alias 3, maximum 2')), ['[MQTT-3.3.2-11]']);
    assert.deepEqual(at(5, S('30 08 00 01 74 03 23 00 01 78 # alias 1, the client allowed none')), ['[MQTT-3.1.2-27]']);
    assert.deepEqual(limited(S('30 07 00 00 03 23 00 02 78 # alias 2, never mapped')), ['§3.3.2.3.4']);
  });
});

describe('strict checker: v5 properties', () => {
  test('only PUBLISH properties in PUBLISH (2.2.2.2): the hostile-client finding', () => {
    assert.deepEqual(at(5, S('30 0a 00 01 74 05 11 00 00 00 3c 78 # Session Expiry Interval 60')), ['§2.2.2.2']);
    const five = at(5, S(`
      30 19       # PUBLISH QoS 0, remaining length 25
      00 01 74    # topic "t"
      14          # property length 20
      11 00 00 00 3c  # Session Expiry Interval
      21 00 0a    # Receive Maximum
      1c 00 01 78 # Server Reference "x"
      1f 00 01 78 # Reason String "x"
      12 00 01 78 # Assigned Client Identifier "x"
      78          # payload "x"
    `));
    assert.deepEqual(five, ['§2.2.2.2', '§2.2.2.2', '§2.2.2.2', '§2.2.2.2', '§2.2.2.2']);
    assert.deepEqual(at(5, S('30 07 00 01 74 02 05 00 78 # unknown property 0x05')), ['§2.2.2.2']);
    assert.deepEqual(broken([['c', CONNECT_V5], S('20 05 00 00 02 17 01 # CONNACK with Request Problem Information')]), ['§2.2.2.2']);
  });

  test('at most once, except User Property and Subscription Identifier', () => {
    const ok = S('30 17 00 01 74 12 0b 01 0b 02 26 00 01 6b 00 01 76 26 00 01 6b 00 01 76 78 # two ids, two pairs');
    assert.deepEqual(at(5, ok), []);
    assert.deepEqual(at(5, S('30 09 00 01 74 04 01 00 01 01 78 # Payload Format Indicator twice')), ['§3.3.2.3']);
  });

  test('lengths: Property Length within the packet, values within the Property Length', () => {
    assert.deepEqual(at(5, S('30 06 00 01 74 09 01 00 # Property Length 9, 2 bytes follow')), ['§2.2.2.1']);
    assert.deepEqual(at(5, S('30 06 00 01 74 01 02 78 # Message Expiry Interval cut by the Property Length')), ['§2.2.2.1']);
  });

  test('values in range', () => {
    assert.deepEqual(at(5, S('30 07 00 01 74 02 01 02 78 # Payload Format Indicator 2')), ['§3.3.2.3']);
    assert.deepEqual(at(5, S('30 07 00 01 74 02 0b 00 78 # Subscription Identifier 0')), ['§3.3.2.3.8']);
    assert.deepEqual(at(5, S('30 08 00 01 74 03 0b 81 00 78 # Subscription Identifier 1 in two bytes')), ['[MQTT-1.5.5-1]']);
    assert.deepEqual(at(5, S('30 09 00 01 74 04 08 00 01 23 78 # Response Topic "#"')), ['[MQTT-3.3.2-14]']);
    const connack = (src: string): string[] => broken([['c', CONNECT_V5], S(src)]);
    assert.deepEqual(connack('20 0d 00 00 0a 24 01 25 00 22 00 0a 13 00 1e # Maximum QoS 1, no retain, aliases 10, keep alive 30'), []);
    assert.deepEqual(connack('20 06 00 00 03 21 00 00 # Receive Maximum 0'), ['§3.2.2.3.3']);
    assert.deepEqual(connack('20 05 00 00 02 24 02 # Maximum QoS 2'), ['§3.2.2.3']);
    assert.deepEqual(connack('20 08 00 00 05 27 00 00 00 00 # Maximum Packet Size 0'), ['§3.2.2.3.6']);
    assert.deepEqual(connack('20 05 00 00 02 2a 07 # Shared Subscription Available 7'), ['§3.2.2.3']);
  });

  test('what the client asked for: Response Information [MQTT-3.1.2-28], problem information [MQTT-3.1.2-29], authentication [MQTT-4.12.0-6]', () => {
    assert.deepEqual(broken([['c', CONNECT_V5], S('20 07 00 00 04 1a 00 01 72 # Response Information "r"')]), ['[MQTT-3.1.2-28]']);
    assert.deepEqual(broken([['c', CONNECT_V5], S('20 07 00 00 04 15 00 01 6d # Authentication Method "m"')]), ['[MQTT-4.12.0-6]']);
    assert.deepEqual(at(5, S('f0 00 # AUTH, success')), ['[MQTT-4.12.0-6]']);
    const quiet: Step[] = [['c', CONNECT_V5_NO_PROBLEMS], ['s', CONNACK_V5], PUB1_V5];
    assert.deepEqual(broken([...quiet, S('40 08 00 01 00 04 1f 00 01 78 # PUBACK with a Reason String')]), ['[MQTT-3.1.2-29]']);
    assert.deepEqual(broken([...quiet, S('e0 06 00 04 1f 00 01 78 # DISCONNECT with a Reason String')]), []);
  });
});

describe('strict checker: reason codes', () => {
  test('5.0 tables, as a Server sends them', () => {
    assert.deepEqual(at(5, PUB1_V5, S('40 03 00 01 10 # PUBACK, no matching subscribers')), []);
    assert.deepEqual(at(5, PUB1_V5, S('40 03 00 01 92 # PUBACK 0x92')), ['[MQTT-3.4.2-1]']);
    assert.deepEqual(at(5, C('34 07 00 01 74 00 01 00 78 # client PUBLISH QoS 2'), S('50 03 00 01 92 # PUBREC 0x92')), ['[MQTT-3.5.2-1]']);
    assert.deepEqual(at(5, C('62 02 00 07 # client PUBREL 7'), S('70 03 00 07 10 # PUBCOMP 0x10')), ['[MQTT-3.7.2-1]']);
    const qos2 = [S('34 07 00 01 74 00 01 00 78 # PUBLISH QoS 2, id 1'), C('50 02 00 01 # PUBREC 1')];
    assert.deepEqual(at(5, ...qos2, S('62 03 00 01 10 # PUBREL 0x10')), ['[MQTT-3.6.2-1]']);
    const sub = C('82 07 00 01 00 00 01 61 01 # SUBSCRIBE id 1, "a" QoS 1');
    assert.deepEqual(at(5, sub, S('90 04 00 01 00 01 # SUBACK granted 1')), []);
    assert.deepEqual(at(5, sub, S('90 04 00 01 00 03 # SUBACK 0x03')), ['[MQTT-3.9.3-2]']);
    assert.deepEqual(at(5, C('a2 06 00 01 00 00 01 61 # UNSUBSCRIBE "a"'), S('b0 04 00 01 00 02 # UNSUBACK 0x02')), ['[MQTT-3.11.3-2]']);
    assert.deepEqual(at(5, S('e0 01 8b # DISCONNECT, server shutting down')), []);
    assert.deepEqual(at(5, S('e0 01 04 # DISCONNECT 0x04, a client\'s code')), ['[MQTT-3.14.2-1]']);
    assert.deepEqual(at(5, S('e0 07 00 05 11 00 00 00 00 # DISCONNECT with Session Expiry Interval')), ['[MQTT-3.14.2-2]']);
    assert.deepEqual(broken([['c', CONNECT_V5], S('20 03 00 01 00 # CONNACK 0x01, a 3.1.1 code')]), ['[MQTT-3.2.2-8]']);
    const auth = C('10 12 00 04 4d 51 54 54 05 02 00 3c 04 15 00 01 6d 00 01 63 # CONNECT, Authentication Method "m"');
    assert.deepEqual(broken([auth, S('f0 06 18 04 15 00 01 6d # AUTH, continue')]), []);
    assert.deepEqual(broken([auth, S('f0 01 19 # AUTH, re-authenticate: a client\'s code')]), ['[MQTT-3.15.2-1]']);
  });

  test('3.1.1 and 3.1 CONNACK', () => {
    const v4 = (src: string): string[] => broken([...opening(4).slice(0, 1), S(src)]);
    assert.deepEqual(v4('20 02 00 05 # not authorized'), []);
    assert.deepEqual(v4('20 02 00 06 # return code 6: reserved'), ['§3.2.2.3']);
    assert.deepEqual(v4('20 02 01 05 # Session Present with a refusal'), ['[MQTT-3.2.2-4]']);
    assert.deepEqual(v4('20 02 02 00 # flags 0x02'), ['§3.2.2.1']);
    assert.deepEqual(broken([['c', CONNECT_V3], S('20 02 01 00 # Session Present at 3.1')]), ['MQTT 3.1 §3.2']);
    assert.deepEqual(broken([['c', CONNECT_V3], ['s', CONNACK_V4]]), []);
  });

  test('3.1.1 and 3.1 SUBACK and UNSUBACK', () => {
    const sub = C('82 06 00 01 00 01 61 01 # SUBSCRIBE id 1, "a" QoS 1');
    assert.deepEqual(at(4, sub, S('90 03 00 01 80 # SUBACK failure')), []);
    assert.deepEqual(at(4, sub, S('90 03 00 01 03 # SUBACK 0x03')), ['[MQTT-3.9.3-2]']);
    assert.deepEqual(at(3, sub, S('90 03 00 01 80 # SUBACK failure: none in 3.1, 3.1.1\'s code (spec.ts)')), []);
    assert.deepEqual(at(3, sub, S('90 03 00 01 81 # SUBACK 0x81')), ['MQTT 3.1 §3.9']);
    const unsub = C('a2 05 00 01 00 01 61 # UNSUBSCRIBE "a"');
    assert.deepEqual(at(4, unsub, S('b0 02 00 01 # UNSUBACK')), []);
    assert.deepEqual(at(4, unsub, S('b0 03 00 01 00 # UNSUBACK with a payload')), ['§3.11.1']);
  });
});
