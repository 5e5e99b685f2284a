import mqtt, { type Packet } from 'mqtt-packet';

/**
 * Properties a packet may go without when it would exceed the client's Maximum Packet Size, least needed first.
 * A Reason String and User Properties must go first [MQTT-3.1.2-29]. The CONNACK ones after them only announce
 * limits the broker enforces anyway, or what it supports: a client that does not hear them assumes the defaults
 * and is held to the broker's limits as before. What a client cannot go without (Maximum QoS, Retain Available,
 * an assigned client id or keep-alive, the session expiry the broker set, authentication) is never dropped.
 */
const OPTIONAL = [
  'reasonString', 'userProperties', 'serverReference', 'responseInformation', 'topicAliasMaximum',
  'maximumPacketSize', 'receiveMaximum', 'wildcardSubscriptionAvailable', 'subscriptionIdentifiersAvailable',
  'sharedSubscriptionAvailable',
] as const;

/**
 * The packet encoded within `max` bytes, dropping optional properties as needed [MQTT-3.1.2-24]; null when even
 * without them it does not fit (the caller closes the connection: the client asked for less than MQTT needs).
 */
export function fitPacket(packet: Packet, max: number, protocolVersion: number): Buffer | null {
  const props = (packet as { properties?: Record<string, unknown> }).properties;
  if (props === undefined) return null;
  const trimmed: Record<string, unknown> = { ...props };
  for (const name of OPTIONAL) {
    if (!(name in trimmed)) continue;
    delete trimmed[name];
    const buf = mqtt.generate({ ...packet, properties: trimmed } as Packet, { protocolVersion });
    if (buf.length <= max) return buf;
  }
  return null;
}
