/**
 * 33: limits. Each limit is hit by one client while a second client's traffic goes on unharmed (the
 * Bystander publishes and receives at QoS 1 after every hit). Run for MQTT 3.1.1 and 5.0.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import type mqtt from 'mqtt-packet';
import { startBroker, type RunningBroker } from './helpers/broker.js';
import { Bystander, ClientPool, connackCode, pid, subscribe, uid, VERSIONS, type Version } from './helpers/c1.js';
import { RawClient } from './helpers/raw.js';

/** v3.1.1 has no quota codes: a refused CONNECT gets 3 (server unavailable) or 5 (not authorized). */
const SERVER_UNAVAILABLE_V4 = 3;
const NOT_AUTHORIZED_V4 = 5;

async function connectFrom(port: number, version: Version, localAddress: string, clientId = uid('lim')): Promise<{ client: RawClient; code: number }> {
  const { client, connack } = await RawClient.connected(port, version, { clientId }, localAddress);
  return { client, code: connackCode(connack) };
}

for (const version of VERSIONS) {
  describe(`[v${version}] limits`, () => {
    const pool = new ClientPool();
    afterEach(() => pool.closeAll());

    describe('connections', () => {
      // One broker per limit, so that one test's connections cannot count against another's.
      let broker: RunningBroker;
      const withLimits = async (limits: Record<string, number>): Promise<RunningBroker> => {
        broker = await startBroker({ config: { limits } });
        return broker;
      };
      afterEach(async () => { await broker.stop(); });

      test('per-address connections: the third from one address is refused, another address is not', async () => {
        await withLimits({ max_connections_per_address: 2 });
        const bystander = await Bystander.start(pool, broker.port, version);
        const a1 = await connectFrom(broker.port, version, '127.0.0.2');
        const a2 = await connectFrom(broker.port, version, '127.0.0.2');
        pool.add(a1.client);
        pool.add(a2.client);
        assert.deepEqual([a1.code, a2.code], [0, 0]);
        const a3 = await connectFrom(broker.port, version, '127.0.0.2');
        pool.add(a3.client);
        assert.equal(a3.code, version === 5 ? 0x97 : SERVER_UNAVAILABLE_V4, 'quota exceeded');
        await a3.client.expectClosed();
        await bystander.assertWorks();
      });

      test('total connections: past max_connections new clients are refused, open ones keep working', async () => {
        await withLimits({ max_connections: 4 });
        const bystander = await Bystander.start(pool, broker.port, version);
        const opened: RawClient[] = [];
        let refused: number | undefined;
        // The bystander holds one slot; fill the rest.
        for (let i = 0; i < 6 && refused === undefined; i++) {
          const c = await connectFrom(broker.port, version, `127.0.1.${i + 1}`);
          pool.add(c.client);
          if (c.code === 0) opened.push(c.client);
          else refused = c.code;
        }
        assert.equal(opened.length, 3, 'four connections in all are admitted');
        assert.equal(refused, version === 5 ? 0x97 : SERVER_UNAVAILABLE_V4);
        await bystander.assertWorks();
      });

      test('connection rate: a burst above the per-address rate is refused, another address is not', async () => {
        await withLimits({ connection_rate: 3 });
        const bystander = await Bystander.start(pool, broker.port, version);
        const codes: number[] = [];
        for (let i = 0; i < 5; i++) {
          const c = await connectFrom(broker.port, version, '127.0.2.1');
          codes.push(c.code);
          c.client.destroy();
          await c.client.closed;
        }
        assert.ok(codes.slice(0, 3).every((c) => c === 0), `the first three pass: ${codes}`);
        assert.equal(codes[codes.length - 1], version === 5 ? 0x9f : SERVER_UNAVAILABLE_V4, `then refused: ${codes}`);
        const other = await connectFrom(broker.port, version, '127.0.2.2');
        pool.add(other.client);
        assert.equal(other.code, 0);
        await bystander.assertWorks();
      });

      test('a flood of refused sockets is closed at once past a few, instead of being held to the connect timeout', async () => {
        // A connect timeout far longer than the wait below: closing them at its end would not pass.
        broker = await startBroker({ config: { limits: { max_connections_per_address: 2 }, mqtt: { connect_timeout: 120 } } });
        const bystander = await Bystander.start(pool, broker.port, version);
        // 300 sockets from one address that never send CONNECT: two are admitted, a few refused ones are kept to
        // be told why, the rest must be closed by the broker now (not after mqtt.connect_timeout).
        const sockets = await Promise.all(Array.from({ length: 300 }, () => RawClient.open(broker.port, version, '127.0.0.1', '127.0.4.1')));
        for (const s of sockets) pool.add(s);
        // Two admitted and at most eight refused-but-explained stay open; all others are closed by the broker.
        const expected = sockets.length - 2 - 8;
        let closed = 0;
        await new Promise<void>((resolve, reject) => {
          const late = setTimeout(() => reject(new Error(`only ${closed} of ${expected} refused sockets closed within 20 s`)), 20000);
          for (const s of sockets) void s.closed.then(() => { if (++closed === expected) { clearTimeout(late); resolve(); } });
        });
        const other = await connectFrom(broker.port, version, '127.0.4.2');
        pool.add(other.client);
        assert.equal(other.code, 0, 'another address connects as usual');
        await bystander.assertWorks();
      });

      test('max_sessions: a client cycling through client ids cannot make sessions without end; resuming one still works', async () => {
        await withLimits({ max_sessions: 3 });
        const bystander = await Bystander.start(pool, broker.port, version); // one session
        const ids = [uid('s'), uid('s')];
        for (const clientId of ids) {
          const { client, connack } = await RawClient.connected(broker.port, version, {
            clientId, clean: false, ...(version === 5 ? { properties: { sessionExpiryInterval: 3600 } } : {}),
          });
          assert.equal(connackCode(connack), 0);
          client.send({ cmd: 'disconnect' });
          await client.closed;
        }
        const extra = await connectFrom(broker.port, version, '127.0.5.1');
        pool.add(extra.client);
        assert.equal(extra.code, version === 5 ? 0x97 : SERVER_UNAVAILABLE_V4, 'a fourth session is refused');
        const { client: back, connack } = await RawClient.connected(broker.port, version, { clientId: ids[0], clean: false });
        pool.add(back);
        assert.deepEqual([connackCode(connack), connack.sessionPresent], [0, true], 'an existing session is resumed');
        await bystander.assertWorks();
      });

      test('flapping: a client id reconnecting too often is banned, other ids are not', async () => {
        await withLimits({ flapping_max: 3, flapping_window: 60, flapping_ban: 60 });
        const bystander = await Bystander.start(pool, broker.port, version);
        const id = uid('flap');
        const codes: number[] = [];
        for (let i = 0; i < 4; i++) {
          const c = await connectFrom(broker.port, version, `127.0.3.${i + 1}`, id);
          codes.push(c.code);
          c.client.destroy();
          await c.client.closed;
        }
        assert.deepEqual(codes, [0, 0, 0, version === 5 ? 0x8a : NOT_AUTHORIZED_V4]);
        const other = await connectFrom(broker.port, version, '127.0.3.9');
        pool.add(other.client);
        assert.equal(other.code, 0);
        await bystander.assertWorks();
      });
    });

    describe('per client', () => {
      let broker: RunningBroker;
      before(async () => {
        broker = await startBroker({
          config: { limits: { max_subscriptions: 3, max_topic_levels: 4, max_topic_length: 64, publish_rate: 20 } },
        });
      });
      after(async () => { await broker.stop(); });

      test('max_subscriptions: filters past the limit fail in SUBACK, the first ones are granted', async () => {
        const bystander = await Bystander.start(pool, broker.port, version);
        const { client } = await pool.connect(broker.port, version);
        const suback = await subscribe(client, ['a', 'b', 'c', 'd', 'e'].map((t) => ({ topic: `lim/${t}`, qos: 1 as const })));
        const refused = version === 5 ? 0x97 : 0x80;
        assert.deepEqual(suback.granted, [1, 1, 1, refused, refused]);
        // Replacing an existing subscription is not a new one.
        const again = await subscribe(client, [{ topic: 'lim/a', qos: 0 }]);
        assert.deepEqual(again.granted, [0]);
        await bystander.assertWorks();
      });

      test('topic levels and length: refused without closing the connection', async () => {
        const bystander = await Bystander.start(pool, broker.port, version);
        const { client } = await pool.connect(broker.port, version);
        const { client: watcher } = await pool.connect(broker.port, version);
        await subscribe(watcher, [{ topic: '#', qos: 0 }]);
        const deep = 'a/b/c/d/e';
        const suback = await subscribe(client, [{ topic: deep, qos: 0 }, { topic: 'x'.repeat(65), qos: 0 }, { topic: 'a/b/c/d', qos: 0 }]);
        assert.deepEqual(suback.granted, version === 5 ? [0x8f, 0x8f, 0] : [0x80, 0x80, 0]);
        const messageId = pid();
        client.send({ cmd: 'publish', topic: deep, qos: 1, messageId, dup: false, retain: false, payload: Buffer.from('deep') });
        const puback = (await client.next('puback')) as mqtt.IPubackPacket;
        assert.equal(puback.messageId, messageId);
        if (version === 5) assert.equal(puback.reasonCode, 0x90, 'topic name not accepted');
        // A positive control proves the watcher would have seen the deep message had it been routed.
        client.send({ cmd: 'publish', topic: 'a/ok', qos: 0, dup: false, retain: false, payload: Buffer.from('ok') });
        const got = (await watcher.next('publish')) as mqtt.IPublishPacket;
        assert.equal(got.topic, 'a/ok');
        assert.ok(client.isOpen);
        await bystander.assertWorks();
      });

      test('publish rate: a flooding client is slowed while another client is served at once', async () => {
        const bystander = await Bystander.start(pool, broker.port, version);
        const { client: flooder } = await pool.connect(broker.port, version);
        const total = 60; // 20/s with a burst of 20: the last PUBACK cannot come before ~2 s
        const started = Date.now();
        for (let i = 1; i <= total; i++) {
          flooder.send({ cmd: 'publish', topic: 'flood', qos: 1, messageId: i, dup: false, retain: false, payload: Buffer.from('x') });
        }
        // While the flooder is throttled, the bystander's round trip completes.
        await bystander.assertWorks();
        let acks = 0;
        let bystanderDoneWhileThrottled = false;
        while (acks < total) {
          await flooder.next('puback', 10000);
          acks++;
          if (acks === total / 2) bystanderDoneWhileThrottled = true;
        }
        const elapsed = Date.now() - started;
        assert.ok(bystanderDoneWhileThrottled);
        assert.ok(elapsed >= 1900, `60 publishes at 20/s (burst 20) took ${elapsed} ms; they cannot take less than 2 s`);
        assert.ok(flooder.isOpen, 'slowed, not disconnected');
      });
    });
  });
}
