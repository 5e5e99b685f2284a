/**
 * What the fault-injection tests (98-faults-*) share: a ledger of acknowledged and received messages (lost and
 * duplicates counted apart), a windowed QoS 1/2 stream as a device sends it, waiting on a condition with a
 * deadline, and a process's resident memory and open file descriptors from /proc.
 */
import { readdirSync, readFileSync } from 'node:fs';
import type { MqttClient } from 'mqtt';

/**
 * Message ids a publisher got a PUBACK (or PUBCOMP) for, and every delivery a subscriber saw. `received` counts
 * acknowledged ids that arrived at least once, `dup` every delivery beyond the first of an id.
 */
export class Ledger {
  readonly acked = new Set<string>();
  private readonly got = new Map<string, number>();
  /** Every delivery seen, duplicates included. */
  deliveries = 0;

  ack(id: string): void {
    this.acked.add(id);
  }

  receive(id: string): void {
    this.deliveries++;
    this.got.set(id, (this.got.get(id) ?? 0) + 1);
  }

  /** Whether `id` arrived. */
  has(id: string): boolean {
    return this.got.has(id);
  }

  /** Acknowledged ids that arrived. */
  get received(): number {
    let n = 0;
    for (const id of this.acked) if (this.got.has(id)) n++;
    return n;
  }

  /** Deliveries beyond the first of each id. */
  get dup(): number {
    return this.deliveries - this.got.size;
  }

  /** Acknowledged ids that did not arrive (the first `max`). */
  missing(max = 20): string[] {
    const out: string[] = [];
    for (const id of this.acked) {
      if (!this.got.has(id)) out.push(id);
      if (out.length >= max) break;
    }
    return out;
  }

  /** Every acknowledged id arrived. */
  complete(): boolean {
    for (const id of this.acked) if (!this.got.has(id)) return false;
    return true;
  }
}

/**
 * Polls `cond` every `everyMs` until it returns a value other than false/undefined/null and resolves with it;
 * rejects after `timeoutMs` naming `what` and, if given, what `detail()` says then.
 */
export async function waitFor<T>(
  what: string,
  cond: () => T | false | null | undefined | Promise<T | false | null | undefined>,
  timeoutMs: number,
  detail?: () => string,
  everyMs = 25,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v !== false && v !== null && v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms${detail ? `; ${detail()}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Resolves with `p`, or rejects naming `what` when it takes longer than `timeoutMs`. */
export async function within<T>(p: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not within ${timeoutMs} ms`)), timeoutMs);
    })]);
  } finally {
    clearTimeout(timer);
  }
}

/** Options of {@link Stream}. */
export interface StreamOptions {
  /** The message ids are `<prefix><n>`; the payload is the id (and `pad`). */
  readonly prefix: string;
  readonly topic: string;
  readonly qos?: 1 | 2;
  /** Unacknowledged messages at most (a device's in-flight window). */
  readonly window: number;
  /** Messages to send at most; the stream also ends at stop(). */
  readonly total: number;
  /** Bytes of padding after the id (payload `<id> xxx...`; a receiver takes the id up to the space). */
  readonly pad?: number;
  /** Each acknowledged id goes into every one of them (one ledger per subscriber). */
  readonly ledgers: readonly Ledger[];
}

/**
 * A publisher sending QoS 1 (or 2) messages with at most `window` unacknowledged, as fast as they are
 * acknowledged. Through an MQTT.js client with `clean: false` and automatic reconnects, a message whose
 * acknowledgement a broker crash swallowed is sent again after the reconnect (DUP), as a device would.
 */
export class Stream {
  sent = 0;
  ackedCount = 0;
  /** Publishes MQTT.js reported failed with a closed connection, and that were sent again. */
  resent = 0;
  private stopped = false;
  /** Publishes to send again at the next connect. */
  private readonly retry: [string, string][] = [];
  /** The first publish error (a refusal); the stream stops at it. */
  error: Error | null = null;

  constructor(private readonly client: MqttClient, private readonly o: StreamOptions) {
    this.pump();
  }

  get inFlight(): number {
    return this.sent - this.ackedCount;
  }

  /** Sends nothing more (what is in flight stays in flight). */
  stop(): void {
    this.stopped = true;
  }

  /** Resolves once `n` messages were acknowledged (or the stream ended short of them: then it rejects). */
  acked(n: number, timeoutMs: number): Promise<void> {
    return waitFor(`${this.o.prefix}: ${n} acknowledged`, () => this.ackedCount >= n || this.error !== null, timeoutMs,
      () => `sent ${this.sent}, acked ${this.ackedCount}`).then(() => {
      if (this.error !== null) throw this.error;
    });
  }

  /** Resolves once nothing sent is unacknowledged. */
  settled(timeoutMs: number): Promise<void> {
    return waitFor(`${this.o.prefix}: every sent message acknowledged`, () => this.inFlight === 0 || this.error !== null, timeoutMs,
      () => `sent ${this.sent}, acked ${this.ackedCount}`).then(() => {
      if (this.error !== null) throw this.error;
    });
  }

  private pump(): void {
    while (!this.stopped && this.error === null && this.inFlight < this.o.window && this.sent < this.o.total) {
      const id = `${this.o.prefix}${this.sent++}`;
      this.send(id, this.o.pad === undefined ? id : `${id} ${'x'.repeat(this.o.pad)}`);
    }
  }

  private send(id: string, payload: string): void {
    this.client.publish(this.o.topic, payload, { qos: this.o.qos ?? 1 }, (err) => {
      if (err) {
        // A v5 refusal carries its reason code: the stream stops at it. Anything else is MQTT.js giving up on
        // a connection that closed (a publish made while it replayed its store after a reconnect): not
        // acknowledged, so sent again after the next reconnect, as a device would.
        if (typeof (err as Error & { code?: unknown }).code === 'number') this.error ??= err;
        else {
          this.retry.push([id, payload]);
          if (this.retry.length === 1) this.client.once('connect', this.resend);
        }
        return;
      }
      this.ackedCount++;
      for (const l of this.o.ledgers) l.ack(id);
      this.pump();
    });
  }

  private readonly resend = (): void => {
    const again = this.retry.splice(0);
    this.resent += again.length;
    for (const [id, payload] of again) this.send(id, payload);
  };
}

/** Resident set size of a process in bytes, from /proc (Linux). */
export function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Open file descriptors of a process, from /proc (Linux). */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Milliseconds since `t0`, rounded, for summaries. */
export function since(t0: number): number {
  return Math.round(performance.now() - t0);
}
