// Minimal MQTT 3.1.1 client pieces for the connection and backlog scenarios. Packets are encoded once with
// mqtt-packet before a measurement; on the measured path bytes are only framed (fixed header + remaining
// length) and counted, so the client costs far less CPU than the broker it drives.
import net from 'node:net';
import tls from 'node:tls';
import mqtt from 'mqtt-packet';

export const CONNACK = 2;
export const PUBLISH = 3;
export const PUBACK = 4;
export const SUBACK = 9;

export const DISCONNECT = mqtt.generate({ cmd: 'disconnect' });

// Loopback source addresses the clients rotate over: one address has ~28k ephemeral ports per broker port,
// and the TLS loop leaves closed connections in TIME_WAIT, so spreading them keeps clear of exhaustion.
// 64 addresses: after a few rounds of 15,000 connections, ports in TIME_WAIT pile up, and binding a source port
// on an address with many of them makes the kernel search (a connector at 93 % CPU for 800 connections/s).
export const SOURCE_ADDRESSES = Array.from({ length: 64 }, (_, i) => `127.0.0.${10 + i}`);

// A CONNECT whose client id ends in `digits` fixed-width decimal places, so a unique id per connection is a
// copy plus a few byte stores instead of an encode. The client id is the last field of a CONNECT without
// will, username or password.
export function connectTemplate(prefix, digits, { clean = true, keepalive = 600 } = {}) {
  const clientId = prefix + '0'.repeat(digits);
  const packet = mqtt.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean, keepalive, clientId });
  return {
    packet,
    // Returns a new buffer with `n` written into the id's digits.
    withNumber(n) {
      const out = Buffer.from(packet);
      let i = out.length - 1;
      for (let d = 0; d < digits; d++, i--) {
        out[i] = 48 + (n % 10);
        n = Math.floor(n / 10);
      }
      return out;
    },
  };
}

// Frames a byte stream into MQTT packets and calls onPacket(type, flags, buf, start, end) for each, where
// buf[start..end) is the variable header + payload. A packet split across reads is carried over.
export function scanner(onPacket) {
  let rest = null;
  return function feed(chunk) {
    const buf = rest ? Buffer.concat([rest, chunk]) : chunk;
    rest = null;
    const n = buf.length;
    let i = 0;
    while (i < n) {
      let j = i + 1;
      let len = 0;
      let mul = 1;
      let b = 128;
      while (b & 128) {
        if (j >= n) break;
        if (mul > 2097152) throw new Error('malformed remaining length');
        b = buf[j++];
        len += (b & 127) * mul;
        mul *= 128;
      }
      if (b & 128 || j + len > n) break;
      onPacket(buf[i] >> 4, buf[i] & 15, buf, j, j + len);
      i = j + len;
    }
    if (i < n) rest = buf.subarray(i);
  };
}

// PUBACKs for a batch of packet ids in one buffer: acknowledgements go out once per read, not per message.
export function pubacks(ids, count) {
  const out = Buffer.allocUnsafe(count * 4);
  for (let k = 0; k < count; k++) {
    out[k * 4] = 0x40;
    out[k * 4 + 1] = 2;
    out[k * 4 + 2] = ids[k] >> 8;
    out[k * 4 + 3] = ids[k] & 255;
  }
  return out;
}

// Opens a socket (TLS when `secureContext` is given) and resolves once it is connected.
export function openSocket({ host, port, localAddress, secureContext }) {
  return new Promise((resolve, reject) => {
    const s = secureContext
      ? tls.connect({ host, port, localAddress, secureContext }, () => done())
      : net.connect({ host, port, localAddress }, () => done());
    const done = () => { s.off('error', reject); s.setNoDelay(true); resolve(s); };
    s.once('error', reject);
  });
}

// A connected MQTT client for the backlog scenarios: sends `connect`, resolves at CONNACK with
// { socket, sessionPresent, send(buf), close() }; every later packet goes to onPacket (see scanner), and after
// each read afterRead(socket) runs so the caller can write its batched acknowledgements.
export async function mqttClient({ host, port, connect, onPacket, afterRead = () => {} }) {
  const socket = await openSocket({ host, port });
  return new Promise((resolve, reject) => {
    let connected = false;
    const client = {
      socket,
      sessionPresent: false,
      send: (buf) => socket.write(buf),
      close: () => new Promise((r) => {
        if (socket.destroyed) return r();
        socket.once('close', r);
        socket.end(DISCONNECT);
        setTimeout(() => socket.destroy(), 2000).unref();
      }),
    };
    const feed = scanner((type, flags, buf, start, end) => {
      if (connected) return onPacket(type, flags, buf, start, end);
      if (type !== CONNACK || buf[start + 1] !== 0) {
        reject(new Error(`connect refused: packet type ${type} return code ${buf[start + 1]}`));
        socket.destroy();
        return;
      }
      connected = true;
      client.sessionPresent = (buf[start] & 1) === 1;
      resolve(client);
    });
    socket.on('data', (chunk) => { feed(chunk); if (connected) afterRead(socket); });
    socket.on('error', (err) => { if (!connected) reject(err); });
    socket.on('close', () => { if (!connected) reject(new Error('closed before CONNACK')); });
    socket.write(connect);
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
