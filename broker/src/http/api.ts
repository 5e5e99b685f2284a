import { Router as ExpressRouter, json } from 'express';
import type { Broker } from '../broker.js';
import type { Connection } from '../connection/connection.js';
import { RC } from '../protocol/reason-codes.js';
import { fail } from './server.js';

/** `/api/v1`: broker stats, nodes, clients (list, one, kick). */
export function apiRouter(broker: Broker): ExpressRouter {
  const r = ExpressRouter();
  r.use(json({ limit: '1mb' }));
  r.get('/stats', (_req, res) => {
    const s = broker.stats;
    res.json({
      node: broker.nodeId,
      uptime_seconds: Math.floor((Date.now() - s.startedAt) / 1000),
      connections: s.clientsConnected,
      sessions: broker.sessions.size,
      subscriptions: broker.router.subscriptionCount,
      retained: broker.router.retained.size,
      messages_received: s.messagesReceived,
      messages_sent: s.messagesSent,
      messages_dropped: s.messagesDropped,
    });
  });
  r.get('/nodes', (_req, res) => {
    const cluster = broker.cluster;
    if (cluster === null) {
      res.json([{ id: broker.nodeId, name: broker.config.name, version: broker.version, clients: broker.stats.clientsConnected }]);
      return;
    }
    res.json([...cluster.membership.members.values()]);
  });
  r.get('/clients', (req, res) => {
    const page = Math.max(1, Number(req.query['page'] ?? 1) || 1);
    const limit = Math.min(1000, Math.max(1, Number(req.query['limit'] ?? 100) || 100));
    const clientid = typeof req.query['clientid'] === 'string' ? req.query['clientid'] : undefined;
    const username = typeof req.query['username'] === 'string' ? req.query['username'] : undefined;
    const all = [...broker.sessions.values()]
      .filter((s) => s.outlet !== null)
      .map((s) => describe(broker, s.outlet as Connection))
      .filter((c) => (clientid === undefined || c.clientid === clientid) && (username === undefined || c.username === username));
    res.json({ page, limit, total: all.length, clients: all.slice((page - 1) * limit, page * limit) });
  });
  r.get('/clients/:id', (req, res) => {
    const conn = broker.sessions.get(req.params.id)?.outlet as Connection | null | undefined;
    if (!conn) fail(res, 404, 'CLIENT_NOT_FOUND', 'no such connected client on this node');
    else res.json(describe(broker, conn));
  });
  r.delete('/clients/:id', (req, res) => {
    const conn = broker.sessions.get(req.params.id)?.outlet as Connection | null | undefined;
    if (!conn) {
      fail(res, 404, 'CLIENT_NOT_FOUND', 'no such connected client on this node');
      return;
    }
    conn.closeReason = 'kicked through the HTTP API';
    conn.close(RC.ADMINISTRATIVE_ACTION);
    res.status(204).end();
  });
  return r;
}

function describe(broker: Broker, c: Connection): Record<string, unknown> {
  return {
    clientid: c.clientId,
    username: c.username ?? null,
    node: broker.nodeId,
    remote: c.remoteAddress,
    transport: c.transport,
    proto_ver: c.protocolVersion,
    subscriptions: c.session?.subscriptions.size ?? 0,
  };
}
