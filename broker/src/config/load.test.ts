import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { SmqError } from '../errors.js';
import { DEFAULTS } from './defaults.js';
import { ConfigError, loadConfig } from './load.js';
import { SCHEMA, envName } from './schema.js';
import type { Config } from './types.js';

// The seed's sample configuration, key for key (comments included, as users copy them).
const SEED_SAMPLE = `# cluster name
cluster: smq
# node id
broker: f7637a07-a081-42d0-bd56-6643b4ee522b
# node name
name: windows
# worker pool size
worker: 4096
# listen address
host: 0.0.0.0
# listen port
port: 1883
# TLS settings
tls:
  enable: false
  verify: false
  cert: ssl/server/cert.pem
  key: ssl/server/key.pem
# etcd servers
etcd:
  endpoints:
    - 127.0.0.1:2379
# HTTP API service
http:
  enable: true
  host: 0.0.0.0
  port: 8888
# bridge settings
bridge:
  enable: false
  type: kafka
  kafka:
    addr:
      - 127.0.0.1:9092
# notification settings
notify:
  enable: false
  type: grpc
  server: 127.0.0.1:9999
# whether anonymous clients may connect
auth:
  enable: false
# whether access control is on
acl:
  enable: false
# log level
log:
  level: info
`;

let dir = '';
let count = 0;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'smq-config-test-'));
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Writes a YAML file into the test directory and returns its path. */
function yamlFile(text: string): string {
  const file = join(dir, `config-${++count}.yaml`);
  writeFileSync(file, text);
  return file;
}

/** Asserts that `fn` throws a ConfigError naming `file` and `key`, with the message matching `message`. */
function assertConfigError(fn: () => unknown, want: { file: string; key: string; message: RegExp }): ConfigError {
  let caught: unknown;
  assert.throws(fn, (err: unknown) => {
    caught = err;
    return true;
  });
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  assert.ok(caught instanceof SmqError);
  assert.equal(caught.code, 'ERR_CONFIG');
  assert.equal(caught.file, want.file);
  assert.equal(caught.key, want.key);
  assert.ok(caught.expected.length > 0, 'expected is filled in');
  // Every message names the file, the key (when there is one) and what was expected.
  assert.ok(caught.message.startsWith(`config error in ${want.file}: `), caught.message);
  if (want.key !== '') assert.ok(caught.message.includes(`"${want.key}"`), caught.message);
  assert.match(caught.message, want.message);
  return caught;
}

describe('loadConfig: sources', () => {
  it('uses the defaults when there is no file and no environment', () => {
    assert.deepEqual(loadConfig({ env: {} }), DEFAULTS);
  });

  it('loads the seed sample and keeps every value', () => {
    const config = loadConfig({ file: yamlFile(SEED_SAMPLE), env: {} });
    const expected: Config = {
      ...DEFAULTS,
      cluster: 'smq',
      broker: 'f7637a07-a081-42d0-bd56-6643b4ee522b',
      name: 'windows',
      worker: 4096,
      host: '0.0.0.0',
      port: 1883,
      tls: { ...DEFAULTS.tls, enable: false, verify: false, cert: 'ssl/server/cert.pem', key: 'ssl/server/key.pem' },
      etcd: { ...DEFAULTS.etcd, endpoints: ['127.0.0.1:2379'] },
      http: { ...DEFAULTS.http, enable: true, host: '0.0.0.0', port: 8888 },
      bridge: { ...DEFAULTS.bridge, enable: false, type: 'kafka', kafka: { ...DEFAULTS.bridge.kafka, addr: ['127.0.0.1:9092'] } },
      notify: { ...DEFAULTS.notify, enable: false, type: 'grpc', server: '127.0.0.1:9999' },
      auth: { ...DEFAULTS.auth, enable: false },
      acl: { ...DEFAULTS.acl, enable: false },
      log: { level: 'info' },
    };
    assert.deepEqual(config, expected);
  });

  it('treats an empty file, a comment-only file and empty sections as defaults', () => {
    assert.deepEqual(loadConfig({ file: yamlFile(''), env: {} }), DEFAULTS);
    assert.deepEqual(loadConfig({ file: yamlFile('# nothing yet\n'), env: {} }), DEFAULTS);
    assert.deepEqual(loadConfig({ file: yamlFile('tls:\nmqtt:\n'), env: {} }), DEFAULTS);
  });

  it('reads every kind from the file, and an empty list as no entries', () => {
    const file = yamlFile(
      'port: 0\nws:\n  path: /ws\nlog:\n  level: debug\nhttp:\n  tokens: [a, b]\netcd:\n  endpoints:\n' +
        'mqtt:\n  retain_available: false\n  max_session_expiry_interval: 0xFFFFFFFF\n',
    );
    const config = loadConfig({ file, env: {} });
    assert.equal(config.port, 0);
    assert.equal(config.ws.path, '/ws');
    assert.equal(config.log.level, 'debug');
    assert.deepEqual(config.http.tokens, ['a', 'b']);
    assert.deepEqual(config.etcd.endpoints, []);
    assert.equal(config.mqtt.retain_available, false);
    assert.equal(config.mqtt.max_session_expiry_interval, 4294967295);
  });

  it('lets the environment override int, bool, list and enum keys, over the file', () => {
    const file = yamlFile('port: 1000\nlog:\n  level: warn\n');
    const config = loadConfig({
      file,
      env: {
        SMQ_PORT: '1999',
        SMQ_TLS_PORT: ' 8884 ',
        SMQ_MQTT_MAX_INFLIGHT: '64',
        SMQ_TLS_ENABLE: 'yes',
        SMQ_AUTH_ENABLE: 'TRUE',
        SMQ_ACL_ENABLE: '1',
        SMQ_WS_ENABLE: 'no',
        SMQ_HTTP_ENABLE: '0',
        SMQ_MQTT_RETAIN_AVAILABLE: 'false',
        SMQ_HTTP_TOKENS: 'one, two,,three',
        SMQ_ETCD_ENDPOINTS: 'etcd-0:2379,etcd-1:2379',
        SMQ_LOG_LEVEL: 'debug',
        SMQ_MQTT_SHARED_STRATEGY: 'hash_clientid',
        SMQ_NAME: 'node-a',
      },
    });
    assert.equal(config.port, 1999);
    assert.equal(config.tls.port, 8884);
    assert.equal(config.mqtt.max_inflight, 64);
    assert.equal(config.tls.enable, true);
    assert.equal(config.auth.enable, true);
    assert.equal(config.acl.enable, true);
    assert.equal(config.ws.enable, false);
    assert.equal(config.http.enable, false);
    assert.equal(config.mqtt.retain_available, false);
    assert.deepEqual(config.http.tokens, ['one', 'two', 'three']);
    assert.deepEqual(config.etcd.endpoints, ['etcd-0:2379', 'etcd-1:2379']);
    assert.equal(config.log.level, 'debug');
    assert.equal(config.mqtt.shared_strategy, 'hash_clientid');
    assert.equal(config.name, 'node-a');
  });

  it('empties a list from an empty variable', () => {
    const file = yamlFile('etcd:\n  endpoints: [127.0.0.1:2379]\n');
    assert.deepEqual(loadConfig({ file, env: { SMQ_ETCD_ENDPOINTS: '' } }).etcd.endpoints, []);
  });

  it('ignores unknown SMQ_* variables, SMQ_TEST_* and Kubernetes service links', () => {
    const config = loadConfig({
      env: {
        SMQ_PROT: 'abc',
        SMQ_TEST_PORT: 'abc',
        SMQ_SERVICE_HOST: '10.0.0.1',
        SMQ_PORT: 'tcp://10.0.0.1:1883',
        SMQ_HTTP_PORT: 'tcp://10.0.0.2:8888',
        SMQ_PORT_1883_TCP: 'tcp://10.0.0.1:1883',
        SMQ_LOG_LEVEL: undefined,
        PATH: '/usr/bin',
      },
    });
    assert.deepEqual(config, DEFAULTS);
  });

  it('derives one variable per key from the schema', () => {
    const names = SCHEMA.map((spec) => envName(spec.path));
    assert.equal(new Set(names).size, names.length);
    assert.ok(names.includes('SMQ_MQTT_MAX_INFLIGHT'));
    assert.ok(names.includes('SMQ_BRIDGE_KAFKA_ADDR'));
  });
});

describe('loadConfig: freezing', () => {
  it('returns a deeply frozen configuration', () => {
    const config = loadConfig({ file: yamlFile(SEED_SAMPLE), env: { SMQ_HTTP_TOKENS: 'a,b' } });
    // Modules are strict mode, so writing to a frozen object throws instead of being ignored.
    assert.throws(() => {
      (config as { port: number }).port = 1;
    }, TypeError);
    assert.throws(() => {
      (config.tls as { port: number }).port = 1;
    }, TypeError);
    assert.throws(() => {
      (config.http.tokens as string[]).push('c');
    }, TypeError);
    assert.throws(() => {
      (config.bridge.kafka.addr as string[])[0] = 'x';
    }, TypeError);
    assert.ok(Object.isFrozen(config.mqtt));
  });

  it('freezes DEFAULTS', () => {
    assert.ok(Object.isFrozen(DEFAULTS));
    assert.ok(Object.isFrozen(DEFAULTS.tls));
    assert.ok(Object.isFrozen(DEFAULTS.etcd.endpoints));
    assert.throws(() => {
      (DEFAULTS.mqtt as { max_inflight: number }).max_inflight = 1;
    }, TypeError);
  });
});

describe('loadConfig: errors', () => {
  it('suggests the intended key for a near miss', () => {
    const top = yamlFile('prot: 1883\n');
    assertConfigError(() => loadConfig({ file: top, env: {} }), {
      file: top,
      key: 'prot',
      message: /unknown key; did you mean "port"\? \(expected one of the top-level keys: cluster, .*port/,
    });
    const nested = yamlFile('tls:\n  enabled: true\n');
    const err = assertConfigError(() => loadConfig({ file: nested, env: {} }), {
      file: nested,
      key: 'tls.enabled',
      message: /did you mean "tls\.enable"\? \(expected one of the keys of "tls": enable, /,
    });
    assert.equal(err.expected, 'one of the keys of "tls": enable, verify, cert, key, ca, port, min_version, ciphers, cert_username, proxy_protocol');
  });

  it('suggests the right section for a key written at the wrong level', () => {
    const file = yamlFile('max_inflight: 10\n');
    assertConfigError(() => loadConfig({ file, env: {} }), {
      file,
      key: 'max_inflight',
      message: /did you mean "mqtt\.max_inflight"\?/,
    });
  });

  it('reports an unknown key without a guess when nothing is close', () => {
    const file = yamlFile('log:\n  colour: red\n');
    const err = assertConfigError(() => loadConfig({ file, env: {} }), {
      file,
      key: 'log.colour',
      message: /unknown key \(expected one of the keys of "log": level\)/,
    });
    assert.doesNotMatch(err.message, /did you mean/);
  });

  it('names the key, the file and the expected type for a wrong type', () => {
    const file = yamlFile('tls:\n  port: abc\n');
    const err = assertConfigError(() => loadConfig({ file, env: {} }), {
      file,
      key: 'tls.port',
      message: /expected an integer from 0 to 65535, got "abc"/,
    });
    const start = `config error in ${file}: key "tls.port": expected an integer from 0 to 65535, got "abc"`;
    assert.ok(err.message.startsWith(start), err.message);
    assert.equal(err.expected, 'an integer from 0 to 65535');

    const quoted = yamlFile('tls:\n  enable: "true"\n');
    assertConfigError(() => loadConfig({ file: quoted, env: {} }), {
      file: quoted,
      key: 'tls.enable',
      message: /expected a boolean \(true or false\), got "true"/,
    });
    const notList = yamlFile('port: [1883]\n');
    assertConfigError(() => loadConfig({ file: notList, env: {} }), {
      file: notList,
      key: 'port',
      message: /expected an integer from 0 to 65535, got a list \(MQTT listen port\)/,
    });
    const list = yamlFile('bridge:\n  kafka:\n    addr: [9092]\n');
    assertConfigError(() => loadConfig({ file: list, env: {} }), {
      file: list,
      key: 'bridge.kafka.addr',
      message: /expected a list of non-empty strings, got a list whose item 1 is 9092/,
    });
    const section = yamlFile('tls: true\n');
    assertConfigError(() => loadConfig({ file: section, env: {} }), {
      file: section,
      key: 'tls',
      message: /expected a mapping of enable, verify, cert, key, ca, port, min_version, ciphers, cert_username, proxy_protocol, got true/,
    });
    const empty = yamlFile('host: ""\n');
    assertConfigError(() => loadConfig({ file: empty, env: {} }), {
      file: empty,
      key: 'host',
      message: /expected a non-empty string, got ""/,
    });
  });

  it('rejects a port out of range', () => {
    for (const port of ['70000', '-1', '1883.5']) {
      const file = yamlFile(`http:\n  port: ${port}\n`);
      assertConfigError(() => loadConfig({ file, env: {} }), {
        file,
        key: 'http.port',
        message: new RegExp(`expected an integer from 0 to 65535, got ${port.replace('.', '\\.')}`),
      });
    }
  });

  it('rejects a value outside an enum', () => {
    const file = yamlFile('log:\n  level: loud\n');
    assertConfigError(() => loadConfig({ file, env: {} }), {
      file,
      key: 'log.level',
      message: /expected one of "trace", "debug", "info", "warn", "error", "fatal", "silent", got "loud"/,
    });
  });

  it('gives the line of a YAML syntax error', () => {
    const file = yamlFile('port: 1883\ntls:\n  cert: [a, b\nlog:\n  level: info\n');
    assertConfigError(() => loadConfig({ file, env: {} }), {
      file,
      key: '',
      message: /line \d+, column \d+: invalid YAML: /,
    });
    const duplicate = yamlFile('port: 1883\nhost: 0.0.0.0\nport: 1884\n');
    assertConfigError(() => loadConfig({ file: duplicate, env: {} }), {
      file: duplicate,
      key: '',
      message: /line 3, column 1: invalid YAML: Map keys must be unique/,
    });
  });

  it('rejects a file whose top level is not a mapping', () => {
    const file = yamlFile('- port\n- 1883\n');
    assertConfigError(() => loadConfig({ file, env: {} }), {
      file,
      key: '',
      message: /expected a mapping of configuration keys at the top level, got a list/,
    });
  });

  it('names a missing file', () => {
    const file = join(dir, 'does-not-exist.yaml');
    assertConfigError(() => loadConfig({ file, env: {} }), {
      file,
      key: '',
      message: /cannot read the file \(ENOENT/,
    });
  });

  it('requires a certificate and key when TLS is on, and a CA when verify is on', () => {
    const noCert = yamlFile('tls:\n  enable: true\n  cert: ""\n');
    assertConfigError(() => loadConfig({ file: noCert, env: {} }), {
      file: noCert,
      key: 'tls.cert',
      message: /expected a certificate file when tls\.enable is true, got ""/,
    });
    const noCa = yamlFile('tls:\n  enable: true\n  verify: true\n');
    assertConfigError(() => loadConfig({ file: noCa, env: {} }), {
      file: noCa,
      key: 'tls.ca',
      message: /expected a CA bundle file when tls\.verify is true/,
    });
    assertConfigError(() => loadConfig({ env: { SMQ_TLS_ENABLE: 'true', SMQ_TLS_KEY: '' } }), {
      file: 'environment',
      key: 'SMQ_TLS_KEY',
      message: /expected a private key file when tls\.enable is true/,
    });
    const ok = yamlFile('tls:\n  enable: true\n  verify: true\n  ca: ssl/ca.pem\n');
    assert.equal(loadConfig({ file: ok, env: {} }).tls.ca, 'ssl/ca.pem');
  });

  it('requires trusted proxies when a listener expects PROXY headers, and checks every entry', () => {
    for (const key of ['proxy_protocol', 'tls.proxy_protocol', 'ws.proxy_protocol', 'wss.proxy_protocol']) {
      const [section, leaf] = key.includes('.') ? key.split('.') : ['', key];
      const file = yamlFile(section === '' ? `${leaf}: true\n` : `${section}:\n  ${leaf}: true\n`);
      assertConfigError(() => loadConfig({ file, env: {} }), {
        file,
        key: 'proxy.trusted',
        message: new RegExp(`expected the trusted proxies' addresses when ${key.replace('.', '\\.')} is true, got \\[\\]`),
      });
    }
    assertConfigError(() => loadConfig({ env: { SMQ_WS_PROXY_PROTOCOL: 'true', SMQ_PROXY_TRUSTED: '' } }), {
      file: 'environment',
      key: 'SMQ_PROXY_TRUSTED',
      message: /when ws\.proxy_protocol is true, got \[\]/,
    });
    const bad = yamlFile('proxy:\n  trusted: [10.0.0.0/8, 10.1.0.1/16]\n');
    assertConfigError(() => loadConfig({ file: bad, env: {} }), {
      file: bad,
      key: 'proxy.trusted',
      message: /expected a list of IP addresses or CIDR ranges \(IPv4 or IPv6\), got a list whose item 2 is "10\.1\.0\.1\/16" \(a network address with no host bits set \(did you mean 10\.1\.0\.0\/16\?\)\)/,
    });
    assertConfigError(() => loadConfig({ env: { SMQ_PROXY_TRUSTED: '10.0.0.0/8,lb.internal' } }), {
      file: 'environment',
      key: 'SMQ_PROXY_TRUSTED',
      message: /expected a list of IP addresses or CIDR ranges \(IPv4 or IPv6\), got "10\.0\.0\.0\/8,lb\.internal"/,
    });
    const ok = yamlFile('proxy_protocol: true\nproxy:\n  trusted: [10.0.0.0/8, "::ffff:192.0.2.0/120", "fd00::/8"]\n');
    const config = loadConfig({ file: ok, env: { SMQ_WSS_PROXY_PROTOCOL: 'yes' } });
    assert.deepEqual([config.proxy_protocol, config.wss.proxy_protocol, config.ws.proxy_protocol, config.proxy.trusted.length], [true, true, false, 3]);
  });

  it('names the variable for an environment value of the wrong type', () => {
    assertConfigError(() => loadConfig({ env: { SMQ_TLS_PORT: 'abc' } }), {
      file: 'environment',
      key: 'SMQ_TLS_PORT',
      message: /expected an integer from 0 to 65535, got "abc" \(tls\.port: /,
    });
    assertConfigError(() => loadConfig({ env: { SMQ_PORT: '65536' } }), {
      file: 'environment',
      key: 'SMQ_PORT',
      message: /expected an integer from 0 to 65535, got "65536"/,
    });
    assertConfigError(() => loadConfig({ env: { SMQ_TLS_ENABLE: 'maybe' } }), {
      file: 'environment',
      key: 'SMQ_TLS_ENABLE',
      message: /expected a boolean \(true or false\), got "maybe"/,
    });
    assertConfigError(() => loadConfig({ env: { SMQ_LOG_LEVEL: 'loud' } }), {
      file: 'environment',
      key: 'SMQ_LOG_LEVEL',
      message: /expected one of "trace", .*got "loud"/,
    });
  });
});

describe('schema and defaults', () => {
  it('describes exactly the keys of DEFAULTS, and every default is valid', () => {
    const leaves: string[] = [];
    const walk = (node: unknown, prefix: string): void => {
      for (const [key, value] of Object.entries(node as Record<string, unknown>)) {
        const path = prefix === '' ? key : `${prefix}.${key}`;
        if (typeof value === 'object' && value !== null && !Array.isArray(value)) walk(value, path);
        else leaves.push(path);
      }
    };
    walk(DEFAULTS, '');
    assert.deepEqual([...leaves].sort(), SCHEMA.map((spec) => spec.path).sort());
    // Loading with every default written explicitly as YAML must round-trip, so no default breaks its own key.
    const file = yamlFile(JSON.stringify(DEFAULTS));
    assert.deepEqual(loadConfig({ file, env: {} }), DEFAULTS);
  });
});
