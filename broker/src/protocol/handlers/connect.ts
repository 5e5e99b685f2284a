import { randomBytes } from 'node:crypto';
import type { IConnackPacket, IConnectPacket } from 'mqtt-packet';
import type { Connection } from '../../connection/connection.js';
import type { AuthVerdict } from '../../hooks/types.js';
import { MqttError } from '../errors.js';
import { connackCodeV4, RC } from '../reason-codes.js';
import { isValidClientId, isValidTopicName } from '../validate.js';
import { certificateUsername } from '../../listeners/certificates.js';
import { clientInfoOf } from '../../agent/client-info.js';
import { withinTopicLimits } from '../../limits/topic-limits.js';

type ConnackProperties = NonNullable<IConnackPacket['properties']>;

/**
 * CONNECT, as an ordered list of small steps (aedes' habit): check, identify, authenticate, take the session
 * over, acknowledge, resume. Any step may refuse with an MqttError, answered here with CONNACK.
 */
export async function handleConnect(conn: Connection, packet: IConnectPacket): Promise<void> {
  conn.setConnect(packet);
  const props: ConnackProperties = {};
  try {
    checkProperties(conn, packet);
    if (conn.refusal) throw new MqttError(conn.refusal.rc, `${conn.refusal.limit} exceeded`);
    identify(conn, packet, props);
    conn.agentInfo = clientInfoOf(packet); // agent mode: the seed's ClientInfo, if the client sent one
    // With tls.cert_username, the verified certificate names the client, whatever username it sent.
    const certName = certificateUsername(conn.broker.config.tls, conn.certificate);
    if (certName !== undefined) conn.username = certName;
    if (conn.broker.flapping.banned(conn.clientId, conn.broker.now())) {
      conn.broker.limitHit('flapping');
      throw new MqttError(RC.BANNED, 'reconnecting too often');
    }
    checkWill(conn, packet);
    if (!(await authenticate(conn, packet))) return; // the client went away meanwhile
  } catch (err) {
    if (!(err instanceof MqttError)) throw err;
    refuse(conn, err);
    return;
  }
  const cluster = conn.broker.cluster;
  const broker = conn.broker;
  const id = conn.clientId;
  if (!packet.clean && cluster !== null && (!broker.sessions.has(id) || broker.isLeaving(id) || cluster.moving(id))) {
    // Its persistent session may be on another node, leaving this one, or arriving here with the messages its
    // old node queued meanwhile still to come: the move ends first (what the old node queued goes out ahead of
    // what came here since), unless the client leaves meanwhile.
    await cluster.fetchSession(conn.clientId, conn.loginSignal());
    conn.loginDone();
    if (conn.closed) return;
  }
  const maxSessions = conn.broker.config.limits.max_sessions;
  if (maxSessions > 0 && conn.broker.sessions.size >= maxSessions && !conn.broker.sessions.has(conn.clientId)) {
    // Checked after a session fetched from another node has arrived: resuming one that exists never counts.
    conn.broker.limitHit('max_sessions');
    refuse(conn, new MqttError(RC.QUOTA_EXCEEDED, 'max_sessions reached'));
    return;
  }
  const { sessionPresent } = conn.broker.openSession(conn, packet, props);
  const keepalive = keepAlive(conn, packet, props);
  const connack: IConnackPacket = { cmd: 'connack', sessionPresent };
  if (conn.protocolVersion === 5) {
    connack.reasonCode = RC.SUCCESS;
    connack.properties = serverProperties(conn, props);
  } else {
    connack.returnCode = 0;
  }
  conn.write(connack);
  conn.connected = true;
  conn.startKeepalive(keepalive);
  conn.broker.clientConnected(conn, packet);
}

/**
 * Authentication: a login from an address with too many recent failures first waits out its delay (a timer, no
 * shared slot), then takes a slot of the worker pool and asks the hooks. Everything it holds goes as soon as the
 * client does (the connection aborts `loginSignal` on close). Returns false when the client went away; throws an
 * MqttError for a refusal.
 */
async function authenticate(conn: Connection, packet: IConnectPacket): Promise<boolean> {
  const broker = conn.broker;
  const abandoned = (): AbortSignal => conn.loginSignal(); // made only if something must wait
  const gate = broker.loginGate.enter(conn.remoteAddress, abandoned);
  if (gate === null) {
    // Refused before any password is checked, so it is not a failed login and tells a guesser nothing.
    broker.limitHit('login_pending');
    throw new MqttError(RC.CONNECTION_RATE_EXCEEDED, 'too many logins pending from this address');
  }
  try {
    if (gate.wait !== null && !(await gate.wait)) return false;
    let verdict: AuthVerdict;
    try {
      verdict = await broker.workers.run(() => broker.hooks.authenticate(conn, packet, abandoned), abandoned);
    } catch (err) {
      if (conn.closed) return false; // abandoned: the wait or the backend call was aborted
      throw err;
    }
    if (conn.closed) return false;
    if (verdict.rc !== RC.SUCCESS) throw new MqttError(verdict.rc, 'not authorized');
    conn.identity = verdict.identity ?? defaultIdentity(conn);
    if (verdict.expiresAt !== undefined) conn.credentialsExpireAt = verdict.expiresAt;
    return true;
  } finally {
    gate.leave();
    conn.loginDone();
  }
}

/**
 * Who owns the sessions this client makes when no authentication hook named someone: its username (the
 * certificate's name with `tls.cert_username`), else its verified client certificate, else nobody ('', anonymous).
 * U+0000, which no username may hold [MQTT-1.5.4-2], keeps certificates apart from usernames.
 */
function defaultIdentity(conn: Connection): string {
  if (conn.username !== undefined) return conn.username;
  const cert = conn.certificate;
  return cert === undefined ? '' : `\u0000cert:${cert.cn}\u0000${cert.san.join('\u0000')}`;
}

/** v5 CONNECT properties that must be valid before anything else (MQTT 5 section 3.1.2.11). */
function checkProperties(conn: Connection, packet: IConnectPacket): void {
  const p = packet.properties;
  if (conn.protocolVersion !== 5 || !p) return;
  if (p.receiveMaximum === 0) throw new MqttError(RC.PROTOCOL_ERROR, 'receive maximum 0');
  if (p.maximumPacketSize === 0) throw new MqttError(RC.PROTOCOL_ERROR, 'maximum packet size 0');
  // Enhanced authentication (AUTH exchanges) is not offered.
  if (p.authenticationMethod !== undefined) throw new MqttError(RC.BAD_AUTHENTICATION_METHOD, 'authentication method not supported');
  conn.receiveMaximum = p.receiveMaximum ?? 65535;
  conn.maximumPacketSize = p.maximumPacketSize ?? 0;
  conn.topicAliasMaximum = p.topicAliasMaximum ?? 0;
  conn.problemInfo = p.requestProblemInformation !== false;
}

/** Client identifier rules: a zero-length id is assigned one or refused [MQTT-3.1.3-6..8]. */
function identify(conn: Connection, packet: IConnectPacket, props: ConnackProperties): void {
  let id = packet.clientId;
  if (id.length === 0) {
    if (conn.protocolVersion === 3) throw new MqttError(RC.CLIENT_IDENTIFIER_NOT_VALID, 'MQTT 3.1 requires a client id');
    // [MQTT-3.1.3-8] a 3.1.1 client with clean session 0 must give an id.
    if (conn.protocolVersion === 4 && !packet.clean) throw new MqttError(RC.CLIENT_IDENTIFIER_NOT_VALID, 'empty client id with clean session 0');
    id = `smq-${randomBytes(9).toString('base64url')}`;
    if (conn.protocolVersion === 5) props.assignedClientIdentifier = id; // [MQTT-3.2.2-16]
  } else if (!isValidClientId(id)) {
    throw new MqttError(RC.CLIENT_IDENTIFIER_NOT_VALID, 'client id is not valid UTF-8'); // [MQTT-3.1.3-4]
  }
  conn.setClientId(id);
}

/** The will must be publishable: a valid topic name [MQTT-3.1.3-11], retain only if available. */
function checkWill(conn: Connection, packet: IConnectPacket): void {
  const will = packet.will;
  if (!will) return;
  if (!isValidTopicName(will.topic)) throw new MqttError(RC.TOPIC_NAME_INVALID, 'invalid will topic');
  const limits = conn.broker.config.limits;
  if (!withinTopicLimits(will.topic, limits.max_topic_levels, limits.max_topic_length)) {
    conn.broker.limitHit('topic_limits');
    throw new MqttError(RC.TOPIC_NAME_INVALID, 'will topic exceeds the topic limits');
  }
  const response = will.properties?.responseTopic;
  if (response !== undefined && !isValidTopicName(response)) {
    throw new MqttError(RC.PROTOCOL_ERROR, 'will response topic is not a valid topic name'); // as in PUBLISH [MQTT-3.3.2-14]
  }
  if (will.retain && !conn.broker.config.mqtt.retain_available) throw new MqttError(RC.RETAIN_NOT_SUPPORTED, 'retain not supported');
}

/** Keep-alive in force: the client's, capped by `max_keepalive` and announced to v5 clients [MQTT-3.2.2-21]. */
function keepAlive(conn: Connection, packet: IConnectPacket, props: ConnackProperties): number {
  const asked = packet.keepalive ?? 0;
  const max = conn.broker.config.mqtt.max_keepalive;
  if (conn.protocolVersion === 5 && max > 0 && (asked === 0 || asked > max)) {
    props.serverKeepAlive = max;
    return max;
  }
  return asked;
}

/** What the server tells a v5 client about itself in CONNACK. */
function serverProperties(conn: Connection, props: ConnackProperties): ConnackProperties {
  const cfg = conn.broker.config.mqtt;
  props.receiveMaximum = cfg.receive_maximum;
  props.maximumPacketSize = cfg.max_packet_size;
  props.topicAliasMaximum = cfg.topic_alias_maximum;
  if (!cfg.retain_available) props.retainAvailable = false;
  return props;
}

/** CONNACK with a refusal, then close [MQTT-3.2.2-5? / 3.2.2-7]: v3.1.x gets its nearest return code. */
function refuse(conn: Connection, err: MqttError): void {
  conn.log.info({ reasonCode: err.reasonCode, reason: err.message }, 'connection refused');
  conn.broker.stats.refused++;
  if (err.reasonCode === RC.NOT_AUTHORIZED || err.reasonCode === RC.BAD_USERNAME_OR_PASSWORD || err.reasonCode === RC.BANNED) {
    conn.broker.stats.authFailures++;
    conn.broker.hooks.authFailed(conn, err.reasonCode);
  }
  if (conn.protocolVersion !== 5 && err.reasonCode === RC.PAYLOAD_FORMAT_INVALID) {
    // 3.1.x has no return code for a malformed CONNECT: close without CONNACK [MQTT-4.8.0-1].
    conn.broker.stats.malformed++;
  } else if (conn.protocolVersion === 5) {
    conn.write({
      cmd: 'connack',
      sessionPresent: false,
      reasonCode: err.reasonCode,
      properties: conn.problemInfo ? { reasonString: err.message } : undefined,
    });
  } else {
    conn.write({ cmd: 'connack', sessionPresent: false, returnCode: connackCodeV4(err.reasonCode) });
  }
  conn.closeReason = err.message;
  conn.will = null;
  conn.close(undefined);
}
