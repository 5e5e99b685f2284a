/**
 * The fuzz targets: how each one turns the fuzzer's bytes into what a client sends, and the inputs its corpus
 * starts from. Five go through the in-process harness (harness.ts); `websocket` goes through a real WebSocket
 * listener on loopback (ws.ts).
 */
import { Harness, watchProcess, type Answer } from './harness.js';
import { connect, everyProperty, gen, prop, rawConnect } from './packets.js';
import { frame, str, varint } from './framing.js';
import { WsHarness, wsSeeds } from './ws.js';

/** One target. */
export interface Target {
  readonly name: string;
  /** What its bytes are, in a sentence. */
  readonly about: string;
  /** Runs one input; throws a FuzzFinding when the oracle's rules broke. */
  run(data: Buffer): Promise<Answer>;
  /** The inputs its corpus starts from (test/fuzz/seed.ts writes them). */
  seeds(): Buffer[];
  /** Releases what the target holds (brokers, listeners). */
  close(): Promise<void>;
}

let shared: Harness | null = null;

/** The in-process harness of this process (one broker, renewed now and then, shared by the MQTT targets). */
function harness(): Harness {
  watchProcess();
  return (shared ??= new Harness());
}

/** A target that feeds `chunks(data)` to the in-process broker. */
function mqttTarget(name: string, about: string, chunks: (data: Buffer) => Buffer[], seeds: () => Buffer[]): Target {
  return {
    name,
    about,
    run: (data) => harness().exchange(chunks(data)),
    seeds,
    close: async () => {
      await shared?.close();
      shared = null;
    },
  };
}

/** A v5 client that subscribes to everything it publishes, so fuzzed PUBLISH properties go out again. */
const V5_LISTENER = Buffer.concat([
  connect(5, 'fuzz', { properties: { topicAliasMaximum: 8, receiveMaximum: 16 } }),
  gen({
    cmd: 'subscribe', messageId: 1, properties: { subscriptionIdentifier: 5 },
    subscriptions: [{ topic: '#', qos: 2, rap: true }, { topic: '$share/g/+/+', qos: 1 }],
  }),
]);

/** A v5 PUBLISH (QoS from `qos`) with the given property bytes. */
function publish5(topic: string, qos: 0 | 1 | 2, props: Buffer, payload = 'x', first = 0x30): Buffer {
  const id = qos > 0 ? Buffer.from([0x00, 0x01]) : Buffer.alloc(0);
  return frame(first | (qos << 1), Buffer.concat([str(topic), id, varint(props.length), props, Buffer.from(payload)]));
}

const connectTarget = mqttTarget(
  'connect',
  'the raw bytes of a new connection: CONNECT of any level, and whatever follows it',
  (data) => [data],
  () => [
    connect(4, 'c1'),
    connect(3, 'c1'),
    connect(5, 'c1'),
    connect(4, '', { clean: true }),
    connect(5, '', { clean: true }),
    connect(4, 'c2', { clean: false, keepalive: 30, username: 'u', password: Buffer.from('p') }),
    connect(4, 'c3', { will: { topic: 'w/t', payload: Buffer.from('bye'), qos: 1, retain: true } }),
    connect(5, 'c4', {
      will: { topic: 'w/t', payload: Buffer.from('bye'), qos: 2, retain: false, properties: { willDelayInterval: 1, messageExpiryInterval: 9, contentType: 'a', userProperties: { k: 'v' } } },
      properties: { sessionExpiryInterval: 60, receiveMaximum: 2, maximumPacketSize: 200, topicAliasMaximum: 3, requestProblemInformation: false, userProperties: { a: 'b' } },
    }),
    Buffer.concat([connect(4, 'c5'), gen({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a/#', qos: 1 }] }, 4),
      gen({ cmd: 'publish', topic: 'a/b', payload: Buffer.from('hi'), qos: 1, messageId: 2, retain: false, dup: false }, 4),
      gen({ cmd: 'puback', messageId: 1 }, 4), gen({ cmd: 'disconnect' }, 4)]),
    Buffer.concat([connect(5, 'c6'), gen({ cmd: 'publish', topic: 'q/2', payload: Buffer.from('x'), qos: 2, messageId: 7, retain: false, dup: false }),
      gen({ cmd: 'pubrel', messageId: 7 }), gen({ cmd: 'unsubscribe', messageId: 3, unsubscriptions: ['a'] }), gen({ cmd: 'disconnect', reasonCode: 4 })]),
    Buffer.concat([connect(4, 'c7'), connect(4, 'c7')]), // a second CONNECT
    Buffer.from([0x10, 0x00]),
    Buffer.from('101000044d5154540b020000000463313233', 'hex'), // protocol level 11
    Buffer.from('101000044d51545484020000000463313233', 'hex'), // bridge bit on level 4
    Buffer.from('3003000161', 'hex'), // PUBLISH before CONNECT
  ],
);

const publishTarget = mqttTarget(
  'publish',
  'packets after a v5 CONNECT and a SUBSCRIBE to #, mostly PUBLISH with properties (delivered back to the client)',
  (data) => [V5_LISTENER, data],
  () => {
    const seeds: Buffer[] = [];
    const publishable = everyProperty().filter((p) => [0x01, 0x02, 0x03, 0x08, 0x09, 0x23, 0x26].includes(p[0] as number));
    for (const p of publishable) seeds.push(publish5('p/t', 1, p));
    seeds.push(publish5('p/t', 2, Buffer.concat(publishable)));
    seeds.push(publish5('p/t', 0, Buffer.alloc(0)));
    seeds.push(publish5('p/t', 1, prop.varint(0x0b, 3))); // subscription identifier from a client
    seeds.push(Buffer.concat([publish5('a/b', 0, prop.u16(0x23, 2)), publish5('', 0, prop.u16(0x23, 2))])); // alias set, then used
    seeds.push(publish5('', 0, prop.u16(0x23, 9))); // unknown alias
    seeds.push(publish5('p/t', 1, prop.byte(0x01, 1), '\xff\xfe')); // UTF-8 payload claimed
    seeds.push(publish5('r/t', 1, prop.u32(0x02, 1), 'keep', 0x31)); // retained, expiring
    seeds.push(publish5('r/t', 0, Buffer.alloc(0), '', 0x31)); // retained, cleared
    seeds.push(Buffer.concat([publish5('q/t', 2, Buffer.alloc(0)), gen({ cmd: 'pubrel', messageId: 1 }), gen({ cmd: 'pubrec', messageId: 1 })]));
    seeds.push(publish5('$SYS/x', 1, Buffer.alloc(0)));
    seeds.push(publish5('a/+', 1, Buffer.alloc(0)));
    seeds.push(publish5('p/t', 1, Buffer.concat(Array.from({ length: 20 }, (_, i) => prop.pair(`k${i}`, 'v')))));
    return seeds;
  },
);

/** A v5 client that first publishes a few retained messages, so its subscriptions get some back. */
const V5_RETAINER = Buffer.concat([
  connect(5, 'fuzz-sub', { properties: { topicAliasMaximum: 4 } }),
  gen({ cmd: 'publish', topic: 'a/b', payload: Buffer.from('1'), qos: 1, messageId: 1, retain: true, dup: false }),
  gen({ cmd: 'publish', topic: 'a/c/d', payload: Buffer.from('2'), qos: 0, retain: true, dup: false, properties: { messageExpiryInterval: 100, contentType: 'c' } }),
  gen({ cmd: 'publish', topic: 'agents/fuzz-sub', payload: Buffer.from('job'), qos: 2, messageId: 2, retain: true, dup: false }),
]);

const subscribeTarget = mqttTarget(
  'subscribe',
  'packets after a v5 CONNECT that left three retained messages, mostly SUBSCRIBE and UNSUBSCRIBE',
  (data) => [V5_RETAINER, data],
  () => [
    gen({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '#', qos: 2 }] }),
    gen({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'a/+', qos: 1, nl: true, rap: true, rh: 0 }, { topic: 'a/#', qos: 0, rh: 1 }, { topic: '+/+/+', qos: 2, rh: 2 }] }),
    gen({ cmd: 'subscribe', messageId: 3, properties: { subscriptionIdentifier: 268435455, userProperties: { a: 'b' } }, subscriptions: [{ topic: 'a/b', qos: 1 }] }),
    gen({ cmd: 'subscribe', messageId: 4, subscriptions: [{ topic: '$share/g/a/#', qos: 1 }, { topic: '$share/g', qos: 0 }, { topic: '$share//a', qos: 0 }] }),
    gen({ cmd: 'subscribe', messageId: 5, subscriptions: [{ topic: 'a/#/b', qos: 0 }, { topic: 'a+', qos: 0 }, { topic: '', qos: 0 }] }),
    gen({ cmd: 'subscribe', messageId: 6, subscriptions: [{ topic: '$SYS/#', qos: 0 }, { topic: 'agents/fuzz-sub', qos: 1 }] }),
    Buffer.concat([gen({ cmd: 'subscribe', messageId: 7, subscriptions: [{ topic: 'a/b', qos: 1, rh: 1 }] }),
      gen({ cmd: 'subscribe', messageId: 8, subscriptions: [{ topic: 'a/b', qos: 2, rh: 1 }] }),
      gen({ cmd: 'unsubscribe', messageId: 9, unsubscriptions: ['a/b', 'x'] })]),
    gen({ cmd: 'unsubscribe', messageId: 10, properties: { userProperties: { u: 'v' } }, unsubscriptions: ['#'] }),
    Buffer.from('82080001000003612f6203', 'hex'), // QoS 3 in the options
    Buffer.from('820800010000036123c0', 'hex'), // reserved option bits
  ],
);

/** Property-carrying packets, by the fuzzed selector byte; `props` is placed with its length computed. */
const PROPERTY_PACKETS: readonly ((props: Buffer) => Buffer)[] = [
  (p) => rawConnect(5, 'fuzz-p', { props: p }),
  (p) => rawConnect(5, 'fuzz-p', { willProps: p }),
  (p) => Buffer.concat([V5_LISTENER, publish5('p/t', 1, p)]),
  (p) => Buffer.concat([V5_LISTENER, frame(0x82, Buffer.concat([Buffer.from([0, 9]), varint(p.length), p, str('p/#'), Buffer.from([1])]))]),
  (p) => Buffer.concat([V5_LISTENER, frame(0xa2, Buffer.concat([Buffer.from([0, 9]), varint(p.length), p, str('#')]))]),
  // Acknowledgements with a reason code and properties, after a QoS 2 message the client receives back.
  ...[0x40, 0x50, 0x62, 0x70].map((first) => (p: Buffer) => Buffer.concat([V5_LISTENER, publish5('p/q', 2, Buffer.alloc(0)),
    frame(first, Buffer.concat([Buffer.from([0, 1, 0x10]), varint(p.length), p]))])),
  (p) => Buffer.concat([rawConnect(5, 'fuzz-p', { willProps: Buffer.alloc(0) }), frame(0xe0, Buffer.concat([Buffer.from([0x04]), varint(p.length), p]))]),
  (p) => Buffer.concat([connect(5, 'fuzz-p'), frame(0xf0, Buffer.concat([Buffer.from([0x18]), varint(p.length), p]))]),
];

const propertiesTarget = mqttTarget(
  'properties',
  'the v5 property parser: first byte picks the packet (CONNECT, will, PUBLISH, SUBSCRIBE, UNSUBSCRIBE, PUBACK, PUBREC, PUBREL, PUBCOMP, DISCONNECT, AUTH), the rest is its property list',
  (data) => {
    if (data.length === 0) return [];
    const make = PROPERTY_PACKETS[(data[0] as number) % PROPERTY_PACKETS.length] as (p: Buffer) => Buffer;
    return [make(data.subarray(1))];
  },
  () => {
    const seeds: Buffer[] = [];
    const all = everyProperty();
    PROPERTY_PACKETS.forEach((_, kind) => {
      const k = Buffer.from([kind]);
      seeds.push(k, Buffer.concat([k, Buffer.concat(all)]), Buffer.concat([k, prop.pair('a', 'b'), prop.pair('a', 'c')]));
      for (const p of all) seeds.push(Buffer.concat([k, p]));
    });
    return seeds;
  },
);

/** The agent's client id in the agent target. */
const AGENT_ID = 'agent-1';
/** How the agent target's selector byte sends the ClientInfo. */
const AGENT_MODES = [
  { v: 4, property: false }, { v: 5, property: false }, { v: 3, property: false }, { v: 5, property: true },
] as const;

const agentTarget = mqttTarget(
  'agent',
  'agent mode: first byte picks how ClientInfo travels (after the CONNECT payload at level 4, 5 or 3, or the v5 user property client_info), the rest is it; then the agent subscribes to agents/<id> and gets a job',
  (data) => {
    if (data.length === 0) return [];
    const mode = AGENT_MODES[(data[0] as number) % AGENT_MODES.length] as (typeof AGENT_MODES)[number];
    const info = data.subarray(1);
    const hello = mode.property
      ? rawConnect(5, AGENT_ID, { props: Buffer.concat([Buffer.from([0x26]), str('client_info'), str(info)]) })
      : rawConnect(mode.v, AGENT_ID, { trailer: info });
    const v = mode.v;
    return [hello,
      gen({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `agents/${AGENT_ID}`, qos: 1 }] }, v),
      gen({ cmd: 'publish', topic: `agents/${AGENT_ID}`, payload: Buffer.from('job'), qos: 1, messageId: 2, retain: false, dup: false }, v)];
  },
  () => {
    const json = JSON.stringify({
      host_name: 'h', intranet_ip: '10.0.0.1', public_ip: '1.2.3.4', platform: 'linux', arch: 'x86_64', os: 'Debian 12', agent_version: 'v0.0.1',
    });
    const seeds: Buffer[] = [];
    AGENT_MODES.forEach((m, i) => {
      const k = Buffer.from([i]);
      const body = (s: string | Buffer): Buffer => (m.property ? Buffer.from(s) : str(s));
      seeds.push(Buffer.concat([k, body(json)]), Buffer.concat([k, body('{}')]), Buffer.concat([k, body('{"os":1}')]),
        Buffer.concat([k, body('[]')]), Buffer.concat([k, body('{"host_name":"\\u0000"}')]), Buffer.concat([k, body(Buffer.from([0xc3, 0x28]))]));
    });
    seeds.push(Buffer.from([0, 0x00])); // one stray byte
    seeds.push(Buffer.from([1, 0x00, 0x05, 0x7b, 0x7d])); // length says 5, two bytes follow
    return seeds;
  },
);

let wsShared: WsHarness | null = null;

const websocketTarget: Target = {
  name: 'websocket',
  about: 'the bytes after the HTTP upgrade on a real WebSocket listener (ws, the broker\'s listener class): frames carrying MQTT',
  run: (data) => {
    watchProcess();
    return (wsShared ??= new WsHarness()).exchange(data);
  },
  seeds: wsSeeds,
  close: async () => {
    await wsShared?.close();
    wsShared = null;
  },
};

/** Every target, by name. */
export const TARGETS: ReadonlyMap<string, Target> = new Map(
  [connectTarget, publishTarget, subscribeTarget, propertiesTarget, agentTarget, websocketTarget].map((t) => [t.name, t]),
);

/** The target called `name`, or an error naming those there are. */
export function target(name: string): Target {
  const t = TARGETS.get(name);
  if (t === undefined) throw new Error(`no fuzz target ${JSON.stringify(name)}; there are ${[...TARGETS.keys()].join(', ')}`);
  return t;
}
