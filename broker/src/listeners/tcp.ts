import { createServer, type Server, type Socket } from 'node:net';
import { ProxyFront, type ProxyOptions } from './proxy-front.js';
import { listenOn, type Bound, type Listener, type OnConnection } from './types.js';

/** Plain MQTT over TCP; with `proxy_protocol`, behind a load balancer that sends PROXY headers. */
export class TcpListener implements Listener {
  private readonly server: Server;
  private readonly front: ProxyFront | null;
  private readonly host: string;
  private readonly port: number;

  constructor(host: string, port: number, onConnection: OnConnection, proxy?: ProxyOptions) {
    this.host = host;
    this.port = port;
    const accept = (socket: Socket, remoteAddress: string): void => onConnection(socket, { transport: 'tcp', remoteAddress });
    if (proxy?.protocol === true) {
      this.front = new ProxyFront('tcp', proxy, accept);
      this.server = this.front.server;
    } else {
      this.front = null;
      this.server = createServer({ noDelay: true }, (socket: Socket) => accept(socket, socket.remoteAddress ?? ''));
    }
  }

  listen(): Promise<Bound> {
    return listenOn(this.server, this.host, this.port, 'tcp');
  }

  close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.front?.closePending();
    return closed;
  }
}
