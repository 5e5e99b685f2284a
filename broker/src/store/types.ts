import type { QoS } from 'mqtt-packet';
import type { MessageProperties } from '../message/message.js';

/** A message as stored: everything needed to rebuild a Message after a restart. */
export interface StoredMessage {
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: QoS;
  readonly retain: boolean;
  readonly properties: MessageProperties | undefined;
  readonly origin: string;
  /**
   * The message's identity across nodes, moves and restarts (`<node>:<n>`), set for QoS 2 messages (and QoS 1
   * ones routed by a stale view, which are sent twice): a session
   * that meets the same message twice (a move's overlap, a merged copy, an inbox read again) delivers it once.
   */
  readonly id?: string | undefined;
  /** Epoch ms after which the message is dropped; 0 = never. */
  readonly expiresAt: number;
}

/** One subscription of a stored session. */
export interface StoredSubscription {
  /** The filter as the client sent it (with any `$share/<group>/` prefix). */
  readonly raw: string;
  readonly qos: QoS;
  readonly noLocal: boolean;
  readonly retainAsPublished: boolean;
  readonly retainHandling: 0 | 1 | 2;
  readonly id: number;
}

/** A will waiting for its delay (v5) while its session is away. */
export interface StoredWill {
  readonly message: StoredMessage;
  /** Epoch ms at which it is published unless the client comes back. */
  readonly at: number;
}

/** A persistent session (one whose expiry interval is not 0). */
export interface StoredSession {
  readonly clientId: string;
  /** Username of the last connection, for access checks while the client is away (a will, a queued read). */
  readonly username?: string | undefined;
  /** The identity the session belongs to (Session.owner); a store written before it had one: the username. */
  readonly owner?: string | undefined;
  /** Session Expiry Interval in seconds (0xFFFFFFFF = never). */
  readonly expiryInterval: number;
  /** Epoch ms of the last disconnect, 0 while connected; with the interval it gives the expiry time. */
  readonly disconnectedAt: number;
  readonly subscriptions: readonly StoredSubscription[];
  readonly will: StoredWill | null;
}

/** An outgoing QoS 1/2 message of a persistent session: queued (packetId 0) or in flight. */
export interface StoredDelivery {
  readonly clientId: string;
  /** Order within the session; increases with every delivery. */
  readonly seq: number;
  readonly message: StoredMessage;
  readonly qos: QoS;
  readonly retain: boolean;
  readonly subIds: readonly number[] | undefined;
  readonly packetId: number;
  /** 0: PUBLISH sent or queued, awaiting PUBACK/PUBREC; 1: PUBREL sent, awaiting PUBCOMP. */
  readonly state: 0 | 1;
}

/** Everything a store holds, read once at start-up. */
export interface Snapshot {
  readonly retained: StoredMessage[];
  readonly sessions: StoredSession[];
  /** Deliveries grouped by client, in seq order within a client (clients in no defined order). */
  readonly deliveries: StoredDelivery[];
  /** Incoming QoS 2 packet ids awaiting PUBREL, by client id (a client with none may have no entry). */
  readonly incoming: Map<string, number[]>;
  /** Cluster inbox batches delivered here and maybe not yet deleted from etcd (see Store.putConsumed). */
  readonly consumed: Set<string>;
}

/**
 * Persistence of retained messages and persistent sessions. Writes are queued and return at once; `flush()`
 * resolves when everything queued before it is durable, and one commit serves every caller waiting on it
 * (group commit). Every implementation passes the suite in `suite.ts`.
 */
export interface Store {
  /** Opens (or creates) the store and reads everything it holds. */
  open(): Promise<Snapshot>;
  putRetained(message: StoredMessage): void;
  deleteRetained(topic: string): void;
  putSession(session: StoredSession): void;
  /** Deletes a session with its deliveries and incoming ids. */
  deleteSession(clientId: string): void;
  putDelivery(delivery: StoredDelivery): void;
  deleteDelivery(clientId: string, seq: number): void;
  putIncoming(clientId: string, packetId: number): void;
  deleteIncoming(clientId: string, packetId: number): void;
  /**
   * A cluster inbox batch (its etcd key) whose deliveries were queued just before: committed with them, so that a
   * restart does not deliver the batch again while it is still in etcd (exactly once for what it brought).
   */
  putConsumed(batchKey: string): void;
  /** The batch is gone from etcd. */
  deleteConsumed(batchKey: string): void;
  /**
   * True from a write until the next `flush()` call. A handler writes and then acknowledges in the same
   * synchronous step, so when it sees `dirty` false its writes are covered by a commit already asked for.
   */
  readonly dirty: boolean;
  /** Resolves once every write queued so far is durable (as the store's durability setting defines it). */
  flush(): Promise<void>;
  /** Flushes and releases the store. */
  close(): Promise<void>;
}
