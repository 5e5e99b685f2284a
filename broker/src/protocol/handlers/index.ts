import type { Packet } from 'mqtt-packet';
import type { Connection } from '../../connection/connection.js';
import { MqttError, protocolError } from '../errors.js';
import { RC } from '../reason-codes.js';
import { PINGRESP } from '../codec/writer.js';
import { handleConnect } from './connect.js';
import { handleDisconnect } from './disconnect.js';
import { handlePuback, handlePubcomp, handlePubrec, handlePubrel } from './acks.js';
import { handlePublish } from './publish.js';
import { handleSubscribe } from './subscribe.js';
import { handleUnsubscribe } from './unsubscribe.js';

/**
 * The single dispatch point for inbound packets. A handler returns nothing, or a promise when it must wait
 * (authentication, authorization); the connection then holds later packets so order is kept. Errors are thrown
 * as MqttError and turned into replies by the connection alone.
 */
export function dispatch(conn: Connection, packet: Packet): Promise<void> | void {
  if (!conn.connected) {
    // [MQTT-3.1.0-1] the first packet must be CONNECT.
    if (packet.cmd !== 'connect') throw protocolError(`expected CONNECT, got ${packet.cmd.toUpperCase()}`);
    return handleConnect(conn, packet);
  }
  switch (packet.cmd) {
    case 'publish':
      return handlePublish(conn, packet);
    case 'puback':
      return handlePuback(conn, packet);
    case 'pubrec':
      return handlePubrec(conn, packet);
    case 'pubrel':
      return handlePubrel(conn, packet);
    case 'pubcomp':
      return handlePubcomp(conn, packet);
    case 'subscribe':
      return handleSubscribe(conn, packet);
    case 'unsubscribe':
      return handleUnsubscribe(conn, packet);
    case 'pingreq':
      conn.writeNow(PINGRESP); // [MQTT-3.12.4-1], ahead of acknowledgements that wait for Kafka
      return;
    case 'disconnect':
      return handleDisconnect(conn, packet);
    case 'connect':
      throw protocolError('second CONNECT'); // [MQTT-3.1.0-2]
    case 'auth':
      // Enhanced authentication is not offered, so an AUTH packet is a protocol error [MQTT-4.12.0-1].
      throw new MqttError(RC.PROTOCOL_ERROR, 'AUTH without an authentication method');
    default:
      // Server-to-client packets (CONNACK, SUBACK, ...) from a client are a protocol error.
      throw protocolError(`unexpected ${packet.cmd.toUpperCase()} from a client`);
  }
}
