/**
 * Operational errors with a stable `code`, so that callers and logs can tell them apart without parsing
 * messages (the habit of undici and fastify).
 */
export class SmqError extends Error {
  /** Stable, machine-readable identifier, e.g. `ERR_CONFIG`. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}
