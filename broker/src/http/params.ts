import type { NextFunction, Request, Response, Router } from 'express';
import { LIMIT_MAX, PAGE_MAX } from './openapi-common.js';
import { fail } from './server.js';

/**
 * A request the API refuses, with the HTTP status and a stable `code` (listed in the OpenAPI document). Route
 * handlers throw it; {@link apiErrors} answers it as `{code, message}`.
 */
export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
    this.name = 'ApiError';
  }
}

type Query = Request['query'];

/**
 * An integer query parameter from `min` to `max`, or `fallback` when absent. Anything else (not a whole number,
 * out of range, given twice) is refused with 400 BAD_PARAMETER: a silently clamped value would answer a
 * different question than the one asked.
 */
export function intParam(q: Query, name: string, min: number, max: number, fallback: number): number {
  const v = q[name];
  if (v === undefined) return fallback;
  const n = typeof v === 'string' && /^[+-]?\d{1,16}$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new ApiError(400, 'BAD_PARAMETER', `${name} must be an integer from ${min} to ${max}`);
  }
  return n;
}

/** `page` (from 1) and `limit` (1 to 1000, default 100) of a paged list (openapi-common.ts documents them). */
export function paging(q: Query): { page: number; limit: number } {
  return { page: intParam(q, 'page', 1, PAGE_MAX, 1), limit: intParam(q, 'limit', 1, LIMIT_MAX, 100) };
}

/** A string query parameter given at most once; undefined when absent, 400 BAD_PARAMETER when repeated or nested. */
export function textParam(q: Query, name: string): string | undefined {
  const v = q[name];
  if (v === undefined || typeof v === 'string') return v;
  throw new ApiError(400, 'BAD_PARAMETER', `${name} must be given once, as a plain string`);
}

/** What express and its JSON parser attach to the errors they raise for a bad request. */
interface HttpishError {
  status?: number;
  type?: string;
  /** entity.too.large: the limit, in bytes. */
  limit?: number;
}

/**
 * The API's error handler: an {@link ApiError} is answered as it says; the JSON body parser's refusals and a
 * path that is not valid percent-encoding are the caller's mistakes (4xx with a stable code), never a 500.
 * Anything else goes on to the server's handler (500 INTERNAL, logged).
 */
export function apiErrors(err: unknown, _req: Request, res: Response, next: NextFunction): void {
  if (err instanceof ApiError) {
    fail(res, err.status, err.code, err.message);
    return;
  }
  const e = (typeof err === 'object' && err !== null ? err : {}) as HttpishError;
  switch (e.type) {
    case 'entity.parse.failed':
      fail(res, 400, 'BAD_JSON', 'the body is not valid JSON (an object is expected)');
      return;
    case 'entity.too.large':
      fail(res, 413, 'BODY_TOO_LARGE', `the body is larger than ${e.limit ?? 'allowed'} bytes`);
      return;
    case 'charset.unsupported':
    case 'encoding.unsupported':
      fail(res, 415, 'UNSUPPORTED_MEDIA_TYPE', 'the body must be JSON in UTF-8, optionally gzip or deflate compressed');
      return;
  }
  // express's router: a path parameter that is not valid percent-encoding ("Failed to decode param").
  if (err instanceof URIError || (e.status === 400 && err instanceof Error && /decode param/.test(err.message))) {
    fail(res, 400, 'BAD_PATH', 'the path is not valid percent-encoding');
    return;
  }
  if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
    fail(res, e.status, 'BAD_REQUEST', err instanceof Error ? err.message : 'bad request');
    return;
  }
  next(err);
}

/** What this module reads of an express router's stack (express 4). */
interface Layer {
  route?: { path: string | string[]; methods: Record<string, boolean> };
  handle: { stack?: Layer[] };
  regexp: { fast_slash?: boolean };
}

/**
 * Called after every route of `r` is in place: any other method on one of its paths, and on the paths of the
 * routers mounted on it without a prefix, gets 405 with the path's methods in `Allow` (RFC 9110 section
 * 15.5.6); OPTIONS gets them with 204. Without it such a request fell through to 404 "no such endpoint".
 */
export function refuseOtherMethods(r: Router): void {
  const byPath = new Map<string, Set<string>>();
  const collect = (stack: Layer[]): void => {
    for (const layer of stack) {
      if (layer.route !== undefined) {
        for (const path of ([] as string[]).concat(layer.route.path)) {
          const methods = byPath.get(path) ?? new Set<string>();
          for (const m of Object.keys(layer.route.methods)) if (m !== '_all') methods.add(m.toUpperCase());
          byPath.set(path, methods);
        }
      } else if (layer.regexp.fast_slash === true && layer.handle.stack !== undefined) {
        collect(layer.handle.stack);
      }
    }
  };
  collect((r as unknown as { stack: Layer[] }).stack);
  for (const [path, methods] of byPath) {
    // express answers HEAD with the GET handler.
    if (methods.has('GET')) methods.add('HEAD');
    const allow = [...methods].join(', ');
    r.all(path, (req: Request, res: Response) => {
      res.set('Allow', allow);
      if (req.method === 'OPTIONS') res.status(204).end();
      else fail(res, 405, 'METHOD_NOT_ALLOWED', `${req.method} is not allowed here; allowed: ${allow}`);
    });
  }
}
