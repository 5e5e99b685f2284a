/**
 * The strict checker's rules across a connection: CONNACK first and once, silence after a refusal or a
 * DISCONNECT, what the client's CONNECT asked for, packet ids in flight, Receive Maximum, acknowledgements that
 * answer something; and that frames split anywhere are judged the same. Commented bytes, as in frames.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatViolation } from './checker.js';
import {
  broken, bytes, CONNACK_V4, CONNACK_V5, CONNECT_V4, CONNECT_V5, CONNECT_V5_LIMITS, opening, play, type Step,
} from './fixtures.js';
import type { Level } from './spec.js';

const S = (src: string): Step => ['s', bytes(src)];
const C = (src: string): Step => ['c', bytes(src)];
const at = (level: Level, ...steps: Step[]): string[] => broken([...opening(level), ...steps]);
const limited = (...steps: Step[]): string[] => broken([['c', CONNECT_V5_LIMITS], ['s', CONNACK_V5], ...steps]);

/** Server PUBLISH "t" with packet id `id` at QoS 1 (3.1.1 encoding), DUP when asked. */
const pub1 = (id: number, dup = false): Step => ['s', bytes(`${dup ? '3a' : '32'} 06 00 01 74 00 ${id.toString(16).padStart(2, '0')} 78`)];
/** The same at 5.0 (property length 0). */
const pub1v5 = (id: number): Step => ['s', bytes(`32 07 00 01 74 00 ${id.toString(16).padStart(2, '0')} 00 78`)];
const puback = (id: number): Step => ['c', bytes(`40 02 00 ${id.toString(16).padStart(2, '0')}`)];

describe('strict checker: the opening', () => {
  test('CONNACK comes first [MQTT-3.2.0-1]; no DISCONNECT before it [MQTT-3.14.0-1]', () => {
    assert.deepEqual(broken([['c', CONNECT_V4], S('d0 00 # PINGRESP before CONNACK'), ['s', CONNACK_V4]]), ['[MQTT-3.2.0-1]']);
    assert.deepEqual(broken([['c', CONNECT_V5], S('e0 01 81 # DISCONNECT, malformed')]), ['[MQTT-3.14.0-1]']);
  });

  test('one CONNACK [MQTT-3.2.0-2]', () => {
    assert.deepEqual(at(5, ['s', CONNACK_V5]), ['[MQTT-3.2.0-2]']);
    assert.deepEqual(at(4, ['s', CONNACK_V4]), ['§3.2']);
  });

  test('nothing after a refusal [MQTT-3.2.2-5] [MQTT-3.2.2-7]', () => {
    assert.deepEqual(broken([['c', CONNECT_V4], S('20 02 00 05 # not authorized')]), []);
    assert.deepEqual(broken([['c', CONNECT_V4], S('20 02 00 05 # not authorized'), S('d0 00 # PINGRESP')]), ['[MQTT-3.2.2-5]']);
    assert.deepEqual(broken([['c', CONNECT_V5], S('20 03 00 87 00 # not authorized'), S('e0 01 87 # DISCONNECT')]), ['[MQTT-3.2.2-7]']);
  });

  test('nothing after the Server\'s DISCONNECT [MQTT-3.14.4-1]', () => {
    assert.deepEqual(at(5, S('e0 01 8b # DISCONNECT, shutting down'), S('d0 00 # PINGRESP')), ['[MQTT-3.14.4-1]']);
  });

  test('no Session Present for a clean start [MQTT-3.2.2-1] [MQTT-3.2.2-2]', () => {
    assert.deepEqual(broken([['c', CONNECT_V4], S('20 02 01 00 # session present')]), ['[MQTT-3.2.2-1]']);
    assert.deepEqual(broken([['c', CONNECT_V5], S('20 03 01 00 00 # session present')]), ['[MQTT-3.2.2-2]']);
    const resume = C('10 0d 00 04 4d 51 54 54 04 00 00 3c 00 01 63 # CONNECT 3.1.1, CleanSession 0');
    assert.deepEqual(broken([resume, S('20 02 01 00 # session present')]), []);
  });

  test('an unsupported level is refused [MQTT-3.1.2-2]', () => {
    const level7 = C('10 0d 00 04 4d 51 54 54 07 02 00 3c 00 01 63 # CONNECT, protocol level 7');
    assert.deepEqual(broken([level7, S('20 02 00 01 # unacceptable protocol version')]), []);
    assert.deepEqual(broken([level7, S('20 02 00 00 # accepted')]), ['[MQTT-3.1.2-2]']);
    const bridge = C('10 0d 00 04 4d 51 54 54 84 02 00 3c 00 01 63 # CONNECT, level 4 with the bridge bit');
    assert.deepEqual(broken([bridge, ['s', CONNACK_V4]]), []);
  });

  test('the level is learnt from a CONNECT cut after it', () => {
    const cut = C('10 0b 00 04 4d 51 54 54 05 02 00 3c 09 # CONNECT 5.0, property length 9, nothing after it');
    assert.deepEqual(broken([cut, S('20 03 00 81 00 # CONNACK 5.0, malformed packet')]), []);
  });

  test('the level is learnt from a CONNECT followed by bytes that cannot be framed', () => {
    const connectThenGarbage = C(`
      10 0f 00 04 4d 51 54 54 05 02 00 00 00 00 02 ff ff # CONNECT 5.0, client id FF FF (not UTF-8)
      ff ff ff ff ff ff                                   # then a Remaining Length of more than 4 bytes
    `);
    assert.deepEqual(broken([connectThenGarbage, S('20 03 00 85 00 # CONNACK 5.0, client identifier not valid')]), []);
  });

  test('an empty Client Identifier is answered with the one assigned [MQTT-3.2.2-16]', () => {
    const empty = C('10 0d 00 04 4d 51 54 54 05 02 00 3c 00 00 00 # CONNECT 5.0, client id ""');
    assert.deepEqual(broken([empty, S('20 07 00 00 04 12 00 01 61 # Assigned Client Identifier "a"')]), []);
    assert.deepEqual(broken([empty, ['s', CONNACK_V5]]), ['[MQTT-3.2.2-16]']);
  });
});

describe('strict checker: the client\'s limits', () => {
  test('Maximum Packet Size [MQTT-3.1.2-24]', () => {
    const payload = (n: number): string => '78 '.repeat(n);
    // 2 + 3 (topic) + 1 (property length) + payload: 58 bytes of payload make a 64-byte packet.
    assert.deepEqual(limited(S(`30 3e 00 01 74 00 ${payload(58)} # PUBLISH of 64 bytes`)), []);
    assert.deepEqual(limited(S(`30 3f 00 01 74 00 ${payload(59)} # PUBLISH of 65 bytes`)), ['[MQTT-3.1.2-24]']);
  });

  test('Receive Maximum: unacknowledged QoS 1 and 2 PUBLISH [MQTT-3.3.4-9]', () => {
    assert.deepEqual(limited(pub1v5(1), puback(1), pub1v5(2)), []);
    assert.deepEqual(limited(pub1v5(1), pub1v5(2)), ['[MQTT-3.3.4-9]']);
    const qos2 = S('34 07 00 01 74 00 01 00 78 # PUBLISH QoS 2, id 1');
    assert.deepEqual(limited(qos2, C('50 03 00 01 80 # PUBREC, unspecified error: acknowledged'), pub1v5(2)), []);
    assert.deepEqual(limited(qos2, C('50 02 00 01 # PUBREC: still in flight until PUBCOMP'), pub1v5(2)), ['[MQTT-3.3.4-9]']);
  });
});

describe('strict checker: packet identifiers in flight', () => {
  test('a new PUBLISH takes an unused id [MQTT-2.3.1-4] [MQTT-2.2.1-4]', () => {
    assert.deepEqual(at(4, pub1(1), puback(1), pub1(1)), []);
    assert.deepEqual(at(4, pub1(1), pub1(1)), ['[MQTT-2.3.1-4]']);
    assert.deepEqual(at(5, pub1v5(1), pub1v5(1)), ['[MQTT-2.2.1-4]']);
    assert.deepEqual(at(4, pub1(1), pub1(1, true)), [], 'a retransmission (DUP) reuses its id');
  });

  test('DUP only on a retransmission [MQTT-3.3.1-3]', () => {
    assert.deepEqual(at(4, pub1(3, true)), ['[MQTT-3.3.1-3]']);
    const resume = C('10 0d 00 04 4d 51 54 54 04 00 00 3c 00 01 63 # CONNECT 3.1.1, CleanSession 0');
    assert.deepEqual(broken([resume, S('20 02 01 00 # session present'), pub1(3, true)]), [], 'a resumed session resends with DUP');
  });

  test('QoS 2: PUBREL after PUBREC, and never the PUBLISH again [MQTT-4.3.3-6]', () => {
    const qos2 = S('34 06 00 01 74 00 01 78 # PUBLISH QoS 2, id 1');
    const rec = C('50 02 00 01 # PUBREC 1');
    const rel = S('62 02 00 01 # PUBREL 1');
    assert.deepEqual(at(4, qos2, rec, rel, C('70 02 00 01 # PUBCOMP 1'), qos2), []);
    assert.deepEqual(at(4, qos2, rel), ['§4.3.3']);
    assert.deepEqual(at(4, qos2, rec, rel, S('3c 06 00 01 74 00 01 78 # PUBLISH QoS 2, DUP, id 1')), ['[MQTT-4.3.3-6]']);
    assert.deepEqual(at(4, rel), ['[MQTT-2.3.1-6]'], 'a new session has nothing to release');
    assert.deepEqual(at(5, C('50 02 00 01 # PUBREC 1, unknown to the server'), S('62 03 00 01 92 # PUBREL 1, Packet Identifier not found')), []);
    // A PUBREC naming a QoS 1 PUBLISH (a fuzz input found it): the Server's PUBREL 0x92 is its right answer, and the
    // PUBLISH still waits for its PUBACK.
    const notFound = S('62 03 00 01 92 # PUBREL 1, Packet Identifier not found');
    assert.deepEqual(at(5, pub1v5(1), rec, notFound, puback(1)), []);
    assert.deepEqual(at(5, rec, pub1v5(1), notFound), [], 'captured out of order');
    assert.deepEqual(at(5, notFound), ['[MQTT-2.2.1-5]'], 'PUBREL 0x92 answers a PUBREC, not nothing');
  });
});

describe('strict checker: acknowledgements answer the client', () => {
  test('PUBACK, PUBREC and PUBCOMP answer a client packet with that id [MQTT-2.3.1-6] [MQTT-2.2.1-5]', () => {
    assert.deepEqual(at(4, S('40 02 00 09 # PUBACK 9, never published')), ['[MQTT-2.3.1-6]']);
    assert.deepEqual(at(5, S('50 02 00 09 # PUBREC 9, never published')), ['[MQTT-2.2.1-5]']);
    assert.deepEqual(at(4, C('62 02 00 09 # client PUBREL 9'), S('70 02 00 09 # PUBCOMP 9')), []);
    const twice = C('32 06 00 01 74 00 04 78 # client PUBLISH QoS 1, id 4');
    assert.deepEqual(at(4, twice, twice, S('40 02 00 04 # PUBACK 4'), S('40 02 00 04 # PUBACK 4')), []);
    assert.deepEqual(at(4, twice, S('40 02 00 04 # PUBACK 4'), S('40 02 00 04 # PUBACK 4 again')), ['[MQTT-2.3.1-6]']);
  });

  test('SUBACK and UNSUBACK: the id [MQTT-2.3.1-7] and a code per topic filter [MQTT-3.8.4-5] [MQTT-3.8.4-6] [MQTT-3.11.3-2]', () => {
    const sub2 = C('82 0a 00 02 00 01 61 01 00 01 62 02 # SUBSCRIBE id 2: "a" QoS 1, "b" QoS 2');
    assert.deepEqual(at(4, sub2, S('90 04 00 02 01 02 # SUBACK 2: 1, 2')), []);
    assert.deepEqual(at(4, sub2, S('90 03 00 02 01 # SUBACK 2: one code for two filters')), ['[MQTT-3.8.4-5]']);
    assert.deepEqual(at(4, sub2, S('90 04 00 03 01 02 # SUBACK 3')), ['[MQTT-2.3.1-7]']);
    assert.deepEqual(at(4, C('82 06 00 00 00 01 61 01 # SUBSCRIBE with id 0'), S('90 03 00 00 01 # SUBACK 0')), ['[MQTT-2.3.1-7]']);
    const sub5 = C('82 07 00 02 00 00 01 61 01 # SUBSCRIBE 5.0 id 2, "a"');
    assert.deepEqual(at(5, sub5, S('90 05 00 02 00 01 01 # SUBACK 2: two codes for one filter')), ['[MQTT-3.8.4-6]']);
    const unsub5 = C('a2 09 00 03 00 00 01 61 00 01 62 # UNSUBSCRIBE 5.0 id 3: "a", "b"');
    assert.deepEqual(at(5, unsub5, S('b0 05 00 03 00 00 11 # UNSUBACK 3: success, no subscription')), []);
    assert.deepEqual(at(5, unsub5, S('b0 04 00 03 00 00 # UNSUBACK 3: one code')), ['[MQTT-3.11.3-2]']);
  });

  test('a client packet the checker cannot read stands the pairing rules down', () => {
    assert.deepEqual(at(4, C('32 01 00 # client PUBLISH QoS 1, cut'), S('40 02 00 09 # PUBACK 9')), []);
  });
});

describe('strict checker: streaming', () => {
  const conversation: Step[] = [
    ['c', CONNECT_V5_LIMITS], ['s', CONNACK_V5],
    S('30 08 00 01 74 03 23 00 01 78 # "t" as alias 1'),
    S('32 09 00 00 00 01 03 23 00 01 78 # QoS 1 by alias 1: id 1'),
    puback(1),
    S('30 0a 00 01 74 05 11 00 00 00 3c 78 # Session Expiry Interval in PUBLISH'),
    S('d0 00 # PINGRESP'),
  ];

  test('the same verdict whole and one byte at a time', () => {
    const whole = play(conversation).violations.map(formatViolation);
    const split = play(conversation, true).violations.map(formatViolation);
    assert.equal(whole.length, 1);
    assert.deepEqual(split, whole);
    assert.match(whole[0] as string, /^§2\.2\.2\.2 fixture PUBLISH #4 \(level 5\): Session Expiry Interval \(0x11\) is not a PUBLISH property\n {4}30 0a 00 01 74 05 11 00 00 00 3c 78$/);
  });

  test('frames packed into one chunk', () => {
    const c = play([['c', Buffer.concat([CONNECT_V4, bytes('32 06 00 01 74 00 01 78')])], ['s', Buffer.concat([CONNACK_V4, bytes('40 02 00 01 d0 00')])]]);
    assert.deepEqual(c.violations, []);
  });

  test('a client acknowledgement seen before the PUBLISH it answers (both directions captured out of order)', () => {
    assert.deepEqual(at(5, C('40 02 00 01 # PUBACK 1, recorded first'), pub1v5(1), pub1v5(1)), []);
  });
});
