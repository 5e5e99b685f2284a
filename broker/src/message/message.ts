import type { IPublishPacket, QoS } from 'mqtt-packet';
import { encodePublish, NO_PROPERTIES } from '../protocol/codec/writer.js';
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
  /**
   * Identity across nodes and moves (see StoredMessage.id), set when it is first routed: every QoS 2 message, and
   * a QoS 1 message routed while this node's view of the cluster was stale (it is sent again, view.ts).
   */
  id: string | undefined = undefined;
  /** The topic as UTF-8, encoded on first use. */
  private topicBuf: Buffer | null = null;
  /** The plain QoS 0 PUBLISH (no RETAIN, no DUP) for v3.1/v3.1.1 and for v5 without properties, on first use. */
  private wire4: Buffer | null = null;
  private wire5: Buffer | null = null;

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

  /**
   * Rebuilds a message read back from the store or received from another node (its expiry stays absolute). Only
   * the properties a PUBLISH may carry come back: a store written before inbound properties were checked, or an
   * older node, must not hand subscribers a packet they would have to refuse.
   */
  static restore(s: StoredMessage): Message {
    const m = new Message(s.topic, s.payload, s.qos, s.retain, forwardable(s.properties), s.origin, 0);
    (m as { expiresAt: number }).expiresAt = s.expiresAt;
    m.id = s.id;
    return m;
  }

  /**
   * Takes the encoded forms from the PUBLISH this message came in: its topic bytes, and the frame itself when it
   * is already the plain QoS 0 form (QoS 0, no RETAIN; `v5`: with an empty property list), which then goes to
   * subscribers without being encoded again.
   */
  adopt(frame: Buffer, topicStart: number, topicEnd: number, plain: boolean, v5: boolean): void {
    this.topicBuf = frame.subarray(topicStart, topicEnd);
    if (!plain) return;
    if (v5) this.wire5 = frame;
    else this.wire4 = frame;
  }

  /** The topic name as UTF-8 bytes. */
  get topicBytes(): Buffer {
    return (this.topicBuf ??= Buffer.from(this.topic));
  }

  /**
   * The QoS 0 PUBLISH of this message without RETAIN or DUP, encoded once and given as is to every subscriber
   * that takes it in that form: fan-out to N subscribers costs one encoding, not N. `v5` selects the form with
   * an (empty) property block; only messages without properties travel this way.
   */
  wire(v5: boolean): Buffer {
    if (v5) return (this.wire5 ??= encodePublish(this.topicBytes, this.payload, 0, false, false, 0, NO_PROPERTIES));
    return (this.wire4 ??= encodePublish(this.topicBytes, this.payload, 0, false, false, 0, null));
  }

  /** True when the message's expiry interval has passed. */
  expired(now: number): boolean {
    return this.expiresAt !== 0 && now >= this.expiresAt;
  }
}

/** The properties a server may put in a PUBLISH of an application message (MQTT 5.0 section 3.3.2.3). */
const FORWARDABLE = new Set(['payloadFormatIndicator', 'messageExpiryInterval', 'contentType', 'responseTopic', 'correlationData', 'userProperties']);

/** `props` without anything a PUBLISH may not carry (the same object when nothing is to go), or undefined when empty. */
export function forwardable(props: MessageProperties | undefined): MessageProperties | undefined {
  if (props === undefined) return undefined;
  const keys = Object.keys(props);
  if (keys.every((k) => FORWARDABLE.has(k))) return keys.length > 0 ? props : undefined;
  const kept: Record<string, unknown> = {};
  for (const k of keys) if (FORWARDABLE.has(k)) kept[k] = (props as Record<string, unknown>)[k];
  return Object.keys(kept).length > 0 ? (kept as MessageProperties) : undefined;
}
