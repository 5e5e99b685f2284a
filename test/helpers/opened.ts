import type { IClientOptions, MqttClient } from 'mqtt';
import { strictConnect } from './strict/tap.js';

/** A connected MQTT.js client (v5): its CONNACK's session-present flag, the payloads it got in order, a wait. */
export interface Opened {
  readonly c: MqttClient;
  readonly present: boolean;
  readonly got: string[];
  /** Resolves when `payload` arrives (or has), rejects naming `what` after 30 s. */
  receives(payload: string, what: string): Promise<void>;
}

/**
 * Connects a v5 client (no reconnects) to `port` and resolves once its CONNACK is in; the client goes into
 * `clients` so that the test's `after` can end it.
 */
export function openClient(port: number, options: IClientOptions, clients: Set<MqttClient>): Promise<Opened> {
  const c = strictConnect(`mqtt://127.0.0.1:${port}`, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 60_000, ...options });
  clients.add(c);
  const got: string[] = [];
  const waiting = new Map<string, () => void>();
  c.on('message', (_t, payload) => {
    const p = payload.toString();
    got.push(p);
    waiting.get(p)?.();
  });
  const receives = (payload: string, what: string): Promise<void> => {
    if (got.includes(payload)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${what}: ${payload} not received; got ${JSON.stringify(got)}`)), 30_000);
      waiting.set(payload, () => { clearTimeout(timer); resolve(); });
    });
  };
  return new Promise<Opened>((resolve, reject) => {
    c.once('connect', (connack) => resolve({ c, present: connack.sessionPresent, got, receives }));
    c.once('error', reject);
  });
}
