import { Router as ExpressRouter, json, type NextFunction, type Response } from 'express';
import type { Broker } from '../broker.js';
import { PageTooDeep } from '../admin/cluster-view.js';
import { Message } from '../message/message.js';
import { isValidTopicFilter, isValidTopicName } from '../protocol/validate.js';
import { fail } from './server.js';
import { agentsRouter } from './agents-api.js';
import { bridgeRouter } from './bridge-api.js';

/**
 * `/api/v1`: broker stats, nodes, clients (list, one, kick), subscriptions, publish, retained messages. Client
 * and subscription answers are cluster-wide (every node is asked through etcd; see admin/cluster-view.ts).
 */
export function apiRouter(broker: Broker): ExpressRouter {
  const r = ExpressRouter();
  // Before the JSON parser: the seed's curl posts mappings without a JSON content type.
  r.use(bridgeRouter(broker));
  r.use(json({ limit: '1mb' }));
  r.use(agentsRouter(broker));
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
  const view = broker.view;
  r.get('/clients', (req, res, next) => {
    const { page, limit } = paging(req.query);
    const filter = { clientid: text(req.query['clientid']), username: text(req.query['username']), node: text(req.query['node']) };
    view.clients(filter, page, limit).then(({ items, ...rest }) => {
      res.json({ ...rest, clients: items });
    }, (err: unknown) => answerError(res, err, next));
  });
  r.get('/clients/:id', (req, res, next) => {
    view.client(req.params.id).then((c) => {
      if (c === null) fail(res, 404, 'CLIENT_NOT_FOUND', 'no such connected client');
      else res.json(c);
    }, next);
  });
  r.delete('/clients/:id', (req, res, next) => {
    view.kick(req.params.id).then((kicked) => {
      if (kicked) res.status(204).end();
      else fail(res, 404, 'CLIENT_NOT_FOUND', 'no such connected client');
    }, next);
  });
  r.get('/clients/:id/subscriptions', (req, res, next) => {
    view.sessionSubscriptions(req.params.id).then((subs) => {
      if (subs === null) fail(res, 404, 'CLIENT_NOT_FOUND', 'no such session');
      else res.json(subs);
    }, next);
  });
  r.get('/subscriptions', (req, res, next) => {
    const { page, limit } = paging(req.query);
    view.subscriptions({ clientid: text(req.query['clientid']), node: text(req.query['node']) }, page, limit).then(({ items, ...rest }) => {
      res.json({ ...rest, subscriptions: items });
    }, (err: unknown) => answerError(res, err, next));
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

function retainedView(m: Message): Record<string, unknown> {
  return { topic: m.topic, qos: m.qos, payload: m.payload.toString('base64'), encoding: 'base64' };
}

/** A query parameter given once as a string, else undefined. */
function text(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** A list that could not be made: a page too deep is the caller's mistake (400), anything else goes on. */
function answerError(res: Response, err: unknown, next: NextFunction): void {
  if (err instanceof PageTooDeep) fail(res, 400, err.code, err.message);
  else next(err);
}
