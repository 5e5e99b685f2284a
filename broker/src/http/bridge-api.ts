import { Router as ExpressRouter, json, type Response } from 'express';
import type { Broker } from '../broker.js';
import { type BridgeMapping, makeMapping, MappingError } from '../bridge/mappings.js';
import { fail } from './server.js';

/**
 * `/api/v1/bridge/`: the Kafka bridge's mappings, as the seed shows them:
 * `curl -X POST .../api/v1/bridge/ -H 'x-token: ...' -d '{"topic": "event", "queue": "event"}'`. That curl sends
 * no JSON content type, so this body is read as JSON whatever its type says.
 */
export function bridgeRouter(broker: Broker): ExpressRouter {
  const r = ExpressRouter();
  const mappings = broker.bridgeMappings;
  // Room for the longest topic filter MQTT allows (65535 bytes) and a queue name, JSON-escaped.
  r.post('/bridge', json({ limit: '512kb', type: () => true }), (req, res, next) => {
    const body = (req.body ?? {}) as { topic?: unknown; queue?: unknown; key?: unknown };
    let mapping;
    try {
      mapping = makeMapping(body.topic, body.queue, body.key);
    } catch (err) {
      if (err instanceof MappingError) fail(res, 400, err.code, err.message);
      else next(err);
      return;
    }
    mappings.add(mapping).then(({ created }) => {
      res.status(created ? 201 : 200).json(view(mapping));
    }, (err: unknown) => unavailable(res, err));
  });
  r.get('/bridge', (_req, res) => {
    const all = mappings.list();
    res.json({ enabled: broker.config.bridge.enable, total: all.length, mappings: all.map(view) });
  });
  r.get('/bridge/:id', (req, res) => {
    const m = mappings.get(req.params.id);
    if (m === undefined) fail(res, 404, 'MAPPING_NOT_FOUND', 'no bridge mapping with this id');
    else res.json(view(m));
  });
  r.delete('/bridge/:id', (req, res) => {
    mappings.remove(req.params.id).then((removed) => {
      if (removed) res.status(204).end();
      else fail(res, 404, 'MAPPING_NOT_FOUND', 'no bridge mapping with this id');
    }, (err: unknown) => unavailable(res, err));
  });
  return r;
}

function view(m: BridgeMapping): Record<string, string> {
  return m.key === undefined ? { id: m.id, topic: m.topic, queue: m.queue } : { id: m.id, topic: m.topic, queue: m.queue, key: m.key };
}

/** The mapping store (the file, or etcd) did not take the change: nothing changed, try again later. */
function unavailable(res: Response, err: unknown): void {
  fail(res, 503, 'MAPPINGS_UNAVAILABLE', `the change was not saved: ${(err as Error).message}`);
}
