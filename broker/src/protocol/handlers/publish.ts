import type { IPublishPacket } from 'mqtt-packet';
import type { Connection } from '../../connection/connection.js';
import { Message, type MessageProperties } from '../../message/message.js';
import { MqttError } from '../errors.js';
import { RC } from '../reason-codes.js';
import { encodeAck, PUBACK, PUBREC } from '../codec/writer.js';
import type { InboundPublish } from '../codec/reader.js';
import { isValidTopicName, isWellFormedString } from '../validate.js';
import { withinTopicLimits } from '../../limits/topic-limits.js';
import type { Session } from '../../session/session.js';

/**
 * Incoming QoS 2 messages whose PUBREC waits for the Kafka bridge, by session and packet id. The client sends
 * such a PUBLISH again after a reconnect [MQTT-4.4.0-1]; its id is known, so it is not routed again, and its
 * PUBREC must wait for the first one's produce: acknowledged still means in Kafka.
 */
const heldQos2 = new WeakMap<Session, Map<number, Promise<void>>>();

/**
 * PUBLISH from a client: resolve the topic alias, validate, authorize, route, acknowledge. QoS 2 is handled by
 * the "store packet id, deliver once, PUBREC" method (MQTT 5 section 4.3.3): a duplicate before PUBREL is
 * acknowledged again but not routed again.
 */
export function handlePublish(conn: Connection, packet: IPublishPacket): Promise<void> | void {
  const broker = conn.broker;
  const v5 = conn.protocolVersion === 5;
  let topic = packet.topic;
  let props = packet.properties;
  if (v5 && props !== undefined) {
    const alias = props.topicAlias;
    if (alias !== undefined) topic = resolveAlias(conn, topic, alias);
    if (props.subscriptionIdentifier !== undefined) {
      throw new MqttError(RC.PROTOCOL_ERROR, 'subscription identifier in PUBLISH'); // [MQTT-3.3.4-6]
    }
    if (props.responseTopic !== undefined && !isValidTopicName(props.responseTopic)) {
      throw new MqttError(RC.PROTOCOL_ERROR, 'response topic is not a valid topic name'); // [MQTT-3.3.2-14]
    }
    props = forwarded(props);
  }
  // [MQTT-3.3.2-2] no wildcards; [MQTT-4.7.3-1] not empty; [MQTT-1.5.4-2] no U+0000.
  if (!isValidTopicName(topic)) {
    if (!isWellFormedString(topic)) throw new MqttError(RC.MALFORMED_PACKET, 'topic name is not well-formed UTF-8');
    throw new MqttError(RC.TOPIC_NAME_INVALID, 'invalid topic name');
  }
  if (packet.retain && !broker.config.mqtt.retain_available) throw new MqttError(RC.RETAIN_NOT_SUPPORTED, 'retain not supported');
  const qos = packet.qos;
  const id = packet.messageId ?? 0;
  if (qos > 0 && id === 0) throw new MqttError(RC.PROTOCOL_ERROR, 'packet identifier 0'); // [MQTT-2.3.1-1]
  const session = conn.session;
  if (session === null) return;
  broker.stats.messagesReceived++;
  if (qos === 1) broker.stats.receivedQos1++;
  else if (qos === 2) broker.stats.receivedQos2++;

  if (qos === 2 && session.incomingQos2.has(id)) {
    // A duplicate: acknowledge, do not deliver twice [MQTT-4.3.3-10]; not before the first could be.
    const held = heldQos2.get(session)?.get(id);
    if (held !== undefined) conn.ackAfter(held, PUBREC, id);
    else conn.writeBytes(encodeAck(PUBREC, id));
    return;
  }
  if (qos === 2 && session.incomingQos2.size >= broker.config.mqtt.receive_maximum) {
    throw new MqttError(RC.RECEIVE_MAXIMUM_EXCEEDED, 'receive maximum exceeded'); // [MQTT-3.3.4-7? v5 4.9]
  }

  // The clock is read only for an expiry: Date.now() per message was a measured 3 % of a QoS 1 fan-in.
  const now = props?.messageExpiryInterval ? broker.now() : 0;
  const message = new Message(topic, packet.payload as Buffer, qos, packet.retain, props, conn.clientId, now);
  if ('frame' in packet && topic === packet.topic) {
    const p = packet as InboundPublish;
    message.adopt(p.frame, p.topicStart, p.topicEnd, qos === 0 && !p.retain && !p.dup && props === undefined, v5);
  }
  const limits = broker.config.limits;
  let rc: number | Promise<number>;
  if (!withinTopicLimits(topic, limits.max_topic_levels, limits.max_topic_length)) {
    // Well-formed but not accepted here: refused like an ACL denial, and the connection stays.
    broker.limitHit('topic_limits');
    rc = RC.TOPIC_NAME_INVALID;
  } else if (topic.charCodeAt(0) === 0x24 /* $ */ && !broker.hooks.claims(topic)) {
    // `$SYS/` is the broker's; other `$` prefixes are reserved until a feature (a hook) claims them.
    rc = RC.NOT_AUTHORIZED;
  } else {
    rc = broker.hooks.authorizePublish(conn, message);
  }
  if (typeof rc === 'number') return finish(conn, message, id, rc);
  // An asynchronous ACL backend: the connection holds later packets until this one is done.
  return rc.then((code) => finish(conn, message, id, code));
}

/**
 * Routes an authorized message and acknowledges it (or refuses it, in v5). Returns a promise while the broker
 * is congested (cross-node buffers full, or the Kafka bridge's for a bridged topic): the connection reads nothing
 * more from this client until then.
 */
function finish(conn: Connection, message: Message, id: number, rc: number): Promise<void> | void {
  const broker = conn.broker;
  const session = conn.session;
  if (session === null || conn.closed) return;
  const qos = message.qos;
  if (rc === RC.QUOTA_EXCEEDED && qos > 0 && conn.protocolVersion !== 5) {
    // A full bridge buffer is passing, unlike a denial: a 3.1.x client, which cannot be told, is closed
    // unacknowledged and sends the message again once it reconnects, instead of having it acknowledged and lost.
    conn.closeReason = 'bridge buffer full';
    conn.close(RC.QUOTA_EXCEEDED);
    return;
  }
  // The Kafka bridge may hold the acknowledgement until Kafka has the message.
  const hold = rc === RC.SUCCESS ? broker.route(conn, message) : null;
  if (rc !== RC.SUCCESS && rc !== RC.QUOTA_EXCEEDED) broker.stats.publishDenied++;
  const congested = broker.congestion(message.topic);
  if (qos === 0) return congested ?? undefined;
  if (qos === 2 && hold !== null) {
    // Known at once, so a PUBLISH sent again meanwhile is not routed twice; stored only once Kafka has the
    // message, so after a crash before that the resent PUBLISH is routed (and bridged) again, not just PUBREC'd.
    session.incomingQos2.add(id);
    const stored = hold.then(() => {
      if (session.incomingQos2.has(id)) session.storeIncoming(id);
      return broker.barriers.dirty ? broker.barriers.flush() : undefined;
    });
    holdQos2(session, id, stored);
    conn.ackAfter(stored, PUBREC, id);
    return congested ?? undefined;
  }
  if (qos === 2 && rc === RC.SUCCESS) session.addIncoming(id);
  // Acknowledgements wait for the store when this message was written there: what is acknowledged is durable.
  // v3.1.1 has no way to say "refused": it acknowledges positively [MQTT-3.3.5-2].
  if (hold !== null) {
    conn.ackAfter(hold, PUBACK, id);
  } else if (rc === RC.SUCCESS || conn.protocolVersion !== 5) conn.ackId(qos === 1 ? PUBACK : PUBREC, id);
  else conn.ack({ cmd: qos === 1 ? 'puback' : 'pubrec', messageId: id, reasonCode: rc });
  return congested ?? undefined;
}

/** Remembers a QoS 2 message's wait for Kafka until it settles, for a PUBLISH sent again meanwhile. */
function holdQos2(session: Session, id: number, hold: Promise<void>): void {
  let byId = heldQos2.get(session);
  if (byId === undefined) heldQos2.set(session, (byId = new Map()));
  byId.set(id, hold);
  const forget = (): void => {
    if (byId.get(id) === hold) byId.delete(id);
  };
  hold.then(forget, forget);
}

/** Inbound topic aliases (v5 3.3.2.3.4). */
function resolveAlias(conn: Connection, topic: string, alias: number): string {
  if (alias === 0 || alias > conn.broker.config.mqtt.topic_alias_maximum) {
    throw new MqttError(RC.TOPIC_ALIAS_INVALID, 'topic alias out of range'); // [MQTT-3.3.2-8, 3.3.2-9]
  }
  if (topic.length > 0) {
    (conn.aliasesIn ??= new Map()).set(alias, topic);
    return topic;
  }
  const known = conn.aliasesIn?.get(alias);
  if (known === undefined) throw new MqttError(RC.PROTOCOL_ERROR, 'unknown topic alias');
  return known;
}

/** The properties that travel on to subscribers: everything but the alias (per connection). */
function forwarded(props: MessageProperties): MessageProperties | undefined {
  if (props.topicAlias === undefined) return props;
  const { topicAlias: _alias, ...rest } = props;
  return Object.keys(rest).length > 0 ? rest : undefined;
}
