import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { QoS } from 'mqtt-packet';
import { Message } from '../message/message.js';
import { type Outlet, Session, type SessionContext } from './session.js';

function context(drops: string[]): SessionContext {
  return {
    maxInflight: 10, maxQueued: 100, store: null, canRead: null,
    dropped: (_id, _m, reason) => drops.push(reason), redispatch: () => false, now: () => 0,
  };
}

function outlet(sent: string[]): Outlet {
  return {
    sendPublish: (m: Message, qos: QoS) => { sent.push(`${m.payload.toString()}@${qos}`); return true; },
    sendPubrel: () => undefined, writable: true, receiveMaximum: 65535,
  };
}

function message(payload: string, qos: QoS, id?: string): Message {
  const m = new Message('t', Buffer.from(payload), qos, false, undefined, 'p', 0);
  m.id = id;
  return m;
}

test('a session takes a message with an identity once, whichever copy of it arrives second (issue 17: exactly once across moves)', () => {
  const drops: string[] = [];
  const sent: string[] = [];
  const s = new Session('c', context(drops));
  s.attach(outlet(sent));
  s.deliver(message('a', 2, 'n1:1'), 2, false, undefined, null);
  s.deliver(message('a', 2, 'n1:1'), 2, false, undefined, null); // the same message by another way
  s.deliver(message('b', 2, 'n2:1'), 2, false, undefined, null); // another node's message
  s.deliver(message('c', 1, undefined), 1, false, undefined, null);
  s.deliver(message('c', 1, undefined), 1, false, undefined, null); // QoS 1 without an identity may repeat
  s.deliver(message('a', 2, 'n1:1'), 1, false, undefined, null); // granted QoS 1, but taken already
  s.deliver(message('d', 1, 'n1:2'), 1, false, undefined, null); // QoS 1 routed by a stale view: sent twice
  s.deliver(message('d', 1, 'n1:2'), 1, false, undefined, null);
  s.deliver(message('e', 2, 'n1:3'), 0, false, undefined, null); // granted QoS 0: neither remembered
  s.deliver(message('e', 2, 'n1:3'), 2, false, undefined, null);
  assert.deepEqual(sent, ['a@2', 'b@2', 'c@1', 'c@1', 'd@1', 'e@0', 'e@2']);
  assert.deepEqual(drops, ['duplicate', 'duplicate', 'duplicate']);
});

test('the memory of identities is bounded: the oldest are forgotten first', () => {
  const s = new Session('c', context([]));
  for (let i = 0; i < 5000; i++) assert.equal(s.firstTime(message('x', 2, `n:${i}`)), true);
  assert.equal(s.firstTime(message('x', 2, 'n:4999')), false, 'a recent one is remembered');
  assert.equal(s.firstTime(message('x', 2, 'n:0')), true, 'one 5,000 back is not');
});
