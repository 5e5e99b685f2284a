/**
 * The strict checker in the black-box tests: every connection a test opens to the broker (RawClient, MQTT.js
 * clients made by strictConnect, connectMqtt and the c1/c2 helpers, hand-made sockets and WebSockets through
 * tapStream and tapWebSocket, command-line clients through a StrictRelay) gets a StrictChecker that sees both
 * directions, and every violation lands in one list for this test process. Importing this module registers two
 * hooks on the test file: after each test, and after the file, any violation not yet reported fails it (with
 * rule, connection and hex). The helpers' own cleanup (ClientPool.closeAll, Clients.closeAll) reports too, so
 * what arrives while a test's clients close is pinned on that test.
 *
 * Only the broker's output is judged: a test that sends garbage on purpose stays green as long as what the
 * broker answers is well-formed.
 */
import { AssertionError } from 'node:assert';
import type { Duplex } from 'node:stream';
import { after, afterEach } from 'node:test';
import { connect, type IClientOptions, type IStream, type MqttClient } from 'mqtt';
import type { RawData, WebSocket } from 'ws';
import { formatViolation, StrictChecker, type Violation } from './checker.js';
import type { Level } from './spec.js';

/** Violations found and not yet reported, across every connection of this process. */
const unreported: Violation[] = [];

/** A checker whose violations go to this process's list. */
export function strictChecker(level: Level, label?: string): StrictChecker {
  return new StrictChecker({ level, ...(label !== undefined ? { label } : {}), onViolation: (v) => unreported.push(v) });
}

/** What tapStream needs of a stream: its 'data' events, its write() and its end(). */
export interface Tappable {
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  write(...args: never[]): boolean;
  end(...args: never[]): unknown;
}

/**
 * Lets `checker` see both directions of `stream`: what arrives (the broker's bytes) through a 'data' listener of
 * its own, and what is written (the client's bytes) by wrapping the stream's write() and end(), the two calls
 * every byte a client sends goes through, whoever makes it (a helper, a test writing raw bytes, mqtt-packet's
 * writeToStream). end(chunk) needs its own wrapper: Writable.end hands the chunk on without calling write().
 */
export function tapStream(stream: Duplex | Tappable, checker: StrictChecker): void {
  stream.on('data', (d: Buffer) => checker.server(d));
  const see = (chunk: unknown, encoding: unknown): void => {
    if (Buffer.isBuffer(chunk)) checker.client(chunk);
    else if (chunk instanceof Uint8Array) checker.client(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    else if (typeof chunk === 'string') checker.client(Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8'));
  };
  const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
  const tappedWrite = (chunk: unknown, ...rest: unknown[]): boolean => {
    see(chunk, rest[0]);
    return write(chunk, ...rest);
  };
  stream.write = tappedWrite as Duplex['write'];
  const end = stream.end.bind(stream) as (...args: unknown[]) => unknown;
  const tappedEnd = (...args: unknown[]): unknown => {
    // end(), end(callback), end(chunk[, encoding][, callback]): only the last form carries bytes.
    if (args.length > 0 && typeof args[0] !== 'function') see(args[0], args[1]);
    return end(...args);
  };
  stream.end = tappedEnd as Duplex['end'];
}

/**
 * Lets `checker` see the MQTT bytes of a raw WebSocket (a test speaking MQTT over `ws` by hand): the binary
 * messages each way. A text frame carries no MQTT [MQTT-6.0.0-1]; a test that sends one on purpose is answered
 * by the broker closing the connection, which is judged on what came before.
 */
export function tapWebSocket(ws: WebSocket, checker: StrictChecker): void {
  ws.on('message', (data: RawData, isBinary: boolean) => {
    if (!isBinary) return;
    if (Buffer.isBuffer(data)) checker.server(data);
    else if (Array.isArray(data)) checker.server(Buffer.concat(data));
    else checker.server(Buffer.from(data));
  });
  const send = ws.send.bind(ws) as (data: unknown, ...rest: unknown[]) => void;
  const tapped = (data: unknown, ...rest: unknown[]): void => {
    // ws sends a string as text and anything else as binary unless the options say otherwise.
    const options = rest[0];
    const asked = typeof options === 'object' && options !== null ? (options as { binary?: boolean }).binary : undefined;
    if ((asked ?? typeof data !== 'string') && data instanceof Uint8Array) checker.client(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    send(data, ...rest);
  };
  ws.send = tapped as WebSocket['send'];
}

/** The level a checker starts at for a client with these MQTT.js options (its CONNECT then says for sure). */
export function levelOf(options: IClientOptions): Level {
  return options.protocolVersion === 3 || options.protocolVersion === 5 ? options.protocolVersion : 4;
}

/**
 * MqttClient's transport: the stream builder connect() hands it, which MqttClient keeps in a field of that name
 * (private in its typings, there since MQTT.js 1) and calls for every connection, reconnects included.
 */
interface HoldsBuilder {
  streamBuilder: (client: MqttClient) => IStream;
}

/**
 * MQTT.js's `connect()`, with every connection the client makes (reconnects included) checked: the same
 * signatures, and MQTT.js itself parses the URL, fills in the options and builds the transport (mqtt, mqtts with
 * the TLS options, ws and wss, `servers`, `createWebsocket`), so the client behaves as connect()'s would. Only
 * the stream MQTT.js builds is tapped: the socket for mqtt, the TLS socket's clear text for mqtts, and for ws/wss
 * the duplex MQTT.js reads and writes MQTT bytes through (ws's createWebSocketStream), not the frames.
 *
 * How: the client is made with `manualConnect` so it opens nothing yet, its stream builder is wrapped, the
 * caller's own `manualConnect` is put back (end() reads it), and the client connects unless the caller asked not
 * to. Fails loudly if MQTT.js ever stops keeping the builder where this looks for it.
 */
export function strictConnect(brokerUrl: string, options?: IClientOptions): MqttClient;
export function strictConnect(options: IClientOptions): MqttClient;
export function strictConnect(first: string | IClientOptions, second?: IClientOptions): MqttClient {
  // connect(options) keeps the very object it is given as client.options; connect(url, options) keeps a copy.
  const options = typeof first === 'string' ? { ...second } : first;
  const manual = options.manualConnect;
  options.manualConnect = true;
  const client = typeof first === 'string' ? connect(first, options) : connect(options);
  for (const o of [options, client.options]) {
    if (manual === undefined) delete o.manualConnect;
    else o.manualConnect = manual;
  }
  const held = client as unknown as Partial<HoldsBuilder>;
  const build = held.streamBuilder;
  if (typeof build !== 'function') throw new Error('strictConnect: this MQTT.js keeps no streamBuilder on its client, so its connections cannot be tapped');
  held.streamBuilder = (c: MqttClient): IStream => {
    const stream = build.call(client, c);
    tapStream(stream, strictChecker(levelOf(client.options)));
    return stream;
  };
  if (manual !== true) client.connect();
  return client;
}

/**
 * An MQTT.js client to 127.0.0.1:`port` (plain TCP) whose every connection, reconnects included, is checked:
 * strictConnect with the host filled in.
 */
export function strictMqtt(port: number, options: IClientOptions): MqttClient {
  return strictConnect({ protocol: 'mqtt', host: '127.0.0.1', hostname: '127.0.0.1', port, ...options });
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
