import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isValidTopicFilter, isValidTopicName } from '../protocol/validate.js';
import { KAFKA_TOPIC, PUBLIC_TOPIC_FILTER, PUBLIC_TOPIC_NAME, TOPIC_FILTER, TOPIC_NAME } from './openapi-common.js';

/** Strings that probe every rule: wildcards in every position, empty levels, $ topics, U+0000, U+FFFD. */
const CASES = [
  'a', 'a/b', '/', '//', 'a/', '/a', '$SYS/x', '$', 'a$', '+', '#', 'a/+', '+/a', 'a/+/b', 'a+', '+a', 'a/b+',
  'a/#', '#/a', 'a#', 'a/#/b', '$SYS/#', '+/#', '/#', '/+', 'a\u0000b', 'a\uFFFDb', 'é/日本/🙂', ' ', 'a b/c',
];

describe('OpenAPI patterns agree with protocol/validate.ts', () => {
  it('topic names', () => {
    for (const s of CASES) {
      assert.equal(new RegExp(TOPIC_NAME).test(s), isValidTopicName(s), JSON.stringify(s));
      assert.equal(new RegExp(PUBLIC_TOPIC_NAME).test(s), isValidTopicName(s) && !s.startsWith('$'), JSON.stringify(s));
    }
  });

  it('topic filters (minLength 1 beside the pattern)', () => {
    for (const s of [...CASES, '']) {
      const ok = s.length >= 1;
      assert.equal(ok && new RegExp(TOPIC_FILTER).test(s), isValidTopicFilter(s), JSON.stringify(s));
      assert.equal(ok && new RegExp(PUBLIC_TOPIC_FILTER).test(s), isValidTopicFilter(s) && !s.startsWith('$'), JSON.stringify(s));
    }
  });

  it('Kafka topic names', () => {
    const kafka = new RegExp(KAFKA_TOPIC);
    for (const s of ['a', 'A.b_c-1', '.a', '..a', '...', 'a'.repeat(249), '.' + 'a'.repeat(248)]) assert.ok(kafka.test(s), s);
    for (const s of ['', '.', '..', 'a b', 'a/b', 'a'.repeat(250), '..' + 'a'.repeat(248)]) assert.ok(!kafka.test(s), s);
  });
});
