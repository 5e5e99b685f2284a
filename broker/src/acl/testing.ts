/**
 * Test support for the ACL unit tests (not used by the broker): a pino logger whose records are kept and can
 * be waited for, and plain ClientInfo values.
 */
import { pino, type Logger } from 'pino';
import type { ClientInfo } from '../hooks/types.js';

/** A logger that keeps every record it writes. */
export interface CapturedLog {
  readonly log: Logger;
  readonly records: Record<string, unknown>[];
  /** Resolves with the first record (already written or still to come) carrying `msg`; rejects after `timeoutMs`. */
  waitFor(msg: string, timeoutMs?: number, from?: number): Promise<Record<string, unknown>>;
  /** Records carrying `msg`. */
  having(msg: string): Record<string, unknown>[];
}

/** A debug-level logger whose records are captured in memory. */
export function captureLog(): CapturedLog {
  const records: Record<string, unknown>[] = [];
  const waiters = new Set<(r: Record<string, unknown>) => void>();
  const log = pino({ level: 'debug' }, {
    write(line: string): void {
      const rec = JSON.parse(line) as Record<string, unknown>;
      records.push(rec);
      for (const w of [...waiters]) w(rec);
    },
  });
  return {
    log,
    records,
    having: (msg) => records.filter((r) => r['msg'] === msg),
    waitFor(msg, timeoutMs = 5000, from = 0) {
      const seen = records.slice(from).find((r) => r['msg'] === msg);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const w = (r: Record<string, unknown>): void => {
          if (r['msg'] !== msg) return;
          clearTimeout(t);
          waiters.delete(w);
          resolve(r);
        };
        const t = setTimeout(() => {
          waiters.delete(w);
          reject(new Error(`no "${msg}" log record within ${timeoutMs} ms; last: ${JSON.stringify(records.slice(-3))}`));
        }, timeoutMs);
        waiters.add(w);
      });
    },
  };
}

/** A connected client as hooks see it; fields override the defaults. */
export function clientInfo(over: Partial<ClientInfo> = {}): ClientInfo {
  return {
    clientId: 'c1',
    username: 'alice',
    remoteAddress: '127.0.0.1',
    transport: 'tcp',
    protocolVersion: 5,
    certificate: undefined,
    ...over,
  };
}
