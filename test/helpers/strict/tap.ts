/**
 * The strict checker in the black-box tests: every connection a test helper opens (RawClient, MQTT.js clients
 * made by connectMqtt and the c1/c2 helpers) gets a StrictChecker that sees both directions, and every violation
 * lands in one list for this test process. Importing this module registers two hooks on the test file: after
 * each test, and after the file, any violation not yet reported fails it (with rule, connection and hex). The
 * helpers' own cleanup (ClientPool.closeAll, Clients.closeAll) reports too, so what arrives while a test's
 * clients close is pinned on that test.
 *
 * Only the broker's output is judged: a test that sends garbage on purpose stays green as long as what the
 * broker answers is well-formed.
 */
import { AssertionError } from 'node:assert';
import { connect as netConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import { after, afterEach } from 'node:test';
import { MqttClient, type IClientOptions, type IStream } from 'mqtt';
import { formatViolation, StrictChecker, type Violation } from './checker.js';
import type { Level } from './spec.js';

/** Violations found and not yet reported, across every connection of this process. */
const unreported: Violation[] = [];

/** A checker whose violations go to this process's list. */
export function strictChecker(level: Level, label?: string): StrictChecker {
  return new StrictChecker({ level, ...(label !== undefined ? { label } : {}), onViolation: (v) => unreported.push(v) });
}

/**
 * Lets `checker` see both directions of `stream`: what arrives (the broker's bytes) through a 'data' listener of
 * its own, and what is written (the client's bytes) by wrapping the stream's write(), the one call every byte a
 * client sends goes through, whoever makes it (a helper, a test writing raw bytes, mqtt-packet's writeToStream).
 */
export function tapStream(stream: Duplex, checker: StrictChecker): void {
  stream.on('data', (d: Buffer) => checker.server(d));
  const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
  const tapped = (chunk: unknown, ...rest: unknown[]): boolean => {
    if (Buffer.isBuffer(chunk)) checker.client(chunk);
    else if (chunk instanceof Uint8Array) checker.client(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    else if (typeof chunk === 'string') checker.client(Buffer.from(chunk, typeof rest[0] === 'string' ? (rest[0] as BufferEncoding) : 'utf8'));
    return write(chunk, ...rest);
  };
  stream.write = tapped as Duplex['write'];
}

/**
 * An MQTT.js client to 127.0.0.1:`port` (plain TCP) whose every connection, reconnects included, is checked.
 * Built with MqttClient and a stream builder of its own, MQTT.js's documented way to supply the transport, so
 * the CONNECT is seen too; it behaves as `connect()` would, including connect()'s no-op 'error' listener.
 */
export function strictMqtt(port: number, options: IClientOptions): MqttClient {
  const level: Level = options.protocolVersion === 3 || options.protocolVersion === 5 ? options.protocolVersion : 4;
  const build = (): IStream => {
    const socket = netConnect({ host: '127.0.0.1', port });
    tapStream(socket, strictChecker(level));
    return socket;
  };
  const client = new MqttClient(build, { protocol: 'mqtt', host: '127.0.0.1', hostname: '127.0.0.1', port, ...options });
  client.on('error', () => undefined);
  return client;
}

/** Takes the violations not yet reported. */
export function takeViolations(): Violation[] {
  return unreported.splice(0);
}

/** Fails (AssertionError) when the broker broke a rule since the last report; `where` says what was running. */
export function assertStrict(where: string): void {
  const found = takeViolations();
  if (found.length === 0) return;
  const lines = found.slice(0, 20).map(formatViolation);
  if (found.length > 20) lines.push(`... and ${found.length - 20} more`);
  throw new AssertionError({
    message: `the broker sent ${found.length} packet(s) that break the MQTT specification (strict checker, ${where}):\n${lines.join('\n')}`,
  });
}

afterEach(() => assertStrict('during this test'));
after(() => assertStrict('after the last test of this file'));
