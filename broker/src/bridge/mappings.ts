import { createHash } from 'node:crypto';
import { matchLevels } from '../acl/match.js';
import { isValidTopicFilter } from '../protocol/validate.js';

/** One bridge mapping: messages published to topics matching `topic` (an MQTT filter) go to Kafka topic `queue`. */
export interface BridgeMapping {
  /** Derived from topic and queue, so the same mapping has the same id on every node and every time. */
  readonly id: string;
  readonly topic: string;
  readonly queue: string;
  /** The Kafka record key of this mapping, when it is not `bridge.kafka.key`'s. */
  readonly key?: MappingKey;
}

/** What a Kafka record is keyed by: the MQTT topic or the publisher's client id. */
export type MappingKey = 'topic' | 'clientid';

/** Where mappings are kept: a file in `store.dir`, or etcd in a cluster (see cluster/bridge.ts). */
export interface MappingBackend {
  /** Makes a change durable; resolves once it is. */
  put(mapping: BridgeMapping): Promise<void>;
  remove(id: string): Promise<void>;
}

/** Kafka topic names: 1 to 249 of [a-zA-Z0-9._-], and not "." or "..". */
const KAFKA_TOPIC = /^[a-zA-Z0-9._-]{1,249}$/;

/** A mapping request that cannot be taken (the API answers 400 with `code`). */
export class MappingError extends Error {
  constructor(readonly code: 'BAD_TOPIC' | 'BAD_QUEUE' | 'BAD_KEY', message: string) {
    super(message);
  }
}

/** The stable id of a mapping: 16 base64url characters of SHA-256 over topic and queue. */
export function mappingId(topic: string, queue: string): string {
  return createHash('sha256').update(topic).update('\u0000').update(queue).digest('base64url').slice(0, 16);
}

/** Checks a requested mapping and returns it with its id; throws a {@link MappingError} naming the bad field. */
export function makeMapping(topic: unknown, queue: unknown, key?: unknown): BridgeMapping {
  if (typeof topic !== 'string' || topic === '' || !isValidTopicFilter(topic) || topic.startsWith('$')) {
    throw new MappingError('BAD_TOPIC', 'topic must be an MQTT topic filter (wildcards allowed) not starting with $');
  }
  if (typeof queue !== 'string' || !KAFKA_TOPIC.test(queue) || queue === '.' || queue === '..') {
    throw new MappingError('BAD_QUEUE', 'queue must be a Kafka topic name: 1 to 249 of a-z A-Z 0-9 . _ -');
  }
  if (key !== undefined && key !== 'topic' && key !== 'clientid') {
    throw new MappingError('BAD_KEY', 'key must be "topic" or "clientid" (or absent for bridge.kafka.key)');
  }
  const id = mappingId(topic, queue);
  return key === 'topic' || key === 'clientid' ? { id, topic, queue, key } : { id, topic, queue };
}

/**
 * The bridge mappings of this broker (cluster-wide in a cluster): the set the bridge matches published topics
 * against, changed through the HTTP API (and the operator) and kept by a {@link MappingBackend}.
 */
export class BridgeMappings {
  private readonly byId = new Map<string, BridgeMapping>();
  /** Each mapping with its filter split into levels once, for match() on the publish path. */
  private split: { mapping: BridgeMapping; levels: string[] }[] = [];
  private backend: MappingBackend | null = null;
  /** Told of every change, from this node or from the cluster (the Kafka bridge follows it). */
  onChange: (() => void) | null = null;

  /** Sets where changes are kept (the file store, or etcd once the node joined a cluster). */
  use(backend: MappingBackend): void {
    this.backend = backend;
  }

  /** Every mapping, ordered by topic then queue. */
  list(): BridgeMapping[] {
    return [...this.byId.values()].sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.queue < b.queue ? -1 : a.queue > b.queue ? 1 : 0));
  }

  get(id: string): BridgeMapping | undefined {
    return this.byId.get(id);
  }

  get size(): number {
    return this.byId.size;
  }

  /** The mappings whose filter matches a topic name. */
  match(topic: string): BridgeMapping[] {
    const out: BridgeMapping[] = [];
    if (this.split.length === 0) return out;
    const levels = topic.split('/');
    for (const s of this.split) if (matchLevels(s.levels, levels)) out.push(s.mapping);
    return out;
  }

  /**
   * Adds a mapping, durably; `created` is false when it was there already (adding is idempotent; a new `key`
   * for the same topic and queue updates it).
   */
  async add(mapping: BridgeMapping): Promise<{ mapping: BridgeMapping; created: boolean }> {
    const had = this.byId.get(mapping.id);
    if (had !== undefined && had.key === mapping.key) return { mapping, created: false };
    await this.backend?.put(mapping);
    // In a cluster the watch may have applied our own write already: it is still this call that created it.
    this.apply(mapping);
    return { mapping, created: had === undefined };
  }

  /** Removes a mapping, durably; false when there was none with that id. */
  async remove(id: string): Promise<boolean> {
    if (!this.byId.has(id)) return false;
    await this.backend?.remove(id);
    this.forget(id);
    return true;
  }

  /** Applies a mapping known from the backend (a file read at start, an etcd watch). */
  apply(mapping: BridgeMapping): void {
    const had = this.byId.get(mapping.id);
    if (had !== undefined && had.key === mapping.key) return;
    this.byId.set(mapping.id, mapping);
    this.split = [...this.split.filter((s) => s.mapping.id !== mapping.id), { mapping, levels: mapping.topic.split('/') }];
    this.onChange?.();
  }

  /** Forgets a mapping removed elsewhere. */
  forget(id: string): void {
    if (!this.byId.delete(id)) return;
    this.split = this.split.filter((s) => s.mapping.id !== id);
    this.onChange?.();
  }
}
