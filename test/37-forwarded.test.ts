/**
 * 37 forwarded: X-Forwarded-For on the ws and wss listeners counts only from a trusted proxy
 * (`proxy.trusted: [127.0.0.1/32, 127.0.0.3/32]`). An untrusted peer (another 127.0.0.x) naming 10.x.y.z in
 * the header does not pass an ACL rule for 10.0.0.0/8, is not listed or counted under that address, and does
 * not use up that address's per-address limit; the same header from the trusted peer does all three. From a
 * trusted peer the chain is read from the right (a forged left-most entry is ignored), and a header with a
 * malformed entry is not believed at all.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { httpBase, startBroker, type RunningBroker } from './helpers/broker.js';
import { makeCertificates } from './helpers/certs.js';
import { mqttThrough, type Through } from './helpers/proxied.js';

const TOKEN = 'forwarded-test-token';

let broker: RunningBroker;
let api: string;
let ca: string;
const clients: MqttClient[] = [];

before(async () => {
  const certs = makeCertificates();
  ca = certs.ca.certPem;
  const acl = join(mkdtempSync(join(tmpdir(), 'smq-xff-acl-')), 'acl.yaml');
  writeFileSync(acl, 'rules:\n  - {permission: allow, action: subscribe, address: 10.0.0.0/8, topics: ["lan/#"]}\n');
  broker = await startBroker({ config: {
    proxy: { trusted: ['127.0.0.1/32', '127.0.0.3/32'] },
    tls: { cert: certs.server.cert, key: certs.server.key },
    ws: { enable: true, port: 0 },
    wss: { enable: true, port: 0 },
    http: { enable: true, host: '127.0.0.1', port: 0, tokens: [TOKEN] },
    acl: { enable: true, file: acl, default: 'deny' },
    limits: { max_connections_per_address: 1 },
  } });
  api = `${await httpBase(broker)}/api/v1`;
});

after(async () => {
  for (const c of clients) c.end(true);
  await broker?.stop();
});

async function remoteOf(clientid: string): Promise<unknown> {
  const res = await fetch(`${api}/clients?clientid=${encodeURIComponent(clientid)}`, { headers: { 'x-token': TOKEN } });
  const body = (await res.json()) as { clients: Record<string, unknown>[] };
  return body.clients.find((c) => c['clientid'] === clientid)?.['remote'];
}

let seq = 0;

/** The SUBACK code for one filter (MQTT.js fails a refused subscription, with the SUBACK in its error). */
function suback(client: MqttClient, filter: string): Promise<number> {
  return new Promise((resolve, reject) => {
    client.subscribe(filter, { qos: 0 }, (err, granted) => {
      const code = err ? (err as { packet?: { granted?: number[] } }).packet?.granted?.[0] : granted?.[0]?.qos;
      if (code === undefined) reject(err ?? new Error('no SUBACK code'));
      else resolve(code);
    });
  });
}

for (const transport of ['ws', 'wss'] as const) {
  describe(`X-Forwarded-For over ${transport}`, () => {
    /** A connection from `peer` whose upgrade carries X-Forwarded-For `forwarded`. */
    const from = (peer: string, forwarded: string): Through => ({
      transport, port: (transport === 'ws' ? broker.wsPort : broker.wssPort) ?? 0, header: null, localAddress: peer,
      tls: { ca }, headers: { 'X-Forwarded-For': forwarded },
    });

    for (const protocolVersion of [4, 5] as const) {
      test(`MQTT ${protocolVersion}: believed from the trusted proxy only (ACL, API, per-address limit)`, async () => {
        const claimed = `10.1.${++seq}.3`;
        const denied = protocolVersion === 5 ? 0x87 : 0x80;
        const id = (name: string): string => `xff-${transport}-${protocolVersion}-${name}`;

        // Each test its own untrusted peer: the per-address limit (1) would otherwise race the last one's close.
        const untrusted = `127.0.0.${10 + seq}`;
        const spoof = await mqttThrough(from(untrusted, claimed), { clientId: id('spoof'), protocolVersion }, clients);
        assert.equal(spoof.error, undefined, 'an untrusted peer is served as itself');
        assert.equal(await remoteOf(id('spoof')), untrusted);
        assert.equal(await suback(spoof.client, 'lan/t'), denied, 'the untrusted peer passed the 10.0.0.0/8 rule with a header');

        // The spoofer is still connected: had it been counted under the claimed address, the limit (1) would
        // refuse this one.
        const real = await mqttThrough(from('127.0.0.1', claimed), { clientId: id('real'), protocolVersion }, clients);
        assert.equal(real.error, undefined, `the device behind the trusted proxy: ${real.error?.message}`);
        assert.equal(await remoteOf(id('real')), claimed);
        assert.equal(await suback(real.client, 'lan/t'), 0, 'the forwarded address passes the 10.0.0.0/8 rule');

        const again = await mqttThrough(from('127.0.0.1', claimed), { clientId: id('again'), protocolVersion }, clients);
        assert.equal(again.error?.code, protocolVersion === 5 ? 0x97 : 3, 'a second connection of that device is over its limit');
        await Promise.all([spoof.client.endAsync(), real.client.endAsync()]);
      });
    }

    test('the chain is read from the right; a malformed entry voids the header', async () => {
      const n = ++seq;
      const chained = await mqttThrough(from('127.0.0.1', `6.6.6.${n}, 10.2.${n}.9`), { clientId: `xff-chain-${transport}` }, clients);
      assert.equal(chained.error, undefined);
      assert.equal(await remoteOf(`xff-chain-${transport}`), `10.2.${n}.9`, 'a forged left-most entry was believed');
      await chained.client.endAsync();
      // Counted under the proxy's own address, limited to 1: each transport uses its own trusted proxy.
      const proxy = transport === 'ws' ? '127.0.0.1' : '127.0.0.3';
      const malformed = await mqttThrough(from(proxy, `10.3.${n}.9, bogus`), { clientId: `xff-bad-${transport}` }, clients);
      assert.equal(malformed.error, undefined);
      assert.equal(await remoteOf(`xff-bad-${transport}`), proxy);
      await malformed.client.endAsync();
    });
  });
}
