import type { AddressInfo, Server } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Peer } from '../connection/connection.js';

/** Called for each accepted client; the connection code sees only a duplex stream. */
export type OnConnection = (stream: Duplex, peer: Peer) => void;

/** Where a listener ended up listening. */
export interface Bound {
  readonly transport: string;
  readonly host: string;
  readonly port: number;
}

/** A transport that accepts MQTT clients (TCP, TLS, WebSocket). */
export interface Listener {
  /** Starts listening; resolves with the bound address (port 0 picks a free one). */
  listen(): Promise<Bound>;
  /** Stops accepting new clients; existing ones are left to the broker. */
  close(): Promise<void>;
}

/** Starts a server on host:port and resolves with where it is bound (port 0 picks a free one). */
export function listenOn(server: Server, host: string, port: number, transport: string): Promise<Bound> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const a = server.address() as AddressInfo;
      resolve({ transport, host: a.address, port: a.port });
    });
  });
}
