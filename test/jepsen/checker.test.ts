/** The checker on synthetic histories: each invariant holds on a clean history and names what breaks it. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { check, type FinalState, type InvariantResult, type Roles } from './checker.js';
import type { Event } from './history.js';

const roles: Roles = { dataSubscribers: ['s1', 's2'], dataPrefix: 'd/', sharedMembers: ['g1', 'g2'], sharedPrefix: 'sh/', retainedPrefix: 'r/' };

/** A history under construction: each call appends events at increasing times. */
class H {
  readonly events: Event[] = [];
  private t = 0;

  private push(e: Record<string, unknown>): this {
    this.events.push({ ...e, t: (this.t += 10) } as unknown as Event);
    return this;
  }

  phase(name: string): this {
    return this.push({ type: 'phase', name });
  }

  connect(client: string, node: string, sessionPresent: boolean, conn: number): this {
    return this.push({ type: 'connect', client, node, sessionPresent, conn });
  }

  sub(client: string, filter = 'd/#'): this {
    return this.push({ type: 'subscribed', client, filter, granted: 2, conn: 1 });
  }

  pub(client: string, seq: number, qos: 1 | 2, o: { topic?: string; conn?: number; retain?: boolean } = {}): this {
    return this.push({ type: 'publish', client, id: `${client}:${seq}`, seq, topic: o.topic ?? `d/${client}`, qos, retain: o.retain ?? false, conn: o.conn ?? 1 });
  }

  ack(client: string, seq: number, ok = true, conn = 1): this {
    return this.push({ type: 'ack', client, id: `${client}:${seq}`, ok, conn });
  }

  got(client: string, id: string, qos = 1): this {
    return this.push({ type: 'deliver', client, id, topic: 'd/x', qos, dup: false, retain: false, conn: 1, node: 'n1', pid: 1 });
  }
}

/** A healthy final state: both nodes ready, every client listed once where it is, retained r/w = w:1 everywhere. */
function final(over: Partial<FinalState> = {}): FinalState {
  return {
    ready: [{ node: 'n1', status: 200 }, { node: 'n2', status: 200 }],
    clients: [{ node: 'n1', ids: ['s1', 'g1'] }, { node: 'n2', ids: ['s2', 'g2'] }],
    retained: [{ node: 'n1', values: {} }, { node: 'n2', values: {} }],
    connected: { s1: 'n1', g1: 'n1', s2: 'n2', g2: 'n2' },
    ...over,
  };
}

function result(events: Event[], f: FinalState, name: string): InvariantResult {
  const r = check(events, f, roles).results.find((x) => x.name === name);
  assert.ok(r, name);
  return r;
}

/** Subscribers and group members in place, then the fault phase. */
function base(): H {
  return new H().connect('s1', 'n1', false, 1).sub('s1').connect('s2', 'n2', false, 1).sub('s2')
    .connect('g1', 'n1', false, 1).sub('g1', '$share/g/sh/#').connect('g2', 'n2', false, 1).sub('g2', '$share/g/sh/#').phase('faults');
}

test('a clean history breaks nothing', () => {
  const h = base().pub('p', 0, 1).ack('p', 0).got('s1', 'p:0').got('s2', 'p:0').pub('p', 1, 2).ack('p', 1).got('s1', 'p:1', 2).got('s2', 'p:1', 2)
    .pub('h', 0, 2, { topic: 'sh/h' }).ack('h', 0).got('g2', 'h:0', 2);
  const v = check(h.events, final(), roles);
  assert.deepEqual(v.results.filter((r) => r.violations > 0), []);
  assert.equal(v.acked, 5);
  assert.equal(v.received, 5);
  assert.equal(v.messages, 3);
});

test('delivered: an acknowledged message a subscriber never got is lost, named with the subscriber; unacknowledged and warm-up messages are not judged', () => {
  const h = new H().connect('s1', 'n1', false, 1).sub('s1').connect('s2', 'n2', false, 1).sub('s2').pub('p', 0, 1).ack('p', 0).phase('faults')
    .pub('p', 1, 1).ack('p', 1).got('s1', 'p:1')
    .pub('p', 2, 1).ack('p', 2, false)
    .connect('s2', 'n1', false, 2).sub('s2');
  const r = result(h.events, final(), 'delivered');
  assert.equal(r.violations, 1);
  assert.equal(r.checked, 2);
  assert.match(r.details.join('\n'), /^s2: 1 lost: p:1 \(its session was lost at \d+ ms on n1\)$/);
});

test('shared-delivered: a shared message no member got is lost; one at two members is a QoS 2 duplicate', () => {
  const h = base().pub('h', 0, 1, { topic: 'sh/h' }).ack('h', 0).pub('h', 1, 2, { topic: 'sh/h' }).ack('h', 1).got('g1', 'h:1', 2).got('g2', 'h:1', 2);
  assert.deepEqual(result(h.events, final(), 'shared-delivered').details, ['group: 1 lost: h:0']);
  assert.deepEqual(result(h.events, final(), 'qos2-once').details, ['shared group: 1 QoS 2 messages more than once: h:1@g1+g2']);
});

test('qos2-once: a QoS 2 message twice at one subscriber is a violation, a QoS 1 message twice only a dup', () => {
  const h = base().pub('p', 0, 2).ack('p', 0).got('s1', 'p:0', 2).got('s1', 'p:0', 2).got('s2', 'p:0', 2)
    .pub('q', 0, 1).ack('q', 0).got('s1', 'q:0').got('s1', 'q:0').got('s2', 'q:0');
  const r = result(h.events, final(), 'qos2-once');
  assert.equal(r.violations, 1);
  assert.deepEqual(r.details, ['s1: 1 QoS 2 messages more than once: p:0x2']);
  assert.equal(check(h.events, final(), roles).dup, 2);
});

test('order: messages of one publisher connection must arrive in order; a resend after a publisher reconnect may come late', () => {
  const inOrder = base().pub('p', 0, 1).pub('p', 1, 1).ack('p', 0).ack('p', 1).got('s1', 'p:1').got('s1', 'p:0').got('s1', 'p:1');
  const r = result(inOrder.events, final(), 'order');
  assert.equal(r.violations, 1);
  assert.match(r.details[0] ?? '', /^s1: 1 out of order: p:0 after p:1$/);
  // p:0 was sent on connection 1 and acknowledged on 2 (resent): it may arrive after p:1.
  const resent = base().pub('p', 0, 1).pub('p', 1, 1, { conn: 2 }).ack('p', 1, true, 2).ack('p', 0, true, 2).got('s1', 'p:1').got('s1', 'p:0');
  const r2 = result(resent.events, final(), 'order');
  assert.equal(r2.violations, 0);
  assert.match(r2.details.join('\n'), /1 first deliveries after a later message/);
});

test('sessions-kept: a reconnect with session present 0 is a lost session, named with its time and node', () => {
  const h = base().connect('s1', 'n2', true, 2).connect('s1', 'n1', false, 3);
  const r = result(h.events, final(), 'sessions-kept');
  assert.equal(r.checked, 2);
  assert.equal(r.violations, 1);
  assert.match(r.details[0] ?? '', /^s1: session present 0 at \d+ ms on n1$/);
});

test('one-connection: a client id on two nodes, a connection listed where the client is not, and a client no node lists', () => {
  const f = final({
    clients: [{ node: 'n1', ids: ['s1', 's2', 'x'] }, { node: 'n2', ids: ['s2', 'g1'] }],
    connected: { s1: 'n1', s2: 'n2', g1: 'n1', g2: 'n2' },
  });
  const r = result(base().events, f, 'one-connection');
  assert.equal(r.violations, 4);
  assert.deepEqual(r.details, [
    '1 client ids connected on two nodes: s2@n1+n2(client on n2)',
    '2 connections listed where the client is not: x@n1 g1@n2(client on n1)',
    '1 connected clients no node lists: g2(client on n2)',
  ]);
  const down = result(base().events, final({ clients: [{ node: 'n1', ids: null, error: '503' }, { node: 'n2', ids: ['s2', 'g2'] }] }), 'one-connection');
  assert.match(down.details.join('\n'), /n1: could not list its clients: 503/);
});

test('retained: every node holds the last acknowledged value or a later one; nodes that differ are a violation', () => {
  const h = base().pub('w', 0, 1, { topic: 'r/w', retain: true }).ack('w', 0).pub('w', 1, 1, { topic: 'r/w', retain: true }).ack('w', 1)
    .pub('w', 2, 1, { topic: 'r/w', retain: true }).ack('w', 2, false);
  const same = (v: string): FinalState => final({ retained: [{ node: 'n1', values: { 'r/w': v } }, { node: 'n2', values: { 'r/w': v } }] });
  assert.equal(result(h.events, same('w:1'), 'retained').violations, 0);
  assert.equal(result(h.events, same('w:2'), 'retained').violations, 0, 'an unacknowledged later write may have landed');
  const stale = result(h.events, same('w:0'), 'retained');
  assert.equal(stale.violations, 2);
  assert.deepEqual(stale.details, ['r/w: last acknowledged w:1, nodes hold n1=w:0 n2=w:0']);
  const split = result(h.events, final({ retained: [{ node: 'n1', values: { 'r/w': 'w:1' } }, { node: 'n2', values: { 'r/w': 'w:2' } }] }), 'retained');
  assert.equal(split.violations, 1);
  const missing = result(h.events, final({ retained: [{ node: 'n1', values: { 'r/w': 'w:1' } }, { node: 'n2', values: {} }] }), 'retained');
  assert.deepEqual(missing.details, ['r/w: last acknowledged w:1, nodes hold n1=w:1 n2=none']);
});

test('ready: a node not answering 200 is named with what it answered', () => {
  const r = result(base().events, final({ ready: [{ node: 'n1', status: 200 }, { node: 'n2', status: 503 }] }), 'ready');
  assert.deepEqual(r.details, ['n2: /readyz 503']);
});
