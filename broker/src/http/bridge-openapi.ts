/** OpenAPI path objects of `/bridge` (merged into the document by openapi.ts). */
import { KAFKA_TOPIC, PUBLIC_TOPIC_FILTER } from './openapi-common.js';

const ref = (name: string): unknown => ({ $ref: `#/components/schemas/${name}` });
const error = (description: string): unknown => ({ description, content: { 'application/json': { schema: ref('Error') } } });
const unauthorized = error('missing or wrong x-token');
const mapping = {
  type: 'object',
  required: ['id', 'topic', 'queue'],
  properties: {
    id: { type: 'string', description: 'stable id derived from topic and queue' },
    topic: { type: 'string', minLength: 1, maxLength: 65535, pattern: PUBLIC_TOPIC_FILTER, description: 'MQTT topic filter (wildcards allowed), not starting with $', example: 'event' },
    queue: { type: 'string', pattern: KAFKA_TOPIC, description: 'Kafka topic: 1 to 249 of a-z A-Z 0-9 . _ -, not . or ..', example: 'event' },
    key: { type: 'string', enum: ['topic', 'clientid'], description: 'Kafka record key of this mapping; absent: bridge.kafka.key' },
  },
};
const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };

export const bridgePaths = {
  '/bridge/': {
    post: {
      summary: 'Add a bridge mapping (MQTT topic filter to Kafka topic); the body is read as JSON whatever its content type',
      requestBody: {
        required: true,
        content: { 'application/json': { schema: { type: 'object', required: ['topic', 'queue'], properties: { topic: mapping.properties.topic, queue: mapping.properties.queue, key: mapping.properties.key } } } },
      },
      responses: {
        200: { description: 'already there (adding is idempotent)', content: { 'application/json': { schema: mapping } } },
        201: { description: 'added, on every node of the cluster', content: { 'application/json': { schema: mapping } } },
        400: error('bad topic (BAD_TOPIC), queue (BAD_QUEUE) or key (BAD_KEY), or a body that is not JSON'),
        401: unauthorized,
        413: error('BODY_TOO_LARGE: more than 512 KiB'),
        503: error('the mapping store (store.dir file or etcd) did not take the change (MAPPINGS_UNAVAILABLE)'),
      },
    },
    get: {
      summary: 'Every bridge mapping, ordered by topic',
      responses: {
        200: {
          description: 'ok',
          content: { 'application/json': { schema: { type: 'object', properties: {
            enabled: { type: 'boolean', description: 'bridge.enable: whether messages are bridged now' },
            total: { type: 'integer' },
            mappings: { type: 'array', items: mapping },
          } } } },
        },
        401: unauthorized,
      },
    },
  },
  '/bridge/{id}': {
    parameters: [idParam],
    get: {
      summary: 'One bridge mapping',
      responses: { 200: { description: 'ok', content: { 'application/json': { schema: mapping } } }, 401: unauthorized, 404: error('no such mapping') },
    },
    delete: {
      summary: 'Remove a bridge mapping (on every node)',
      responses: { 204: { description: 'removed' }, 401: unauthorized, 404: error('no such mapping'), 503: error('the mapping store did not take the change') },
    },
  },
};
