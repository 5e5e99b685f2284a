import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createWebSocketStream, WebSocketServer } from 'ws';
import type { Bound, Listener, OnConnection } from './types.js';

/** MQTT over WebSocket (binary frames, subprotocol `mqtt`) on one path, as MQTT 5.0 section 6 describes. */
export class WebSocketListener implements Listener {
  private readonly http: Server;
  private readonly wss: WebSocketServer;
  private readonly host: string;
  private readonly port: number;

  constructor(host: string, port: number, path: string, maxPayload: number, onConnection: OnConnection) {
    this.host = host;
    this.port = port;
    this.http = createServer((_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end('MQTT over WebSocket: upgrade required\n');
    });
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
      const forwarded = req.headers['x-forwarded-for'];
      const remote = typeof forwarded === 'string' ? forwarded.split(',')[0]?.trim() : undefined;
      onConnection(stream, { transport: 'ws', remoteAddress: remote || req.socket.remoteAddress || '' });
    });
  }

  listen(): Promise<Bound> {
    return new Promise((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(this.port, this.host, () => {
        this.http.off('error', reject);
        const a = this.http.address() as AddressInfo;
        resolve({ transport: 'ws', host: a.address, port: a.port });
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.wss.close();
      this.http.close(() => resolve());
    });
  }
}
