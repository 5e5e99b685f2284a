import { createServer, type Server, type AddressInfo, type Socket } from 'node:net';
import type { Bound, Listener, OnConnection } from './types.js';

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
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, this.host, () => {
        this.server.off('error', reject);
        const a = this.server.address() as AddressInfo;
        resolve({ transport: 'tcp', host: a.address, port: a.port });
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
