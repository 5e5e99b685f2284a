/** Broker-wide counters, plain fields so the hot path pays one increment. Read by $SYS and, later, metrics. */
export class Stats {
  readonly startedAt = Date.now();
  clientsConnected = 0;
  clientsMaximum = 0;
  connectionsTotal = 0;
  messagesReceived = 0;
  messagesSent = 0;
  messagesDropped = 0;
  bytesReceived = 0;
  bytesSent = 0;
  publishDenied = 0;
  refused = 0;
  authFailures = 0;
  malformed = 0;
  slowConsumers = 0;
  /** Times each limit refused something (`max_connections`, `publish_rate`, ...). */
  readonly limitHits = new Map<string, number>();
  /** Drops by reason (`queue_full`, `slow_consumer`, `expired`, `too_large`). */
  readonly dropsByReason = new Map<string, number>();
}
