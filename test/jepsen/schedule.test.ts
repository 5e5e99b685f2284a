/** The PRNG and the schedule generator: same seed, same schedule; the drawn schedule keeps its bounds. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Prng } from './prng.js';
import { DEFAULT_PARAMS, describeSchedule, makeSchedule, parseMix, parseSchedule, type FaultStep } from './schedule.js';

test('the PRNG gives the same sequence for a seed, another for another seed, and stays in range', () => {
  const a = new Prng(42);
  const b = new Prng(42);
  const c = new Prng(43);
  const xs = Array.from({ length: 1000 }, () => a.next());
  assert.deepEqual(xs, Array.from({ length: 1000 }, () => b.next()));
  assert.notDeepEqual(xs.slice(0, 10), Array.from({ length: 10 }, () => c.next()));
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  // Roughly uniform: each tenth of [0, 1) holds 5 to 15 % of the draws.
  for (let d = 0; d < 10; d++) {
    const n = xs.filter((x) => Math.floor(x * 10) === d).length;
    assert.ok(n > 50 && n < 150, `decile ${d}: ${n}`);
  }
  const r = new Prng(7);
  for (let i = 0; i < 500; i++) {
    const v = r.int(3, 5);
    assert.ok(v >= 3 && v <= 5 && Number.isInteger(v));
  }
  assert.deepEqual(new Set(Array.from({ length: 200 }, () => r.pick(['x', 'y']))), new Set(['x', 'y']));
  assert.equal(new Set(r.sample([1, 2, 3, 4], 3)).size, 3);
  for (let i = 0; i < 100; i++) assert.notEqual(r.weighted({ a: 0, b: 1 }), 'a', 'a weight of 0 is never drawn');
});

test('a schedule is a function of its parameters: the same seed replays it, JSON round-trips it', () => {
  const p = { ...DEFAULT_PARAMS, seed: 5, durationS: 60 };
  const s = makeSchedule(p);
  assert.deepEqual(makeSchedule({ ...p }), s);
  assert.notDeepEqual(makeSchedule({ ...p, seed: 6 }).faults, s.faults);
  assert.deepEqual(parseSchedule(JSON.stringify(s)), s);
  assert.ok(s.faults.length > 5, `faults drawn: ${s.faults.length}`);
  assert.ok(s.moves.length > 3, `moves drawn: ${s.moves.length}`);
  assert.match(describeSchedule(s), /^seed 5: 3 nodes, etcd 1 member\(s\), 60 s/);
  assert.throws(() => parseSchedule('{"faults": []}'), /not a schedule/);
});

/** The fault's span as the generator plans it (kills and drains add 3 s of restart). */
function span(f: FaultStep): [number, number] {
  return [f.at, f.at + f.holdMs + (f.kind === 'kill' || f.kind === 'drain' ? 3000 : 0)];
}

test('over many seeds: faults stay in the run, at most maxConcurrent at once, one process fault per node at a time, one etcd kill at a time', () => {
  for (let seed = 1; seed <= 200; seed++) {
    const etcdMembers = seed % 2 === 0 ? 3 : 1;
    const p = { ...DEFAULT_PARAMS, seed, durationS: 40 + (seed % 5) * 20, nodes: 3 + (seed % 3), etcdMembers: etcdMembers as 1 | 3, maxConcurrent: 1 + (seed % 3) };
    const s = makeSchedule(p);
    const ids = Array.from({ length: p.nodes }, (_, i) => `n${i + 1}`);
    for (const f of s.faults) {
      assert.ok(f.at >= 2000 && f.at + f.holdMs <= p.durationS * 1000, `seed ${seed}: ${JSON.stringify(f)} within the run`);
      if (f.kind === 'etcd-kill') {
        assert.ok(f.members.length >= 1 && f.members.length <= (etcdMembers === 1 ? 1 : 2), `seed ${seed}: members ${f.members}`);
        assert.ok(f.members.every((m) => m < etcdMembers));
      } else {
        assert.ok(f.nodes.length === 1 && ids.includes(f.nodes[0] as string));
      }
      const others = s.faults.filter((g) => g !== f && span(g)[0] < span(f)[1] && span(f)[0] < span(g)[1]);
      const atStart = others.filter((g) => g.at <= f.at);
      assert.ok(atStart.length < p.maxConcurrent, `seed ${seed}: ${atStart.length + 1} faults at once at ${f.at}`);
      const proc = ['kill', 'pause', 'drain'];
      for (const g of others) {
        if (proc.includes(f.kind) && proc.includes(g.kind)) assert.notEqual(g.nodes[0], f.nodes[0], `seed ${seed}: two process faults on ${f.nodes[0]}`);
        assert.ok(!(f.kind === 'etcd-kill' && g.kind === 'etcd-kill'), `seed ${seed}: two etcd kills overlap`);
      }
    }
    for (const m of s.moves) assert.ok(ids.includes(m.node) && m.at < p.durationS * 1000);
  }
});

test('the fault mix: weights of 0 are never drawn; a bad mix names the kind', () => {
  const mix = parseMix('kill,etcd-kill:2');
  assert.deepEqual(mix, { kill: 1, pause: 0, drain: 0, 'etcd-kill': 2, 'etcd-cut': 0, 'client-cut': 0 });
  const s = makeSchedule({ ...DEFAULT_PARAMS, seed: 3, durationS: 120, mix });
  assert.ok(s.faults.every((f) => f.kind === 'kill' || f.kind === 'etcd-kill'));
  assert.ok(s.faults.some((f) => f.kind === 'etcd-kill'));
  assert.throws(() => parseMix('kil'), /unknown fault kind "kil"/);
  assert.throws(() => parseMix('kill:-1'), /bad weight/);
});
