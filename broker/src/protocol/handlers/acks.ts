import type { IPubackPacket, IPubcompPacket, IPubrecPacket, IPubrelPacket } from 'mqtt-packet';
import type { Connection } from '../../connection/connection.js';
import { MqttError } from '../errors.js';
import { RC } from '../reason-codes.js';
import { PUBCOMP, PUBREL } from '../codec/writer.js';

/** PUBACK: an outgoing QoS 1 message is done (section 4.3.2). */
export function handlePuback(conn: Connection, packet: IPubackPacket): void {
  conn.session?.complete(packetId(packet));
}

/** The packet identifier of an acknowledgement, which is never 0 [MQTT-2.3.1-1]. */
function packetId(packet: { messageId?: number | undefined }): number {
  const id = packet.messageId ?? 0;
  if (id === 0) throw new MqttError(RC.PROTOCOL_ERROR, 'packet identifier 0'); // [MQTT-2.3.1-1]
  return id;
}

/** PUBREC: answer PUBREL, or end the exchange when the client refused the message (v5 code >= 0x80). */
export function handlePubrec(conn: Connection, packet: IPubrecPacket): void {
  const id = packetId(packet);
  const session = conn.session;
  if (!session) return;
  if ((packet.reasonCode ?? 0) >= 0x80) {
    session.complete(id); // a PUBREC with a failure code ends the QoS 2 flow (MQTT 5 section 4.3.3)
    return;
  }
  if (session.received(id)) {
    // PUBREL only once "PUBREC received" is durable: after PUBREL the client may forget the message, and a
    // broker that restarted and sent the PUBLISH again would make it a second delivery [MQTT-4.3.3-3].
    conn.ackId(PUBREL, id);
  } else {
    conn.write({ cmd: 'pubrel', messageId: id, reasonCode: RC.PACKET_IDENTIFIER_NOT_FOUND });
  }
}

/** PUBREL: the client releases an incoming QoS 2 message; always answered with PUBCOMP [MQTT-4.3.3-11]. */
export function handlePubrel(conn: Connection, packet: IPubrelPacket): void {
  const id = packetId(packet);
  const known = conn.session?.releaseIncoming(id) ?? false;
  // After a restart a stale id would swallow the client's next message with that id: PUBCOMP waits for
  // the delete to be durable.
  if (known || conn.protocolVersion !== 5) conn.ackId(PUBCOMP, id);
  else conn.ack({ cmd: 'pubcomp', messageId: id, reasonCode: RC.PACKET_IDENTIFIER_NOT_FOUND });
}

/** PUBCOMP: an outgoing QoS 2 message is done. */
export function handlePubcomp(conn: Connection, packet: IPubcompPacket): void {
  conn.session?.complete(packetId(packet));
}
