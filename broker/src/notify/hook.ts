/**
 * The hook behind agent mode and notifications: it keeps the agent registry up to date and, when `notify.enable`
 * is on, turns connect, disconnect, subscribe and unsubscribe into the six notification events. It only queues;
 * delivery happens in the Notifier, away from the MQTT path.
 */
import type { IConnectPacket } from 'mqtt-packet';
import type { Logger } from 'pino';
import { agentTopic, type AgentRegistry } from '../agent/registry.js';
import type { ClientInfo, Hook, SubscriptionRequest } from '../hooks/types.js';
import { agentEvent, clientEvent, plainIp, subscriptionEvent, type ConnectionFacts } from './events.js';
import type { Notifier } from './notifier.js';

/** What the hook needs of the broker. */
export interface NotifyHost {
  readonly nodeId: string;
  readonly log: Logger;
  /** Sessions by client id, to see whether a resumed session holds the agent subscription. */
  readonly sessions: ReadonlyMap<string, { readonly subscriptions: ReadonlyMap<string, { readonly qos: number }> }>;
  /** Milliseconds since the epoch. */
  now(): number;
}

/** Per connection, one small integer (no object per idle connection): keep-alive in the low 16 bits, this bit for clean start. */
const CLEAN = 0x10000;

/** Agent registry and notifications, as one hook so each client's events come in a sensible order. */
export class NotifyHook implements Hook {
  readonly name = 'notify';
  /**
   * Keep-alive and clean start of each connected client (the ClientInfo hooks receive is the connection itself,
   * so entries go with their connection).
   */
  private readonly connects = new WeakMap<ClientInfo, number>();
  /** QoS of each filter a client holds, for unsubscribe events; kept only when notifications are on. */
  private readonly granted = new WeakMap<ClientInfo, Map<string, number>>();

  constructor(
    private readonly host: NotifyHost,
    private readonly agents: AgentRegistry,
    /** The sender, or null when `notify.enable` is off (agents are still tracked). */
    readonly notifier: Notifier | null,
  ) {}

  /** client_connected, then agent_connected if its resumed session holds `agents/<id>`. */
  onConnected(client: ClientInfo, connect: IConnectPacket): void {
    const packed = (connect.keepalive ?? 0) | ((connect.clean ?? true) ? CLEAN : 0);
    this.connects.set(client, packed);
    const session = this.host.sessions.get(client.clientId);
    if (this.notifier !== null) {
      const qos = new Map<string, number>();
      if (session !== undefined) for (const [filter, sub] of session.subscriptions) qos.set(filter, sub.qos);
      this.granted.set(client, qos);
      this.notifier.push({ event: 'client_connected', data: clientEvent(this.facts(client, packed), 1, this.seconds()) });
    }
    if (session?.subscriptions.has(agentTopic(client.clientId))) this.agentOnline(client, packed);
  }

  /** agent_disconnected if it was an agent, then client_disconnected. */
  onDisconnected(client: ClientInfo): void {
    const packed = this.connects.get(client);
    if (packed === undefined) return;
    this.connects.delete(client);
    this.granted.delete(client);
    this.agentOffline(client, packed);
    this.notifier?.push({ event: 'client_disconnected', data: clientEvent(this.facts(client, packed), 0, this.seconds()) });
  }

  /** subscribe, then agent_connected for `agents/<its own id>`. */
  onSubscribed(client: ClientInfo, subscription: SubscriptionRequest, granted: number): void {
    const packed = this.connects.get(client);
    if (packed === undefined) return;
    if (this.notifier !== null) {
      this.granted.get(client)?.set(subscription.filter, granted);
      const data = subscriptionEvent(this.facts(client, packed), subscription.filter, granted, this.seconds());
      this.notifier.push({ event: 'subscribe', data });
    }
    if (subscription.filter === agentTopic(client.clientId)) this.agentOnline(client, packed);
  }

  /** unsubscribe, then agent_disconnected for `agents/<its own id>`. */
  onUnsubscribed(client: ClientInfo, filter: string): void {
    const packed = this.connects.get(client);
    if (packed === undefined) return;
    if (this.notifier !== null) {
      const held = this.granted.get(client);
      const qos = held?.get(filter) ?? 0;
      held?.delete(filter);
      this.notifier.push({ event: 'unsubscribe', data: subscriptionEvent(this.facts(client, packed), filter, qos, this.seconds()) });
    }
    if (filter === agentTopic(client.clientId)) this.agentOffline(client, packed);
  }

  /** Sends what is still queued (for at most `notify.flush_timeout`). */
  async onStop(): Promise<void> {
    await this.notifier?.stop();
  }

  private agentOnline(client: ClientInfo, packed: number): void {
    const now = this.seconds();
    const info = client.agentInfo ?? null;
    const facts = this.facts(client, packed);
    if (!this.agents.add(client, facts, info, now)) return;
    this.host.log.info({ clientId: client.clientId, hostName: info?.host_name ?? '' }, 'agent online');
    this.notifier?.push({ event: 'agent_connected', data: agentEvent(facts, info, 1, now) });
  }

  private agentOffline(client: ClientInfo, packed: number): void {
    if (!this.agents.remove(client)) return;
    this.host.log.info({ clientId: client.clientId }, 'agent offline');
    const data = agentEvent(this.facts(client, packed), client.agentInfo ?? null, 0, this.seconds());
    this.notifier?.push({ event: 'agent_disconnected', data });
  }

  /** What every event says about the client's connection. */
  private facts(client: ClientInfo, packed: number): ConnectionFacts {
    return {
      id: client.clientId,
      node_id: this.host.nodeId,
      connect_ip: plainIp(client.remoteAddress),
      user_name: client.username ?? '',
      proto_name: client.protocolVersion === 3 ? 'MQIsdp' : 'MQTT',
      proto_ver: client.protocolVersion,
      keep_alive: packed & 0xffff,
      clean_start: (packed & CLEAN) !== 0,
    };
  }

  private seconds(): number {
    return Math.floor(this.host.now() / 1000);
  }
}
