import { Router as ExpressRouter, json } from 'express';
import type { Broker } from '../broker.js';
import type { Connection } from '../connection/connection.js';
import { Message } from '../message/message.js';
import { RC } from '../protocol/reason-codes.js';
import { isValidTopicFilter, isValidTopicName } from '../protocol/validate.js';
import type { Session } from '../session/session.js';
import { fail } from './server.js';

/** `/api/v1`: broker stats, nodes, clients (list, one, kick), subscriptions, publish, retained messages. */
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
  r.get('/clients/:id/subscriptions', (req, res) => {
    const session = broker.sessions.get(req.params.id);
    if (session === undefined) fail(res, 404, 'CLIENT_NOT_FOUND', 'no such session on this node');
    else res.json(subscriptionsOf(session));
  });
  r.get('/subscriptions', (req, res) => {
    const { page, limit } = paging(req.query);
    const all = [...broker.sessions.values()].flatMap(subscriptionsOf);
    res.json({ page, limit, total: all.length, subscriptions: all.slice((page - 1) * limit, page * limit) });
  });
  r.post('/publish', (req, res) => {
    const body = req.body as { topic?: unknown; payload?: unknown; qos?: unknown; retain?: unknown; encoding?: unknown };
    const topic = body.topic;
    if (typeof topic !== 'string' || !isValidTopicName(topic) || topic.startsWith('$')) {
      fail(res, 400, 'BAD_TOPIC', 'topic must be a valid topic name without wildcards, not starting with $');
      return;
    }
    const qos = body.qos ?? 0;
    if (qos !== 0 && qos !== 1 && qos !== 2) {
      fail(res, 400, 'BAD_QOS', 'qos must be 0, 1 or 2');
      return;
    }
    if (typeof body.payload !== 'string') {
      fail(res, 400, 'BAD_PAYLOAD', 'payload must be a string (encoding: plain or base64)');
      return;
    }
    const payload = Buffer.from(body.payload, body.encoding === 'base64' ? 'base64' : 'utf8');
    broker.route(null, new Message(topic, payload, qos, body.retain === true, undefined, '', broker.now()));
    res.status(204).end();
  });
  r.get('/retained', (req, res) => {
    const { page, limit } = paging(req.query);
    const filter = typeof req.query['topic'] === 'string' ? req.query['topic'] : '#';
    if (!isValidTopicFilter(filter)) {
      fail(res, 400, 'BAD_FILTER', 'topic must be a valid topic filter');
      return;
    }
    const all = broker.router.retainedFor(filter, broker.now()).map(retainedView);
    res.json({ page, limit, total: all.length, messages: all.slice((page - 1) * limit, page * limit) });
  });
  r.get('/retained/*', (req, res) => {
    const m = broker.router.retained.get((req.params as Record<string, string>)['0'] ?? '');
    if (m === undefined) fail(res, 404, 'RETAINED_NOT_FOUND', 'no retained message on this topic');
    else res.json(retainedView(m));
  });
  r.delete('/retained/*', (req, res) => {
    const topic = (req.params as Record<string, string>)['0'] ?? '';
    if (broker.router.retained.get(topic) === undefined) {
      fail(res, 404, 'RETAINED_NOT_FOUND', 'no retained message on this topic');
      return;
    }
    // An empty retained publish clears it everywhere (store and cluster) and reaches nobody [MQTT-3.3.1-10].
    broker.route(null, new Message(topic, Buffer.alloc(0), 0, true, undefined, '', broker.now()));
    res.status(204).end();
  });
  return r;
}

function paging(q: Record<string, unknown>): { page: number; limit: number } {
  return {
    page: Math.max(1, Number(q['page'] ?? 1) || 1),
    limit: Math.min(1000, Math.max(1, Number(q['limit'] ?? 100) || 100)),
  };
}

function subscriptionsOf(s: Session): Record<string, unknown>[] {
  return [...s.subscriptions.values()].map((sub) => ({ clientid: s.clientId, topic: sub.raw, qos: sub.qos }));
}

function retainedView(m: Message): Record<string, unknown> {
  return { topic: m.topic, qos: m.qos, payload: m.payload.toString('base64'), encoding: 'base64' };
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
