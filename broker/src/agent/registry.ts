/**
 * The agents of this node. A client whose session holds a subscription to `agents/<its own client id>` is an
 * agent (the seed's agent mode) while it is connected; jobs reach it by ordinary routing of what is published to
 * that topic.
 */
import type { ClientInfo } from '../hooks/types.js';
import type { ConnectionFacts } from '../notify/events.js';
import { agentFields } from '../notify/events.js';
import type { AgentInfo } from './client-info.js';

/** The topic an agent subscribes to (and jobs are published to). */
export function agentTopic(clientId: string): string {
  return `agents/${clientId}`;
}

/** One agent as the HTTP API shows it: plain JSON (the cluster-wide listing merges these). */
export interface AgentView extends ConnectionFacts, AgentInfo {
  /** When it became an agent, in unix seconds. */
  readonly since: number;
}

/** The connection an agent is on, and what is shown of it. */
interface Entry {
  readonly client: ClientInfo;
  readonly view: AgentView;
}

/** Agents by client id; node-local. */
export class AgentRegistry {
  private readonly agents = new Map<string, Entry>();

  /** Agents connected now. */
  get size(): number {
    return this.agents.size;
  }

  /**
   * Records `client` as an agent. False when this very connection already is one (a repeated SUBSCRIBE), so the
   * caller raises agent_connected once.
   */
  add(client: ClientInfo, facts: ConnectionFacts, info: AgentInfo | null, since: number): boolean {
    if (this.agents.get(facts.id)?.client === client) return false;
    const view: AgentView = { ...agentFields(facts, info), since };
    this.agents.set(facts.id, { client, view });
    return true;
  }

  /** Forgets the agent on this connection; true when it was one (so agent_disconnected is raised once). */
  remove(client: ClientInfo): boolean {
    const entry = this.agents.get(client.clientId);
    if (entry === undefined || entry.client !== client) return false;
    this.agents.delete(client.clientId);
    return true;
  }

  /** One agent by client id. */
  get(clientId: string): AgentView | undefined {
    return this.agents.get(clientId)?.view;
  }

  /** Every agent, by client id. */
  list(): AgentView[] {
    return [...this.agents.values()].map((e) => e.view).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }
}
