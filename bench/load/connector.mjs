// Connection load generator, run as a forked child (IPC) so its CPU is its own and can be reported apart
// from the broker's. Commands (one at a time):
//   { cmd: 'open', host, port, count, concurrency, ca?, prefix }
//       opens `count` MQTT connections (TLS when `ca` is a CA file), at most `concurrency` awaiting CONNACK,
//       replies { type: 'opened', ok, failed, errors, seconds, rate, cpu, startedAt, lastAt } and keeps them
//       open and idle (startedAt/lastAt: epoch ms of the first connect and the last CONNACK, so a parent can
//       merge the windows of several connector processes).
//   { cmd: 'close' }  closes every open connection, replies { type: 'closed', seconds, dropped }.
//   { cmd: 'cycle', host, port, ca?, loops, warmup, duration, prefix }
//       `loops` concurrent loops of connect + (TLS handshake) + CONNECT/CONNACK + close, replies
//       { type: 'cycled', handshakes, seconds, rate, failed, errors, reused, cpu } for the window after warm-up.
// The fd limit (20,000 soft = hard) is not raised: keep `count` under ~19,000 per process.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { connectTemplate, DISCONNECT, SOURCE_ADDRESSES } from './frames.mjs';

const open = new Set();
let dropped = 0; // idle connections the broker closed before we asked

// Seconds on a clock shared by all processes (epoch based), so windows of several connectors can be merged.
const now = () => (performance.timeOrigin + performance.now()) / 1000;

// CPU seconds this process used since `since` (a process.cpuUsage() value), per wall second.
const cpuShare = (since, wallSeconds) => {
  const c = process.cpuUsage(since);
  return (c.user + c.system) / 1e6 / wallSeconds;
};

function dial(host, port, i, secureContext) {
  const localAddress = SOURCE_ADDRESSES[i % SOURCE_ADDRESSES.length];
  // A shared SecureContext only holds the CA; without a `session` option Node never resumes, so each
  // connection is a full handshake (checked with isSessionReused()).
  if (!secureContext) return net.connect({ host, port, localAddress });
  // The chain is verified against the CA (rejectUnauthorized); the name check is skipped because Node does
  // it in JavaScript on a decoded copy of the certificate (getPeerCertificate), 13 % of this process's CPU,
  // and the address it would check is the one we dialled.
  const s = tls.connect({ host, port, localAddress, secureContext, checkServerIdentity: () => undefined });
  // The CONNECT is a second write right after the client's Finished; without NODELAY it could wait for an
  // ACK. (Mosquitto and Aedes keep Nagle on: under TLS 1.3 their CONNACK waits behind the unacknowledged
  // session tickets for our delayed ACK, ~40 ms. That is their stock behaviour and stays in the figure.)
  s.setNoDelay(true);
  return s;
}

// Calls done(null) at a CONNACK with return code 0, done(reason) on anything else; exactly once.
function awaitConnack(socket, done) {
  let settled = false;
  let head = null;
  const settle = (reason) => {
    if (settled) return;
    settled = true;
    done(reason);
  };
  socket.on('error', (err) => settle(err.code || err.message));
  socket.on('close', () => settle('closed before CONNACK'));
  socket.on('data', function first(chunk) {
    head = head ? Buffer.concat([head, chunk]) : chunk;
    if (head.length < 4) return;
    socket.off('data', first);
    if (head[0] === 0x20 && head[3] === 0) settle(null);
    else settle(`CONNACK ${head[0].toString(16)} code ${head[3]}`);
  });
}

const countError = (errors, reason) => { errors[reason] = (errors[reason] || 0) + 1; };

function openAll({ host, port, count, concurrency, ca, prefix }) {
  const secureContext = ca ? tls.createSecureContext({ ca: readFileSync(ca) }) : null;
  const template = connectTemplate(prefix, 6);
  // Encoded before the clock starts so the connect loop only dials and writes.
  const packets = Array.from({ length: count }, (_, i) => template.withNumber(i));
  return new Promise((resolve) => {
    const errors = {};
    let started = 0;
    let ok = 0;
    let failed = 0;
    let outstanding = 0;
    let lastProgress = now();
    const t0 = now();
    const cpu0 = process.cpuUsage();
    let tLast = t0;
    const pending = new Set();
    // A broker that stops answering must not hang the run: give up after 30 s without any CONNACK or error.
    const watchdog = setInterval(() => {
      if (now() - lastProgress < 30) return;
      for (const s of pending) s.destroy(new Error('no CONNACK within 30 s'));
    }, 1000);
    const finish = () => {
      clearInterval(watchdog);
      const seconds = tLast - t0;
      resolve({
        type: 'opened', ok, failed, errors, seconds, rate: ok / seconds, cpu: cpuShare(cpu0, seconds),
        startedAt: t0 * 1000, lastAt: tLast * 1000,
      });
    };
    // One read buffer for every plain socket (onread): no Buffer and no stream 'data' event per read. The
    // rest (about 40 us user + 35 us system per connection, most of it socket set-up and the kernel's
    // loopback handshake) is Node's floor, so the scenario spreads connections over two connectors.
    const readBuffer = Buffer.allocUnsafe(64);
    const settle = (s, reason) => {
      pending.delete(s);
      outstanding--;
      lastProgress = now();
      if (reason === null) {
        ok++;
        tLast = lastProgress;
        open.add(s);
      } else {
        failed++;
        countError(errors, reason);
        s.destroy();
      }
      if (ok + failed === count) finish();
      else pump();
    };
    const start = (i) => {
      outstanding++;
      let state = 0; // 0 awaiting CONNACK, 1 open
      let error = null;
      const onConnack = (reason) => {
        if (state !== 0) return;
        state = 1;
        settle(s, reason);
      };
      const s = secureContext
        ? dial(host, port, i, secureContext)
        : net.connect({
          host, port, localAddress: SOURCE_ADDRESSES[i % SOURCE_ADDRESSES.length],
          onread: {
            buffer: readBuffer,
            callback: (n, buf) => {
              // A CONNACK is 4 bytes and comes alone in practice; anything else is a failure.
              if (state === 0) onConnack(n >= 4 && buf[0] === 0x20 && buf[3] === 0 ? null : `CONNACK ${buf[0]} code ${buf[3]}`);
            },
          },
        });
      pending.add(s);
      if (secureContext) awaitConnack(s, onConnack);
      s.on('error', (err) => { error = err.code || err.message; });
      s.on('close', () => {
        if (state === 0) onConnack(error || 'closed before CONNACK');
        else if (open.delete(s)) dropped++;
      });
      s.write(packets[i]);
    };
    const pump = () => { while (outstanding < concurrency && started < count) start(started++); };
    pump();
  });
}

function closeAll() {
  const t0 = now();
  const sockets = [...open];
  open.clear();
  return new Promise((resolve) => {
    let left = sockets.length;
    const done = () => { if (--left === 0) resolve({ type: 'closed', seconds: now() - t0, dropped }); };
    if (left === 0) return resolve({ type: 'closed', seconds: 0, dropped });
    for (const s of sockets) {
      if (s.destroyed) { done(); continue; }
      s.once('close', done);
      s.end(DISCONNECT);
      setTimeout(() => s.destroy(), 5000).unref();
    }
  });
}

function cycle({ host, port, ca, loops, warmup, duration, prefix }) {
  const secureContext = ca ? tls.createSecureContext({ ca: readFileSync(ca) }) : null;
  const template = connectTemplate(prefix, 8);
  const errors = {};
  const live = new Set();
  let serial = 0;
  let counting = false;
  let stopping = false;
  let handshakes = 0;
  let failed = 0;
  let reused = 0;
  let cpu0;
  let w0;
  let result;
  return new Promise((resolve) => {
    let running = loops;
    const loopEnded = () => {
      if (--running > 0) return;
      // Every loop has stopped: wait for the sockets still closing, then report.
      const left = [...live];
      if (left.length === 0) return resolve(result);
      let n = left.length;
      for (const s of left) {
        s.once('close', () => { if (--n === 0) resolve(result); });
        s.destroy();
      }
    };
    const next = (k) => {
      if (stopping) return loopEnded();
      const i = serial++;
      const s = dial(host, port, i, secureContext);
      live.add(s);
      s.once('close', () => live.delete(s));
      awaitConnack(s, (reason) => {
        if (reason === null) {
          if (counting) {
            handshakes++;
            if (secureContext && s.isSessionReused()) reused++;
          }
          // DISCONNECT then FIN: the broker closes its side; the loop does not wait for that.
          s.end(DISCONNECT);
          next(k);
        } else {
          if (counting) failed++;
          countError(errors, reason);
          s.destroy();
          // Back off briefly so a refusing broker does not turn this into a busy loop.
          setTimeout(() => next(k), 10);
        }
      });
      s.write(template.withNumber(i));
    };
    setTimeout(() => {
      counting = true;
      cpu0 = process.cpuUsage();
      w0 = now();
    }, warmup * 1000);
    setTimeout(() => {
      counting = false;
      stopping = true;
      const seconds = now() - w0;
      result = { type: 'cycled', handshakes, seconds, rate: handshakes / seconds, failed, errors, reused, cpu: cpuShare(cpu0, seconds) };
      // Connections still waiting for a broker that stopped answering are cut after 5 s.
      setTimeout(() => { for (const s of live) s.destroy(); }, 5000).unref();
    }, (warmup + duration) * 1000);
    for (let k = 0; k < loops; k++) next(k);
  });
}

const commands = { open: openAll, close: closeAll, cycle };

process.on('message', async (msg) => {
  try {
    process.send(await commands[msg.cmd](msg));
  } catch (err) {
    process.send({ type: 'error', message: err.stack || String(err) });
  }
});
process.on('disconnect', () => process.exit(0));
process.send({ type: 'ready' });
