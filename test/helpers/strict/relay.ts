/**
 * A loopback tap for clients that run in another process (mosquitto_sub/pub, paho): a relay on 127.0.0.1 that
 * forwards each connection's bytes both ways to the broker and shows them to a StrictChecker of that connection
 * on the way, so the broker's output to a third-party client is judged like that of the in-process ones. Point
 * the client at `relay.port` instead of the broker's port; a violation fails the test (tap.ts's hooks).
 *
 * The relay only forwards: an end on one side ends the other (so a client's clean close, and the broker's,
 * look the same at the far end), an error or an abrupt close on one side destroys the other (so a killed client
 * is a dropped connection to the broker, its will published). Plain TCP only: a TLS client's bytes are
 * encrypted here.
 */
import { connect as netConnect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { strictChecker } from './tap.js';

/** A running relay to one broker port. */
export class StrictRelay {
  private constructor(
    private readonly server: Server,
    private readonly sockets: Set<Socket>,
    /** The port clients connect to, on 127.0.0.1. */
    readonly port: number,
  ) {}

  /** Starts a relay to 127.0.0.1:`brokerPort`. */
  static async start(brokerPort: number): Promise<StrictRelay> {
    const sockets = new Set<Socket>();
    const server = createServer((client) => {
      const broker = netConnect({ host: '127.0.0.1', port: brokerPort });
      // The level is learnt from the client's CONNECT; 3.1.1 until then.
      const checker = strictChecker(4);
      for (const s of [client, broker]) {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
      }
      forward(client, broker, (d) => checker.client(d));
      forward(broker, client, (d) => checker.server(d));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return new StrictRelay(server, sockets, (server.address() as AddressInfo).port);
  }

  /** Stops accepting and drops every relayed connection. */
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** One direction: `from`'s bytes go to `see` (the checker) first, then to `to`, with pipe()'s backpressure. */
function forward(from: Socket, to: Socket, see: (chunk: Buffer) => void): void {
  from.on('data', see);
  from.pipe(to);
  from.on('error', () => to.destroy());
  // pipe() ends `to` on a clean end; a close without one (reset, destroy) must not leave `to` open.
  from.on('close', () => {
    if (!from.readableEnded) to.destroy();
  });
}
