import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isValidClientId, isValidTopicFilter, isValidTopicName, parseShared } from './validate.js';

/** What mqtt-packet hands the broker for a string field: the bytes decoded as Buffer.toString('utf8') does. */
function decoded(bytes: readonly number[]): string {
  return Buffer.from(bytes).toString('utf8');
}

const LONG_OK = 'a'.repeat(65_535);
const LONG_BAD = 'a'.repeat(65_536);
/** 21,845 three-byte characters = 65,535 bytes; one more is over the limit although .length is only 21,846. */
const WIDE_OK = '\u20ac'.repeat(21_845);
const WIDE_BAD = '\u20ac'.repeat(21_846);

describe('isValidTopicFilter', () => {
  const cases: readonly (readonly [string, boolean])[] = [
    ['#', true],
    ['+', true],
    ['+/+', true],
    ['/', true],
    ['//', true],
    ['a', true],
    ['a/b', true],
    ['a//b', true],
    ['/a', true],
    ['a/', true],
    ['a/#', true],
    ['/#', true],
    ['+/#', true],
    ['a/+/b', true],
    ['+/a/+', true],
    ['a/+', true],
    ['$SYS/#', true],
    ['$share/g/a', true], // a valid plain filter; whether it is shared is parseShared's business
    ['sport/tennis/#', true],
    ['caf\u00e9/\u{1f600}', true],
    [LONG_OK, true],
    [WIDE_OK, true],
    ['', false], // [MQTT-4.7.3-1]
    ['a/#/b', false], // [MQTT-4.7.1-2]
    ['a/b#', false],
    ['#/', false],
    ['##', false],
    ['a#', false],
    ['#a', false],
    ['a+', false], // [MQTT-4.7.1-3]
    ['+a', false],
    ['a/+b', false],
    ['a/b+/c', false],
    ['++', false],
    ['+#', false],
    ['a\u0000', false],
    ['\u0000', false],
    ['a/\ufffd', false],
    ['a\ud800', false], // lone high surrogate
    ['a\udc00b', false], // lone low surrogate
    [LONG_BAD, false],
    [WIDE_BAD, false],
  ];
  for (const [filter, valid] of cases) {
    it(`${JSON.stringify(filter.length > 40 ? `${filter.slice(0, 10)}…(${filter.length})` : filter)} is ${valid ? 'valid' : 'invalid'}`, () => {
      assert.equal(isValidTopicFilter(filter), valid);
    });
  }
});

describe('isValidTopicName', () => {
  const cases: readonly (readonly [string, boolean])[] = [
    ['a', true],
    ['a/b', true],
    ['/', true],
    ['a//b', true],
    ['$SYS/broker/uptime', true],
    [' ', true],
    ['caf\u00e9/\u{1f600}', true], // a surrogate pair is one well-formed 4-byte character
    [LONG_OK, true],
    [WIDE_OK, true],
    ['', false],
    ['#', false], // [MQTT-3.3.2-2]
    ['+', false],
    ['a/+', false],
    ['a/#', false],
    ['a+b', false],
    ['a\u0000b', false],
    ['a\ufffd', false],
    ['\ud83d', false], // half of a pair
    ['\ude00x', false],
    [LONG_BAD, false],
    [WIDE_BAD, false],
  ];
  for (const [topic, valid] of cases) {
    it(`${JSON.stringify(topic.length > 40 ? `${topic.slice(0, 10)}…(${topic.length})` : topic)} is ${valid ? 'valid' : 'invalid'}`, () => {
      assert.equal(isValidTopicName(topic), valid);
    });
  }

  it('rejects what the decoder made of ill-formed UTF-8', () => {
    const illFormed: readonly (readonly number[])[] = [
      [0x61, 0xc0, 0xaf], // overlong '/'
      [0x61, 0x80], // stray continuation byte
      [0xed, 0xa0, 0x80], // encoded surrogate U+D800
      [0xe2, 0x82], // truncated sequence
      [0xff],
    ];
    for (const bytes of illFormed) {
      const topic = decoded(bytes);
      assert.equal(isValidTopicName(topic), false, JSON.stringify(bytes));
      assert.equal(isValidTopicFilter(topic), false, JSON.stringify(bytes));
      assert.equal(isValidClientId(topic), false, JSON.stringify(bytes));
    }
    assert.equal(isValidTopicName(decoded([0x61, 0xf0, 0x9f, 0x98, 0x80])), true);
  });
});

describe('parseShared', () => {
  const cases: readonly (readonly [string, { group: string; filter: string } | null | 'invalid'])[] = [
    ['$share/g/a/b', { group: 'g', filter: 'a/b' }],
    ['$share/group-1/#', { group: 'group-1', filter: '#' }],
    ['$share/g/+', { group: 'g', filter: '+' }],
    ['$share/g//', { group: 'g', filter: '/' }],
    ['$share/g/$SYS/#', { group: 'g', filter: '$SYS/#' }],
    ['$share/\u00e9quipe/a', { group: '\u00e9quipe', filter: 'a' }],
    ['$share/$share/a', { group: '$share', filter: 'a' }],
    ['$queue/a/b', { group: '$queue', filter: 'a/b' }],
    ['$queue/#', { group: '$queue', filter: '#' }],
    ['$queue//', { group: '$queue', filter: '/' }],
    ['a/b', null],
    ['#', null],
    ['$share', null],
    ['$queue', null],
    ['$sharex/g/a', null],
    ['$SHARE/g/a', null],
    ['share/g/a', null],
    ['$SYS/#', null],
    ['$share/', 'invalid'],
    ['$share/g', 'invalid'], // [MQTT-4.8.2-2] no filter
    ['$share/g/', 'invalid'], // empty filter [MQTT-4.7.3-1]
    ['$share//a', 'invalid'], // [MQTT-4.8.2-1] empty group
    ['$share/g+/a', 'invalid'], // [MQTT-4.8.2-2]
    ['$share/+/a', 'invalid'],
    ['$share/#/a', 'invalid'],
    ['$share/g#/a', 'invalid'],
    ['$share/g\u0000/a', 'invalid'],
    ['$share/g\ufffd/a', 'invalid'],
    ['$share/g/a/#/b', 'invalid'],
    ['$share/g/a+', 'invalid'],
    ['$share/g/a\u0000', 'invalid'],
    ['$queue/', 'invalid'],
    ['$queue/a#', 'invalid'],
    ['$queue/+x', 'invalid'],
    [`$share/g/${'a'.repeat(65_535 - 9)}`, { group: 'g', filter: 'a'.repeat(65_535 - 9) }],
    [`$share/g/${'a'.repeat(65_535 - 8)}`, 'invalid'], // whole filter over 65,535 bytes
    [`$share/\u20ac/${'a'.repeat(65_535 - 11)}`, { group: '\u20ac', filter: 'a'.repeat(65_535 - 11) }],
    [`$share/\u20ac/${'a'.repeat(65_535 - 10)}`, 'invalid'], // the group's 3 bytes count
    [`$queue/${'a'.repeat(65_535 - 7)}`, { group: '$queue', filter: 'a'.repeat(65_535 - 7) }],
    [`$queue/${'a'.repeat(65_535 - 6)}`, 'invalid'],
  ];
  for (const [filter, expected] of cases) {
    it(`${JSON.stringify(filter.length > 40 ? `${filter.slice(0, 12)}…(${filter.length})` : filter)} -> ${JSON.stringify(expected)}`, () => {
      assert.deepEqual(parseShared(filter), expected);
    });
  }
});

describe('isValidClientId', () => {
  const cases: readonly (readonly [string, boolean])[] = [
    ['c', true],
    ['client-1', true],
    ['a/b+#', true], // wildcards mean nothing in a client id
    ['$', true],
    ['\u{1f600}', true],
    [LONG_OK, true],
    [WIDE_OK, true],
    ['', false], // the caller decides whether to assign one
    ['a\u0000', false],
    ['\ufffd', false],
    ['x\ud800', false],
    [LONG_BAD, false],
    [WIDE_BAD, false],
  ];
  for (const [id, valid] of cases) {
    it(`${JSON.stringify(id.length > 40 ? `${id.slice(0, 10)}…(${id.length})` : id)} is ${valid ? 'valid' : 'invalid'}`, () => {
      assert.equal(isValidClientId(id), valid);
    });
  }
});
