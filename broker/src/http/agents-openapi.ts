/** The OpenAPI 3 path objects of `/api/v1/agents` (agents-api.ts), merged into the document in openapi.ts. */
import { PAGE_PARAM } from './openapi-common.js';

const str = { type: 'string' };
const errorBody = { $ref: '#/components/schemas/Error' };

/** One agent: the seed's agent JSON without status and timestamp, plus `since`. */
const agent = {
  type: 'object',
  required: ['id', 'node_id', 'connect_ip', 'user_name', 'proto_name', 'proto_ver', 'keep_alive', 'clean_start', 'since'],
  properties: {
    id: { type: 'string', description: 'client id' },
    node_id: { type: 'string', description: 'the node the agent is connected to' },
    host_name: str,
    connect_ip: { type: 'string', description: 'address the agent connected from, without port' },
    intranet_ip: str,
    public_ip: str,
    platform: str,
    arch: str,
    os: str,
    agent_version: str,
    user_name: str,
    proto_name: { type: 'string', enum: ['MQTT', 'MQIsdp'] },
    proto_ver: { type: 'integer', enum: [3, 4, 5] },
    keep_alive: { type: 'integer', description: 'seconds' },
    clean_start: { type: 'boolean' },
    since: { type: 'integer', description: 'unix seconds when it became an agent' },
  },
};

const unauthorized = { description: 'missing or wrong x-token', content: { 'application/json': { schema: errorBody } } };

/** `/agents` and `/agents/{clientid}`. */
export const agentPaths = {
  '/agents': {
    get: {
      summary: 'Agents of every node (clients subscribed to agents/<own client id>), with their ClientInfo, in client-id order, paged',
      parameters: [
        { name: 'node', in: 'query', description: 'only this node (needed for pages beyond item 10000 in a cluster)', schema: { type: 'string' } },
        PAGE_PARAM,
        { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
      ],
      responses: {
        200: {
          description: 'ok',
          content: { 'application/json': { schema: {
            type: 'object',
            required: ['page', 'limit', 'total', 'agents'],
            properties: {
              page: { type: 'integer' }, limit: { type: 'integer' }, total: { type: 'integer' }, agents: { type: 'array', items: agent },
              unreachable: { type: 'array', items: { type: 'string' }, description: 'nodes that did not answer; their agents are missing' },
            },
          } } },
        },
        400: { description: 'bad parameter, or a page beyond item 10000 without a node filter (PAGE_TOO_DEEP)', content: { 'application/json': { schema: errorBody } } },
        401: unauthorized,
      },
    },
  },
  '/agents/{clientid}': {
    parameters: [{ name: 'clientid', in: 'path', required: true, schema: { type: 'string' } }],
    get: {
      summary: 'One agent, wherever it is connected',
      responses: {
        200: { description: 'ok', content: { 'application/json': { schema: agent } } },
        401: unauthorized,
        404: { description: 'no such agent on any node (AGENT_NOT_FOUND)', content: { 'application/json': { schema: errorBody } } },
      },
    },
  },
} as const;
