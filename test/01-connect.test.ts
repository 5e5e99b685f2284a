/**
 * 01 connect: black-box tests of CONNECT/CONNACK, session takeover, keep-alive and PINGREQ on the built
 * broker, for MQTT 3.1.1 (v4) and 5.0 (v5), plus MQTT 3.1. Every protocol error also checks that a second,
 * already-connected client is unaffected.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type mqtt from 'mqtt-packet';
import type { RunningBroker } from './helpers/broker.js';
import {
  Bystander, ClientPool, VERSIONS, closedAfter, connackCode, expectClosedWith, hex, mosquittoDeviates, recordBytes,
  startTestBroker, uid,
} from './helpers/c1.js';

const T = { timeout: 15000 };

describe('01 connect', () => {
  let broker: RunningBroker;
  const pool = new ClientPool();

  before(async () => { broker = await startTestBroker(); });
  after(async () => { await broker?.stop(); });
  afterEach(() => pool.closeAll());

  it('[v3] MQTT 3.1 (MQIsdp, level 3) connect is accepted', T, async () => {
    const c = await pool.open(broker.port, 3);
    const bytes = recordBytes(c);
    c.send(hex(`
      10                      # CONNECT
      13                      # remaining length 19
      00 06 4d 51 49 73 64 70 # protocol name "MQIsdp"
      03                      # protocol level 3
      02                      # flags: clean session
      00 3c                   # keep alive 60
      00 05 6d 71 33 31 61    # client id "mq31a"
    `));
    const connack = (await c.next('connack')) as mqtt.IConnackPacket;
    assert.equal(connackCode(connack), 0);
    assert.equal(connack.sessionPresent, false);
    assert.deepEqual(bytes(), hex('20 02 00 00 # CONNACK, length 2, no session, accepted'));
    c.send({ cmd: 'pingreq' });
    await c.next('pingresp');
  });

  for (const v of VERSIONS) {
    it(`[v${v}] CONNECT is accepted with CONNACK success and no session present`, T, async () => {
      const { client, connack } = await pool.connect(broker.port, v, { clientId: uid('ok') });
      assert.equal(connackCode(connack), 0);
      assert.equal(connack.sessionPresent, false, 'clean start never has a session [MQTT-3.2.2-1]');
      client.send({ cmd: 'pingreq' });
      await client.next('pingresp');
    });

    it(`[v${v}] a PUBLISH before CONNECT closes the connection [MQTT-3.1.0-1]`, T, async () => {
      const bystander = await Bystander.start(pool, broker.port, v);
      const c = await pool.open(broker.port, v);
      c.send({ cmd: 'publish', topic: 'early/bird', qos: 0, dup: false, retain: false, payload: 'x' });
      // No CONNACK and no DISCONNECT: the connection was never established.
      assert.deepEqual(await closedAfter(c), []);
      await bystander.assertWorks();
    });

    it(`[v${v}] a second CONNECT closes the connection [MQTT-3.1.0-2]`, T, async () => {
      const bystander = await Bystander.start(pool, broker.port, v);
      const { client } = await pool.connect(broker.port, v);
      client.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: v, clientId: uid('again'), clean: true, keepalive: 60 });
      // v5: DISCONNECT 0x82 Protocol Error, then close. The spec makes the DISCONNECT a MAY (§4.13); smq sends
      // it, Mosquitto 2.0.11 closes without it, so only there is it optional.
      await expectClosedWith(client, v, [0x82], { optional: mosquittoDeviates });
      await bystander.assertWorks();
    });

    it(`[v${v}] the reserved CONNECT flag (bit 0) set closes the connection [MQTT-3.1.2-3]`, T, async () => {
      const bystander = await Bystander.start(pool, broker.port, v);
      const c = await pool.open(broker.port, v);
      c.send(v === 4
        ? hex(`
          10                # CONNECT
          10                # remaining length 16
          00 04 4d 51 54 54 # protocol name "MQTT"
          04                # protocol level 4
          03                # flags: clean session + reserved bit 0 (must be 0)
          00 3c             # keep alive 60
          00 04 72 65 73 31 # client id "res1"
        `)
        : hex(`
          10                # CONNECT
          11                # remaining length 17
          00 04 4d 51 54 54 # protocol name "MQTT"
          05                # protocol level 5
          03                # flags: clean start + reserved bit 0 (must be 0)
          00 3c             # keep alive 60
          00                # properties length 0
          00 04 72 65 73 31 # client id "res1"
        `));
      const packets = await closedAfter(c);
      if (v === 4) {
        assert.deepEqual(packets, [], 'v3.1.1: disconnect without CONNACK');
      } else {
        // v5: a Malformed Packet; the server MAY send CONNACK 0x81 before closing (§4.13).
        assert.ok(packets.length === 0 || (packets.length === 1 && packets[0]?.cmd === 'connack'
          && connackCode(packets[0]) === 0x81), `unexpected ${JSON.stringify(packets)}`);
      }
      await bystander.assertWorks();
    });

    it(`[v${v}] session takeover: the same client id connecting again closes the old connection [MQTT-3.1.4-2]`, T, async () => {
      const bystander = await Bystander.start(pool, broker.port, v);
      const clientId = uid('takeover');
      const { client: first } = await pool.connect(broker.port, v, { clientId });
      const { client: second, connack } = await pool.connect(broker.port, v, { clientId });
      assert.equal(connackCode(connack), 0);
      // v5: the old connection gets DISCONNECT 0x8E Session taken over [MQTT-3.1.4-3]. Mosquitto 2.0.11 closes
      // the old connection without it (a deviation from §3.1.4), so only there is it optional.
      await expectClosedWith(first, v, [0x8e], { optional: mosquittoDeviates });
      second.send({ cmd: 'pingreq' });
      await second.next('pingresp');
      assert.ok(second.isOpen);
      await bystander.assertWorks();
    });

    it(`[v${v}] keep-alive: a silent client with keepalive 1 is disconnected after 1.5 s [MQTT-3.1.2-24]`, T, async () => {
      const bystander = await Bystander.start(pool, broker.port, v);
      const { client } = await pool.connect(broker.port, v, { keepalive: 1 });
      const start = Date.now();
      // v5: the server MAY send DISCONNECT 0x8D Keep Alive timeout first. Mosquitto 2.0.11 checks keep-alives
      // on a coarse timer and was seen closing after up to ~5.7 s, so it gets a longer deadline.
      await expectClosedWith(client, v, [0x8d], { optional: true, timeoutMs: mosquittoDeviates ? 10000 : 4000 });
      const elapsed = Date.now() - start;
      // The client may legitimately stay silent for the whole keep-alive period (1 s).
      assert.ok(elapsed >= 950, `closed after ${elapsed} ms, before the keep-alive period ended`);
      await bystander.assertWorks();
    });

    it(`[v${v}] PINGREQ gets PINGRESP`, T, async () => {
      const { client } = await pool.connect(broker.port, v, { keepalive: 2 });
      const bytes = recordBytes(client);
      for (let i = 0; i < 3; i++) {
        client.send({ cmd: 'pingreq' });
        await client.next('pingresp');
      }
      assert.deepEqual(bytes(), hex('d0 00 d0 00 d0 00 # three PINGRESP'));
    });
  }

  it('[v4] unsupported protocol level 6 gets CONNACK 0x01 and is closed [MQTT-3.1.2-2]', T, async () => {
    const bystander = await Bystander.start(pool, broker.port, 4);
    const c = await pool.open(broker.port, 4);
    const bytes = recordBytes(c);
    c.send(hex(`
      10                # CONNECT
      10                # remaining length 16
      00 04 4d 51 54 54 # protocol name "MQTT"
      06                # protocol level 6 (unknown)
      02                # flags: clean session
      00 3c             # keep alive 60
      00 04 6c 76 6c 36 # client id "lvl6"
    `));
    const packets = await closedAfter(c);
    assert.equal(packets.length, 1, `expected one CONNACK, got ${JSON.stringify(packets)}`);
    assert.deepEqual(bytes(), hex('20 02 00 01 # CONNACK (v3.1.1 form), unacceptable protocol version'));
    await bystander.assertWorks();
  });

  it('[v4] a zero-length client id with clean session 1 is accepted', T, async () => {
    const { client, connack } = await pool.connect(broker.port, 4, { clientId: '', clean: true });
    assert.equal(connackCode(connack), 0);
    client.send({ cmd: 'pingreq' });
    await client.next('pingresp');
  });

  it('[v4] a zero-length client id with clean session 0 gets CONNACK 0x02 and is closed [MQTT-3.1.3-8]', T, async () => {
    const bystander = await Bystander.start(pool, broker.port, 4);
    const c = await pool.open(broker.port, 4);
    c.send(hex(`
      10                # CONNECT
      0c                # remaining length 12
      00 04 4d 51 54 54 # protocol name "MQTT"
      04                # protocol level 4
      00                # flags: clean session 0
      00 3c             # keep alive 60
      00 00             # client id "" (zero length)
    `));
    const connack = (await c.next('connack')) as mqtt.IConnackPacket;
    assert.equal(connackCode(connack), 0x02, 'identifier rejected');
    assert.equal(connack.sessionPresent, false);
    // ... and then close the connection [MQTT-3.1.3-9].
    assert.deepEqual(await closedAfter(c), []);
    await bystander.assertWorks();
  });

  it('[v5] a zero-length client id gets an Assigned Client Identifier in CONNACK [MQTT-3.1.3-6]', T, async () => {
    const { client, connack } = await pool.connect(broker.port, 5, { clientId: '' });
    assert.equal(connackCode(connack), 0);
    const assigned = connack.properties?.assignedClientIdentifier;
    assert.equal(typeof assigned, 'string');
    assert.ok(assigned && assigned.length > 0, 'assigned client identifier is not empty');
    // Two anonymous clients get different identifiers (otherwise one would take the other's session over).
    const { connack: other } = await pool.connect(broker.port, 5, { clientId: '' });
    assert.notEqual(other.properties?.assignedClientIdentifier, assigned);
    client.send({ cmd: 'pingreq' });
    await client.next('pingresp');
  });

  it('[v5] CONNACK announces what a client relies on', T, async () => {
    const { connack } = await pool.connect(broker.port, 5);
    const p = connack.properties ?? {};
    // Absent Receive Maximum means 65535 [MQTT-3.2.2.3.3]; either way it must be a positive number.
    const receiveMaximum = p.receiveMaximum ?? 65535;
    assert.equal(typeof receiveMaximum, 'number');
    assert.ok(receiveMaximum > 0 && receiveMaximum <= 65535, `receiveMaximum ${receiveMaximum}`);
    // Maximum QoS is sent only to announce 0 or 1; absent means QoS 2 is supported. A value of 2 on the wire
    // is a Protocol Error (MQTT 5 §3.2.2.3.4).
    assert.equal(p.maximumQoS, undefined, 'maximumQoS absent (QoS 2 supported)');
    assert.notEqual(p.retainAvailable, false, 'retain available');
    assert.notEqual(p.sharedSubscriptionAvailable, false, 'shared subscriptions available');
    assert.notEqual(p.wildcardSubscriptionAvailable, false, 'wildcard subscriptions available');
    assert.notEqual(p.subscriptionIdentifiersAvailable, false, 'subscription identifiers available');
    if (p.topicAliasMaximum !== undefined) assert.ok(Number.isInteger(p.topicAliasMaximum) && p.topicAliasMaximum >= 0);
    if (p.maximumPacketSize !== undefined) assert.ok(Number.isInteger(p.maximumPacketSize) && p.maximumPacketSize > 0);
    if (p.serverKeepAlive !== undefined) assert.ok(p.serverKeepAlive > 0, 'no server keep alive cut to 0 for keepalive 60');
    assert.equal(p.assignedClientIdentifier, undefined, 'no assigned id when the client sent one');
  });

  it('[v5] server keep alive: a broker with max_keepalive 10 answers keepalive 60 with serverKeepAlive 10 [MQTT-3.2.2-21]', T, async () => {
    const capped = await startTestBroker({ config: { mqtt: { max_keepalive: 10 } }, mosquitto: ['max_keepalive 10'] });
    try {
      const { client, connack } = await pool.connect(capped.port, 5, { keepalive: 60 });
      assert.equal(connack.properties?.serverKeepAlive, 10);
      client.send({ cmd: 'pingreq' });
      await client.next('pingresp');
      // Within the cap, the client's own value stands (a server MAY still echo it).
      const { connack: within } = await pool.connect(capped.port, 5, { keepalive: 5 });
      const ska = within.properties?.serverKeepAlive;
      assert.ok(ska === undefined || ska === 5, `serverKeepAlive ${ska} for a client asking 5`);
    } finally {
      pool.closeAll();
      await capped.stop();
    }
  });

  it('a socket that sends nothing after TCP connect is closed after mqtt.connect_timeout (1 s)', T, async () => {
    const quick = await startTestBroker({ config: { mqtt: { connect_timeout: 1 } } });
    try {
      const c = await pool.open(quick.port, 4);
      const start = Date.now();
      // Mosquitto 2.0.11 has no connect timeout setting (an idle socket stayed open for more than 15 s), so
      // there is nothing to check against it; MQTT 5 §4.1 only says a server SHOULD close such a socket.
      if (mosquittoDeviates) return;
      assert.deepEqual(await closedAfter(c, 4000), []);
      const elapsed = Date.now() - start;
      assert.ok(elapsed >= 900, `closed after ${elapsed} ms, before connect_timeout`);
    } finally {
      pool.closeAll();
      await quick.stop();
    }
  });
});
