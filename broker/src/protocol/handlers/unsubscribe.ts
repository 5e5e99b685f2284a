import type { IUnsubscribePacket } from 'mqtt-packet';
import type { Connection } from '../../connection/connection.js';
import { MqttError } from '../errors.js';
import { RC } from '../reason-codes.js';
import { isValidTopicFilter, parseShared } from '../validate.js';

/** UNSUBSCRIBE: removes each filter the session has; v5 says per filter whether one existed (MQTT 5 section 3.11.3). */
export function handleUnsubscribe(conn: Connection, packet: IUnsubscribePacket): void {
  if (packet.unsubscriptions.length === 0) throw new MqttError(RC.PROTOCOL_ERROR, 'UNSUBSCRIBE without filters'); // [MQTT-3.10.3-2]
  if (!packet.messageId) throw new MqttError(RC.PROTOCOL_ERROR, 'packet identifier 0'); // [MQTT-2.3.1-1]
  const session = conn.session;
  if (session === null) return;
  const codes: number[] = [];
  for (const raw of packet.unsubscriptions) {
    const shared = parseShared(raw);
    if (shared === 'invalid' || (shared === null && !isValidTopicFilter(raw))) {
      codes.push(RC.TOPIC_FILTER_INVALID);
      continue;
    }
    const sub = session.subscriptions.get(raw);
    if (!sub) {
      codes.push(RC.NO_SUBSCRIPTION_EXISTED);
      continue;
    }
    session.subscriptions.delete(raw);
    conn.broker.router.remove(sub);
    conn.broker.hooks.unsubscribed(conn, raw);
    codes.push(RC.SUCCESS);
  }
  if (codes.includes(RC.SUCCESS)) conn.broker.persistSession(session);
  // [MQTT-3.10.4-4] UNSUBACK even when nothing was removed; 3.1.1 UNSUBACK has no payload.
  conn.ack(
    conn.protocolVersion === 5
      ? { cmd: 'unsuback', messageId: packet.messageId, granted: codes }
      : { cmd: 'unsuback', messageId: packet.messageId, granted: [] },
  );
}
