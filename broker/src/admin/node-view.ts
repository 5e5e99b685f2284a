import type { AgentView } from '../agent/registry.js';
import type { Broker } from '../broker.js';
import type { Connection } from '../connection/connection.js';
import { RC } from '../protocol/reason-codes.js';
import type { Session } from '../session/session.js';

/** A connected client as the API shows it. */
export interface ClientView {
  readonly clientid: string;
  readonly username: string | null;
  readonly node: string;
  readonly remote: string;
  readonly transport: string;
  readonly proto_ver: number;
  readonly keep_alive: number;
  /** Seconds the session outlives the connection (0: a clean session). */
  readonly session_expiry: number;
  readonly connected_at: string;
  readonly subscriptions: number;
  readonly inflight: number;
  readonly queued: number;
}

/** One subscription of one session as the API shows it. */
export interface SubscriptionView {
  readonly clientid: string;
  readonly node: string;
  readonly topic: string;
  readonly qos: number;
}

/** A slice of a node's list: `total` counts every match, `items` holds at most the asked number, in order. */
export interface Slice<T> {
  readonly total: number;
  readonly items: T[];
}

/** Narrows a client list; every given field must match exactly. */
export interface ClientFilter {
  readonly clientid?: string;
  readonly username?: string;
}

/**
 * What one node answers about itself, for the API on this node and, through cluster queries, for the API of
 * any other node. Lists are ordered by client id (then topic), so pages are stable and merge across nodes.
 */
export class NodeView {
  constructor(private readonly broker: Broker) {}

  /** Connected clients matching `filter`, from `offset`, at most `max`. */
  clients(filter: ClientFilter, offset: number, max: number): Slice<ClientView> {
    const all: Connection[] = [];
    const one = filter.clientid !== undefined ? this.broker.sessions.get(filter.clientid) : undefined;
    const sessions = filter.clientid !== undefined ? (one === undefined ? [] : [one]) : this.broker.sessions.values();
    for (const s of sessions) {
      const c = s.outlet as Connection | null;
      if (c === null || !c.connected || c.closed) continue;
      if (filter.username !== undefined && c.username !== filter.username) continue;
      all.push(c);
    }
    all.sort((a, b) => compare(a.clientId, b.clientId));
    return { total: all.length, items: all.slice(offset, offset + max).map((c) => this.describe(c)) };
  }

  /** One connected client, or null. */
  client(clientId: string): ClientView | null {
    const c = this.connection(clientId);
    return c === null ? null : this.describe(c);
  }

  /** Subscriptions of every session here (connected or not), optionally of one client id. */
  subscriptions(clientId: string | undefined, offset: number, max: number): Slice<SubscriptionView> {
    const one = clientId !== undefined ? this.broker.sessions.get(clientId) : undefined;
    const sessions = clientId !== undefined ? (one === undefined ? [] : [one]) : [...this.broker.sessions.values()];
    sessions.sort((a, b) => compare(a.clientId, b.clientId));
    const items: SubscriptionView[] = [];
    let total = 0;
    for (const s of sessions) {
      const n = s.subscriptionCount;
      if (total + n > offset && items.length < max) {
        for (const v of this.subscriptionsOf(s)) {
          if (total >= offset && items.length < max) items.push(v);
          total++;
        }
      } else {
        total += n;
      }
    }
    return { total, items };
  }

  /** The subscriptions of one session held here, or null when this node has no such session. */
  sessionSubscriptions(clientId: string): SubscriptionView[] | null {
    const s = this.broker.sessions.get(clientId);
    return s === undefined ? null : this.subscriptionsOf(s);
  }

  /** Agents connected here (agent mode), by client id, from `offset`, at most `max`. */
  agents(offset: number, max: number): Slice<AgentView> {
    const all = this.broker.agents.list();
    return { total: all.length, items: all.slice(offset, offset + max) };
  }

  /** One agent connected here, or null. */
  agent(clientId: string): AgentView | null {
    return this.broker.agents.get(clientId) ?? null;
  }

  /** Disconnects a client connected here (v5 DISCONNECT 0x98 Administrative action); false when it is not here. */
  kick(clientId: string): boolean {
    const c = this.connection(clientId);
    if (c === null) return false;
    c.closeReason = 'kicked through the HTTP API';
    c.close(RC.ADMINISTRATIVE_ACTION);
    return true;
  }

  private connection(clientId: string): Connection | null {
    const c = this.broker.sessions.get(clientId)?.outlet as Connection | null | undefined;
    // A closing connection (kicked, say) is gone for the API at once, not when its socket has closed.
    return c && c.connected && !c.closed ? c : null;
  }

  private subscriptionsOf(s: Session): SubscriptionView[] {
    const node = this.broker.nodeId;
    return [...s.subscriptions.values()]
      .map((sub) => ({ clientid: s.clientId, node, topic: sub.raw, qos: sub.qos }))
      .sort((a, b) => compare(a.topic, b.topic));
  }

  private describe(c: Connection): ClientView {
    const s = c.session;
    return {
      clientid: c.clientId,
      username: c.username ?? null,
      node: this.broker.nodeId,
      remote: c.remoteAddress,
      transport: c.transport,
      proto_ver: c.protocolVersion,
      keep_alive: c.keepAlive,
      session_expiry: s?.expiryInterval ?? 0,
      connected_at: new Date(c.connectedAt).toISOString(),
      subscriptions: s?.subscriptionCount ?? 0,
      inflight: s?.inflightCount ?? 0,
      queued: s?.queued ?? 0,
    };
  }
}

/** Code-unit order, the same on every node (localeCompare is not). */
export function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
