import type { IHeaders } from 'kafkajs';
import type { Logger } from 'pino';
import type { BridgeConfig } from '../config/types.js';
import type { AuthzResult, ClientInfo, Hook } from '../hooks/types.js';
import type { Message } from '../message/message.js';
import { RC } from '../protocol/reason-codes.js';
import { isValidTopicName } from '../protocol/validate.js';
import type { BridgeMapping, BridgeMappings } from './mappings.js';
import { type BridgeState, KafkaPipeline } from './producer.js';

/** The prefix of topics published to Kafka only (the seed's agents hand their results over this way). */
export const QUEUE_PREFIX = '$queue/';

/** What the bridge needs from the broker. */
export interface BridgeHost {
  readonly config: { readonly bridge: BridgeConfig };
  readonly nodeId: string;
  readonly log: Logger;
  readonly bridgeMappings: BridgeMappings;
}

/**
 * The Kafka bridge as a hook (the seed's bridge): a message published to a topic that matches a mapping is
 * produced to the mapping's Kafka topic and still delivered to MQTT subscribers; one published to
 * `$queue/<topic>` goes to the Kafka topics mapped for `<topic>` only. For QoS 1/2 the publisher's
 * acknowledgement waits until Kafka has the message ({@link onPublish} returns that wait).
 *
 * Flow control: past half of `bridge.buffer` messages waiting for Kafka, the broker stops reading from
 * publishers of bridged topics ({@link congestion}) until the queue is under a quarter; at `bridge.buffer`, a
 * bridged QoS 1/2 publish is refused (v5 0x97 Quota exceeded) and a bridged QoS 0 one dropped, both counted.
 */
export class KafkaBridge implements Hook {
  readonly name = 'kafka-bridge';
  readonly claims = [QUEUE_PREFIX];
  readonly pipeline: KafkaPipeline;
  private readonly mappings: BridgeMappings;
  private readonly limit: number;
  private readonly byClient: boolean;
  /** Bridged publishes refused (QoS 1/2) or dropped (QoS 0) because the buffer was full. */
  refused = 0;
  dropped = 0;
  private relief: { promise: Promise<void>; resolve: () => void } | null = null;

  constructor(host: BridgeHost) {
    const cfg = host.config.bridge;
    this.mappings = host.bridgeMappings;
    this.limit = cfg.buffer;
    this.byClient = cfg.kafka.key === 'clientid';
    this.pipeline = new KafkaPipeline(cfg, host.nodeId, host.log.child({ component: 'bridge' }));
    this.pipeline.onDrain = () => {
      if (this.relief !== null && this.pipeline.buffered < this.limit / 4) {
        this.relief.resolve();
        this.relief = null;
      }
    };
  }

  /** Where the bridge is, for the health endpoints. */
  get state(): BridgeState {
    return this.pipeline.state;
  }

  /** `$queue/<topic>` needs a mapping for `<topic>`; a bridged QoS 1/2 publish needs room in the buffer. */
  authorizePublish(_client: ClientInfo, message: Message): AuthzResult {
    const topic = message.topic;
    if (topic.startsWith(QUEUE_PREFIX)) {
      const inner = topic.slice(QUEUE_PREFIX.length);
      if (!isValidTopicName(inner) || inner.startsWith('$') || this.mappings.match(inner).length === 0) return RC.TOPIC_NAME_INVALID;
      return this.full(message) ? this.refuse() : undefined;
    }
    if (this.full(message) && this.mappings.match(topic).length > 0) return this.refuse();
    return undefined;
  }

  /** Queues the message for every matching mapping; for QoS 1/2 returns the wait for Kafka's acknowledgement. */
  onPublish(client: ClientInfo | null, message: Message): Promise<void> | undefined {
    if (this.mappings.size === 0) return undefined;
    let topic = message.topic;
    if (topic.startsWith(QUEUE_PREFIX)) topic = topic.slice(QUEUE_PREFIX.length);
    else if (topic.charCodeAt(0) === 0x24 /* $ */) return undefined; // $SYS is the broker's own
    const matches = this.mappings.match(topic);
    if (matches.length === 0) return undefined;
    if (message.qos === 0 && this.pipeline.buffered >= this.limit) {
      this.dropped++;
      return undefined;
    }
    const headers = headersOf(client, message, topic);
    const queuedAt = performance.now();
    if (message.qos === 0) {
      for (const mapping of matches) this.pipeline.add({ mapping, key: this.keyOf(mapping, message, topic), value: message.payload, headers, queuedAt, settle: null });
      return undefined;
    }
    return new Promise<void>((resolve, reject) => {
      let waiting = matches.length;
      const settle = (err: Error | null): void => {
        if (err !== null) reject(err);
        else if (--waiting === 0) resolve();
      };
      for (const mapping of matches) this.pipeline.add({ mapping, key: this.keyOf(mapping, message, topic), value: message.payload, headers, queuedAt, settle });
    });
  }

  /**
   * For a publish to `topic`: resolves once the queue for Kafka is short again; null while it is not long, or
   * when the topic is not bridged (the broker's flow control). Only bridged publishers are slowed: MQTT traffic
   * that never goes to Kafka flows on while Kafka is away.
   */
  congestion(topic: string): Promise<void> | null {
    if (this.relief === null && this.pipeline.buffered < this.limit / 2) return null;
    if (!this.bridges(topic)) return null;
    if (this.relief !== null) return this.relief.promise;
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    this.relief = { promise, resolve };
    return promise;
  }

  /** The mapping counts by mapping, for the metrics. */
  countsFor(mapping: BridgeMapping): { produced: number; failed: number; buffered: number } {
    return this.pipeline.countsOf(mapping);
  }

  async onStop(): Promise<void> {
    await this.pipeline.stop(5000);
    this.relief?.resolve();
    this.relief = null;
  }

  /** Whether a publish to `topic` goes to Kafka (`$queue/<topic>` for `<topic>`). */
  private bridges(topic: string): boolean {
    if (topic.startsWith(QUEUE_PREFIX)) topic = topic.slice(QUEUE_PREFIX.length);
    else if (topic.charCodeAt(0) === 0x24 /* $ */) return false;
    return this.mappings.match(topic).length > 0;
  }

  /** The record key: the mapping's choice, else `bridge.kafka.key`'s. */
  private keyOf(mapping: BridgeMapping, message: Message, topic: string): string {
    const byClient = mapping.key === undefined ? this.byClient : mapping.key === 'clientid';
    return byClient ? message.origin : topic;
  }

  private full(message: Message): boolean {
    return message.qos > 0 && this.pipeline.buffered >= this.limit;
  }

  private refuse(): number {
    this.refused++;
    return RC.QUOTA_EXCEEDED;
  }
}

/**
 * Kafka record headers: the v5 user properties under their own names, then the MQTT facts under `mqtt_*`
 * (which win over a user property of the same name).
 */
function headersOf(client: ClientInfo | null, message: Message, topic: string): IHeaders {
  const headers: IHeaders = {};
  const user = message.properties?.userProperties;
  if (user !== undefined) for (const [k, v] of Object.entries(user)) headers[k] = v;
  headers['mqtt_topic'] = topic;
  headers['mqtt_client_id'] = message.origin;
  if (client?.username !== undefined) headers['mqtt_username'] = client.username;
  headers['mqtt_qos'] = String(message.qos);
  headers['mqtt_retain'] = message.retain ? '1' : '0';
  return headers;
}
