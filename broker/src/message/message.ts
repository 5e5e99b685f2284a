import type { IPublishPacket, QoS } from 'mqtt-packet';
import type { StoredMessage } from '../store/types.js';

/** PUBLISH properties that travel with a message from publisher to subscribers (v5). */
export type MessageProperties = NonNullable<IPublishPacket['properties']>;

/**
 * An application message as the broker routes it, independent of any one connection's protocol version.
 * Created once per inbound PUBLISH and shared (never mutated) by every delivery.
 */
export class Message implements StoredMessage {
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: QoS;
  readonly retain: boolean;
  /** v5 properties to forward (topic alias and subscription identifiers removed), or undefined. */
  readonly properties: MessageProperties | undefined;
  /** Client id of the publisher, for no-local and hash strategies; '' for broker-made messages. */
  readonly origin: string;
  /** Epoch milliseconds after which the message must not be delivered; 0 = never [MQTT-3.3.2-5]. */
  readonly expiresAt: number;

  constructor(
    topic: string,
    payload: Buffer,
    qos: QoS,
    retain: boolean,
    properties: MessageProperties | undefined,
    origin: string,
    now: number,
  ) {
    this.topic = topic;
    this.payload = payload;
    this.qos = qos;
    this.retain = retain;
    this.properties = properties;
    this.origin = origin;
    const expiry = properties?.messageExpiryInterval;
    this.expiresAt = expiry ? now + expiry * 1000 : 0;
  }

  /** Rebuilds a message read back from the store (its expiry stays absolute). */
  static restore(s: StoredMessage): Message {
    const m = new Message(s.topic, s.payload, s.qos, s.retain, s.properties, s.origin, 0);
    (m as { expiresAt: number }).expiresAt = s.expiresAt;
    return m;
  }

  /** True when the message's expiry interval has passed. */
  expired(now: number): boolean {
    return this.expiresAt !== 0 && now >= this.expiresAt;
  }
}
