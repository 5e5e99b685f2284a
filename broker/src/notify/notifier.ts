/**
 * Sends notifications (`notify.*`) without ever holding up the MQTT path: push() only queues; the queue sends,
 * retries and drops; this class counts what happened for /metrics and logs it without flooding.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import { EVENT_NAMES, type EventName, type Notification } from './events.js';
import { DeliveryQueue, REAL_SCHEDULER, type DropReason, type Scheduler } from './queue.js';
import { GrpcTransport, HttpTransport, type Transport } from './transport.js';

/** A warning of one kind is logged at most this often; the count since the last one goes with it. */
const LOG_INTERVAL_MS = 10_000;

/** Running totals, read by /metrics at scrape time. */
export interface NotifyCounters {
  readonly sent: ReadonlyMap<EventName, number>;
  readonly failed: number;
  readonly dropped: ReadonlyMap<DropReason, number>;
  readonly queued: number;
}

/** A log line that is written at most once per interval, with how many times it happened meanwhile. */
class Throttled {
  private last = -Infinity;
  private count = 0;

  constructor(private readonly write: (count: number, err: unknown) => void) {}

  hit(err?: unknown): void {
    this.count++;
    const now = Date.now();
    if (now - this.last < LOG_INTERVAL_MS) return;
    this.last = now;
    this.write(this.count, err);
    this.count = 0;
  }
}

/** The notification sender of one broker. */
export class Notifier implements NotifyCounters {
  readonly sent = new Map<EventName, number>(EVENT_NAMES.map((e) => [e, 0]));
  failed = 0;
  readonly dropped = new Map<DropReason, number>([['queue_full', 0], ['retries_exhausted', 0], ['shutdown', 0]]);
  private readonly queue: DeliveryQueue<Notification>;
  private readonly full: Throttled;
  private readonly exhausted: Throttled;
  private readonly failing: Throttled;

  constructor(
    private readonly transport: Transport,
    private readonly config: Config['notify'],
    private readonly log: Logger,
    scheduler: Scheduler = REAL_SCHEDULER,
  ) {
    const c = config;
    this.queue = new DeliveryQueue<Notification>(
      { capacity: c.queue_size, concurrency: c.concurrency, retries: c.retries, backoff: c.backoff, backoffMax: c.backoff_max },
      (n) => transport.send(n),
      {
        sent: (n) => this.sent.set(n.event, (this.sent.get(n.event) ?? 0) + 1),
        failed: (n, err) => {
          this.failed++;
          this.failing.hit(err);
          log.debug({ err, event: n.event, clientId: n.data.id }, 'notification attempt failed');
        },
        dropped: (n, reason) => {
          this.dropped.set(reason, (this.dropped.get(reason) ?? 0) + 1);
          if (reason === 'queue_full') this.full.hit();
          else if (reason === 'retries_exhausted') this.exhausted.hit();
          log.debug({ event: n.event, clientId: n.data.id, reason }, 'notification dropped');
        },
      },
      scheduler,
    );
    const target = transport.target;
    this.full = new Throttled((count) => log.warn({ count, queueSize: c.queue_size, target }, 'notifications dropped: queue full'));
    this.exhausted = new Throttled((count) => log.warn({ count, retries: c.retries, target }, 'notifications dropped: retries exhausted'));
    this.failing = new Throttled((count, err) => log.warn({ err, count, target }, 'notification server call failed; retrying'));
  }

  /** Events waiting, in flight or waiting to retry. */
  get queued(): number {
    return this.queue.size;
  }

  /** Queues an event behind the earlier events of the same client. */
  push(n: Notification): void {
    this.queue.push(n.data.id, n);
  }

  /** Sends what is queued for up to `notify.flush_timeout`, then stops. */
  async stop(): Promise<void> {
    const left = await this.queue.stop(this.config.flush_timeout);
    if (left > 0) this.log.warn({ count: left, target: this.transport.target }, 'notifications dropped: broker stopping');
    this.transport.close();
  }
}

/** The notifier `notify.*` asks for, or null when notifications are off. Throws SmqError for a bad `notify.server`. */
export function createNotifier(config: Config, log: Logger): Notifier | null {
  const c = config.notify;
  if (!c.enable) return null;
  const transport: Transport = c.type === 'http'
    ? new HttpTransport(c.server, c.timeout)
    : new GrpcTransport(c.server, c.timeout, { initial: Math.min(c.backoff, 1000), max: c.backoff_max });
  log.info({ type: c.type, target: transport.target }, 'notifications on');
  return new Notifier(transport, c, log);
}
