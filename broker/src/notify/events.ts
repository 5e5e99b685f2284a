/**
 * The six notification events of the seed's Notification interface and the JSON each carries (the seed's agent
 * example: snake_case names, `status` 1 online / 0 offline, `timestamp` in unix seconds).
 */
import type { AgentInfo } from '../agent/client-info.js';

/** Event names, as sent in the `x-smq-event` header and the `event` field (HTTP). */
export const EVENT_NAMES = [
  'client_connected',
  'client_disconnected',
  'subscribe',
  'unsubscribe',
  'agent_connected',
  'agent_disconnected',
] as const;

/** One of {@link EVENT_NAMES}. */
export type EventName = (typeof EVENT_NAMES)[number];

/** The gRPC method of each event (broker/proto/notify.proto), named after the seed's interface. */
export const GRPC_METHODS: Readonly<Record<EventName, string>> = {
  client_connected: 'OnClientConnect',
  client_disconnected: 'OnClientDisconnected',
  subscribe: 'OnSubscribe',
  unsubscribe: 'OnUnSubscribe',
  agent_connected: 'OnAgentConnect',
  agent_disconnected: 'OnAgentDisconnected',
};

/** What is known of a client's connection, from its CONNECT: the part every event shares. */
export interface ConnectionFacts {
  readonly id: string;
  readonly node_id: string;
  /** The client's IP address, without port (an IPv4-mapped IPv6 address is given as IPv4). */
  readonly connect_ip: string;
  readonly user_name: string;
  /** "MQTT", or "MQIsdp" for MQTT 3.1. */
  readonly proto_name: string;
  /** 3, 4 or 5. */
  readonly proto_ver: number;
  readonly keep_alive: number;
  readonly clean_start: boolean;
}

/** client_connected, client_disconnected. */
export interface ClientEvent extends ConnectionFacts {
  /** 1 for an online client, 0 for client_disconnected. */
  readonly status: 0 | 1;
  /** Unix seconds. */
  readonly timestamp: number;
}

/** subscribe, unsubscribe. */
export interface SubscriptionEvent extends ClientEvent {
  /** The filter as the client sent it (with any `$share/<group>/` prefix). */
  readonly topic: string;
  /** The granted QoS (for unsubscribe: the QoS the subscription had). */
  readonly qos: number;
}

/** agent_connected, agent_disconnected: the seed's JSON, ClientInfo fields '' when the agent sent none. */
export type AgentEvent = ClientEvent & AgentInfo;

/** One notification to deliver. */
export type Notification =
  | { readonly event: 'client_connected' | 'client_disconnected'; readonly data: ClientEvent }
  | { readonly event: 'subscribe' | 'unsubscribe'; readonly data: SubscriptionEvent }
  | { readonly event: 'agent_connected' | 'agent_disconnected'; readonly data: AgentEvent };

/** ClientInfo of a client that sent none. */
export const NO_AGENT_INFO: AgentInfo = Object.freeze({
  host_name: '', intranet_ip: '', public_ip: '', platform: '', arch: '', os: '', agent_version: '',
});

/** An address without the IPv4-mapped IPv6 prefix (`::ffff:10.0.0.1` → `10.0.0.1`). */
export function plainIp(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/** The event of a client going online (1) or offline (0). */
export function clientEvent(facts: ConnectionFacts, status: 0 | 1, timestamp: number): ClientEvent {
  return { ...facts, status, timestamp };
}

/** A subscribe or unsubscribe event. */
export function subscriptionEvent(facts: ConnectionFacts, topic: string, qos: number, timestamp: number): SubscriptionEvent {
  return { ...facts, status: 1, timestamp, topic, qos };
}

/** An agent event, with the fields in the order of the seed's example. */
export function agentEvent(facts: ConnectionFacts, info: AgentInfo | null, status: 0 | 1, timestamp: number): AgentEvent {
  return { ...agentFields(facts, info), status, timestamp };
}

/** An agent's connection facts and ClientInfo, in the order of the seed's example ('' for what it did not send). */
export function agentFields(facts: ConnectionFacts, info: AgentInfo | null): ConnectionFacts & AgentInfo {
  const i = info ?? NO_AGENT_INFO;
  return {
    id: facts.id,
    node_id: facts.node_id,
    host_name: i.host_name,
    connect_ip: facts.connect_ip,
    intranet_ip: i.intranet_ip,
    public_ip: i.public_ip,
    platform: i.platform,
    arch: i.arch,
    os: i.os,
    agent_version: i.agent_version,
    user_name: facts.user_name,
    proto_name: facts.proto_name,
    proto_ver: facts.proto_ver,
    keep_alive: facts.keep_alive,
    clean_start: facts.clean_start,
  };
}

