/**
 * The fuzz harness: feeds bytes to a real in-process Broker over an in-memory duplex stream (the path every
 * listener ends in: Broker.attach, Connection, PacketReader, mqtt-packet, the handlers, routing) and judges
 * what follows. After each input:
 *   - no exception escaped (an uncaught exception or unhandled rejection would end a real broker);
 *   - the connection answers a PINGREQ with PINGRESP or is closed, once any frame the input left half-sent has
 *     been completed (a broker waiting for bytes it was promised is not hanging);
 *   - everything the broker sent decodes (mqtt-packet, at the connection's protocol level), with no frame cut;
 *   - everything the broker sent keeps the specification's rules (test/helpers/strict: its own decoder, the
 *     tables of allowed properties, reason codes, UTF-8, packet ids in flight; a broken rule is a STRICT finding);
 *   - once the client goes, the broker forgets the connection, its clean session and any agent entry;
 *   - in long runs (node --expose-gc), the heap after a full collection stays bounded.
 * A broken rule throws a FuzzFinding, which the fuzzer reports with the input.
 */
import type { Duplex } from 'node:stream';
import mqtt from 'mqtt-packet';
import { pino } from 'pino';
import { Broker } from '../../broker/src/broker.js';
import type { Connection } from '../../broker/src/connection/connection.js';
import { DEFAULTS } from '../../broker/src/config/defaults.js';
import type { Config } from '../../broker/src/config/types.js';
import { duplexPair } from '../../broker/src/testing/duplex-pair.js';
import { formatViolation, StrictChecker } from '../helpers/strict/checker.js';
import { completion, frameTypes, hasPingresp, PINGREQ } from './framing.js';

/** Largest packet the fuzzed broker accepts: small, so that completing an announced frame stays cheap. */
export const MAX_PACKET_SIZE = 65536;

/** How long the harness waits for PINGRESP or a close before it calls the connection hung. */
export const HANG_MS = Number(process.env['SMQ_FUZZ_HANG_MS'] ?? 2000);

/** How long a closed connection may take to be forgotten before the harness destroys its stream (settle). */
const HURRY_MS = 50;

/** A new broker every this many inputs: retained messages and flapping records stay small and alike. */
const RENEW_EVERY = 500;

/** Heap checks (only with --expose-gc): every this many inputs, after this many to warm up. */
const HEAP_EVERY = 5000;
const HEAP_WARMUP = 10000;
/** Growth over the warmed-up heap that counts as unbounded. */
const HEAP_SLACK = 64 * 1024 * 1024;

/** A rule of the oracle that an input broke. */
export class FuzzFinding extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(`${code}: ${message}`);
    this.code = code;
    this.name = 'FuzzFinding';
  }
}

/** The configuration of the fuzzed broker: the defaults, without listeners of its own or $SYS timers. */
export function fuzzConfig(): Config {
  return {
    ...DEFAULTS,
    sys_interval: 0,
    http: { ...DEFAULTS.http, enable: false },
    ws: { ...DEFAULTS.ws, enable: false },
    mqtt: { ...DEFAULTS.mqtt, max_packet_size: MAX_PACKET_SIZE },
  };
}

/** What the connection did after an input. */
export type Answer = 'pingresp' | 'closed';

/** Counts across the inputs of one process. */
export interface Counts {
  execs: number;
  pingresp: number;
  closed: number;
}

/** Errors that escaped to the process: the first one is the finding. */
let escaped: unknown = null;
let watching = false;

/** Routes uncaught exceptions and unhandled rejections to the harness, so they become findings with their input. */
export function watchProcess(): void {
  if (watching) return;
  watching = true;
  process.on('uncaughtException', (err) => {
    escaped ??= err;
  });
  process.on('unhandledRejection', (err) => {
    escaped ??= err;
  });
}

/** Throws what escaped since the last call, if anything. */
function rethrowEscaped(): void {
  const err = escaped;
  escaped = null;
  if (err !== null) {
    const finding = new FuzzFinding('ESCAPED', err instanceof Error ? `${err.name}: ${err.message}` : String(err));
    if (err instanceof Error && err.stack !== undefined) finding.stack = `${finding.message}\n${err.stack}`;
    throw finding;
  }
}

/** One broker under test, renewed now and then, and the oracle around each input. */
export class Harness {
  readonly counts: Counts = { execs: 0, pingresp: 0, closed: 0 };
  private current: Broker | null = null;
  private uses = 0;
  private heapBase = 0;

  /** The broker for the next input (a new one every RENEW_EVERY inputs). */
  take(): Broker {
    if (this.current === null || this.uses >= RENEW_EVERY) {
      const old = this.current;
      if (old !== null) void old.close(0);
      this.current = new Broker(fuzzConfig(), pino({ level: 'silent' }), 'fuzz', 'fuzz');
      this.uses = 0;
    }
    this.uses++;
    this.counts.execs++;
    return this.current;
  }

  /**
   * Runs one input: `chunks` are written in order on a fresh connection, then the oracle's completion and
   * PINGREQ. Resolves with how the connection answered; throws a FuzzFinding when a rule broke.
   */
  async exchange(chunks: readonly Buffer[]): Promise<Answer> {
    const broker = this.take();
    const [client, server] = duplexPair();
    // The strict checker sees both directions as they happen: the client's bytes as written, the broker's as read.
    const strict = new StrictChecker();
    const peer = new Peer(client, strict);
    broker.attach(server, { transport: 'fuzz', remoteAddress: '127.0.0.1' });
    const conn = newest(broker);
    const send = (b: Buffer): void => {
      strict.client(b);
      client.write(b);
    };
    for (const c of chunks) if (c.length > 0) send(c);
    const rest = completion(Buffer.concat(chunks as Buffer[]), MAX_PACKET_SIZE);
    if (rest.length > 0) send(rest);
    send(PINGREQ);
    const answer = await peer.answer(HANG_MS);
    client.destroy();
    if (answer === null) {
      await this.settle(broker).catch(() => undefined);
      rethrowEscaped();
      throw new FuzzFinding('HANG', `no PINGRESP and no close within ${HANG_MS} ms`);
    }
    checkOutput(peer.output(), conn);
    // After the settling, so an input that broke a rule leaves no half-closed connection to the next one.
    await this.finish(broker, answer);
    checkStrict(strict);
    return answer;
  }

  /** The checks after the client has gone, and the counts. */
  async finish(broker: Broker, answer: Answer): Promise<void> {
    if (answer === 'pingresp') this.counts.pingresp++;
    else this.counts.closed++;
    await this.settle(broker);
    rethrowEscaped();
    this.checkHeap();
  }

  /** After the client has gone: the broker must forget the connection and every session that ends with it. */
  async settle(broker: Broker): Promise<void> {
    const started = Date.now();
    let hurried = false;
    while (broker.connections.size > 0) {
      const waited = Date.now() - started;
      if (!hurried && waited > HURRY_MS) {
        // A connection the broker has closed is destroyed by its own timer 2 s later at the latest
        // (Connection.close), for a peer that never reads; over WebSocket a stream paused at the close waits for
        // it. The harness does now what that timer would do, instead of waiting for it at every such input.
        hurried = true;
        for (const c of broker.connections) if (c.closed) c.stream.destroy();
      }
      if (waited > HANG_MS) throw new FuzzFinding('LEAK', 'connection still registered after its stream closed');
      await new Promise((resolve) => setImmediate(resolve));
    }
    rethrowEscaped();
    if (broker.stats.clientsConnected !== 0) {
      throw new FuzzFinding('LEAK', `clientsConnected is ${broker.stats.clientsConnected} with no connection open`);
    }
    if (broker.agents.size !== 0) throw new FuzzFinding('LEAK', `${broker.agents.size} agents with no connection open`);
    for (const s of broker.sessions.values()) {
      if (s.outlet !== null) throw new FuzzFinding('LEAK', `session ${JSON.stringify(s.clientId)} still has an outlet`);
      if (s.expiryInterval === 0 && !s.ended) {
        throw new FuzzFinding('LEAK', `clean session ${JSON.stringify(s.clientId)} outlived its connection`);
      }
    }
    // Persistent sessions are the broker's to keep; the harness ends them, so one input does not feed the next.
    for (const s of [...broker.sessions.values()]) broker.endSession(s);
  }

  /** With --expose-gc, fails when the heap after a full collection grew well past its warmed-up size. */
  private checkHeap(): void {
    const gc = (globalThis as { gc?: () => void }).gc;
    const n = this.counts.execs;
    if (gc === undefined || n % HEAP_EVERY !== 0 || n < HEAP_WARMUP) return;
    gc();
    const used = process.memoryUsage().heapUsed;
    if (this.heapBase === 0) this.heapBase = used;
    else if (used > this.heapBase + HEAP_SLACK) {
      throw new FuzzFinding('MEMORY', `heap ${mb(used)} after ${n} inputs, ${mb(this.heapBase)} after ${HEAP_WARMUP}`);
    }
  }

  /** Ends the current broker. */
  async close(): Promise<void> {
    const b = this.current;
    this.current = null;
    if (b !== null) await b.close(0);
  }
}

/** The connection attached last (a Set iterates in insertion order). */
export function newest(broker: Broker): Connection | null {
  let last: Connection | null = null;
  for (const c of broker.connections) last = c;
  return last;
}

/**
 * Everything the broker sent must decode at the protocol level of the connection, frame after frame, with no
 * frame cut short: a client's parser would otherwise fail or lose its place in the stream.
 */
export function checkOutput(out: Buffer, conn: Connection | null): void {
  if (out.length === 0) return;
  const version = conn?.protocolVersion ?? 4;
  const parser = mqtt.parser({ protocolVersion: version });
  let packets = 0;
  let error: Error | null = null;
  parser.on('packet', () => packets++);
  parser.on('error', (err: Error) => {
    error ??= err;
  });
  const left = parser.parse(out);
  const frames = frameTypes(out).length;
  if (error !== null) throw new FuzzFinding('OUTPUT', `the broker sent what mqtt-packet (level ${version}) cannot decode: ${(error as Error).message}: ${out.toString('hex')}`);
  if (left !== 0 || packets !== frames) {
    throw new FuzzFinding('OUTPUT', `the broker sent a frame cut short (level ${version}, ${packets} packets decoded): ${out.toString('hex')}`);
  }
}

/**
 * Everything the broker sent must keep the specification's rules, as the strict checker reads them (its own
 * decoder, independent of mqtt-packet, which decodes leniently): the first violation is the finding.
 */
export function checkStrict(strict: StrictChecker): void {
  const [first, ...rest] = strict.violations;
  if (first === undefined) return;
  // The rest by rule, so one finding tells every rule the input broke.
  const byRule = new Map<string, number>();
  for (const v of rest) byRule.set(v.rule, (byRule.get(v.rule) ?? 0) + 1);
  const more = [...byRule].map(([rule, n]) => `${rule} x${n}`);
  if (strict.dropped > 0) more.push(`${strict.dropped} not kept`);
  throw new FuzzFinding('STRICT', `${formatViolation(first)}${more.length > 0 ? `\n  and ${more.join(', ')}` : ''}`);
}

function mb(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MB`;
}

/** The client end: collects what the broker sends and notices the close. */
/** Waits for the broker's answer to the oracle's PINGREQ: a PINGRESP or the close, whichever comes first. */
export abstract class AnswerWait {
  /** Called by the subclass on every event that may have brought the answer. */
  protected wake: (() => void) | null = null;

  protected abstract answered(): Answer | null;

  /** PINGRESP or close, whichever comes first, or null after `ms`. */
  answer(ms: number): Promise<Answer | null> {
    const now = this.answered();
    if (now !== null) return Promise.resolve(now);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = null;
        resolve(null);
      }, ms);
      this.wake = () => {
        const a = this.answered();
        if (a === null) return;
        clearTimeout(timer);
        this.wake = null;
        resolve(a);
      };
    });
  }
}

class Peer extends AnswerWait {
  private out: Buffer[] = [];
  private closed = false;

  constructor(private readonly stream: Duplex, strict: StrictChecker) {
    super();
    stream.on('data', (d: Buffer) => {
      this.out.push(d);
      strict.server(d);
      this.wake?.();
    });
    // The broker ends its side (after a refusal or an error): this client closes too, as a TCP stack would.
    stream.on('end', () => {
      this.closed = true;
      stream.destroy();
      this.wake?.();
    });
    stream.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    stream.on('error', () => undefined);
  }

  /** Everything received so far. */
  output(): Buffer {
    return Buffer.concat(this.out);
  }

  protected answered(): Answer | null {
    if (this.out.length > 0 && hasPingresp(Buffer.concat(this.out))) return 'pingresp';
    return this.closed ? 'closed' : null;
  }

}
