import { PROXY_REFUSALS } from './listeners/proxy-front.js';

/** Why a message was not delivered to a session; known from the start so each has a series from zero. */
const DROP_REASONS = ['queue_full', 'slow_consumer', 'expired', 'too_large'] as const;

/** Broker-wide counters, plain fields so the hot path pays one increment. Read by $SYS and, later, metrics. */
export class Stats {
  readonly startedAt = Date.now();
  clientsConnected = 0;
  clientsMaximum = 0;
  connectionsTotal = 0;
  messagesReceived = 0;
  /** Of messagesReceived, those at QoS 1 and QoS 2 (QoS 0 is the rest: one branch less on the hot path). */
  receivedQos1 = 0;
  receivedQos2 = 0;
  messagesSent = 0;
  sentQos1 = 0;
  sentQos2 = 0;
  messagesDropped = 0;
  bytesReceived = 0;
  bytesSent = 0;
  publishDenied = 0;
  /** Subscriptions refused by access control (SUBACK 0x87). */
  subscribeDenied = 0;
  refused = 0;
  authFailures = 0;
  malformed = 0;
  slowConsumers = 0;
  /** Times each limit refused something (`max_connections`, `publish_rate`, ...). */
  readonly limitHits = new Map<string, number>();
  /** Drops by reason (`queue_full`, `slow_consumer`, `expired`, `too_large`). */
  readonly dropsByReason = new Map<string, number>(DROP_REASONS.map((r) => [r, 0]));
  /** Connections from trusted proxies closed for their PROXY header, by reason (`missing`, `timeout`, ...). */
  readonly proxyRefused = new Map<string, number>(PROXY_REFUSALS.map((r) => [r, 0]));
}
