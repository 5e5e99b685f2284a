import { createServer, type Server } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Broker } from '../broker.js';
import { listenOn, type Bound } from '../listeners/types.js';
import { brokerMetrics } from './metrics.js';
import swaggerUi from 'swagger-ui-express';
import { apiRouter } from './api.js';
import { openApiDocument } from './openapi.js';
import { ApiTokens } from './tokens.js';

/** An error answer: JSON with a stable code (the codes are listed in the OpenAPI document). */
export function fail(res: Response, status: number, code: string, message: string): void {
  res.status(status).json({ code, message });
}

/**
 * The HTTP service (`http.*`): `/healthz` and `/readyz` for Kubernetes probes, `/metrics` for Prometheus, and
 * the OpenAPI document with Swagger UI at `/api/v1/swagger/index.html`, without a token; `/api/v1/...` only with a token from `http.tokens` or `http.token_file` in `x-token` (no token
 * configured: every API call is refused, nothing is open that the user did not open).
 */
export class HttpService {
  private readonly server: Server;

  constructor(private readonly broker: Broker) {
    const app = express();
    app.disable('x-powered-by');
    const registry = brokerMetrics(broker);
    // The bridge's state is reported, not judged: MQTT clients are served while Kafka is away (bridged
    // publishers wait, see README "Kafka bridge"), so a pod stays ready.
    const bridge = (): Record<string, unknown> => (broker.bridge === null ? {} : {
      bridge: { state: broker.bridge.state, buffered: broker.bridge.pipeline.buffered },
    });
    app.get('/healthz', (_req, res) => {
      res.json({ status: 'ok', ...bridge() });
    });
    app.get('/readyz', (_req, res) => {
      const why = broker.notReady();
      if (why === null) res.json({ status: 'ready', ...bridge() });
      else fail(res, 503, 'NOT_READY', why);
    });
    app.get('/metrics', (_req, res, next) => {
      registry.metrics().then((text) => {
        res.type(registry.contentType).send(text);
      }, next);
    });
    // The API's description and Swagger UI need no token (the calls made from it do).
    const doc = openApiDocument(broker.version);
    app.get('/api/v1/openapi.json', (_req, res) => {
      res.json(doc);
    });
    // The page's assets are relative ('./swagger-ui.css'): without the slash they would miss the folder.
    app.get('/api/v1/swagger', (req, res, next) => {
      if (req.path.endsWith('/')) next();
      else res.redirect(301, 'swagger/index.html');
    });
    // The page before the static files: swagger-ui-dist ships its own index.html, which shows the Petstore.
    app.get(['/api/v1/swagger/', '/api/v1/swagger/index.html'], swaggerUi.setup(doc));
    app.use('/api/v1/swagger', swaggerUi.serve);
    const tokens = new ApiTokens(broker.config);
    app.use('/api/v1', (req: Request, res: Response, next: NextFunction) => {
      const verdict = tokens.check(req.socket.remoteAddress ?? '', req.get('x-token'));
      if (verdict.ok) return next();
      if (verdict.retryAfterMs === 0) return fail(res, 401, 'UNAUTHORIZED', 'a valid x-token header is required');
      res.set('retry-after', String(Math.ceil(verdict.retryAfterMs / 1000)));
      fail(res, 429, 'TOO_MANY_FAILURES', 'too many requests with a wrong token from this address: try again later');
    }, apiRouter(broker));
    app.use((_req: Request, res: Response) => fail(res, 404, 'NOT_FOUND', 'no such endpoint'));
    app.use((err: Error, _req: Request, res: Response, _next: NextFunction) => {
      broker.log.error({ err }, 'http request failed');
      fail(res, 500, 'INTERNAL', 'internal error');
    });
    this.server = createServer(app);
  }

  listen(): Promise<Bound> {
    const c = this.broker.config.http;
    return listenOn(this.server, c.host, c.port, 'http');
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
