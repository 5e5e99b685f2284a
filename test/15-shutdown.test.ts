/**
 * Graceful shutdown on SIGTERM (what Kubernetes sends before killing a pod) and SIGINT (Ctrl-C): MQTT 5
 * clients are told DISCONNECT 0x8B "Server shutting down", every connection is closed, no new connection is
 * accepted, and the process exits 0 well within the pod's grace period.
 */
import assert from 'node:assert/strict';
import { connect as netConnect } from 'node:net';
import { describe, test } from 'node:test';
import type { IConnectPacket, IDisconnectPacket, Packet } from 'mqtt-packet';
import { startBroker, type RunningBroker } from './helpers/broker.js';
import { RawClient } from './helpers/raw.js';

const AGAINST_MOSQUITTO = process.env['SMQ_TEST_AGAINST'] === 'mosquitto';
/** How long the process may take to exit after the signal. */
const EXIT_DEADLINE_MS = 5000;
/** Server shutting down. */
const RC_SERVER_SHUTTING_DOWN = 0x8b;

/** Resolves with the exit code, or rejects if the broker is still running after `ms`. */
async function exitWithin(broker: RunningBroker, signal: NodeJS.Signals, ms: number): Promise<number | null> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(`broker still running ${ms} ms after ${signal}`)), ms);
  });
  try {
    return await Promise.race([broker.stop(signal), timeout]);
  } finally {
    clearTimeout(t);
    if (broker.proc.exitCode === null && broker.proc.signalCode === null) broker.proc.kill('SIGKILL');
  }
}

/**
 * Tries a new MQTT connection: 'refused' when TCP is refused or the connection ends without an accepting
 * CONNACK, 'accepted' when the broker accepts it.
 */
async function tryConnect(port: number): Promise<'refused' | 'accepted'> {
  let client: RawClient;
  try {
    client = await RawClient.open(port, 5);
  } catch {
    return 'refused';
  }
  try {
    client.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: `late-${process.pid}`, clean: true, keepalive: 30 } as IConnectPacket);
    const p = await client.next(undefined, 3000);
    return p.cmd === 'connack' && (p.reasonCode ?? p.returnCode ?? 0) === 0 ? 'accepted' : 'refused';
  } catch {
    return 'refused';
  } finally {
    client.destroy();
  }
}

/** True if a TCP connection to the port is refused. */
function tcpRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect({ port, host: '127.0.0.1' }, () => { s.destroy(); resolve(false); });
    s.once('error', () => resolve(true));
  });
}

function disconnects(packets: Packet[]): IDisconnectPacket[] {
  return packets.filter((p): p is IDisconnectPacket => p.cmd === 'disconnect');
}

describe('shutdown', () => {
  test('SIGTERM: v5 clients get DISCONNECT 0x8B, all sockets close, new connections are refused, exit 0', async () => {
    const broker = await startBroker();
    try {
      const { client: v5, connack: ack5 } = await RawClient.connected(broker.port, 5, { clientId: `shut-v5-${process.pid}` });
      const { client: v4, connack: ack4 } = await RawClient.connected(broker.port, 4, { clientId: `shut-v4-${process.pid}` });
      assert.equal(ack5.reasonCode ?? 0, 0);
      assert.equal(ack4.returnCode, 0);
      // A subscription, so the shutdown has session state to deal with.
      v5.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'shutdown/#', qos: 1 }] });
      await v5.next('suback');

      const exit = exitWithin(broker, 'SIGTERM', EXIT_DEADLINE_MS);
      // Catch the rejection now; it is awaited below.
      exit.catch(() => undefined);

      const v5packets = await v5.expectClosed(EXIT_DEADLINE_MS);
      const d5 = disconnects(v5packets);
      // The spec lets a server close without a DISCONNECT (Mosquitto 2.0 does); smq promises 0x8B.
      if (!AGAINST_MOSQUITTO) assert.equal(d5.length, 1, `v5 client got ${JSON.stringify(v5packets)}`);
      for (const d of d5) assert.equal(d.reasonCode, RC_SERVER_SHUTTING_DOWN, `v5 client got ${JSON.stringify(v5packets)}`);

      // The broker is shutting down (it said so): a new connection must not be accepted.
      if (broker.proc.exitCode === null) assert.equal(await tryConnect(broker.port), 'refused', 'connection accepted during shutdown');

      const v4packets = await v4.expectClosed(EXIT_DEADLINE_MS);
      // MQTT 3.1.1 has no server-sent DISCONNECT; the connection is just closed.
      assert.deepEqual(disconnects(v4packets), [], `v4 client got ${JSON.stringify(v4packets)}`);

      assert.equal(await exit, 0);
      assert.equal(await tcpRefused(broker.port), true, 'the port still accepts connections after exit');
      assert.equal(v5.parseErrors.length + v4.parseErrors.length, 0);
    } finally {
      await broker.stop('SIGKILL');
    }
  });

  test('SIGINT on an idle broker exits 0', async () => {
    const broker = await startBroker();
    try {
      assert.equal(await exitWithin(broker, 'SIGINT', EXIT_DEADLINE_MS), 0);
      assert.equal(await tcpRefused(broker.port), true);
    } finally {
      await broker.stop('SIGKILL');
    }
  });

  test('SIGTERM with many clients still exits within the deadline', async () => {
    const broker = await startBroker();
    try {
      const conns = await Promise.all(Array.from({ length: 50 }, (_, i) =>
        RawClient.connected(broker.port, i % 2 === 0 ? 5 : 4, { clientId: `many-${i}-${process.pid}` })));
      const started = Date.now();
      assert.equal(await exitWithin(broker, 'SIGTERM', EXIT_DEADLINE_MS), 0);
      await Promise.all(conns.map(({ client }) => client.expectClosed(1000)));
      assert.ok(Date.now() - started < EXIT_DEADLINE_MS);
    } finally {
      await broker.stop('SIGKILL');
    }
  });
});
