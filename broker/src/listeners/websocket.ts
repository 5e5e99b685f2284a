import { createServer, type IncomingMessage, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { createWebSocketStream, WebSocketServer, type WebSocket } from 'ws';
import { verifiedPeerCertificate } from './certificates.js';
import { ProxyFront, RelayedAddresses, type ProxyOptions } from './proxy-front.js';
import { serverOptions, superviseSecureServer, type SecureOptions } from './tls.js';
import { listenOn, type Bound, type Listener, type OnConnection } from './types.js';

/** The WebSocket subprotocols served, in order of preference: MQTT 3.1.1 and 5, and MQTT 3.1's older name. */
const SUBPROTOCOLS = ['mqtt', 'mqttv3.1'] as const;

/** What a WebSocket listener may have beside its address. */
export interface WebSocketOptions {
  /** Serve wss over HTTPS with the broker's TLS certificates. */
  readonly secure?: SecureOptions | undefined;
  /** Trusted proxies (X-Forwarded-For) and the PROXY protocol. */
  readonly proxy?: ProxyOptions | undefined;
  /** Where connections closed by the listener itself (a text frame) are logged, at debug. */
  readonly log?: Logger | undefined;
}

/**
 * MQTT over WebSocket (binary frames, subprotocol `mqtt`) on one path, as MQTT 5.0 section 6 describes. With
 * `secure` it serves wss over HTTPS with the broker's TLS certificates (rotated in place, mutual TLS when
 * `tls.verify` is on) and reports the transport as `wss`. The client's address is the peer's, or the one a
 * PROXY header gave; from a trusted proxy, X-Forwarded-For is read too.
 */
export class WebSocketListener implements Listener {
  /** The HTTP(S) server that upgrades requests (listening itself unless a PROXY front is). */
  private readonly http: Server;
  private readonly front: ProxyFront | null;
  private readonly wss: WebSocketServer;
  private readonly host: string;
  private readonly port: number;
  private readonly path: string;
  private readonly transport: 'ws' | 'wss';
  private readonly unsubscribe: (() => void) | null;
  private readonly relayed: RelayedAddresses | null;
  private readonly proxy: ProxyOptions | undefined;
  private readonly onConnection: OnConnection;
  private readonly log: Logger | undefined;

  constructor(host: string, port: number, path: string, maxPayload: number, onConnection: OnConnection, options: WebSocketOptions = {}) {
    const { secure, proxy } = options;
    this.log = options.log;
    this.host = host;
    this.port = port;
    this.path = path;
    this.transport = secure ? 'wss' : 'ws';
    this.proxy = proxy;
    this.onConnection = onConnection;
    this.relayed = proxy?.protocol === true ? new RelayedAddresses() : null;
    const refuse: RequestListener = (_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end('MQTT over WebSocket: upgrade required\n');
    };
    if (secure) {
      const https = createHttpsServer(serverOptions(secure), refuse);
      this.unsubscribe = superviseSecureServer(https, secure, 'wss', (socket) => this.peerOf(socket));
      this.http = https;
    } else {
      this.http = createServer(refuse);
      this.unsubscribe = null;
    }
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload,
      // [MQTT-6.0.0-4] the server selects "mqtt" (or 3.1's "mqttv3.1"); upgrade() has refused offers of neither.
      handleProtocols: (offered: Set<string>) => SUBPROTOCOLS.find((p) => offered.has(p)) ?? false,
    });
    this.http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head));
    const relayed = this.relayed;
    if (proxy !== undefined && relayed !== null) {
      this.front = new ProxyFront(this.transport, proxy, (socket, address) => {
        relayed.remember(socket, address);
        // Node documents this for injecting a connection into an HTTP(S) server.
        this.http.emit('connection', socket);
      });
    } else {
      this.front = null;
    }
  }

  /** Checks the path and the subprotocols offered, then lets ws complete the handshake. */
  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = req.url ?? '';
    const q = url.indexOf('?');
    if ((q < 0 ? url : url.slice(0, q)) !== this.path) {
      abortHandshake(socket, 404, 'Not Found', `MQTT over WebSocket is served on ${this.path}\n`);
      return;
    }
    const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
    // [MQTT-6.0.0-3] the client must offer "mqtt". One offering none, or only others, is not an MQTT client
    // (EMQX's fail_if_no_subprotocol does the same); "mqttv3.1" is kept for MQTT 3.1 clients.
    if (!SUBPROTOCOLS.some((p) => offered.includes(p))) {
      abortHandshake(socket, 400, 'Bad Request', 'MQTT over WebSocket needs the subprotocol "mqtt" (Sec-WebSocket-Protocol)\n');
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, req));
  }

  private accept(ws: WebSocket, req: IncomingMessage): void {
    const transport = this.transport;
    const peer = this.peerOf(req.socket);
    const forwarded = req.headers['x-forwarded-for'];
    // Node joins repeated X-Forwarded-For headers with ", ", which is how one list reads anyway.
    const remoteAddress = this.proxy?.trusted.clientAddress(peer, typeof forwarded === 'string' ? forwarded : undefined) ?? peer;
    const certificate = transport === 'wss' ? verifiedPeerCertificate(req.socket as TLSSocket) : undefined;
    const stream = createWebSocketStream(ws);
    // Ahead of the stream's own listener, so a text message is seen first and never reaches MQTT: destroying
    // the stream makes the push of that message that follows a no-op.
    ws.prependListener('message', (_data: unknown, isBinary: boolean) => {
      if (isBinary) return;
      this.log?.debug({ transport, remote: remoteAddress }, 'websocket text frame: connection closed');
      ws.close(1003, 'MQTT uses binary frames');
      stream.destroy(); // [MQTT-6.0.0-1] any data frame other than binary closes the network connection
    });
    // When the WebSocket closes (the client went, or broke the framing), ws only ends the stream's readable
    // side; its 'close', which the connection waits for, would come only after our side ended too, and a
    // connection with nothing to send never ends it (with keep-alive 0, never). A TCP socket closes itself
    // then; so does this, once what was read before has been consumed.
    stream.on('end', () => stream.destroy());
    this.onConnection(stream, { transport, remoteAddress, certificate });
  }

  /** The address of the immediate peer: the one its PROXY header gave, else the socket's. */
  private peerOf(socket: Socket): string {
    return this.relayed?.addressOf(socket) ?? socket.remoteAddress ?? '';
  }

  listen(): Promise<Bound> {
    return listenOn(this.front?.server ?? this.http, this.host, this.port, this.transport);
  }

  close(): Promise<void> {
    this.unsubscribe?.();
    const server = this.front?.server ?? this.http;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    this.front?.closePending();
    this.wss.close();
    return closed;
  }
}

/** Refuses an upgrade with an HTTP status (ws's own refusals look the same). */
function abortHandshake(socket: Duplex, status: number, reason: string, body: string): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.once('finish', () => socket.destroy());
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: text/plain\r\n`
    + `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}
