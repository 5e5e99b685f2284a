import { Router as ExpressRouter } from 'express';
import { PageTooDeep } from '../admin/cluster-view.js';
import type { Broker } from '../broker.js';
import { paging, textParam } from './params.js';
import { fail } from './server.js';

/**
 * `/api/v1/agents`: the agents (clients subscribed to `agents/<own client id>`) with the ClientInfo they sent,
 * of every node of the cluster (asked through etcd, like the client lists) or of the one named by `node`.
 */
export function agentsRouter(broker: Broker): ExpressRouter {
  const r = ExpressRouter();
  r.get('/agents', (req, res, next) => {
    const { page, limit } = paging(req.query);
    broker.view.agents(textParam(req.query, 'node'), page, limit).then(({ items, ...rest }) => {
      res.json({ ...rest, agents: items });
    }, (err: unknown) => {
      if (err instanceof PageTooDeep) fail(res, 400, err.code, err.message);
      else next(err);
    });
  });
  r.get('/agents/:clientid', (req, res, next) => {
    broker.view.agent(req.params.clientid).then((agent) => {
      if (agent === null) fail(res, 404, 'AGENT_NOT_FOUND', 'no such agent connected to any node');
      else res.json(agent);
    }, next);
  });
  return r;
}
