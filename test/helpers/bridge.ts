/**
 * What the Kafka bridge tests (80-82) share: the broker's HTTP service (mappings as the seed adds them,
 * /healthz, /metrics) and reading records back from Kafka with a kafkajs consumer.
 */
import assert from 'node:assert/strict';
import { Kafka, logLevel } from 'kafkajs';
import type { IPublishPacket, MqttClient } from 'mqtt';

/** The API token the bridge tests configure (`http.tokens`). */
export const TOKEN = 'bridge-token';

/** `http` settings for a broker whose HTTP service the test reads (port 0, learned from the ready line). */
export const HTTP_CONFIG = { enable: true, host: '127.0.0.1', port: 0, tokens: [TOKEN] };

/** `http://127.0.0.1:<port>` of a broker's HTTP service, from its 'broker ready' log line. */
export { httpBase } from './broker.js';

/**
 * Adds a mapping exactly as the seed's curl does: `curl -X POST .../api/v1/bridge/ -H 'accept: application/json'
 * -H 'x-token: ...' -d '{"topic": ..., "queue": ...}'` (curl -d sends a form content type, not JSON).
 */
export async function postMapping(base: string, topic: string, queue: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${base}/api/v1/bridge/`, {
    method: 'POST',
    headers: { 'accept': 'application/json', 'x-token': TOKEN, 'content-type': 'application/x-www-form-urlencoded' },
    body: JSON.stringify({ topic, queue }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** {@link postMapping}, asserting the mapping was created. */
export async function addMapping(base: string, topic: string, queue: string): Promise<string> {
  const { status, body } = await postMapping(base, topic, queue);
  assert.equal(status, 201, `POST /api/v1/bridge/ ${topic} -> ${queue}: ${status} ${JSON.stringify(body)}`);
  return String(body['id']);
}

/** The bridge part of /healthz. */
export interface BridgeHealth {
  state: string;
  buffered: number;
}

export async function bridgeHealth(base: string): Promise<BridgeHealth> {
  const res = await fetch(`${base}/healthz`);
  assert.equal(res.status, 200);
  const body = (await res.json()) as { status: string; bridge?: BridgeHealth };
  assert.ok(body.bridge, `/healthz reports the bridge: ${JSON.stringify(body)}`);
  return body.bridge;
}

/** /metrics as text. */
export async function metricsText(base: string): Promise<string> {
  const res = await fetch(`${base}/metrics`);
  assert.equal(res.status, 200);
  return res.text();
}

/**
 * The value of one sample in Prometheus text, or undefined when there is none. `labels` must be written as the
 * broker writes them (prom-client: in the order given to it, e.g. `topic="a",queue="b"`).
 */
export function sample(text: string, name: string, labels = ''): number | undefined {
  const head = labels === '' ? `${name} ` : `${name}{${labels}} `;
  const line = text.split('\n').find((l) => l.startsWith(head));
  return line === undefined ? undefined : Number(line.slice(head.length));
}

/** Labels of a mapping's metrics. */
export function mappingLabels(topic: string, queue: string): string {
  return `topic="${topic}",queue="${queue}"`;
}

/** Asks until `cond` holds, every 50 ms, failing after `timeoutMs` with `what` and the last answer. */
export async function pollUntil<T>(ask: () => Promise<T>, cond: (v: T) => boolean, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await ask();
    if (cond(v)) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms; last: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A record read back from Kafka, with key and headers as strings. */
export interface KafkaRecord {
  topic: string;
  partition: number;
  offset: number;
  key: string | null;
  value: Buffer;
  headers: Record<string, string | string[]>;
}

let groups = 0;

/**
 * Reads `topics` from the beginning with a fresh consumer group until `done(records)` holds (records in the
 * order they arrived: per partition, Kafka's order), then leaves the group. Fails after `timeoutMs` with what
 * it had read.
 */
export async function readRecords(
  brokers: string[],
  topics: string[],
  done: (records: KafkaRecord[]) => boolean,
  timeoutMs = 20_000,
): Promise<KafkaRecord[]> {
  const kafka = new Kafka({ clientId: 'smq-test-reader', brokers, logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({
    groupId: `smq-test-${process.pid}-${++groups}-${Date.now()}`,
    maxWaitTimeInMs: 100,
    retry: { retries: 10, initialRetryTime: 100, maxRetryTime: 1000 },
  });
  const records: KafkaRecord[] = [];
  await consumer.connect();
  try {
    for (const topic of topics) await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`Kafka ${topics.join(', ')}: not read within ${timeoutMs} ms; read ${records.length}: ` +
          JSON.stringify(records.slice(-10).map((r) => ({ key: r.key, value: r.value.toString(), headers: r.headers })))));
      }, timeoutMs);
      const check = (): void => {
        if (done(records)) {
          clearTimeout(timer);
          resolve();
        }
      };
      check();
      consumer.run({
        eachMessage: async ({ topic, partition, message }) => {
          const headers: Record<string, string | string[]> = {};
          for (const [k, v] of Object.entries(message.headers ?? {})) {
            if (v === undefined) continue;
            headers[k] = Array.isArray(v) ? v.map((x) => x.toString()) : v.toString();
          }
          records.push({
            topic, partition, offset: Number(message.offset),
            key: message.key === null ? null : message.key.toString(),
            value: message.value ?? Buffer.alloc(0),
            headers,
          });
          check();
        },
      }).catch((err: unknown) => {
        clearTimeout(timer);
        reject(err as Error);
      });
    });
  } finally {
    await consumer.disconnect();
  }
  return records;
}

/** What an MQTT client receives, with a wait for the n-th message. */
export interface Inbox {
  readonly got: IPublishPacket[];
  /** Resolves once at least `n` messages are in (fails after `timeoutMs`). */
  until(n: number, timeoutMs?: number): Promise<void>;
}

/** Starts collecting what `c` receives. */
export function inbox(c: MqttClient): Inbox {
  const got: IPublishPacket[] = [];
  const waiters = new Set<{ n: number; resolve: () => void }>();
  c.on('message', (_topic, _payload, packet) => {
    got.push(packet);
    for (const w of waiters) {
      if (got.length >= w.n) {
        waiters.delete(w);
        w.resolve();
      }
    }
  });
  return {
    got,
    until(n, timeoutMs = 10_000) {
      if (got.length >= n) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(w);
          reject(new Error(`${n} messages not received within ${timeoutMs} ms; got ${got.length}`));
        }, timeoutMs);
        const w = { n, resolve: () => { clearTimeout(timer); resolve(); } };
        waiters.add(w);
      });
    },
  };
}
