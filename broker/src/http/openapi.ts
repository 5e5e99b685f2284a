import { agentPaths } from './agents-openapi.js';
import { bridgePaths } from './bridge-openapi.js';
import { BASE64, LIMIT_PARAM, PAGE_PARAM, PUBLIC_TOPIC_NAME, TOPIC_FILTER, TOPIC_NAME } from './openapi-common.js';

/** The OpenAPI 3 document of `/api/v1`, served at `/api/v1/openapi.json` and shown by Swagger UI. */
const error = {
  type: 'object',
  required: ['code', 'message'],
  properties: { code: { type: 'string', example: 'UNAUTHORIZED' }, message: { type: 'string' } },
};

const client = {
  type: 'object',
  required: ['clientid', 'username', 'node', 'remote', 'transport', 'proto_ver', 'subscriptions'],
  properties: {
    clientid: { type: 'string' },
    username: { type: 'string', nullable: true },
    node: { type: 'string' },
    remote: { type: 'string' },
    transport: { type: 'string', enum: ['tcp', 'tls', 'ws', 'wss'] },
    proto_ver: { type: 'integer', enum: [3, 4, 5] },
    keep_alive: { type: 'integer', description: 'seconds; 0 for none' },
    session_expiry: { type: 'integer', description: 'seconds the session outlives the connection; 0 for a clean session' },
    connected_at: { type: 'string', format: 'date-time' },
    subscriptions: { type: 'integer' },
    inflight: { type: 'integer', description: 'QoS 1/2 messages sent, not yet acknowledged' },
    queued: { type: 'integer', description: 'QoS 1/2 messages waiting for room in the in-flight window' },
  },
};

/** Cluster-wide lists name the nodes that did not answer in time (their items are missing from the page). */
const unreachable = { type: 'array', items: { type: 'string' }, description: 'nodes that did not answer; their items are missing' };
const nodeFilter = { name: 'node', in: 'query', description: 'only this node (needed for pages beyond item 10000 in a cluster)', schema: { type: 'string' } };
const tooDeep = { description: 'BAD_PARAMETER (page, limit, a repeated parameter), or PAGE_TOO_DEEP: a page beyond item 10000 without a node filter', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };

const unauthorized = { description: 'missing or wrong x-token', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
const json = (schema: unknown, description = 'ok'): unknown => ({ description, content: { 'application/json': { schema } } });
/** POST /publish without its `encoding`, which decides how `payload` is read. */
const publishBody = {
  type: 'object',
  required: ['topic', 'payload'],
  properties: {
    topic: { type: 'string', pattern: PUBLIC_TOPIC_NAME, maxLength: 65535, description: 'a topic name, not a $ topic; at most 65535 bytes in UTF-8' },
    payload: { type: 'string', description: 'the payload as text, sent as UTF-8' },
    qos: { type: 'integer', enum: [0, 1, 2], default: 0 },
    retain: { type: 'boolean', default: false },
  },
};
/** An error answer; `description` names its codes. */
const failure = (description: string): unknown => json({ $ref: '#/components/schemas/Error' }, description);
/** A paged list: `key` holds the page's items. */
const pageOf = (key: string, items: unknown, extra: Record<string, unknown> = {}): unknown => json({
  type: 'object',
  required: ['page', 'limit', 'total', key],
  properties: { page: { type: 'integer' }, limit: { type: 'integer' }, total: { type: 'integer' }, ...extra, [key]: { type: 'array', items } },
});
const badTopic = failure('BAD_TOPIC: not a topic name (empty, + or #, U+0000); BAD_PATH: not valid percent-encoding');
const badPath = failure('BAD_PATH: the path is not valid percent-encoding');

export function openApiDocument(version: string): Record<string, unknown> {
  return withThrottleAnswers({
    openapi: '3.0.3',
    info: { title: 'smq HTTP API', version, description: 'Every call needs the x-token header (http.tokens or http.token_file).' },
    servers: [{ url: '/api/v1' }],
    security: [{ token: [] }],
    components: {
      securitySchemes: { token: { type: 'apiKey', in: 'header', name: 'x-token' } },
      schemas: {
        Error: error,
        Client: client,
        Subscription: { type: 'object', required: ['clientid', 'node', 'topic', 'qos'], properties: { clientid: { type: 'string' }, node: { type: 'string' }, topic: { type: 'string' }, qos: { type: 'integer', enum: [0, 1, 2] } } },
        Retained: { type: 'object', required: ['topic', 'qos', 'payload', 'encoding'], properties: { topic: { type: 'string' }, qos: { type: 'integer', enum: [0, 1, 2] }, payload: { type: 'string', format: 'byte' }, encoding: { type: 'string', enum: ['base64'] } } },
      },
    },
    paths: {
      ...agentPaths,
      ...bridgePaths,
      '/stats': {
        get: {
          summary: "This node's counters",
          responses: {
            200: json({
              type: 'object',
              required: ['node', 'uptime_seconds', 'connections', 'sessions', 'subscriptions', 'retained', 'messages_received', 'messages_sent', 'messages_dropped'],
              properties: Object.fromEntries(['uptime_seconds', 'connections', 'sessions', 'subscriptions', 'retained', 'messages_received', 'messages_sent', 'messages_dropped']
                .map((k) => [k, { type: 'integer' }]).concat([['node', { type: 'string' }]])),
            }),
            401: unauthorized,
          },
        },
      },
      '/nodes': {
        get: {
          summary: 'The nodes of the cluster (this node alone when standalone)',
          responses: { 200: json({ type: 'array', items: { type: 'object', required: ['id'], properties: { id: { type: 'string' }, name: { type: 'string' }, version: { type: 'string' }, clients: { type: 'integer' } } } }), 401: unauthorized },
        },
      },
      '/clients': {
        get: {
          summary: 'Connected clients of every node, in client-id order, paged and filtered',
          parameters: [
            { name: 'clientid', in: 'query', schema: { type: 'string' } },
            { name: 'username', in: 'query', schema: { type: 'string' } },
            nodeFilter,
            PAGE_PARAM,
            LIMIT_PARAM,
          ],
          responses: {
            200: pageOf('clients', { $ref: '#/components/schemas/Client' }, { unreachable }),
            400: tooDeep,
            401: unauthorized,
          },
        },
      },
      '/clients/{id}/subscriptions': {
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string', minLength: 1 } }],
        get: {
          summary: "A session's subscriptions (connected or not)",
          responses: { 200: json({ type: 'array', items: { $ref: '#/components/schemas/Subscription' } }), 400: badPath, 401: unauthorized, 404: json({ $ref: '#/components/schemas/Error' }, 'no such session') },
        },
      },
      '/subscriptions': {
        get: {
          summary: 'Every subscription of every session on every node, paged',
          parameters: [
            { name: 'clientid', in: 'query', schema: { type: 'string' } },
            nodeFilter,
            PAGE_PARAM,
            LIMIT_PARAM,
          ],
          responses: { 200: pageOf('subscriptions', { $ref: '#/components/schemas/Subscription' }, { unreachable }), 400: tooDeep, 401: unauthorized },
        },
      },
      '/publish': {
        post: {
          summary: 'Publish a message (as the broker: access rules do not apply)',
          requestBody: {
            required: true,
            content: { 'application/json': { schema: {
              // Two shapes, so that the document can say a base64 payload must be base64.
              oneOf: [
                { ...publishBody, properties: { ...publishBody.properties, encoding: { type: 'string', enum: ['plain'], default: 'plain' } } },
                {
                  ...publishBody, required: [...publishBody.required, 'encoding'],
                  properties: { ...publishBody.properties, payload: { type: 'string', pattern: BASE64, description: 'the payload in base64' }, encoding: { type: 'string', enum: ['base64'] } },
                },
              ],
            } } },
          },
          responses: {
            204: { description: 'published' },
            400: failure('BAD_JSON, BAD_BODY (not an object), BAD_TOPIC, BAD_QOS, BAD_RETAIN, BAD_ENCODING or BAD_PAYLOAD (not a string, or not base64 when encoding is base64)'),
            401: unauthorized,
            413: failure('BODY_TOO_LARGE: more than 1 MiB'),
            415: failure('UNSUPPORTED_MEDIA_TYPE: the body is not application/json (in UTF-8)'),
          },
        },
      },
      '/retained': {
        get: {
          summary: 'Retained messages matching a topic filter, paged',
          parameters: [
            { name: 'topic', in: 'query', description: 'a topic filter (+ and # as in MQTT)', schema: { type: 'string', minLength: 1, pattern: TOPIC_FILTER, default: '#' } },
            PAGE_PARAM,
            LIMIT_PARAM,
          ],
          responses: { 200: pageOf('messages', { $ref: '#/components/schemas/Retained' }), 400: failure('BAD_FILTER: not a topic filter; or BAD_PARAMETER (page, limit, a repeated parameter)'), 401: unauthorized },
        },
      },
      '/retained/{topic}': {
        parameters: [{
          name: 'topic', in: 'path', required: true, schema: { type: 'string', pattern: TOPIC_NAME },
          description: 'the topic name, the rest of the path: its slashes may be written as they are (/retained/a/b) or as %2F',
        }],
        get: { summary: 'The retained message of a topic', responses: { 200: json({ $ref: '#/components/schemas/Retained' }), 400: badTopic, 401: unauthorized, 404: failure('RETAINED_NOT_FOUND') } },
        delete: { summary: 'Clear the retained message of a topic (cluster-wide)', responses: { 204: { description: 'cleared' }, 400: badTopic, 401: unauthorized, 404: failure('RETAINED_NOT_FOUND') } },
      },
      '/clients/{id}': {
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string', minLength: 1 } }],
        get: {
          summary: 'One connected client',
          responses: { 200: json({ $ref: '#/components/schemas/Client' }), 400: badPath, 401: unauthorized, 404: json({ $ref: '#/components/schemas/Error' }, 'not connected to any node') },
        },
        delete: {
          summary: 'Disconnect a client (v5: DISCONNECT 0x98 administrative action)',
          responses: { 204: { description: 'disconnected' }, 400: badPath, 401: unauthorized, 404: json({ $ref: '#/components/schemas/Error' }, 'not connected to any node') },
        },
      },
    },
  });
}

const tooMany = {
  description: 'TOO_MANY_FAILURES: too many wrong tokens from this address lately (auth.max_failures); Retry-After says when to try again',
  headers: { 'Retry-After': { description: 'seconds to wait', schema: { type: 'integer' } } },
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
};

/** Every call that can be refused for its token (401) can also be told to wait (429): added in one place. */
function withThrottleAnswers(doc: { paths: Record<string, unknown> } & Record<string, unknown>): Record<string, unknown> {
  for (const item of Object.values(doc.paths) as Record<string, unknown>[]) {
    for (const op of Object.values(item)) {
      const responses = (op as { responses?: Record<string, unknown> }).responses;
      if (responses !== undefined && '401' in responses) responses['429'] = tooMany;
    }
  }
  return doc;
}
