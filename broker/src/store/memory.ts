import type { Snapshot, Store, StoredDelivery, StoredMessage, StoredSession } from './types.js';

/**
 * A store that keeps everything in memory: nothing survives a restart, so nothing ever waits. The broker's
 * live state is already in memory; this implementation mainly exists to pass the shared suite and for tests.
 */
export class MemoryStore implements Store {
  private readonly retained = new Map<string, StoredMessage>();
  private readonly sessions = new Map<string, StoredSession>();
  private readonly deliveries = new Map<string, Map<number, StoredDelivery>>();
  private readonly incoming = new Map<string, Set<number>>();
  private readonly consumed = new Set<string>();
  readonly dirty = false;

  async open(): Promise<Snapshot> {
    const deliveries = [...this.deliveries.keys()].sort().flatMap((id) =>
      [...(this.deliveries.get(id) ?? new Map<number, StoredDelivery>()).values()].sort((a, b) => a.seq - b.seq));
    return {
      retained: [...this.retained.values()],
      sessions: [...this.sessions.values()],
      deliveries,
      incoming: new Map([...this.incoming].map(([id, ids]) => [id, [...ids].sort((a, b) => a - b)])),
      consumed: new Set(this.consumed),
    };
  }

  putRetained(message: StoredMessage): void {
    this.retained.set(message.topic, message);
  }

  deleteRetained(topic: string): void {
    this.retained.delete(topic);
  }

  putSession(session: StoredSession): void {
    this.sessions.set(session.clientId, session);
  }

  deleteSession(clientId: string): void {
    this.sessions.delete(clientId);
    this.deliveries.delete(clientId);
    this.incoming.delete(clientId);
  }

  putDelivery(d: StoredDelivery): void {
    let m = this.deliveries.get(d.clientId);
    if (!m) this.deliveries.set(d.clientId, (m = new Map()));
    m.set(d.seq, d);
  }

  deleteDelivery(clientId: string, seq: number): void {
    this.deliveries.get(clientId)?.delete(seq);
  }

  putIncoming(clientId: string, packetId: number): void {
    let s = this.incoming.get(clientId);
    if (!s) this.incoming.set(clientId, (s = new Set()));
    s.add(packetId);
  }

  deleteIncoming(clientId: string, packetId: number): void {
    this.incoming.get(clientId)?.delete(packetId);
  }

  putConsumed(batchKey: string): void {
    this.consumed.add(batchKey);
  }

  deleteConsumed(batchKey: string): void {
    this.consumed.delete(batchKey);
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }

  async close(): Promise<void> {
    // Nothing to release.
  }
}
