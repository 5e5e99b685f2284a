import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GroupRuns } from './group-runs.js';

/** A run that records what it carried and ends when told to. */
function recorder(): { runs: [string, number[]][]; finish: () => void; fail: (err: Error) => void; groups: GroupRuns<number> } {
  const runs: [string, number[]][] = [];
  const pending: { resolve: () => void; reject: (err: Error) => void }[] = [];
  const groups = new GroupRuns<number>((key, items) => {
    runs.push([key, items]);
    return new Promise<void>((resolve, reject) => pending.push({ resolve, reject }));
  }, (n) => n, 10);
  return {
    runs,
    groups,
    finish: () => pending.shift()?.resolve(),
    fail: (err) => pending.shift()?.reject(err),
  };
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

test('group runs: the first call runs at once; calls made meanwhile share the next run', async () => {
  const r = recorder();
  const first = r.groups.add('n2', 1);
  await turn();
  assert.deepEqual(r.runs, [['n2', [1]]]);
  const later = [r.groups.add('n2', 2), r.groups.add('n2', 3), r.groups.add('n2', 4)];
  await turn();
  assert.equal(r.runs.length, 1, 'the next run waits for the one under way');
  r.finish();
  await first;
  await turn();
  assert.deepEqual(r.runs[1], ['n2', [2, 3, 4]]);
  r.finish();
  await Promise.all(later);
});

test('group runs: a run carries at most `max` weight (and always one call); keys run apart', async () => {
  const r = recorder();
  const calls = [r.groups.add('n2', 1), r.groups.add('n2', 6), r.groups.add('n2', 4), r.groups.add('n2', 30), r.groups.add('n3', 5)];
  await turn();
  assert.deepEqual(r.runs, [['n2', [1]], ['n3', [5]]]);
  for (let i = 0; i < 4; i++) {
    r.finish();
    await turn();
  }
  assert.deepEqual(r.runs.slice(2), [['n2', [6, 4]], ['n2', [30]]]);
  r.finish();
  await Promise.all(calls);
});

test('group runs: a failed run rejects only its own calls, and the next run still goes', async () => {
  const r = recorder();
  const first = r.groups.add('n2', 1);
  const second = r.groups.add('n2', 2);
  await turn();
  r.fail(new Error('etcd away'));
  await assert.rejects(first, /etcd away/);
  await turn();
  assert.deepEqual(r.runs[1], ['n2', [2]]);
  r.finish();
  await second;
  const third = r.groups.add('n2', 3);
  await turn();
  assert.deepEqual(r.runs[2], ['n2', [3]], 'a call after the queue emptied starts a run of its own');
  r.finish();
  await third;
});
