import type { IConnectPacket } from 'mqtt-packet';
import type { Message } from '../message/message.js';
import type { AgentInfo } from '../agent/client-info.js';

/** What a verified client certificate says about its holder (mutual TLS). */
export interface PeerCertificate {
  /** Subject common name, '' when absent. */
  readonly cn: string;
  /** Subject alternative names without their type prefix (DNS, email, URI), in certificate order. */
  readonly san: readonly string[];
}

/** What the broker knows about a client, handed to hooks. */
export interface ClientInfo {
  readonly clientId: string;
  readonly username: string | undefined;
  readonly remoteAddress: string;
  readonly transport: string;
  readonly protocolVersion: 3 | 4 | 5;
  /** The verified client certificate, when the client connected with mutual TLS. */
  readonly certificate: PeerCertificate | undefined;
  /** Agent mode: the ClientInfo the client sent with CONNECT, if any (agent/client-info.ts). */
  readonly agentInfo?: AgentInfo | null;
  /** Epoch ms at which CONNACK accepted the client (0 before); absent for a client restored from the store. */
  readonly connectedAt?: number;
}

/**
 * The answer of an authentication hook. `undefined` abstains and lets the next hook decide. An accepting hook may
 * name the `identity` it established (a JWT's subject, say) when the username is not it (sessions belong to it),
 * and when the credentials stop being valid (`expiresAt`, epoch ms: the connection is closed then).
 */
export type AuthResult =
  | { readonly ok: true; readonly identity?: string; readonly expiresAt?: number }
  | { readonly ok: false; readonly reasonCode: number }
  | undefined;

/** What authentication decided: 0 or a v5 reason code, and the identity a hook named, if any. */
export interface AuthVerdict {
  readonly rc: number;
  readonly identity: string | undefined;
  /** Epoch ms at which the credentials expire, if a hook said so. */
  readonly expiresAt?: number | undefined;
}

/**
 * The answer of an authorization hook: `true` allows, `false` denies (0x87 Not authorized), a number denies with
 * that v5 reason code, `undefined` abstains.
 */
export type AuthzResult = boolean | number | undefined;

/** A subscription request as hooks see it. */
export interface SubscriptionRequest {
  /** The filter as the client sent it, including any `$share/<group>/` prefix. */
  readonly filter: string;
  readonly qos: 0 | 1 | 2;
}

/**
 * The one extension point of the broker (mochi-mqtt's hook idea). Auth, ACL, notifications, the Kafka bridge,
 * metrics and clustering implement the methods they need; the registry calls only those.
 *
 * Combination rules, enforced by {@link HookRegistry}:
 * - `authenticate`: hooks run in registration order; the first answer that is not `undefined` decides. If all
 *   abstain, the client is allowed unless `auth.enable` is on (then refused: secure by default).
 * - `authorizePublish` / `authorizeSubscribe`: every hook is asked; any denial wins; all abstaining allows
 *   unless `acl.enable` is on.
 * - event hooks (`on*`) are notifications: all run, errors are logged and never reach the client.
 */
export interface Hook {
  readonly name: string;
  /**
   * `$`-prefixes (such as `$queue/`) this hook owns: clients may publish to them and the hook's
   * `authorizePublish` / `onPublish` see those messages. Other `$` topics are refused (`$SYS/` is the broker's).
   */
  readonly claims?: readonly string[];
  /**
   * `signal` aborts when the client goes away before the answer: a backend call may stop early. It is passed only
   * to hooks that say they use it (`abortable`), so a login costs no AbortController otherwise.
   */
  authenticate?(client: ClientInfo, connect: IConnectPacket, signal?: AbortSignal): AuthResult | Promise<AuthResult>;
  /** True when `authenticate` makes use of its signal (a call to a backend that can be cancelled). */
  readonly abortable?: boolean;
  /** May return a promise (HTTP backends); the connection then holds later packets so order is kept. */
  authorizePublish?(client: ClientInfo, message: Message): AuthzResult | Promise<AuthzResult>;
  /**
   * May this client receive this message? Asked for retained messages sent on subscribe and for every live
   * delivery, so it must be synchronous and cheap (cache per client and topic).
   */
  authorizeRead?(client: ClientInfo, message: Message): AuthzResult;
  authorizeSubscribe?(client: ClientInfo, subscription: SubscriptionRequest): AuthzResult | Promise<AuthzResult>;
  onConnected?(client: ClientInfo, connect: IConnectPacket): void;
  onDisconnected?(client: ClientInfo, reason: string): void;
  /** A CONNECT was refused by authentication (after all hooks answered). */
  onAuthFailure?(client: ClientInfo, reasonCode: number): void;
  onSubscribed?(client: ClientInfo, subscription: SubscriptionRequest, granted: number): void;
  onUnsubscribed?(client: ClientInfo, filter: string): void;
  /**
   * A message accepted from a client (or the broker) and about to be routed. A promise holds the publisher's
   * acknowledgement (QoS 1/2) until it resolves (the Kafka bridge: until Kafka has the message); a rejection
   * closes the publisher's connection unacknowledged, so it sends again.
   */
  onPublish?(client: ClientInfo | null, message: Message): void | Promise<void>;
  /** A message that could not be delivered to a session; `reason` is a stable word such as `queue_full`. */
  onDropped?(clientId: string, message: Message, reason: string): void;
  onStop?(): void | Promise<void>;
}
