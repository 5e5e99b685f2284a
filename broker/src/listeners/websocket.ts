import { createServer, type IncomingMessage, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { createWebSocketStream, WebSocketServer } from 'ws';
import { verifiedPeerCertificate } from './certificates.js';
import { serverOptions, superviseSecureServer, type SecureOptions } from './tls.js';
import { listenOn, type Bound, type Listener, type OnConnection } from './types.js';

/**
 * MQTT over WebSocket (binary frames, subprotocol `mqtt`) on one path, as MQTT 5.0 section 6 describes. With
 * `secure` it serves wss over HTTPS with the broker's TLS certificates (rotated in place, mutual TLS when
 * `tls.verify` is on) and reports the transport as `wss`.
 */
export class WebSocketListener implements Listener {
  private readonly http: Server;
  private readonly wss: WebSocketServer;
  private readonly host: string;
  private readonly port: number;
  private readonly transport: 'ws' | 'wss';
  private readonly unsubscribe: (() => void) | null;

  constructor(host: string, port: number, path: string, maxPayload: number, onConnection: OnConnection, secure?: SecureOptions) {
    this.host = host;
    this.port = port;
    this.transport = secure ? 'wss' : 'ws';
    const refuse: RequestListener = (_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end('MQTT over WebSocket: upgrade required\n');
    };
    if (secure) {
      const https = createHttpsServer(serverOptions(secure), refuse);
      this.unsubscribe = superviseSecureServer(https, secure, 'wss');
      this.http = https;
    } else {
      this.http = createServer(refuse);
      this.unsubscribe = null;
    }
    this.wss = new WebSocketServer({
      server: this.http,
      path,
      maxPayload,
      // [MQTT-6.0.0-3? v5 6] the server selects "mqtt" when offered (3.1 clients offer "mqttv3.1").
      handleProtocols: (protocols: Set<string>) =>
        protocols.has('mqtt') ? 'mqtt' : protocols.has('mqttv3.1') ? 'mqttv3.1' : false,
    });
    this.wss.on('connection', (ws, req: IncomingMessage) => {
      const stream = createWebSocketStream(ws);
      // When the WebSocket closes (the client went, or broke the framing), ws only ends the stream's readable
      // side; its 'close', which the connection waits for, would come only after our side ended too, and a
      // connection with nothing to send never ends it (with keep-alive 0, never). A TCP socket closes itself
      // then; so does this, once what was read before has been consumed.
      stream.on('end', () => stream.destroy());
      const forwarded = req.headers['x-forwarded-for'];
      const remote = typeof forwarded === 'string' ? forwarded.split(',')[0]?.trim() : undefined;
      const transport = this.transport;
      const certificate = transport === 'wss' ? verifiedPeerCertificate(req.socket as TLSSocket) : undefined;
      onConnection(stream, { transport, remoteAddress: remote || req.socket.remoteAddress || '', certificate });
    });
  }

  listen(): Promise<Bound> {
    return listenOn(this.http, this.host, this.port, this.transport);
  }

  close(): Promise<void> {
    this.unsubscribe?.();
    return new Promise((resolve) => {
      this.wss.close();
      this.http.close(() => resolve());
    });
  }
}
