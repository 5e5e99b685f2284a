import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { StoreError } from '../store/errors.js';
import { FileMappings, MAPPINGS_FILE } from './file-backend.js';
import { BridgeMappings, makeMapping, MappingError, mappingId } from './mappings.js';

test('a mapping is an MQTT filter and a Kafka topic name; anything else names the bad field', () => {
  assert.deepEqual(makeMapping('sensors/+/temp', 'temps'), { id: mappingId('sensors/+/temp', 'temps'), topic: 'sensors/+/temp', queue: 'temps' });
  for (const [topic, queue, code] of [
    ['a/#/b', 'q', 'BAD_TOPIC'], ['', 'q', 'BAD_TOPIC'], ['$SYS/#', 'q', 'BAD_TOPIC'], [7, 'q', 'BAD_TOPIC'],
    ['a', '', 'BAD_QUEUE'], ['a', 'has space', 'BAD_QUEUE'], ['a', '..', 'BAD_QUEUE'], ['a', 'x'.repeat(250), 'BAD_QUEUE'], ['a', null, 'BAD_QUEUE'],
  ] as const) {
    assert.throws(() => makeMapping(topic, queue), (err: unknown) => err instanceof MappingError && err.code === code, `${String(topic)} -> ${String(queue)}`);
  }
});

test('ids are stable and differ per (topic, queue) pair', () => {
  assert.equal(mappingId('a', 'b'), mappingId('a', 'b'));
  assert.notEqual(mappingId('a', 'b'), mappingId('a', 'c'));
  // The separator keeps ("ab", "c") and ("a", "bc") apart.
  assert.notEqual(mappingId('ab', 'c'), mappingId('a', 'bc'));
  assert.match(mappingId('a', 'b'), /^[A-Za-z0-9_-]{16}$/);
});

test('topics are matched against every mapping filter', () => {
  const set = new BridgeMappings();
  set.apply(makeMapping('event', 'events'));
  set.apply(makeMapping('sensors/#', 'sensors'));
  set.apply(makeMapping('sensors/+/temp', 'temps'));
  assert.deepEqual(set.match('sensors/1/temp').map((m) => m.queue).sort(), ['sensors', 'temps']);
  assert.deepEqual(set.match('event').map((m) => m.queue), ['events']);
  assert.deepEqual(set.match('other'), []);
});

test('the file store keeps mappings across a restart, concurrent changes included, and adding is idempotent', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'smq-bridge-'));
  const first = new BridgeMappings();
  const file = new FileMappings(dir, first);
  file.load();
  first.use(file);
  const results = await Promise.all(['a', 'b', 'c', 'd'].map((t) => first.add(makeMapping(t, `q-${t}`))));
  assert.deepEqual(results.map((r) => r.created), [true, true, true, true]);
  assert.equal((await first.add(makeMapping('a', 'q-a'))).created, false);
  assert.equal(await first.remove(mappingId('b', 'q-b')), true);
  assert.equal(await first.remove(mappingId('b', 'q-b')), false);

  const again = new BridgeMappings();
  new FileMappings(dir, again).load();
  assert.deepEqual(again.list().map((m) => m.topic), ['a', 'c', 'd']);
  assert.deepEqual(JSON.parse(readFileSync(join(dir, MAPPINGS_FILE), 'utf8')).mappings[0], { topic: 'a', queue: 'q-a' });
});

test('a damaged mappings file is a StoreError naming the file and what was expected', () => {
  const dir = mkdtempSync(join(tmpdir(), 'smq-bridge-'));
  writeFileSync(join(dir, MAPPINGS_FILE), '{"mappings": [');
  assert.throws(() => new FileMappings(dir, new BridgeMappings()).load(), (err: unknown) =>
    err instanceof StoreError && err.message.includes(MAPPINGS_FILE) && err.message.includes('expected'));
  writeFileSync(join(dir, MAPPINGS_FILE), '{"mappings": [{"topic": "a/#/b", "queue": "q"}]}');
  assert.throws(() => new FileMappings(dir, new BridgeMappings()).load(), /mapping 0: topic must be an MQTT topic filter/);
});

test('a mapping may choose its own record key; the same topic and queue with another key updates it, kept by the file store', async () => {
  assert.equal(makeMapping('a', 'q', 'clientid').key, 'clientid');
  assert.equal(makeMapping('a', 'q').key, undefined);
  assert.throws(() => makeMapping('a', 'q', 'payload'), (err: unknown) => err instanceof MappingError && err.code === 'BAD_KEY');
  const dir = mkdtempSync(join(tmpdir(), 'smq-bridge-'));
  const set = new BridgeMappings();
  const file = new FileMappings(dir, set);
  file.load();
  set.use(file);
  assert.equal((await set.add(makeMapping('a', 'q'))).created, true);
  assert.equal((await set.add(makeMapping('a', 'q', 'clientid'))).created, false);
  assert.equal(set.get(mappingId('a', 'q'))?.key, 'clientid');
  assert.equal(set.match('a')[0]?.key, 'clientid', 'the matcher sees the update');
  const again = new BridgeMappings();
  new FileMappings(dir, again).load();
  assert.deepEqual(again.list(), [{ id: mappingId('a', 'q'), topic: 'a', queue: 'q', key: 'clientid' }]);
});
