/**
 * 13 malformed: raw bytes the broker must refuse, for MQTT 3.1.1 (v4) and 5.0 (v5). Each packet is written as
 * hex with one comment per field. A v5 server MAY send DISCONNECT with a reason code before it closes
 * (§4.13); where the spec requires one (Packet too large) the test requires it. After each, a second,
 * already-connected client must keep working.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type mqtt from 'mqtt-packet';
import type { RunningBroker } from './helpers/broker.js';
import {
  Bystander, ClientPool, VERSIONS, closedAfter, expectClosedWith, hex, startTestBroker, subscribe, text,
} from './helpers/c1.js';

const T = { timeout: 20000 };
const MAX_PACKET_SIZE = 1024;

/** Malformed Packet and Protocol Error: the DISCONNECT reason codes a v5 server may use for broken input. */
const MALFORMED = [0x81];
const MALFORMED_OR_PROTOCOL = [0x81, 0x82];

/** `n` bytes of deterministic garbage (a small LCG), starting with `first`. */
function garbage(n: number, first: number): Buffer {
  const out = Buffer.alloc(n);
  let x = 0x2545f491;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  out[0] = first;
  return out;
}

/** One case: the bytes sent after a successful CONNECT, per version, and the allowed v5 DISCONNECT codes. */
interface Case {
  name: string;
  bytes: Record<4 | 5, Buffer>;
  reasons: readonly number[];
}

const CASES: Case[] = [
  {
    name: 'SUBSCRIBE with fixed-header flags 0000 instead of 0010 [MQTT-3.8.1-1]',
    bytes: {
      4: hex(`
        80       # SUBSCRIBE, flags 0000 (reserved flags must be 0010)
        06       # remaining length 6
        00 01    # packet identifier 1
        00 01 61 # topic filter "a"
        01       # subscription options: QoS 1
      `),
      5: hex(`
        80       # SUBSCRIBE, flags 0000 (reserved flags must be 0010)
        07       # remaining length 7
        00 01    # packet identifier 1
        00       # properties length 0
        00 01 61 # topic filter "a"
        01       # subscription options: QoS 1
      `),
    },
    reasons: MALFORMED,
  },
  {
    name: 'remaining length encoded in more than 4 bytes (§2.2.3)',
    bytes: {
      4: hex(`
        30             # PUBLISH QoS 0
        ff ff ff ff 01 # remaining length: a 5th byte (at most 4 are allowed)
      `),
      5: hex(`
        30             # PUBLISH QoS 0
        ff ff ff ff 01 # remaining length: a 5th byte (at most 4 are allowed)
      `),
    },
    reasons: MALFORMED,
  },
  {
    name: 'PUBLISH with QoS 3 [MQTT-3.3.1-4]',
    bytes: {
      4: hex(`
        36             # PUBLISH, flags 0110: QoS bits 11 (QoS 3 does not exist)
        07             # remaining length 7
        00 03 61 2f 62 # topic "a/b"
        00 01          # packet identifier 1
      `),
      5: hex(`
        36             # PUBLISH, flags 0110: QoS bits 11 (QoS 3 does not exist)
        08             # remaining length 8
        00 03 61 2f 62 # topic "a/b"
        00 01          # packet identifier 1
        00             # properties length 0
      `),
    },
    reasons: MALFORMED,
  },
  {
    name: 'topic name containing U+0000 [MQTT-1.5.3-2] (v5: MQTT-1.5.4-2)',
    bytes: {
      4: hex(`
        30             # PUBLISH QoS 0
        06             # remaining length 6
        00 03 61 00 62 # topic "a\\0b": U+0000 is not allowed in UTF-8 strings
        78             # payload "x"
      `),
      5: hex(`
        30             # PUBLISH QoS 0
        07             # remaining length 7
        00 03 61 00 62 # topic "a\\0b": U+0000 is not allowed in UTF-8 strings
        00             # properties length 0
        78             # payload "x"
      `),
    },
    reasons: MALFORMED,
  },
  {
    name: 'topic name that is not valid UTF-8 (C3 28) [MQTT-1.5.3-1] (v5: MQTT-1.5.4-1)',
    bytes: {
      4: hex(`
        30             # PUBLISH QoS 0
        06             # remaining length 6
        00 03 61 c3 28 # topic "a" then C3 28: a lead byte followed by a non-continuation byte
        78             # payload "x"
      `),
      5: hex(`
        30             # PUBLISH QoS 0
        07             # remaining length 7
        00 03 61 c3 28 # topic "a" then C3 28: a lead byte followed by a non-continuation byte
        00             # properties length 0
        78             # payload "x"
      `),
    },
    reasons: MALFORMED,
  },
  {
    name: 'SUBSCRIBE with no topic filters [MQTT-3.8.3-3]',
    bytes: {
      4: hex(`
        82    # SUBSCRIBE, flags 0010
        02    # remaining length 2
        00 01 # packet identifier 1, then no payload
      `),
      5: hex(`
        82    # SUBSCRIBE, flags 0010
        03    # remaining length 3
        00 01 # packet identifier 1
        00    # properties length 0, then no payload
      `),
    },
    // v5 calls this a Protocol Error (§3.8.3); 0x81 is accepted as well.
    reasons: MALFORMED_OR_PROTOCOL,
  },
  {
    name: 'QoS 1 PUBLISH with packet identifier 0 [MQTT-2.3.1-1]',
    bytes: {
      4: hex(`
        32             # PUBLISH QoS 1
        08             # remaining length 8
        00 03 61 2f 62 # topic "a/b"
        00 00          # packet identifier 0
        78             # payload "x"
      `),
      5: hex(`
        32             # PUBLISH QoS 1
        09             # remaining length 9
        00 03 61 2f 62 # topic "a/b"
        00 00          # packet identifier 0
        00             # properties length 0
        78             # payload "x"
      `),
    },
    reasons: MALFORMED_OR_PROTOCOL,
  },
  {
    name: 'SUBSCRIBE with packet identifier 0 [MQTT-2.3.1-1]',
    bytes: {
      4: hex(`
        82       # SUBSCRIBE
        06       # remaining length 6
        00 00    # packet identifier 0
        00 01 61 # topic filter "a"
        01       # QoS 1
      `),
      5: hex(`
        82       # SUBSCRIBE
        07       # remaining length 7
        00 00    # packet identifier 0
        00       # properties length 0
        00 01 61 # topic filter "a"
        01       # QoS 1
      `),
    },
    reasons: MALFORMED_OR_PROTOCOL,
  },
  {
    name: 'UNSUBSCRIBE with packet identifier 0 [MQTT-2.3.1-1]',
    bytes: {
      4: hex(`
        a2       # UNSUBSCRIBE
        05       # remaining length 5
        00 00    # packet identifier 0
        00 01 61 # topic filter "a"
      `),
      5: hex(`
        a2       # UNSUBSCRIBE
        06       # remaining length 6
        00 00    # packet identifier 0
        00       # properties length 0
        00 01 61 # topic filter "a"
      `),
    },
    reasons: MALFORMED_OR_PROTOCOL,
  },
  {
    name: 'PUBACK with packet identifier 0 [MQTT-2.3.1-1]',
    bytes: {
      4: hex(`
        40    # PUBACK
        02    # remaining length 2
        00 00 # packet identifier 0
      `),
      5: hex(`
        40    # PUBACK
        02    # remaining length 2
        00 00 # packet identifier 0
      `),
    },
    reasons: MALFORMED_OR_PROTOCOL,
  },
  {
    name: 'a burst of garbage bytes after CONNECT (packet type 0 is reserved)',
    bytes: { 4: garbage(4096, 0x00), 5: garbage(4096, 0x00) },
    // The garbage also encodes a huge remaining length, so Packet too large is a fair answer too.
    reasons: [...MALFORMED_OR_PROTOCOL, 0x95],
  },
];

describe('13 malformed', () => {
  let broker: RunningBroker;
  const pool = new ClientPool();

  before(async () => {
    broker = await startTestBroker({
      config: { mqtt: { max_packet_size: MAX_PACKET_SIZE } },
      mosquitto: [`max_packet_size ${MAX_PACKET_SIZE}`],
    });
  });
  after(async () => { await broker?.stop(); });
  afterEach(() => pool.closeAll());

  for (const v of VERSIONS) {
    for (const c of CASES) {
      it(`[v${v}] ${c.name} closes the connection`, T, async () => {
        const bystander = await Bystander.start(pool, broker.port, v);
        const { client } = await pool.connect(broker.port, v);
        client.send(c.bytes[v]);
        await expectClosedWith(client, v, c.reasons, { optional: true });
        await bystander.assertWorks();
      });
    }

    it(`[v${v}] a packet bigger than mqtt.max_packet_size (${MAX_PACKET_SIZE}) closes the connection${v === 5 ? ' with DISCONNECT 0x95' : ''}`, T, async () => {
      const bystander = await Bystander.start(pool, broker.port, v);
      const { client: watcher } = await pool.connect(broker.port, v);
      await subscribe(watcher, [{ topic: 'big', qos: 0 }]);
      const { client, connack } = await pool.connect(broker.port, v);
      if (v === 5) assert.equal(connack.properties?.maximumPacketSize, MAX_PACKET_SIZE, 'announced in CONNACK');
      // Below the limit: delivered.
      client.send({ cmd: 'publish', topic: 'big', qos: 0, dup: false, retain: false, payload: Buffer.alloc(900, 0x61) });
      const ok = (await watcher.next('publish')) as mqtt.IPublishPacket;
      assert.equal(text(ok).length, 900);
      // Above the limit: 2011 bytes in all.
      const head = v === 4
        ? hex(`
          30             # PUBLISH QoS 0
          d8 0f          # remaining length 2008 (0x58 | 0x80, 0x0f)
          00 03 62 69 67 # topic "big"
        `)
        : hex(`
          30             # PUBLISH QoS 0
          d8 0f          # remaining length 2008 (0x58 | 0x80, 0x0f)
          00 03 62 69 67 # topic "big"
          00             # properties length 0
        `);
      const payload = Buffer.alloc(2008 - (head.length - 3), 0x62);
      client.send(Buffer.concat([head, payload]));
      // v5: "the Server uses DISCONNECT with Reason Code 0x95 (Packet too large)" (§3.1.2.11.4, §4.13).
      await expectClosedWith(client, v, [0x95]);
      await watcher.expectSilence(200);
      await bystander.assertWorks();
    });

    it(`[v${v}] a truncated packet followed by the end of the socket is dropped`, T, async () => {
      const bystander = await Bystander.start(pool, broker.port, v);
      const { client: watcher } = await pool.connect(broker.port, v);
      await subscribe(watcher, [{ topic: 'a/b', qos: 0 }]);
      const { client } = await pool.connect(broker.port, v);
      client.send(hex(`
        30             # PUBLISH QoS 0
        0a             # remaining length 10 ...
        00 03 61 2f 62 # topic "a/b" ... but only 5 of the 10 bytes follow
      `));
      client.socket.end();
      // The broker closes its side too; a v5 server may say why first.
      await expectClosedWith(client, v, MALFORMED, { optional: true });
      await watcher.expectSilence(200);
      await bystander.assertWorks();
    });

    it(`[v${v}] a burst of garbage instead of CONNECT closes the connection without a reply`, T, async () => {
      const bystander = await Bystander.start(pool, broker.port, v);
      const client = await pool.open(broker.port, v);
      client.send(garbage(4096, 0x00));
      assert.deepEqual(await closedAfter(client), []);
      await bystander.assertWorks();
    });
  }

  it('a CONNECT with garbage for a protocol name closes the connection without a reply', T, async () => {
    const bystander = await Bystander.start(pool, broker.port, 4);
    const client = await pool.open(broker.port, 4);
    client.send(hex(`
      10                # CONNECT
      10                # remaining length 16
      00 04 4d 51 58 58 # protocol name "MQXX" (neither "MQTT" nor "MQIsdp")
      04                # protocol level 4
      02                # flags: clean session
      00 3c             # keep alive 60
      00 04 62 61 64 31 # client id "bad1"
    `));
    // [MQTT-3.1.2-1]: the server MAY keep reading, but MUST NOT continue to process the CONNECT; a CONNACK
    // would be processing it.
    assert.deepEqual(await closedAfter(client), []);
    await bystander.assertWorks();
  });
});
