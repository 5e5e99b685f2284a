import type { Broker } from '../broker.js';
import type { ClientInfo } from '../hooks/types.js';
import { Message } from '../message/message.js';
import { Subscription } from '../routing/subscription.js';
import { Delivery } from '../session/delivery.js';
import { Session } from '../session/session.js';
import { LongTimeout } from '../timers/long-timeout.js';
import { parseShared } from '../protocol/validate.js';
import type { Snapshot, StoredSession } from './types.js';

/** Session Expiry Interval meaning "never". */
const NEVER = 0xffffffff;

/** The stored form of a session. */
export function sessionRecord(s: Session): StoredSession {
  const subscriptions = [...s.subscriptions.values()].map((sub) => ({
    raw: sub.raw,
    qos: sub.qos,
    noLocal: sub.noLocal,
    retainAsPublished: sub.retainAsPublished,
    retainHandling: sub.retainHandling,
    id: sub.id,
  }));
  const will = s.pendingWill;
  return {
    clientId: s.clientId,
    username: s.client?.username,
    owner: s.owner,
    expiryInterval: s.expiryInterval,
    disconnectedAt: s.disconnectedAt,
    subscriptions,
    will: will
      ? {
        message: new Message(will.topic, typeof will.payload === 'string' ? Buffer.from(will.payload) : will.payload,
          will.qos ?? 0, will.retain ?? false, will.properties, s.clientId, s.disconnectedAt),
        at: s.willAt,
      }
      : null,
  };
}

/** Who a restored session's client was, for access checks while it is away. */
function restoredClient(s: StoredSession): ClientInfo {
  return { clientId: s.clientId, username: s.username, remoteAddress: '', transport: 'restored', protocolVersion: 4, certificate: undefined };
}

/**
 * Rebuilds live state from a snapshot at start-up: retained messages, sessions with their subscriptions, timers,
 * in-flight and queued messages and incoming QoS 2 ids. What expired while the broker was down is removed.
 */
export function restore(broker: Broker, snap: Snapshot): void {
  const now = broker.now();
  const store = broker.store;
  for (const m of snap.retained) {
    if (m.expiresAt !== 0 && now >= m.expiresAt) store?.deleteRetained(m.topic);
    else broker.router.retained.set(m.topic, Message.restore(m));
  }
  for (const rec of snap.sessions) {
    // A session whose client was connected at the crash counts as disconnected from now on.
    const since = rec.disconnectedAt || now;
    const ends = rec.expiryInterval === NEVER ? Infinity : since + rec.expiryInterval * 1000;
    const session = new Session(rec.clientId, broker);
    session.expiryInterval = rec.expiryInterval;
    session.disconnectedAt = since;
    session.stored = true;
    session.client = restoredClient(rec);
    session.owner = rec.owner ?? rec.username ?? '';
    if (ends <= now) {
      broker.sessions.set(rec.clientId, session);
      if (rec.will) session.pendingWill = willOf(rec.will.message);
      broker.endSession(session); // publishes a will still waiting
      continue;
    }
    for (const s of rec.subscriptions) {
      const shared = parseShared(s.raw);
      const group = shared && shared !== 'invalid' ? broker.router.group(shared.group, shared.filter) : null;
      const sub = new Subscription(session, s.raw, group ? group.filter : s.raw, s.qos, s, group);
      session.subscriptions.set(s.raw, sub);
      broker.router.add(sub);
    }
    broker.sessions.set(rec.clientId, session);
    if (rec.will) {
      session.pendingWill = willOf(rec.will.message);
      session.willAt = rec.will.at;
      broker.armWill(session, session.client, Math.max(0, rec.will.at - now));
    }
    if (ends !== Infinity) {
      session.expiryTimer = new LongTimeout(() => broker.endSession(session), ends - now);
    }
  }
  for (const d of snap.deliveries) {
    const session = broker.sessions.get(d.clientId);
    if (!session || session.ended) {
      store?.deleteDelivery(d.clientId, d.seq); // an orphan of a session that is gone
      continue;
    }
    const message = Message.restore(d.message);
    if (d.qos > 0) session.firstTime(message); // a copy of it that arrives again is not delivered twice
    const delivery = new Delivery(message, d.qos, d.retain, d.subIds ? [...d.subIds] : undefined, null);
    delivery.seq = d.seq;
    delivery.packetId = d.packetId;
    delivery.state = d.state;
    if (d.packetId !== 0) session.inflight.set(d.packetId, delivery);
    else session.queue.push(delivery);
    if (d.seq > session.seq) session.seq = d.seq;
  }
  for (const [clientId, ids] of snap.incoming) {
    const session = broker.sessions.get(clientId);
    if (session && !session.ended) for (const id of ids) session.incomingQos2.add(id);
    else for (const id of ids) store?.deleteIncoming(clientId, id);
  }
}

/** A stored will message in the CONNECT shape sessions keep. */
function willOf(m: { topic: string; payload: Buffer; qos: 0 | 1 | 2; retain: boolean; properties: Message['properties'] }): NonNullable<Session['pendingWill']> {
  return { topic: m.topic, payload: m.payload, qos: m.qos, retain: m.retain, properties: m.properties };
}
