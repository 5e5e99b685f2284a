import type { ISubscribePacket, ISubscription, QoS } from 'mqtt-packet';
import type { Connection } from '../../connection/connection.js';
import { Subscription } from '../../routing/subscription.js';
import { MqttError } from '../errors.js';
import { RC, subackCodeV4 } from '../reason-codes.js';
import { isValidTopicFilter, isWellFormedString, parseShared } from '../validate.js';
import { withinTopicLimits } from '../../limits/topic-limits.js';

/**
 * SUBSCRIBE: each filter is validated and authorized on its own, so one bad filter fails only its own SUBACK
 * entry (MQTT 5 section 3.9.3). Retained messages follow the SUBACK.
 */
export function handleSubscribe(conn: Connection, packet: ISubscribePacket): Promise<void> | void {
  if (packet.subscriptions.length === 0) throw new MqttError(RC.PROTOCOL_ERROR, 'SUBSCRIBE without filters'); // [MQTT-3.8.3-3]
  if (!packet.messageId) throw new MqttError(RC.PROTOCOL_ERROR, 'packet identifier 0'); // [MQTT-2.3.1-1]
  const subId = packet.properties?.subscriptionIdentifier ?? 0;
  const hooks = conn.broker.hooks;
  const answers = packet.subscriptions.map((s) => {
    const rc = check(conn, s);
    return rc !== RC.SUCCESS ? rc : hooks.authorizeSubscribe(conn, { filter: s.topic, qos: s.qos });
  });
  if (answers.some((a) => typeof a !== 'number')) {
    return Promise.all(answers).then((codes) => finish(conn, packet, codes, subId));
  }
  finish(conn, packet, answers as number[], subId);
}

/** Syntax checks of one filter; returns 0 or a reason code. */
function check(conn: Connection, s: ISubscription): number {
  if (!isWellFormedString(s.topic)) throw new MqttError(RC.MALFORMED_PACKET, 'topic filter is not well-formed UTF-8'); // [MQTT-1.5.4-1]
  const shared = parseShared(s.topic);
  if (shared === 'invalid') return RC.TOPIC_FILTER_INVALID;
  if (shared === null && !isValidTopicFilter(s.topic)) return RC.TOPIC_FILTER_INVALID;
  if (shared !== null && s.nl) throw new MqttError(RC.PROTOCOL_ERROR, 'no local on a shared subscription'); // [MQTT-3.8.3-4]
  if (conn.session === null) return RC.UNSPECIFIED_ERROR;
  const limits = conn.broker.config.limits;
  if (!withinTopicLimits(shared ? shared.filter : s.topic, limits.max_topic_levels, limits.max_topic_length)) {
    conn.broker.limitHit('topic_limits');
    return RC.TOPIC_FILTER_INVALID;
  }
  return RC.SUCCESS;
}

function finish(conn: Connection, packet: ISubscribePacket, codes: number[], subId: number): void {
  const session = conn.session;
  if (conn.closed || session === null) return;
  const broker = conn.broker;
  const granted: number[] = [];
  const retainedFor: { sub: Subscription; existed: boolean }[] = [];
  const max = broker.config.limits.max_subscriptions;
  packet.subscriptions.forEach((s, i) => {
    let rc = codes[i] ?? RC.UNSPECIFIED_ERROR;
    // Counted here, as filters are added one by one, so one SUBSCRIBE cannot overshoot the limit.
    if (rc === RC.SUCCESS && max > 0 && session.subscriptions.size >= max && !session.subscriptions.has(s.topic)) {
      broker.limitHit('max_subscriptions');
      rc = RC.QUOTA_EXCEEDED;
    }
    if (rc !== RC.SUCCESS) {
      if (rc === RC.NOT_AUTHORIZED) broker.stats.subscribeDenied++;
      granted.push(conn.protocolVersion === 5 ? rc : subackCodeV4(rc));
      return;
    }
    const shared = parseShared(s.topic);
    const qos = s.qos as QoS;
    const group = shared && shared !== 'invalid' ? broker.router.group(shared.group, shared.filter) : null;
    const filter = group ? group.filter : s.topic;
    const v5 = conn.protocolVersion === 5;
    const sub = new Subscription(session, s.topic, filter, qos, {
      noLocal: v5 && !!s.nl,
      retainAsPublished: v5 && !!s.rap,
      retainHandling: v5 ? ((s.rh ?? 0) as 0 | 1 | 2) : 0,
      id: subId,
    }, group);
    // [MQTT-3.8.4-3] a subscription with the same filter replaces the old one.
    const previous = session.subscriptions.get(s.topic);
    if (previous && previous.group !== group) broker.router.remove(previous);
    session.subscriptions.set(s.topic, sub);
    const existed = broker.router.add(sub);
    granted.push(qos); // [MQTT-3.9.3-1? granted QoS]
    retainedFor.push({ sub, existed });
    broker.hooks.subscribed(conn, { filter: s.topic, qos }, qos);
  });
  // A persistent session's subscriptions are stored; SUBACK waits until they are durable.
  if (retainedFor.length > 0) broker.persistSession(session);
  conn.ack({ cmd: 'suback', messageId: packet.messageId, granted });
  for (const { sub, existed } of retainedFor) broker.sendRetained(session, sub, existed);
}
