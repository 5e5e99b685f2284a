import type { AgentView } from '../agent/registry.js';
import type { Broker } from '../broker.js';
import type { QueryHandler } from '../cluster/queries.js';
import { type ClientFilter, type ClientView, compare, NodeView, type Slice, type SubscriptionView } from './node-view.js';

/** A page of a cluster-wide list; `unreachable` names the nodes that did not answer (their items are missing). */
export interface Page<T> {
  readonly page: number;
  readonly limit: number;
  readonly total: number;
  readonly items: T[];
  readonly unreachable: string[];
}

/** The deepest item a page may reach when every node is asked (each node sends that many, the rest is merged). */
export const MERGE_DEPTH_MAX = 10000;

/** Thrown for a page deeper than {@link MERGE_DEPTH_MAX} without a node filter. */
export class PageTooDeep extends Error {
  readonly code = 'PAGE_TOO_DEEP';
}

/**
 * The API's view of the whole cluster: each question goes to every node (or the one asked for) through
 * cluster queries, and the answers are merged in client-id order. Standalone, it is this node's view.
 */
export class ClusterView {
  readonly local: NodeView;

  constructor(private readonly broker: Broker) {
    this.local = new NodeView(broker);
  }

  /** What this node answers to other nodes' questions (and to its own). */
  readonly answer: QueryHandler = (kind, p) => {
    const v = this.local;
    const str = (k: string): string | undefined => (typeof p[k] === 'string' ? p[k] : undefined);
    const num = (k: string): number => (typeof p[k] === 'number' ? p[k] : 0);
    switch (kind) {
      case 'clients': return v.clients({ clientid: str('clientid'), username: str('username') }, num('offset'), num('max'));
      case 'client': return v.client(str('clientid') ?? '');
      case 'subscriptions': return v.subscriptions(str('clientid'), num('offset'), num('max'));
      case 'session-subscriptions': return v.sessionSubscriptions(str('clientid') ?? '');
      case 'kick': return v.kick(str('clientid') ?? '');
      case 'agents': return v.agents(num('offset'), num('max'));
      case 'agent': return v.agent(str('clientid') ?? '');
      default: throw new Error(`unknown query ${kind}`);
    }
  };

  /** The ids of the nodes to ask: every member, or only `node` (which may be unknown: then none). */
  nodes(node?: string): string[] {
    const cluster = this.broker.cluster;
    const all = cluster === null ? [this.broker.nodeId] : [...cluster.membership.members.keys()];
    if (!all.includes(this.broker.nodeId)) all.push(this.broker.nodeId);
    return node === undefined ? all : all.filter((n) => n === node);
  }

  /** Connected clients, cluster-wide, one page. */
  clients(filter: ClientFilter & { node?: string }, page: number, limit: number): Promise<Page<ClientView>> {
    const { node, ...rest } = filter;
    return this.list<ClientView>('clients', { ...rest }, node, page, limit, (a, b) => compare(a.clientid, b.clientid) || compare(a.node, b.node));
  }

  /** Subscriptions of every session, cluster-wide, one page. */
  subscriptions(filter: { clientid?: string; node?: string }, page: number, limit: number): Promise<Page<SubscriptionView>> {
    const { node, ...rest } = filter;
    return this.list<SubscriptionView>('subscriptions', { ...rest }, node, page, limit,
      (a, b) => compare(a.clientid, b.clientid) || compare(a.node, b.node) || compare(a.topic, b.topic));
  }

  /** Agents of every node (or one), in client-id order, one page. */
  agents(node: string | undefined, page: number, limit: number): Promise<Page<AgentView>> {
    return this.list<AgentView>('agents', {}, node, page, limit, (a, b) => compare(a.id, b.id) || compare(a.node_id, b.node_id));
  }

  /** An agent wherever it is connected, or null. */
  agent(clientId: string): Promise<AgentView | null> {
    return this.first<AgentView>('agent', clientId);
  }

  /** A connected client wherever it is, or null. */
  async client(clientId: string): Promise<ClientView | null> {
    return this.first<ClientView>('client', clientId);
  }

  /** The subscriptions of a session wherever it is held, or null when no node holds it. */
  async sessionSubscriptions(clientId: string): Promise<SubscriptionView[] | null> {
    return this.first<SubscriptionView[]>('session-subscriptions', clientId);
  }

  /** Disconnects a client wherever it is connected; false when no node has it. */
  async kick(clientId: string): Promise<boolean> {
    const { answers } = await this.ask(this.nodes(), 'kick', { clientid: clientId });
    return [...answers.values()].some((a) => a === true);
  }

  /** This node's answer when it has one, else the first other node's. */
  private async first<T>(kind: string, clientId: string): Promise<T | null> {
    const here = this.answer(kind, { clientid: clientId }) as T | null;
    if (here !== null) return here;
    const others = this.nodes().filter((n) => n !== this.broker.nodeId);
    if (others.length === 0) return null;
    const { answers } = await this.ask(others, kind, { clientid: clientId });
    for (const a of answers.values()) if (a !== null && a !== undefined) return a as T;
    return null;
  }

  private async list<T>(
    kind: string, params: Record<string, unknown>, node: string | undefined, page: number, limit: number, order: (a: T, b: T) => number,
  ): Promise<Page<T>> {
    const nodes = this.nodes(node);
    const offset = (page - 1) * limit;
    if (nodes.length > 1 && offset + limit > MERGE_DEPTH_MAX) {
      throw new PageTooDeep(`pages beyond item ${MERGE_DEPTH_MAX} need a node filter (the node=<id> query parameter)`);
    }
    // One node slices its own list; several each send their first offset+limit items, merged here.
    const single = nodes.length === 1;
    const { answers, unreachable } = await this.ask(nodes, kind, { ...params, offset: single ? offset : 0, max: single ? limit : offset + limit });
    let total = 0;
    const items: T[] = [];
    for (const a of answers.values()) {
      const slice = a as Slice<T>;
      total += slice.total;
      items.push(...slice.items);
    }
    if (single) return { page, limit, total, items, unreachable };
    items.sort(order);
    return { page, limit, total, items: items.slice(offset, offset + limit), unreachable };
  }

  private ask(nodes: string[], kind: string, params: Record<string, unknown>): Promise<{ answers: Map<string, unknown>; unreachable: string[] }> {
    const cluster = this.broker.cluster;
    if (cluster === null || !cluster.joined) {
      const answers = new Map<string, unknown>();
      if (nodes.includes(this.broker.nodeId)) answers.set(this.broker.nodeId, this.answer(kind, params));
      return Promise.resolve({ answers, unreachable: [] });
    }
    return cluster.queries.askAll(nodes, kind, params);
  }
}
