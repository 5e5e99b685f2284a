import type { IDisconnectPacket } from 'mqtt-packet';
import type { Connection } from '../../connection/connection.js';
import { protocolError } from '../errors.js';
import { RC } from '../reason-codes.js';

/**
 * DISCONNECT from the client: a normal end discards the will [MQTT-3.1.2-10, 3.14.4-3], unless v5 reason 0x04
 * asks for it. v5 may change the session expiry, but not from 0 to non-zero [MQTT-3.14.2-2].
 */
export function handleDisconnect(conn: Connection, packet: IDisconnectPacket): void {
  const expiry = packet.properties?.sessionExpiryInterval;
  const session = conn.session;
  if (expiry !== undefined && session) {
    if (session.expiryInterval === 0 && expiry !== 0) {
      throw protocolError('session expiry interval changed from 0 at DISCONNECT');
    }
    session.expiryInterval = Math.min(expiry, conn.broker.config.mqtt.max_session_expiry_interval);
  }
  if (packet.reasonCode !== RC.DISCONNECT_WITH_WILL) conn.will = null;
  conn.closeReason = 'client disconnected';
  conn.close(undefined);
}
