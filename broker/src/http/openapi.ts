import { agentPaths } from './agents-openapi.js';
import { bridgePaths } from './bridge-openapi.js';

/** The OpenAPI 3 document of `/api/v1`, served at `/api/v1/openapi.json` and shown by Swagger UI. */
const error = {
  type: 'object',
  required: ['code', 'message'],
  properties: { code: { type: 'string', example: 'UNAUTHORIZED' }, message: { type: 'string' } },
};

const client = {
  type: 'object',
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
const tooDeep = { description: 'bad parameter, or a page beyond item 10000 without a node filter (PAGE_TOO_DEEP)', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };

const unauthorized = { description: 'missing or wrong x-token', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
const json = (schema: unknown, description = 'ok'): unknown => ({ description, content: { 'application/json': { schema } } });

export function openApiDocument(version: string): Record<string, unknown> {
  return {
    openapi: '3.0.3',
    info: { title: 'smq HTTP API', version, description: 'Every call needs the x-token header (http.tokens or http.token_file).' },
    servers: [{ url: '/api/v1' }],
    security: [{ token: [] }],
    components: {
      securitySchemes: { token: { type: 'apiKey', in: 'header', name: 'x-token' } },
      schemas: {
        Error: error,
        Client: client,
        Subscription: { type: 'object', properties: { clientid: { type: 'string' }, node: { type: 'string' }, topic: { type: 'string' }, qos: { type: 'integer', enum: [0, 1, 2] } } },
        Retained: { type: 'object', properties: { topic: { type: 'string' }, qos: { type: 'integer' }, payload: { type: 'string', format: 'byte' }, encoding: { type: 'string', enum: ['base64'] } } },
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
          responses: { 200: json({ type: 'array', items: { type: 'object', properties: { id: { type: 'string' }, name: { type: 'string' }, version: { type: 'string' }, clients: { type: 'integer' } } } }), 401: unauthorized },
        },
      },
      '/clients': {
        get: {
          summary: 'Connected clients of every node, in client-id order, paged and filtered',
          parameters: [
            { name: 'clientid', in: 'query', schema: { type: 'string' } },
            { name: 'username', in: 'query', schema: { type: 'string' } },
            nodeFilter,
            { name: 'page', in: 'query', schema: { type: 'integer', minimum: 1, default: 1 } },
            { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
          ],
          responses: {
            200: json({ type: 'object', properties: { page: { type: 'integer' }, limit: { type: 'integer' }, total: { type: 'integer' }, unreachable, clients: { type: 'array', items: { $ref: '#/components/schemas/Client' } } } }),
            400: tooDeep,
            401: unauthorized,
          },
        },
      },
      '/clients/{id}/subscriptions': {
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
        get: {
          summary: "A session's subscriptions (connected or not)",
          responses: { 200: json({ type: 'array', items: { $ref: '#/components/schemas/Subscription' } }), 401: unauthorized, 404: json({ $ref: '#/components/schemas/Error' }, 'no such session') },
        },
      },
      '/subscriptions': {
        get: {
          summary: 'Every subscription of every session on every node, paged',
          parameters: [
            { name: 'clientid', in: 'query', schema: { type: 'string' } },
            nodeFilter,
            { name: 'page', in: 'query', schema: { type: 'integer', minimum: 1, default: 1 } },
            { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
          ],
          responses: { 200: json({ type: 'object', properties: { page: { type: 'integer' }, limit: { type: 'integer' }, total: { type: 'integer' }, unreachable, subscriptions: { type: 'array', items: { $ref: '#/components/schemas/Subscription' } } } }), 400: tooDeep, 401: unauthorized },
        },
      },
      '/publish': {
        post: {
          summary: 'Publish a message (as the broker: access rules do not apply)',
          requestBody: {
            required: true,
            content: { 'application/json': { schema: {
              type: 'object', required: ['topic', 'payload'],
              properties: {
                topic: { type: 'string' }, payload: { type: 'string' }, qos: { type: 'integer', enum: [0, 1, 2], default: 0 },
                retain: { type: 'boolean', default: false }, encoding: { type: 'string', enum: ['plain', 'base64'], default: 'plain' },
              },
            } } },
          },
          responses: { 204: { description: 'published' }, 400: json({ $ref: '#/components/schemas/Error' }, 'bad topic, qos or payload'), 401: unauthorized },
        },
      },
      '/retained': {
        get: {
          summary: 'Retained messages matching a topic filter, paged',
          parameters: [
            { name: 'topic', in: 'query', schema: { type: 'string', default: '#' } },
            { name: 'page', in: 'query', schema: { type: 'integer', minimum: 1, default: 1 } },
            { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
          ],
          responses: { 200: json({ type: 'object', properties: { page: { type: 'integer' }, limit: { type: 'integer' }, total: { type: 'integer' }, messages: { type: 'array', items: { $ref: '#/components/schemas/Retained' } } } }), 400: json({ $ref: '#/components/schemas/Error' }, 'bad filter'), 401: unauthorized },
        },
      },
      '/retained/{topic}': {
        parameters: [{ name: 'topic', in: 'path', required: true, description: 'the topic; its slashes are part of the path', schema: { type: 'string' } }],
        get: { summary: 'The retained message of a topic', responses: { 200: json({ $ref: '#/components/schemas/Retained' }), 401: unauthorized, 404: json({ $ref: '#/components/schemas/Error' }, 'none') } },
        delete: { summary: 'Clear the retained message of a topic (cluster-wide)', responses: { 204: { description: 'cleared' }, 401: unauthorized, 404: json({ $ref: '#/components/schemas/Error' }, 'none') } },
      },
      '/clients/{id}': {
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
        get: {
          summary: 'One connected client',
          responses: { 200: json({ $ref: '#/components/schemas/Client' }), 401: unauthorized, 404: json({ $ref: '#/components/schemas/Error' }, 'not connected to any node') },
        },
        delete: {
          summary: 'Disconnect a client (v5: DISCONNECT 0x98 administrative action)',
          responses: { 204: { description: 'disconnected' }, 401: unauthorized, 404: json({ $ref: '#/components/schemas/Error' }, 'not connected to any node') },
        },
      },
    },
  };
}
