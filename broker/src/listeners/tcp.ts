import { createServer, type Server, type Socket } from 'node:net';
import { listenOn, type Bound, type Listener, type OnConnection } from './types.js';

/** Plain MQTT over TCP. */
export class TcpListener implements Listener {
  private readonly server: Server;
  private readonly host: string;
  private readonly port: number;

  constructor(host: string, port: number, onConnection: OnConnection) {
    this.host = host;
    this.port = port;
    this.server = createServer({ noDelay: true }, (socket: Socket) => {
      onConnection(socket, { transport: 'tcp', remoteAddress: socket.remoteAddress ?? '' });
    });
  }

  listen(): Promise<Bound> {
    return listenOn(this.server, this.host, this.port, 'tcp');
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
