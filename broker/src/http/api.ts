import { Router as ExpressRouter, json, type NextFunction, type Response } from 'express';
import type { Broker } from '../broker.js';
import { PageTooDeep } from '../admin/cluster-view.js';
import { Message } from '../message/message.js';
import { isValidTopicFilter, isValidTopicName } from '../protocol/validate.js';
import { withinTopicLimits } from '../limits/topic-limits.js';
import { ApiError, apiErrors, paging, refuseOtherMethods, textParam } from './params.js';
import { BASE64 } from './openapi-common.js';
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
    const q = req.query;
    const filter = { clientid: textParam(q, 'clientid'), username: textParam(q, 'username'), node: textParam(q, 'node') };
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
    view.subscriptions({ clientid: textParam(req.query, 'clientid'), node: textParam(req.query, 'node') }, page, limit).then(({ items, ...rest }) => {
      res.json({ ...rest, subscriptions: items });
    }, (err: unknown) => answerError(res, err, next));
  });
  r.post('/publish', (req, res) => {
    const { topic, payload, qos, retain } = publishRequest(req.is('application/json'), req.body);
    const limits = broker.config.limits;
    if (!withinTopicLimits(topic, limits.max_topic_levels, limits.max_topic_length)) {
      // The same limits as a client's PUBLISH: a token holder must not store what no subscriber could filter.
      throw new ApiError(400, 'BAD_TOPIC', `topic exceeds limits.max_topic_levels (${limits.max_topic_levels}) or limits.max_topic_length (${limits.max_topic_length})`);
    }
    broker.route(null, new Message(topic, payload, qos, retain, undefined, '', broker.now()));
    res.status(204).end();
  });
  r.get('/retained', (req, res) => {
    const { page, limit } = paging(req.query);
    const filter = textParam(req.query, 'topic') ?? '#';
    if (!isValidTopicFilter(filter)) {
      fail(res, 400, 'BAD_FILTER', 'topic must be a valid topic filter');
      return;
    }
    const all = broker.router.retainedFor(filter, broker.now()).map(retainedView);
    res.json({ page, limit, total: all.length, messages: all.slice((page - 1) * limit, page * limit) });
  });
  r.get('/retained/*', (req, res) => {
    const m = broker.router.retained.get(topicParam(req.params));
    if (m === undefined) fail(res, 404, 'RETAINED_NOT_FOUND', 'no retained message on this topic');
    else res.json(retainedView(m));
  });
  r.delete('/retained/*', (req, res) => {
    const topic = topicParam(req.params);
    if (broker.router.retained.get(topic) === undefined) {
      fail(res, 404, 'RETAINED_NOT_FOUND', 'no retained message on this topic');
      return;
    }
    // An empty retained publish clears it everywhere (store and cluster) and reaches nobody [MQTT-3.3.1-10].
    broker.route(null, new Message(topic, Buffer.alloc(0), 0, true, undefined, '', broker.now()));
    res.status(204).end();
  });
  refuseOtherMethods(r);
  r.use(apiErrors);
  return r;
}

/** The topic of `/retained/<topic>` (the rest of the path, slashes and all): a topic name, wildcards refused. */
function topicParam(params: Record<string, string>): string {
  const topic = params['0'] ?? '';
  if (!isValidTopicName(topic)) throw new ApiError(400, 'BAD_TOPIC', 'the path must end in a topic name (no + or #)');
  return topic;
}

/** A POST /publish body, checked field by field (each mistake has its own code). */
function publishRequest(contentType: string | false | null, body: unknown): { topic: string; payload: Buffer; qos: 0 | 1 | 2; retain: boolean } {
  if (contentType === false) throw new ApiError(415, 'UNSUPPORTED_MEDIA_TYPE', 'the body must be application/json');
  if (contentType === null || typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ApiError(400, 'BAD_BODY', 'the body must be a JSON object with topic and payload');
  }
  const { topic, payload, qos = 0, retain = false, encoding = 'plain' } = body as Record<string, unknown>;
  if (typeof topic !== 'string' || !isValidTopicName(topic) || topic.startsWith('$')) {
    throw new ApiError(400, 'BAD_TOPIC', 'topic must be a valid topic name without wildcards, not starting with $');
  }
  if (qos !== 0 && qos !== 1 && qos !== 2) throw new ApiError(400, 'BAD_QOS', 'qos must be 0, 1 or 2');
  if (typeof retain !== 'boolean') throw new ApiError(400, 'BAD_RETAIN', 'retain must be true or false');
  if (encoding !== 'plain' && encoding !== 'base64') throw new ApiError(400, 'BAD_ENCODING', 'encoding must be plain or base64');
  // Buffer.from(.., 'base64') skips what is not base64: a typo would publish other bytes than meant.
  if (typeof payload !== 'string' || (encoding === 'base64' && !BASE64_RE.test(payload))) {
    throw new ApiError(400, 'BAD_PAYLOAD', 'payload must be a string, in base64 when encoding is base64');
  }
  return { topic, payload: Buffer.from(payload, encoding === 'base64' ? 'base64' : 'utf8'), qos, retain };
}

const BASE64_RE = new RegExp(BASE64);

function retainedView(m: Message): Record<string, unknown> {
  return { topic: m.topic, qos: m.qos, payload: m.payload.toString('base64'), encoding: 'base64' };
}

/** A list that could not be made: a page too deep is the caller's mistake (400), anything else goes on. */
function answerError(res: Response, err: unknown, next: NextFunction): void {
  if (err instanceof PageTooDeep) fail(res, 400, err.code, err.message);
  else next(err);
}
