/**
 * The client side of a load balancer that speaks the PROXY protocol, for black-box tests: v1 and v2 headers
 * for a made-up device address, and MQTT.js clients (tcp, tls, ws, wss) over a socket that sent one first,
 * as a load balancer relaying that device would. What the broker sends those clients goes through the strict
 * checker (from the first MQTT byte: the PROXY header is written before the tap).
 */
import { connect as netConnect, isIPv6, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { MqttClient, type IClientOptions } from 'mqtt';
import WebSocket from 'ws';
import { levelOf, strictChecker, strictConnect, tapStream } from './strict/tap.js';

/** The v2 signature (proxy-protocol.txt 2.2). */
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/** A v1 header relaying `source` (IPv4 or IPv6) to the broker. */
export function proxyV1(source: string, sourcePort = 40000): Buffer {
  const six = isIPv6(source);
  return Buffer.from(`PROXY ${six ? 'TCP6' : 'TCP4'} ${source} ${six ? '::1' : '127.0.0.1'} ${sourcePort} 1883\r\n`, 'latin1');
}

/** A v2 PROXY header relaying IPv4 `source` to the broker, with a NOOP TLV after the addresses. */
export function proxyV2(source: string, sourcePort = 40000): Buffer {
  const block = Buffer.from([...source.split('.').map(Number), 127, 0, 0, 1, sourcePort >> 8, sourcePort & 0xff, 0x07, 0x5b, 0x04, 0x00, 0x01, 0x00]);
  return Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x11, 0x00, block.length]), block]);
}

/** The two versions, by name, for tests that run once per version. */
export const HEADERS = { v1: proxyV1, v2: proxyV2 } as const;

/** A TCP connection from `localAddress` that has sent `header` (nothing, when null). */
export async function proxiedSocket(port: number, header: Buffer | null, localAddress = '127.0.0.1'): Promise<Socket> {
  const socket = netConnect({ port, host: '127.0.0.1', localAddress });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  if (header !== null) socket.write(header);
  return socket;
}

/** The broker's listeners a device may reach through the load balancer. */
export type Transport = 'tcp' | 'tls' | 'ws' | 'wss';

/** What a connection through the load balancer needs besides MQTT options. */
export interface Through {
  readonly transport: Transport;
  readonly port: number;
  readonly header: Buffer | null;
  /** The load balancer's own address (127.0.0.1 is the trusted one in the tests). */
  readonly localAddress?: string;
  /** For tls and wss: the CA, and a client certificate for mutual TLS. */
  readonly tls?: ConnectionOptions;
  /** Extra HTTP headers of the WebSocket upgrade (X-Forwarded-For). */
  readonly headers?: Record<string, string>;
}

/**
 * An MQTT.js client over a connection through the load balancer. Resolves with the client once it is
 * connected, or with the error MQTT.js gave (a refused CONNACK carries its code) or the close.
 */
export async function mqttThrough(through: Through, options: IClientOptions, track: MqttClient[]): Promise<{ client: MqttClient; error?: Error & { code?: number } }> {
  const socket = await proxiedSocket(through.port, through.header, through.localAddress);
  const secure = (): Socket => tlsConnect({ socket, servername: 'localhost', ...through.tls });
  const opts: IClientOptions = { reconnectPeriod: 0, connectTimeout: 5000, ...options };
  let client: MqttClient;
  if (through.transport === 'tcp' || through.transport === 'tls') {
    const stream = through.transport === 'tls' ? secure() : socket;
    // One stream, no reconnects (the builder hands back the same one): tapped once, here.
    tapStream(stream, strictChecker(levelOf(opts)));
    client = new MqttClient(() => stream, opts);
  } else {
    const url = `${through.transport}://127.0.0.1:${through.port}/mqtt`;
    const createConnection = (): Socket => (through.transport === 'wss' ? secure() : socket);
    client = strictConnect(url, {
      ...opts,
      createWebsocket: (u: string, protocols: string[]) => new WebSocket(u, protocols, { createConnection, headers: through.headers }),
    } as IClientOptions);
  }
  track.push(client);
  return new Promise((resolve) => {
    client.once('connect', () => resolve({ client }));
    client.once('error', (error) => resolve({ client, error }));
    client.once('close', () => resolve({ client, error: new Error('closed before CONNACK') }));
  });
}
