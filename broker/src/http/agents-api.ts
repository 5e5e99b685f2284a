import { Router as ExpressRouter } from 'express';
import type { AgentRegistry } from '../agent/registry.js';
import { fail } from './server.js';

/**
 * `/api/v1/agents`: the agents connected to this node (clients subscribed to `agents/<own client id>`), with the
 * ClientInfo they sent. Node-local; the views are plain JSON so a cluster-wide listing can merge them.
 */
export function agentsRouter(source: { readonly agents: AgentRegistry }): ExpressRouter {
  const r = ExpressRouter();
  r.get('/agents', (req, res) => {
    const page = Math.max(1, Math.floor(Number(req.query['page'] ?? 1)) || 1);
    const limit = Math.min(1000, Math.max(1, Math.floor(Number(req.query['limit'] ?? 100)) || 100));
    const all = source.agents.list();
    res.json({ page, limit, total: all.length, agents: all.slice((page - 1) * limit, page * limit) });
  });
  r.get('/agents/:clientid', (req, res) => {
    const agent = source.agents.get(req.params.clientid);
    if (agent === undefined) fail(res, 404, 'AGENT_NOT_FOUND', 'no such agent connected to this node');
    else res.json(agent);
  });
  return r;
}
