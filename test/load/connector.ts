/**
 * Opens many MQTT connections from one forked process for test/99-connections.test.ts, at the byte level (no
 * MQTT library: a pre-encoded CONNECT, and a SUBSCRIBE when asked, per connection; replies are only counted),
 * so that the client side stays light and each process stays under its own file-descriptor limit.
 * Commands over IPC, one at a time:
 *   { cmd: 'open', port, count, concurrency, prefix, subscribe }  opens `count` connections (at most
 *     `concurrency` awaiting their CONNACK, and SUBACK with `subscribe`: one QoS 1 filter `dev/<id>/cmd` each)
 *     and keeps them open; answers { type: 'opened', ok, failed, errors, startedAt, lastAt, cpu }
 *     (startedAt/lastAt: epoch ms of the first connect and the last acknowledgement).
 *   { cmd: 'close' }  DISCONNECT and close every connection; answers { type: 'closed', seconds, dropped }
 *     (dropped: connections the broker closed before we asked).
 */
import { connect as netConnect, type Socket } from 'node:net';
import mqtt from 'mqtt-packet';

/** Loopback source addresses the connections rotate over (ephemeral ports per address). */
const SOURCES = Array.from({ length: 64 }, (_, i) => `127.0.0.${10 + i}`);
const DISCONNECT = mqtt.generate({ cmd: 'disconnect' });
const open = new Set<Socket>();
let dropped = 0;

interface OpenCommand { port: number; count: number; concurrency: number; prefix: string; subscribe: boolean }

function packets(prefix: string, i: number, subscribe: boolean): Buffer {
  const clientId = `${prefix}${i}`;
  const connect = mqtt.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 600, clientId });
  if (!subscribe) return connect;
  const sub = mqtt.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `dev/${clientId}/cmd`, qos: 1 }] });
  return Buffer.concat([connect, sub]);
}

function openAll({ port, count, concurrency, prefix, subscribe }: OpenCommand): Promise<Record<string, unknown>> {
  // CONNACK (4 bytes: 20 02 00 00), then with a subscription SUBACK (5 bytes: 90 03 00 01 01).
  const expected = subscribe ? 9 : 4;
  const encoded = Array.from({ length: count }, (_, i) => packets(prefix, i, subscribe));
  const readBuffer = Buffer.allocUnsafe(256);
  return new Promise((resolve) => {
    const errors: Record<string, number> = {};
    const cpu0 = process.cpuUsage();
    const t0 = Date.now();
    let tLast = t0;
    let started = 0;
    let outstanding = 0;
    let ok = 0;
    let failed = 0;
    let lastProgress = t0;
    const pending = new Set<Socket>();
    const watchdog = setInterval(() => {
      if (Date.now() - lastProgress < 30000) return;
      for (const s of pending) s.destroy(new Error('no acknowledgement within 30 s'));
    }, 1000);
    const settle = (s: Socket, reason: string | null): void => {
      pending.delete(s);
      outstanding--;
      lastProgress = Date.now();
      if (reason === null) {
        ok++;
        tLast = lastProgress;
        open.add(s);
      } else {
        failed++;
        errors[reason] = (errors[reason] ?? 0) + 1;
        s.destroy();
      }
      if (ok + failed === count) {
        clearInterval(watchdog);
        const c = process.cpuUsage(cpu0);
        resolve({ type: 'opened', ok, failed, errors, startedAt: t0, lastAt: tLast, cpu: (c.user + c.system) / 1e6 });
      } else {
        pump();
      }
    };
    const start = (i: number): void => {
      outstanding++;
      let got = 0;
      let state: 'waiting' | 'open' | 'done' = 'waiting';
      let error = '';
      const head = Buffer.alloc(expected);
      const s = netConnect({
        port, host: '127.0.0.1', localAddress: SOURCES[i % SOURCES.length],
        onread: {
          buffer: readBuffer,
          callback: (n: number, buf: Uint8Array): boolean => {
            if (state !== 'waiting') return true;
            const take = Math.min(n, expected - got);
            head.set(buf.subarray(0, take), got);
            got += take;
            if (got < expected) return true;
            state = 'open';
            const good = head[0] === 0x20 && head[3] === 0 && (!subscribe || (head[4] === 0x90 && head[8] === 1));
            settle(s, good ? null : `unexpected reply ${head.toString('hex')}`);
            return true;
          },
        },
      });
      pending.add(s);
      s.on('error', (e: NodeJS.ErrnoException) => { error = e.code ?? e.message; });
      s.on('close', () => {
        if (state === 'waiting') {
          state = 'done';
          settle(s, error || 'closed before the acknowledgement');
        } else if (open.delete(s)) {
          dropped++;
        }
      });
      s.write(encoded[i]!);
    };
    const pump = (): void => {
      while (outstanding < concurrency && started < count) start(started++);
    };
    pump();
  });
}

function closeAll(): Promise<Record<string, unknown>> {
  const t0 = Date.now();
  const sockets = [...open];
  open.clear();
  return new Promise((resolve) => {
    let left = sockets.length;
    const done = (): void => {
      if (--left === 0) resolve({ type: 'closed', seconds: (Date.now() - t0) / 1000, dropped });
    };
    if (left === 0) return resolve({ type: 'closed', seconds: 0, dropped });
    for (const s of sockets) {
      if (s.destroyed) {
        done();
        continue;
      }
      s.once('close', done);
      s.end(DISCONNECT);
      setTimeout(() => s.destroy(), 5000).unref();
    }
  });
}

process.on('message', (msg: { cmd: string } & OpenCommand) => {
  const run = msg.cmd === 'open' ? openAll(msg) : msg.cmd === 'close' ? closeAll() : Promise.reject(new Error(`unknown command ${msg.cmd}`));
  run.then((reply) => process.send!(reply), (e: Error) => process.send!({ type: 'error', message: e.stack ?? String(e) }));
});
process.on('disconnect', () => process.exit(0));
process.send!({ type: 'ready' });
