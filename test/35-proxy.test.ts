/**
 * 35 proxy: the PROXY protocol (v1 and v2) on the tcp, tls, ws and wss listeners, behind a trusted load
 * balancer at 127.0.0.1 (`proxy.trusted: [127.0.0.1/32]`); 127.0.0.2, also loopback, is an untrusted peer.
 * What a user checks: the device's address (not the balancer's) is what the HTTP API lists, what ACL
 * `address:` rules, per-address limits and the failed-login throttle see, and what notifications carry; mutual
 * TLS still identifies the device. What an attacker tries: a trusted peer without a header, with a broken one
 * or dribbling one, and an untrusted peer claiming an address: each is closed, others are served meanwhile,
 * and the claimed address appears nowhere.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { freePort, httpBase, startBroker, type RunningBroker } from './helpers/broker.js';
import { makeCertificates, type TestCertificates } from './helpers/certs.js';
import { HttpReceiver } from './helpers/notify-servers.js';
import { HEADERS, mqttThrough, proxiedSocket, proxyV1, type Through, type Transport } from './helpers/proxied.js';

const TOKEN = 'proxy-test-token';
const TRANSPORTS: readonly Transport[] = ['tcp', 'tls', 'ws', 'wss'];
/** The address an untrusted peer claims; the test ends by looking for it everywhere. */
const CLAIMED = '10.66.6.6';

let certs: TestCertificates;
let broker: RunningBroker;
let base: string;
let api: string;
const receiver = new HttpReceiver();
const clients: MqttClient[] = [];
const sockets: Socket[] = [];
let seq = 0;

before(async () => {
  certs = makeCertificates();
  const dir = mkdtempSync(join(tmpdir(), 'smq-proxy-acl-'));
  const acl = join(dir, 'acl.yaml');
  writeFileSync(acl, [
    'rules:',
    '  - {permission: allow, action: subscribe, address: 10.0.0.0/8, topics: ["lan/#"]}',
    '  - {permission: allow, action: subscribe, cn: device-1, topics: ["cert/#"]}',
    '',
  ].join('\n'));
  const notifyPort = await freePort();
  await receiver.listen(notifyPort);
  const tlsFiles = { cert: certs.server.cert, key: certs.server.key, ca: certs.ca.cert, verify: true };
  broker = await startBroker({ config: {
    proxy: { trusted: ['127.0.0.1/32'] },
    proxy_protocol: true,
    tls: { enable: true, port: 0, ...tlsFiles, proxy_protocol: true },
    ws: { enable: true, port: 0, proxy_protocol: true },
    wss: { enable: true, port: 0, proxy_protocol: true },
    http: { enable: true, host: '127.0.0.1', port: 0, tokens: [TOKEN] },
    acl: { enable: true, file: acl, default: 'deny' },
    limits: { max_connections_per_address: 1 },
    notify: { enable: true, type: 'http', server: `http://127.0.0.1:${notifyPort}/smq/events`, timeout: 2000 },
    mqtt: { connect_timeout: 2 },
    log: { level: 'debug' },
  } });
  base = await httpBase(broker);
  api = `${base}/api/v1`;
});

after(async () => {
  for (const c of clients) c.end(true);
  for (const s of sockets) s.destroy();
  await broker?.stop();
  await receiver.close();
});

function portOf(transport: Transport): number {
  const port = { tcp: broker.port, tls: broker.tlsPort, ws: broker.wsPort, wss: broker.wssPort }[transport];
  assert.ok(port, `no ${transport} listener`);
  return port;
}

/** How a device reaches `transport` through the balancer (mutual TLS: the device-1 certificate). */
function through(transport: Transport, header: Buffer | null, localAddress = '127.0.0.1'): Through {
  const tls = { ca: certs.ca.certPem, cert: certs.client.certPem, key: certs.client.keyPem };
  return { transport, port: portOf(transport), header, localAddress, tls };
}

async function listed(clientid: string): Promise<Record<string, unknown> | undefined> {
  const res = await fetch(`${api}/clients?clientid=${encodeURIComponent(clientid)}`, { headers: { 'x-token': TOKEN } });
  assert.equal(res.status, 200);
  const body = (await res.json()) as { clients: Record<string, unknown>[] };
  return body.clients.find((c) => c['clientid'] === clientid);
}

for (const transport of TRANSPORTS) {
  describe(`${transport} behind a load balancer`, () => {
    for (const [version, header] of Object.entries(HEADERS)) {
      for (const protocolVersion of [4, 5] as const) {
        test(`PROXY ${version}, MQTT ${protocolVersion}: API, ACL, certificate and notification see the device`, async () => {
          const device = `10.20.${++seq}.7`;
          const clientId = `dev-${transport}-${version}-${protocolVersion}`;
          const { client, error } = await mqttThrough(through(transport, header(device)), { clientId, protocolVersion }, clients);
          assert.equal(error, undefined, `connect failed: ${error?.message}`);
          const view = await listed(clientId);
          assert.equal(view?.['remote'], device, 'the API lists the device address');
          assert.equal(view?.['transport'], transport);
          const [lan] = await client.subscribeAsync('lan/t', { qos: 0 });
          assert.equal(lan?.qos, 0, 'the ACL address rule 10.0.0.0/8 matches the device');
          if (transport === 'tls' || transport === 'wss') {
            const [cert] = await client.subscribeAsync('cert/t', { qos: 0 });
            assert.equal(cert?.qos, 0, 'mutual TLS still identifies the client (cn rule)');
          }
          const [connected] = await receiver.log.forClient(clientId, 1, 'client_connected');
          assert.equal(connected?.body['connect_ip'], device, 'the notification carries the device address');
          await client.endAsync();
        });
      }
    }

    for (const protocolVersion of [4, 5] as const) {
      test(`MQTT ${protocolVersion}: per-address limits count devices behind one balancer separately`, async () => {
        const [a, b] = [`10.30.${++seq}.1`, `10.30.${seq}.2`];
        const first = await mqttThrough(through(transport, proxyV1(a)), { clientId: `lim-a1-${seq}`, protocolVersion }, clients);
        const other = await mqttThrough(through(transport, HEADERS.v2(b)), { clientId: `lim-b-${seq}`, protocolVersion }, clients);
        assert.equal(first.error, undefined, 'first connection of device a');
        assert.equal(other.error, undefined, 'device b is not limited by device a');
        const second = await mqttThrough(through(transport, proxyV1(a)), { clientId: `lim-a2-${seq}`, protocolVersion }, clients);
        // max_connections_per_address 1: CONNACK 0x97 quota exceeded (3.1.1: 3 server unavailable).
        assert.equal(second.error?.code, protocolVersion === 5 ? 0x97 : 3, `second connection of device a: ${second.error?.message}`);
        await Promise.all([first.client.endAsync(), other.client.endAsync()]);
      });
    }

    test('a trusted peer without a header, or with a broken one, is closed before MQTT', async () => {
      const broken: [string, Buffer | null][] = [
        ['no header', null],
        ['a v1 port above 65535', Buffer.from('PROXY TCP4 10.1.1.1 127.0.0.1 99999 1883\r\n')],
        ['v2 version 3', Buffer.concat([HEADERS.v2('10.1.1.1').subarray(0, 12), Buffer.from([0x31]), HEADERS.v2('10.1.1.1').subarray(13)])],
      ];
      for (const [what, header] of broken) {
        // A whole client follows (CONNECT, ClientHello, upgrade): served directly, it would have connected.
        const { error } = await mqttThrough(through(transport, header), { clientId: `broken-${transport}` }, clients);
        assert.ok(error, `${what}: connected`);
        assert.notEqual(typeof error.code, 'number', `${what}: answered with CONNACK ${error.code}`);
      }
    });

    test('an untrusted peer sending a PROXY header is a direct client with a bad first packet: closed', async () => {
      for (const [version, header] of Object.entries(HEADERS)) {
        // A full client after the header (CONNECT, ClientHello, upgrade): were the header believed, it would connect.
        const id = `spoof-${transport}-${version}`;
        const { error } = await mqttThrough(through(transport, header(CLAIMED), '127.0.0.2'), { clientId: id }, clients);
        assert.ok(error, `${version}: the client behind a forged header got in`);
        // Not a refusal by CONNACK (a per-address limit would give one): the connection never got to MQTT.
        assert.notEqual(typeof error.code, 'number', `${version}: answered with CONNACK ${error.code}`);
        assert.equal(await listed(id), undefined);
      }
    });
  });
}

describe('slow and hostile headers', () => {
  test('a header dribbled past the connect timeout is closed; another device is served meanwhile', async () => {
    const s = await proxiedSocket(broker.port, null);
    sockets.push(s);
    s.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => s.once('close', () => resolve()));
    // 46 bytes at one per 100 ms would take 4.6 s: the 2 s connect timeout comes first.
    const header = proxyV1('10.50.0.1');
    let sent = 0;
    const drip = setInterval(() => { if (sent < header.length) s.write(header.subarray(sent, ++sent)); }, 100);
    try {
      const other = await mqttThrough(through('tcp', proxyV1('10.50.0.2')), { clientId: 'served-meanwhile' }, clients);
      assert.equal(other.error, undefined, 'another device connects while one dribbles');
      await other.client.endAsync();
      const refused = await broker.waitForLog((r) => r['msg']?.toString().startsWith('proxy header refused') === true && r['reason'] === 'timeout', 6000);
      assert.equal(refused['remote'], '127.0.0.1');
      await closed;
    } finally {
      clearInterval(drip);
    }
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /smq_proxy_refused_total\{reason="timeout"\} [1-9]/);
  });

  test(`the address an untrusted peer claimed appears in no API answer, notification or log line`, async () => {
    const res = await fetch(`${api}/clients?limit=1000`, { headers: { 'x-token': TOKEN } });
    assert.doesNotMatch(await res.text(), new RegExp(CLAIMED.replaceAll('.', '\\.')));
    assert.deepEqual(receiver.log.events.filter((e) => JSON.stringify(e.body).includes(CLAIMED)), []);
    assert.deepEqual(broker.logs.filter((r) => JSON.stringify(r).includes(CLAIMED)), []);
    // And the peer was there: its attempts were logged under its own address.
    assert.ok(broker.logs.some((r) => JSON.stringify(r).includes('127.0.0.2')), 'the untrusted peer left no trace at all');
  });
});

describe('failed-login throttle behind a load balancer', () => {
  let auth: RunningBroker;
  before(async () => {
    // auth on with no backend: every login fails, which is all the throttle needs.
    auth = await startBroker({ config: {
      proxy: { trusted: ['127.0.0.1/32'] }, proxy_protocol: true,
      auth: { enable: true, max_failures: 1, failure_window: 60, failure_delay: 2000 },
    } });
  });
  after(async () => {
    await auth?.stop();
  });

  for (const protocolVersion of [4, 5] as const) {
    test(`MQTT ${protocolVersion}: one device's failed logins slow that device, not another behind the same balancer`, async () => {
      const tcp = (device: string, id: string): Promise<{ ms: number; code?: number }> => {
        const started = Date.now();
        return mqttThrough({ transport: 'tcp', port: auth.port, header: proxyV1(device) }, { clientId: id, protocolVersion }, clients)
          .then(({ error }) => ({ ms: Date.now() - started, code: error?.code }));
      };
      const refused = protocolVersion === 5 ? 0x87 : 5;
      const [a, b] = [`10.60.${protocolVersion}.1`, `10.60.${protocolVersion}.2`];
      assert.equal((await tcp(a, 'a1')).code, refused);
      const slowed = tcp(a, 'a2');
      const other = await tcp(b, 'b1');
      assert.equal(other.code, refused);
      assert.ok(other.ms < 1500, `device b waited ${other.ms} ms: throttled for device a's failure`);
      const a2 = await slowed;
      assert.equal(a2.code, refused);
      assert.ok(a2.ms >= 1900, `device a's second attempt was answered after ${a2.ms} ms, not slowed`);
    });
  }
});
