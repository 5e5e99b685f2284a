import { readFileSync } from 'node:fs';
import { CompressionTypes, type IHeaders, Kafka, type KafkaConfig, logLevel, Partitioners, type Producer, type SASLOptions } from 'kafkajs';
import type { Logger } from 'pino';
import type { BridgeConfig } from '../config/types.js';
import type { BridgeMapping } from './mappings.js';

/** One message on its way to one Kafka topic. */
export interface BridgeRecord {
  readonly mapping: BridgeMapping;
  readonly key: string;
  readonly value: Buffer;
  readonly headers: IHeaders;
  /** performance.now() when it was queued (produce latency). */
  readonly queuedAt: number;
  /** Settles the publisher's wait (QoS 1/2), or null for a QoS 0 message nobody waits for. */
  readonly settle: ((err: Error | null) => void) | null;
}

/** Where the bridge is: connecting the first time, connected, down (retrying), stopped. */
export type BridgeState = 'connecting' | 'connected' | 'down' | 'stopped';

/** Counts per mapping, read by the metrics at scrape time. */
export class MappingCounts {
  produced = 0;
  failed = 0;
  buffered = 0;
}

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5000;
/** A failure is logged at most this often (Kafka away means a failure per retry). */
const LOG_EVERY_MS = 10_000;

/**
 * The Kafka side of the bridge: one queue of records, sent in batches (up to `batch_size`, after `linger` ms)
 * with one batch in flight, so records of one key reach Kafka in the order they were published. A batch that
 * fails is sent again, with backoff and a fresh producer, until Kafka takes it; meanwhile records wait in the
 * queue (bounded by `bridge.buffer`, enforced by the hook). QoS 1/2 publishers wait for their record's batch:
 * what they get acknowledged is in Kafka.
 */
export class KafkaPipeline {
  private readonly kafka: Kafka;
  private producer: Producer | null = null;
  private queue: BridgeRecord[] = [];
  private head = 0;
  private sending = false;
  private linger: NodeJS.Timeout | null = null;
  private retry: NodeJS.Timeout | null = null;
  private backoff = BACKOFF_MIN_MS;
  private lastLog = 0;
  private stopping = false;
  /** Called once the queue is empty while stopping. */
  private idle: (() => void) | null = null;
  private readonly acks: number;
  private readonly compression: CompressionTypes;
  state: BridgeState = 'connecting';
  /** Records sent to Kafka and acknowledged, failed attempts (a record counts once per failed batch). */
  readonly counts = new Map<string, MappingCounts>();
  /** Told each record's latency from queueing to Kafka's acknowledgement (set by the metrics). */
  observeLatency: ((mapping: BridgeMapping, seconds: number) => void) | null = null;
  /** Called when the queue falls back under a level the hook waits for. */
  onDrain: (() => void) | null = null;

  constructor(
    private readonly config: BridgeConfig,
    nodeId: string,
    private readonly log: Logger,
  ) {
    const k = config.kafka;
    this.acks = k.acks === 'all' ? -1 : k.acks === 'leader' ? 1 : 0;
    this.compression = k.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None;
    this.kafka = new Kafka(kafkaOptions(config, nodeId, log));
  }

  /** Records waiting for Kafka (queued or in the batch in flight). */
  get buffered(): number {
    return this.queue.length - this.head;
  }

  /** Queues a record; sends at once when a batch is full, else after `linger` ms. */
  add(record: BridgeRecord): void {
    this.queue.push(record);
    this.countsOf(record.mapping).buffered++;
    if (this.sending || this.retry !== null) return;
    if (this.buffered >= this.config.kafka.batch_size) this.pump();
    else this.linger ??= setTimeout(() => this.pump(), this.config.kafka.linger);
  }

  /** Per-mapping counts, created on first use. */
  countsOf(mapping: BridgeMapping): MappingCounts {
    let c = this.counts.get(mapping.id);
    if (c === undefined) this.counts.set(mapping.id, (c = new MappingCounts()));
    return c;
  }

  /**
   * Sends what is queued within `deadlineMs`, then gives up on the rest: their publishers are told (their
   * connections close unacknowledged, so they send again to a broker that is up).
   */
  async stop(deadlineMs: number): Promise<void> {
    this.stopping = true;
    if (this.buffered > 0) {
      clearTimeout(this.linger ?? undefined);
      if (this.retry === null) this.pump();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deadlineMs);
        this.idle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    this.state = 'stopped';
    clearTimeout(this.linger ?? undefined);
    clearTimeout(this.retry ?? undefined);
    const left = this.queue.slice(this.head);
    this.queue = [];
    this.head = 0;
    const err = new Error('the broker stopped before Kafka took the message');
    for (const r of left) r.settle?.(err);
    if (left.length > 0) this.log.warn({ messages: left.length }, 'bridge: stopped with messages Kafka had not taken');
    await this.producer?.disconnect().catch(() => undefined);
    this.producer = null;
  }

  private pump(): void {
    this.linger = null;
    if (this.sending || this.buffered === 0 || this.state === 'stopped') return;
    const batch = this.queue.slice(this.head, this.head + this.config.kafka.batch_size);
    this.sending = true;
    this.send(batch).then(
      () => this.sent(batch),
      (err: unknown) => this.failed(batch, err as Error),
    );
  }

  private async send(batch: BridgeRecord[]): Promise<void> {
    if (this.producer === null) {
      const p = this.kafka.producer({
        idempotent: this.acks === -1,
        maxInFlightRequests: this.acks === -1 ? 1 : undefined,
        allowAutoTopicCreation: true,
        createPartitioner: Partitioners.DefaultPartitioner,
        retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1000 },
      });
      await p.connect();
      this.producer = p;
    }
    const byTopic = new Map<string, { key: string; value: Buffer; headers: IHeaders }[]>();
    for (const r of batch) {
      let list = byTopic.get(r.mapping.queue);
      if (list === undefined) byTopic.set(r.mapping.queue, (list = []));
      list.push({ key: r.key, value: r.value, headers: r.headers });
    }
    await this.producer.sendBatch({
      acks: this.acks,
      timeout: this.config.kafka.timeout,
      compression: this.compression,
      topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
    });
  }

  private sent(batch: BridgeRecord[]): void {
    this.sending = false;
    this.head += batch.length;
    if (this.head > 4096 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    if (this.state !== 'connected' && this.state !== 'stopped') {
      this.log.info({ brokers: this.config.kafka.addr }, this.state === 'down' ? 'bridge: Kafka is back' : 'bridge: connected to Kafka');
      this.state = 'connected';
    }
    this.backoff = BACKOFF_MIN_MS;
    const now = performance.now();
    for (const r of batch) {
      const c = this.countsOf(r.mapping);
      c.produced++;
      c.buffered--;
      this.observeLatency?.(r.mapping, (now - r.queuedAt) / 1000);
      r.settle?.(null);
    }
    this.onDrain?.();
    if (this.buffered === 0 && this.idle !== null) this.idle();
    if (this.buffered >= this.config.kafka.batch_size || (this.buffered > 0 && this.stopping)) this.pump();
    else if (this.buffered > 0) this.linger ??= setTimeout(() => this.pump(), this.config.kafka.linger);
  }

  private failed(batch: BridgeRecord[], err: Error): void {
    this.sending = false;
    for (const r of batch) this.countsOf(r.mapping).failed++;
    if (this.state === 'stopped') return;
    this.state = this.state === 'connecting' ? 'connecting' : 'down';
    const now = Date.now();
    if (now - this.lastLog >= LOG_EVERY_MS) {
      this.lastLog = now;
      this.log.warn({ brokers: this.config.kafka.addr, messages: this.buffered, err: err.message }, 'bridge: Kafka did not take a batch: retrying');
    }
    // A fresh producer for the next attempt: the old one may hold a dead connection or a fenced producer id.
    const old = this.producer;
    this.producer = null;
    void old?.disconnect().catch(() => undefined);
    this.retry = setTimeout(() => {
      this.retry = null;
      this.pump();
    }, this.stopping ? 100 : this.backoff);
    this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
  }
}

/** kafkajs options from `bridge.kafka.*`; its log goes to ours (warnings and errors only). */
function kafkaOptions(config: BridgeConfig, nodeId: string, log: Logger): KafkaConfig {
  const k = config.kafka;
  const options: KafkaConfig = {
    clientId: k.client_id || `smq-${nodeId}`,
    brokers: [...k.addr],
    connectionTimeout: Math.min(k.timeout, 10_000),
    requestTimeout: k.timeout,
    retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1000 },
    logLevel: logLevel.WARN,
    // kafkajs logs an error per failed connection; while Kafka is away the pipeline's own (rate-limited)
    // warning says it once, so kafkajs speaks at debug level only.
    logCreator: () => ({ log: entry }) => {
      const { message, ...extra } = entry;
      log.debug({ kafkajs: extra }, `kafkajs: ${message}`);
    },
  };
  if (k.tls.enable) {
    options.ssl = {
      rejectUnauthorized: k.tls.verify,
      ca: k.tls.ca ? [readFileSync(k.tls.ca, 'utf8')] : undefined,
      cert: k.tls.cert ? readFileSync(k.tls.cert, 'utf8') : undefined,
      key: k.tls.key ? readFileSync(k.tls.key, 'utf8') : undefined,
    };
  }
  if (k.sasl.mechanism !== 'none') {
    options.sasl = { mechanism: k.sasl.mechanism, username: k.sasl.username, password: k.sasl.password } as SASLOptions;
  }
  return options;
}
