/**
 * 16 v5 properties: a property not valid for its packet type is a Malformed Packet (DISCONNECT 0x81), a
 * single-instance property given twice or a value out of range a Protocol Error (0x82) (MQTT 5.0 section
 * 2.2.2.2). Above all, nothing that breaks these rules is forwarded or retained: a subscriber that receives it
 * would itself see a malformed packet and drop (mosquitto_sub -V 5 did), and a retained one would do that to
 * every future subscriber. Packets are written as hex, one comment per field.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type mqtt from 'mqtt-packet';
import type { RunningBroker } from './helpers/broker.js';
import type { RawClient } from './helpers/raw.js';
import { Bystander, ClientPool, expectClosedWith, hex, startTestBroker, subscribe, text, uid } from './helpers/c1.js';

const T = { timeout: 20000 };

/** A v5 PUBLISH to `topic` with the given property bytes (`props` is hex; its length prefix is added). */
function publish(topic: string, props: string, options: { qos?: 0 | 1; retain?: boolean } = {}): Buffer {
  const p = hex(props);
  const t = Buffer.from(topic);
  const qos = options.qos ?? 0;
  const body = Buffer.concat([
    Buffer.from([t.length >> 8, t.length & 0xff]), t,
    qos > 0 ? Buffer.from([0x00, 0x09]) : Buffer.alloc(0), // packet identifier 9
    Buffer.from([p.length]), p,
    Buffer.from('poison'),
  ]);
  assert.ok(body.length < 128, 'fixture: one-byte remaining length');
  return Buffer.concat([Buffer.from([0x30 | (qos << 1) | (options.retain ? 1 : 0), body.length]), body]);
}

/** The next PUBLISH `c` receives must be `marker`: whatever was sent before it never arrived. */
async function nextIsMarker(c: RawClient, topic: string, marker: string): Promise<void> {
  const p = (await c.next('publish')) as mqtt.IPublishPacket;
  assert.equal(`${p.topic} ${text(p)}`, `${topic} ${marker}`, 'the refused message must not be delivered');
}

describe('16 v5 properties', () => {
  let broker: RunningBroker;
  const pool = new ClientPool();

  before(async () => { broker = await startTestBroker(); });
  after(async () => { await broker?.stop(); });
  afterEach(() => pool.closeAll());

  /** Sends `bytes` from a fresh v5 client, expects the close with `reason`, and checks nothing reached `topic`. */
  async function refused(topic: string, bytes: Buffer, reason: number): Promise<void> {
    const bystander = await Bystander.start(pool, broker.port, 5);
    const { client: watcher } = await pool.connect(broker.port, 5);
    await subscribe(watcher, [{ topic, qos: 1 }]);
    const { client } = await pool.connect(broker.port, 5);
    client.send(bytes);
    await expectClosedWith(client, 5, [reason]);
    const marker = uid('marker');
    const { client: publisher } = await pool.connect(broker.port, 5);
    publisher.send({ cmd: 'publish', topic, qos: 0, dup: false, retain: false, payload: marker });
    await nextIsMarker(watcher, topic, marker);
    await bystander.assertWorks();
  }

  const forbidden: [string, string][] = [
    ['Session Expiry Interval', '11 00 00 0e 10 # Session Expiry Interval 3600'],
    ['Receive Maximum', '21 00 0a # Receive Maximum 10'],
    ['Server Reference', '1c 00 03 65 76 6c # Server Reference "evl"'],
    ['Reason String', '1f 00 03 62 61 64 # Reason String "bad"'],
    ['Assigned Client Identifier', '12 00 03 62 6f 62 # Assigned Client Identifier "bob"'],
  ];
  for (const [name, props] of forbidden) {
    it(`a PUBLISH carrying ${name} is a Malformed Packet and reaches nobody`, T, async () => {
      const topic = uid('t');
      await refused(topic, publish(topic, props, { qos: 1 }), 0x81);
    });
  }

  it('a retained PUBLISH with a forbidden property is not stored: later subscribers are not poisoned', T, async () => {
    const topic = uid('retained');
    const { client } = await pool.connect(broker.port, 5);
    client.send(publish(topic, '11 00 00 0e 10 # Session Expiry Interval', { qos: 1, retain: true }));
    await expectClosedWith(client, 5, [0x81]);
    const { client: late } = await pool.connect(broker.port, 5);
    await subscribe(late, [{ topic, qos: 1 }]);
    const marker = uid('marker');
    const { client: publisher } = await pool.connect(broker.port, 5);
    publisher.send({ cmd: 'publish', topic, qos: 0, dup: false, retain: false, payload: marker });
    // Retained messages follow the SUBACK before anything published after it.
    await nextIsMarker(late, topic, marker);
  });

  it('a Payload Format Indicator given twice is a Protocol Error, also when the first is 0', T, async () => {
    const topic = uid('t');
    await refused(topic, publish(topic, '01 00 01 01 # Payload Format Indicator 0, then 1'), 0x82);
  });

  it('a Payload Format Indicator other than 0 or 1 is a Protocol Error', T, async () => {
    const topic = uid('t');
    await refused(topic, publish(topic, '01 07 # Payload Format Indicator 7'), 0x82);
  });

  it('a Content Type that is not UTF-8 is a Malformed Packet', T, async () => {
    const topic = uid('t');
    await refused(topic, publish(topic, '03 00 02 c3 28 # Content Type: C3 28 is ill-formed'), 0x81);
  });

  it('a Response Topic with a wildcard is a Protocol Error [MQTT-3.3.2-14]', T, async () => {
    const topic = uid('t');
    await refused(topic, publish(topic, '08 00 03 61 2f 23 # Response Topic "a/#"'), 0x82);
  });

  it('repeated User Properties are allowed and forwarded in order', T, async () => {
    const topic = uid('t');
    const { client: watcher } = await pool.connect(broker.port, 5);
    await subscribe(watcher, [{ topic, qos: 0 }]);
    const { client } = await pool.connect(broker.port, 5);
    client.send(publish(topic, '26 00 01 6b 00 01 31 26 00 01 6b 00 01 32 # k=1, k=2'));
    const p = (await watcher.next('publish')) as mqtt.IPublishPacket;
    assert.deepEqual({ ...p.properties?.userProperties }, { k: ['1', '2'] });
  });

  it('a SUBSCRIBE with Subscription Identifier 0 is a Protocol Error', T, async () => {
    const { client } = await pool.connect(broker.port, 5);
    client.send(hex(`
      82          # SUBSCRIBE
      08          # remaining length 8
      00 01       # packet identifier 1
      02 0b 00    # properties: Subscription Identifier 0
      00 01 61 01 # filter "a", QoS 1
    `));
    await expectClosedWith(client, 5, [0x82]);
  });

  it('a SUBSCRIBE with two Subscription Identifiers is a Protocol Error', T, async () => {
    const { client } = await pool.connect(broker.port, 5);
    client.send(hex(`
      82             # SUBSCRIBE
      0a             # remaining length 10
      00 01          # packet identifier 1
      04 0b 05 0b 06 # properties: Subscription Identifiers 5 and 6
      00 01 61 01    # filter "a", QoS 1
    `));
    await expectClosedWith(client, 5, [0x82]);
  });

  it('a will with a property not valid in Will Properties refuses the CONNECT; the will is never published', T, async () => {
    const topic = uid('will');
    const { client: watcher } = await pool.connect(broker.port, 5);
    await subscribe(watcher, [{ topic, qos: 0 }]);
    const t = Buffer.from(topic);
    const body = Buffer.concat([
      hex('00 04 4d 51 54 54 05 # "MQTT" level 5'),
      hex('06 # flags: clean start, will flag'),
      hex('00 3c 00 # keep alive 60, no properties'),
      hex('00 02 77 31 # client id "w1"'),
      hex('05 11 00 00 00 05 # Will Properties: Session Expiry Interval (CONNECT only)'),
      Buffer.from([0, t.length]), t,
      hex('00 01 78 # will payload "x"'),
    ]);
    const client = await pool.open(broker.port, 5);
    client.send(Buffer.concat([Buffer.from([0x10, body.length]), body]));
    await expectClosedWith(client, 5, []);
    const marker = uid('marker');
    const { client: publisher } = await pool.connect(broker.port, 5);
    publisher.send({ cmd: 'publish', topic, qos: 0, dup: false, retain: false, payload: marker });
    await nextIsMarker(watcher, topic, marker);
  });

  it('a PUBACK carrying Session Expiry Interval is a Malformed Packet', T, async () => {
    const { client } = await pool.connect(broker.port, 5);
    client.send(hex('40 09 00 01 00 05 11 00 00 00 01 # PUBACK id 1, reason 0, Session Expiry Interval'));
    await expectClosedWith(client, 5, [0x81]);
  });

  it('a DISCONNECT carrying Topic Alias is a Malformed Packet and the will is still published', T, async () => {
    const topic = uid('will');
    const { client: watcher } = await pool.connect(broker.port, 5);
    await subscribe(watcher, [{ topic, qos: 0 }]);
    const { client } = await pool.connect(broker.port, 5, { will: { topic, payload: Buffer.from('gone'), qos: 0, retain: false } });
    client.send(hex('e0 05 00 03 23 00 01 # DISCONNECT reason 0, Topic Alias 1'));
    await expectClosedWith(client, 5, [0x81]);
    const p = (await watcher.next('publish')) as mqtt.IPublishPacket;
    assert.equal(text(p), 'gone', 'a refused DISCONNECT is not a normal one: the will goes out');
  });
});
