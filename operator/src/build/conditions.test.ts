import assert from 'node:assert/strict';
import { test } from 'node:test';
import { conditionTime, findCondition, setCondition } from './conditions.js';

const t0 = new Date('2030-01-02T03:04:05.678Z');
const t1 = new Date('2030-01-02T03:10:00.000Z');
const ready = { type: 'Ready', status: 'False', reason: 'Starting', message: '0 of 3 ready' } as const;

test('a new condition gets the time (whole seconds, UTC) and the generation', () => {
  assert.deepEqual(setCondition(undefined, ready, t0, 4), [{ ...ready, lastTransitionTime: '2030-01-02T03:04:05Z', observedGeneration: 4 }]);
  assert.equal(conditionTime(t1), '2030-01-02T03:10:00Z');
});

test('the same status keeps lastTransitionTime; reason, message and generation follow', () => {
  const first = setCondition([], ready, t0, 1);
  const next = setCondition(first, { ...ready, reason: 'Rolling', message: '2 of 3 ready' }, t1, 2);
  assert.deepEqual(next, [{ type: 'Ready', status: 'False', reason: 'Rolling', message: '2 of 3 ready', lastTransitionTime: '2030-01-02T03:04:05Z', observedGeneration: 2 }]);
});

test('a new status moves lastTransitionTime', () => {
  const first = setCondition([], ready, t0, 1);
  const next = setCondition(first, { type: 'Ready', status: 'True', reason: 'AllReady', message: '3 of 3 ready' }, t1, 1);
  assert.equal(findCondition(next, 'Ready')?.lastTransitionTime, '2030-01-02T03:10:00Z');
  assert.equal(findCondition(next, 'Ready')?.status, 'True');
});

test('nothing changed: the very same array, so the caller can skip the write', () => {
  const first = setCondition([], ready, t0, 1);
  assert.equal(setCondition(first, ready, t1, 1), first);
});

test('other conditions keep their place; a new type goes last; the input is not changed', () => {
  const list = setCondition(setCondition([], ready, t0, 1), { type: 'Degraded', status: 'False', reason: 'AsExpected', message: '' }, t0, 1);
  const frozen = Object.freeze(list.map((c) => Object.freeze({ ...c })));
  const next = setCondition(frozen, { type: 'Ready', status: 'True', reason: 'AllReady', message: '' }, t1, 1);
  assert.deepEqual(next.map((c) => c.type), ['Ready', 'Degraded']);
  assert.equal(next[1], frozen[1]);
  assert.equal(frozen[0]?.status, 'False');
  const more = setCondition(next, { type: 'Progressing', status: 'True', reason: 'Rolling', message: '' }, t1, 1);
  assert.deepEqual(more.map((c) => c.type), ['Ready', 'Degraded', 'Progressing']);
});

test('without a generation the old observedGeneration stays', () => {
  const first = setCondition([], ready, t0, 3);
  assert.equal(setCondition(first, { ...ready, message: 'x' }, t1)[0]?.observedGeneration, 3);
  assert.equal(setCondition([], ready, t0)[0]?.observedGeneration, undefined);
  assert.ok(!('observedGeneration' in (setCondition([], ready, t0)[0] ?? {})));
});
