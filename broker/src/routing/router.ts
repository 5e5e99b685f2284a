import type { QoS } from 'mqtt-packet';
import type { SharedStrategy } from '../config/types.js';
import type { ClientInfo } from '../hooks/types.js';
import type { Message } from '../message/message.js';
import type { Session } from '../session/session.js';
import { RetainedTree } from './retained-tree.js';
import { SharedGroup } from './shared.js';
import { Subscription } from './subscription.js';
import { TopicTree } from './topic-tree.js';

/** Hears when a route (a filter, or a shared group as `$share/<name>/<filter>`) starts or stops having subscribers. */
export interface RouteListener {
  routeAdded(route: string): void;
  routeRemoved(route: string): void;
}

/** Which of this node's subscribers a message from another node is for (see BatchEntry). */
export interface DeliveryScope {
  readonly normal: boolean;
  /** Shared groups as `name` NUL `filter`. */
  readonly groups: readonly string[];
}

/** What the topic tree stores: a session's own subscription, or a shared group. */
type Route = Subscription | SharedGroup;

/** Tree key of a shared group; cannot collide with a client id key because of the NUL [MQTT-1.5.4-2]. */
function groupKey(name: string): string {
  return '\u0000' + name;
}

/**
 * Routes messages to sessions: the subscription tree, shared groups and retained messages. No I/O; sessions do
 * the sending.
 */
export class Router {
  private readonly tree = new TopicTree<Route>();
  private readonly groups = new Map<string, SharedGroup>();
  /** Retained messages by topic. */
  readonly retained = new RetainedTree<Message>();
  private readonly strategy: SharedStrategy;
  /** Read authorization (ACL) for every delivery, or null when no hook asks: one check per publish. */
  canRead: ((client: ClientInfo, message: Message) => boolean) | null = null;
  /** Subscriptions per route, kept so that a listener (the cluster) hears only first and last ones. */
  private readonly routeRefs = new Map<string, number>();
  private listener: RouteListener | null = null;
  /** Publish counter, used to stamp sessions while merging overlapping subscriptions without allocating. */
  private seq = 0;

  constructor(strategy: SharedStrategy) {
    this.strategy = strategy;
  }

  /** Sets who hears about routes; it is told of every route there is now, then of each change. */
  listen(listener: RouteListener): void {
    this.listener = listener;
    for (const route of this.routeRefs.keys()) listener.routeAdded(route);
  }

  private ref(route: string): void {
    const n = this.routeRefs.get(route) ?? 0;
    this.routeRefs.set(route, n + 1);
    if (n === 0) this.listener?.routeAdded(route);
  }

  private unref(route: string): void {
    const n = this.routeRefs.get(route);
    if (n === undefined) return;
    if (n > 1) this.routeRefs.set(route, n - 1);
    else {
      this.routeRefs.delete(route);
      this.listener?.routeRemoved(route);
    }
  }

  /** Number of subscriptions (shared members counted one by one), kept as they come and go. */
  subscriptionCount = 0;

  /** Adds or replaces a subscription; returns true when the session already had it. */
  add(sub: Subscription): boolean {
    const g = sub.group;
    if (g) {
      const existed = g.members.some((m) => m.session === sub.session);
      g.upsert(sub);
      if (!existed) this.subscriptionCount++;
      return existed;
    }
    const added = this.tree.set(sub.filter, sub.session.clientId, sub);
    if (added) {
      this.subscriptionCount++;
      this.ref(sub.filter);
    }
    return !added;
  }

  /** The shared group for (name, filter), created and put in the tree on first use. */
  group(name: string, filter: string): SharedGroup {
    const key = name + '\u0000' + filter;
    let g = this.groups.get(key);
    if (!g) {
      g = new SharedGroup(name, filter);
      this.groups.set(key, g);
      this.tree.set(filter, groupKey(name), g);
      this.ref(`$share/${name}/${filter}`);
    }
    return g;
  }

  /** Removes a subscription from the tree or its group. */
  remove(sub: Subscription): void {
    const g = sub.group;
    if (g) {
      if (g.remove(sub.session)) this.subscriptionCount--;
      if (g.members.length === 0) {
        this.groups.delete(g.name + '\u0000' + g.filter);
        this.tree.delete(g.filter, groupKey(g.name));
        this.unref(`$share/${g.name}/${g.filter}`);
      }
      return;
    }
    const current = this.tree.get(sub.filter, sub.session.clientId);
    if (current === sub && this.tree.delete(sub.filter, sub.session.clientId)) {
      this.subscriptionCount--;
      this.unref(sub.filter);
    }
  }

  /**
   * Delivers a message to every matching session and returns how many deliveries were made. A session with
   * several matching subscriptions gets one copy, at the highest granted QoS [MQTT-3.3.5-1], carrying every
   * matching subscription identifier (v5 3.3.4).
   */
  publish(message: Message, scope: DeliveryScope | null = null): number {
    const routes = this.tree.match(message.topic);
    const n = routes.length;
    if (n === 0) return 0;
    const stamp = ++this.seq;
    const canRead = this.canRead;
    let delivered = 0;
    // Pass 1: merge the subscriptions of each session onto the session itself (stamped by this publish).
    const normal = scope === null || scope.normal;
    for (let i = 0; i < n; i++) {
      const r = routes[i] as Route;
      if (r instanceof SharedGroup || !normal) continue;
      if (r.noLocal && r.session.clientId === message.origin) continue; // [MQTT-3.8.3-3]
      const s = r.session;
      if (canRead !== null && s.client !== null && !canRead(s.client, message)) continue;
      if (s.stamp !== stamp) {
        s.stamp = stamp;
        s.mergeQos = r.qos;
        s.mergeRap = r.retainAsPublished;
        s.mergeIds = r.id ? [r.id] : undefined;
      } else {
        if (r.qos > s.mergeQos) s.mergeQos = r.qos;
        if (r.retainAsPublished) s.mergeRap = true;
        if (r.id) (s.mergeIds ??= []).push(r.id);
      }
    }
    // Pass 2: one delivery per session, and one per shared group.
    for (let i = 0; i < n; i++) {
      const r = routes[i] as Route;
      if (r instanceof SharedGroup) {
        // A message from another node goes only to the groups that node gave it to here.
        if (scope !== null && !scope.groups.includes(r.name + '\u0000' + r.filter)) continue;
        const m = r.pick(this.strategy, message, null, canRead);
        if (m) {
          m.session.deliver(message, minQos(message.qos, m.qos), m.retainAsPublished && message.retain, m.id ? [m.id] : undefined, r);
          delivered++;
        }
        continue;
      }
      const s = r.session;
      if (s.stamp !== stamp) continue; // no-local skipped, or already delivered
      s.stamp = -stamp;
      // [MQTT-3.3.1-9] live messages carry RETAIN 0, unless v5 Retain As Published [MQTT-3.3.1-12, 13]
      s.deliver(message, minQos(message.qos, s.mergeQos), s.mergeRap && message.retain, s.mergeIds, null);
      delivered++;
    }
    return delivered;
  }

  /** True when this node has a member of the shared group (name, filter). */
  hasGroup(name: string, filter: string): boolean {
    return this.groups.has(name + '\u0000' + filter);
  }

  /** Sends a message to another member of its group than `leaving`; false when there is none. */
  redispatch(group: SharedGroup, message: Message, qos: QoS, leaving: Session): boolean {
    const m = group.pick(this.strategy, message, leaving, this.canRead);
    if (!m || !m.session.online) return false;
    m.session.deliver(message, minQos(qos, m.qos), false, m.id ? [m.id] : undefined, group);
    return true;
  }

  /** Stores, replaces or (empty payload) deletes the retained message of a topic [MQTT-3.3.1-5..7]. */
  retain(message: Message): void {
    if (message.payload.length === 0) this.retained.delete(message.topic); // [MQTT-3.3.1-10, 11]
    else this.retained.set(message.topic, message);
  }

  /** Retained messages matching a filter, expired ones removed. */
  retainedFor(filter: string, now: number): Message[] {
    const list = this.retained.match(filter);
    const out: Message[] = [];
    for (const m of list) {
      if (m.expired(now)) this.retained.delete(m.topic);
      else out.push(m);
    }
    return out;
  }
}

function minQos(a: QoS, b: QoS): QoS {
  return a < b ? a : b;
}
