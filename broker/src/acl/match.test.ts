import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseIp } from './address.js';
import {
  aclFilter, expandTemplate, filterCovers, firstMatch, globMatch, parseTemplate, rulesFor, topicMatches,
  type AclRule, type Identity,
} from './match.js';
import { parseRules } from './rules.js';

/** Reference matcher, written as directly from the spec as possible [MQTT-4.7.1-2, 4.7.1-3, 4.7.2-1]. */
function specMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

describe('topicMatches (publish and read)', () => {
  const cases: [filter: string, topic: string, expected: boolean][] = [
    ['sensors/#', 'sensors', true],
    ['sensors/#', 'sensors/a/b', true],
    ['sensors/+', 'sensors/a', true],
    ['sensors/+', 'sensors/a/b', false],
    ['sensors/+', 'sensors', false],
    ['sensors/+', 'sensors/', true], // '+' matches an empty level
    ['#', 'a', true],
    ['#', '/', true],
    ['#', '$SYS/x', false],
    ['+/x', '$SYS/x', false],
    ['$SYS/#', '$SYS/broker/uptime', true],
    ['$SYS/+/uptime', '$SYS/broker/uptime', true],
    ['a/+/c', 'a//c', true],
    ['a', 'a/', false],
    ['/+', '/a', true],
    ['+', '', true], // not a valid topic name, but the matcher itself stays consistent with the spec
  ];
  for (const [filter, topic, expected] of cases) {
    it(`${filter} ${expected ? 'matches' : 'does not match'} ${JSON.stringify(topic)}`, () => {
      assert.equal(topicMatches(filter, topic), expected);
      assert.equal(specMatches(filter, topic), expected, 'the table agrees with the spec matcher');
    });
  }
});

describe('filterCovers (subscribe)', () => {
  const cases: [rule: string, requested: string, expected: boolean][] = [
    ['sensors/#', 'sensors/+/temp', true],
    ['sensors/#', 'sensors/a', true],
    ['sensors/#', 'sensors', true],
    ['sensors/#', 'sensors/#', true],
    ['sensors/+', 'sensors/#', false],
    ['sensors/+', 'sensors/+', true],
    ['sensors/+', 'sensors/a', true],
    ['sensors/a', 'sensors/+', false],
    ['sensors/+/temp', 'sensors/+/+', false],
    ['#', '#', true],
    ['#', 'a/+/#', true],
    ['#', '+/#', true],
    ['#', '$SYS/#', false],
    ['#', '$SYS/broker', false],
    ['+/#', '#', true], // both match every non-$ topic
    ['+/+/#', '#', false], // '#' also matches one-level topics
    ['+', '$SYS', false],
    ['+/#', '$SYS/#', false],
    ['$SYS/#', '$SYS/broker/+', true],
    ['$SYS/#', '#', false],
    ['a/#', 'a', true],
    ['a/+/#', 'a/#', false], // 'a/#' matches 'a', which 'a/+/#' does not
    ['a', 'a/#', false],
    ['a/b', 'a/b', true],
    ['a/b', 'a/b/c', false],
    ['a//b', 'a/+/b', false],
    ['a/+/b', 'a//b', true],
  ];
  for (const [rule, requested, expected] of cases) {
    it(`${rule} ${expected ? 'covers' : 'does not cover'} ${requested}`, () => {
      assert.equal(filterCovers(rule, requested), expected);
    });
  }

  it('agrees with "every topic the request matches, the rule matches" over a small universe', () => {
    const levels = ['a', 'b', '', '$s'];
    const topics: string[] = [];
    const grow = (prefix: string[], depth: number): void => {
      if (prefix.length > 0) topics.push(prefix.join('/'));
      if (depth === 0) return;
      for (const l of levels) grow([...prefix, l], depth - 1);
    };
    grow([], 4);
    const filterLevels = ['a', '', '$s', '+'];
    const filters: string[] = [];
    const build = (prefix: string[], depth: number): void => {
      if (prefix.length > 0) filters.push(prefix.join('/'), [...prefix, '#'].join('/'));
      if (depth === 0) return;
      for (const l of filterLevels) build([...prefix, l], depth - 1);
    };
    build([], 3);
    filters.push('#');
    for (const rule of filters) {
      for (const req of filters) {
        // Filters are at most 4 levels, so a counterexample, if any, is a topic of at most 4 levels.
        const truth = topics.every((t) => !specMatches(req, t) || specMatches(rule, t));
        assert.equal(filterCovers(rule, req), truth, `${rule} covers ${req}`);
      }
    }
  });
});

describe('aclFilter', () => {
  it('judges the filter inside $share and $queue', () => {
    assert.equal(aclFilter('$share/g/sensors/#'), 'sensors/#');
    assert.equal(aclFilter('$queue/jobs/+'), 'jobs/+');
    assert.equal(aclFilter('sensors/#'), 'sensors/#');
    assert.equal(aclFilter('$SYS/#'), '$SYS/#');
  });
});

describe('placeholders', () => {
  const t = parseTemplate('sensors/%u/#');
  const cases: [what: string, username: string | undefined, clientId: string, expected: string | null][] = [
    ['a plain username', 'alice', 'c1', 'sensors/alice/#'],
    ['no username', undefined, 'c1', null],
    ['an empty username', '', 'c1', null],
    ['a username with "/"', 'a/b', 'c1', null],
    ['a username with "#"', 'a/#', 'c1', null],
    ['a username "#"', '#', 'c1', null],
    ['a username "+"', '+', 'c1', null],
    ['a username holding "%c" (one-pass substitution)', '%c', 'victim', 'sensors/%c/#'],
  ];
  for (const [what, username, clientId, expected] of cases) {
    it(`%u with ${what}`, () => {
      const levels = expandTemplate(t, username, clientId);
      assert.equal(levels === null ? null : levels.join('/'), expected);
    });
  }

  it('%c and several placeholders in one level', () => {
    const levels = expandTemplate(parseTemplate('cmd/%c/%u-%c'), 'bob', 'dev1');
    assert.deepEqual(levels, ['cmd', 'dev1', 'bob-dev1']);
    assert.equal(expandTemplate(parseTemplate('cmd/%c'), 'bob', 'x+y'), null);
  });

  it('a placeholder cannot turn a filter into a $ filter', () => {
    assert.equal(expandTemplate(parseTemplate('%u/#'), '$SYS', 'c'), null);
    assert.deepEqual(expandTemplate(parseTemplate('$devices/%u'), 'bob', 'c'), ['$devices', 'bob']);
  });

  it('other % sequences are literal', () => {
    assert.deepEqual(expandTemplate(parseTemplate('a/100%/%x'), 'u', 'c'), ['a', '100%', '%x']);
  });
});

describe('globMatch (identity matchers)', () => {
  const cases: [pattern: string, value: string, expected: boolean][] = [
    ['sensor-*', 'sensor-1', true],
    ['sensor-*', 'sensor-', true],
    ['sensor-*', 'sensor', false],
    ['*', '', true],
    ['*-*-x', 'a-b-c-x', true],
    ['a*b*c', 'abc', true],
    ['a*b*c', 'acb', false],
    ['alice', 'alice', true],
    ['alice', 'Alice', false],
    ['a.c', 'abc', false], // no regular-expression meaning
  ];
  for (const [pattern, value, expected] of cases) {
    it(`${pattern} ${expected ? 'matches' : 'does not match'} ${JSON.stringify(value)}`, () => {
      assert.equal(globMatch(pattern, value), expected);
    });
  }

  it('stays fast on a hostile value', () => {
    const started = performance.now();
    assert.equal(globMatch('*a*a*a*a*a*b', 'a'.repeat(20000)), false);
    assert.ok(performance.now() - started < 2000);
  });
});

/** Rules from YAML, the way the file hook gets them. */
function rules(yaml: string): AclRule[] {
  return parseRules(yaml, 'test.yaml');
}

function id(over: Partial<Identity> & { ip?: string } = {}): Identity {
  return { clientId: 'c1', username: 'alice', address: parseIp(over.ip ?? '127.0.0.1'), cn: undefined, ...over };
}

/** The decision for one question: 'allow', 'deny' or 'none' (no rule matched). */
function decide(r: readonly AclRule[], who: Identity, access: 'publish' | 'subscribe' | 'read', topic: string): string {
  const rule = firstMatch(rulesFor(r, who), access, access === 'subscribe' ? aclFilter(topic) : topic);
  return rule === undefined ? 'none' : rule.allow ? 'allow' : 'deny';
}

describe('first matching rule', () => {
  const set = rules(`
rules:
  - {permission: deny, action: subscribe, topics: ["secret/#"]}
  - {permission: allow, action: subscribe, topics: ["#"]}
  - {permission: allow, action: publish, username: alice, topics: ["sensors/%u/#"]}
  - {permission: allow, action: all, clientid: "sensor-*", topics: ["cmd/%c"]}
  - {permission: deny, action: all, topics: ["#"]}
`);
  const cases: [who: Identity, access: 'publish' | 'subscribe' | 'read', topic: string, expected: string][] = [
    [id(), 'subscribe', 'secret/x', 'deny'],
    [id(), 'subscribe', 'secret/#', 'deny'],
    [id(), 'subscribe', '#', 'allow'], // not covered by the deny rule: reads filter secret/* instead
    [id(), 'read', 'secret/x', 'deny'],
    [id(), 'read', 'public/x', 'allow'],
    [id(), 'subscribe', '$share/g/secret/a', 'deny'],
    [id(), 'subscribe', '$queue/public', 'allow'],
    [id(), 'subscribe', '$SYS/#', 'none'], // '#' rules do not reach $ filters
    [id(), 'publish', 'sensors/alice/t', 'allow'],
    [id(), 'publish', 'sensors/bob/t', 'deny'],
    [id({ username: 'bob' }), 'publish', 'sensors/alice/t', 'deny'],
    [id({ username: undefined }), 'publish', 'sensors//t', 'deny'],
    [id({ clientId: 'sensor-7' }), 'publish', 'cmd/sensor-7', 'allow'],
    [id({ clientId: 'sensor-7' }), 'publish', 'cmd/sensor-8', 'deny'],
    [id({ clientId: 'other' }), 'publish', 'cmd/other', 'deny'],
    [id({ clientId: 'sensor-7' }), 'read', 'cmd/sensor-7', 'allow'],
  ];
  for (const [who, access, topic, expected] of cases) {
    it(`${access} ${topic} by ${who.username ?? '(anonymous)'}/${who.clientId}: ${expected}`, () => {
      assert.equal(decide(set, who, access, topic), expected);
    });
  }

  it('order decides: the same rules the other way round allow what was denied', () => {
    const reversed = rules(`
rules:
  - {permission: allow, action: subscribe, topics: ["#"]}
  - {permission: deny, action: subscribe, topics: ["secret/#"]}
`);
    assert.equal(decide(reversed, id(), 'subscribe', 'secret/x'), 'allow');
    assert.equal(decide(reversed, id(), 'read', 'secret/x'), 'allow');
  });

  it('publish rules do not grant reads, subscribe rules do not grant publishes', () => {
    const r = rules(`
rules:
  - {permission: allow, action: publish, topics: ["p/#"]}
  - {permission: allow, action: subscribe, topics: ["s/#"]}
`);
    assert.equal(decide(r, id(), 'read', 'p/x'), 'none');
    assert.equal(decide(r, id(), 'publish', 's/x'), 'none');
    assert.equal(decide(r, id(), 'subscribe', 'p/#'), 'none');
  });
});

describe('injection through identities', () => {
  const set = rules(`
rules:
  - {permission: allow, action: all, topics: ["users/%u/#", "devices/%c"]}
`);
  const cases: [what: string, who: Identity, access: 'publish' | 'subscribe', topic: string][] = [
    ['username "a/#" subscribing users/a/#', id({ username: 'a/#' }), 'subscribe', 'users/a/#'],
    ['username "a/#" publishing users/a/x', id({ username: 'a/#' }), 'publish', 'users/a/x'],
    ['username "#" subscribing users/#', id({ username: '#' }), 'subscribe', 'users/#'],
    ['username "+" subscribing users/+/x', id({ username: '+' }), 'subscribe', 'users/+/x'],
    ['username "+" publishing users/bob', id({ username: '+' }), 'publish', 'users/bob'],
    ['client id "+" subscribing devices/+', id({ clientId: '+' }), 'subscribe', 'devices/+'],
    ['client id "x/y" publishing devices/x/y', id({ clientId: 'x/y' }), 'publish', 'devices/x/y'],
    ['anonymous subscribing users//#', id({ username: undefined }), 'subscribe', 'users//#'],
    ['empty username publishing users//x', id({ username: '' }), 'publish', 'users//x'],
  ];
  for (const [what, who, access, topic] of cases) {
    it(`${what}: no rule applies`, () => {
      assert.equal(decide(set, who, access, topic), 'none');
    });
  }

  it('an unsafe username does not disable the %c filters of the same rule', () => {
    assert.equal(decide(set, id({ username: 'a/#', clientId: 'd1' }), 'publish', 'devices/d1'), 'allow');
  });
});

describe('identity matchers are ANDed; list items are ORed', () => {
  const set = rules(`
rules:
  - permission: allow
    action: publish
    username: [alice, "ops-*"]
    clientid: "sensor-*"
    address: [10.0.0.0/8, "2001:db8::/32"]
    cn: device-1
    topics: ["t"]
`);
  const good = { username: 'alice', clientId: 'sensor-1', cn: 'device-1', ip: '10.1.2.3' };
  const cases: [what: string, over: Partial<Identity> & { ip?: string }, expected: string][] = [
    ['everything matches', good, 'allow'],
    ['username from the list with a wildcard', { ...good, username: 'ops-eu' }, 'allow'],
    ['IPv4-mapped IPv6 peer against an IPv4 range', { ...good, ip: '::ffff:10.9.9.9' }, 'allow'],
    ['IPv6 peer in the IPv6 range', { ...good, ip: '2001:db8:1::5' }, 'allow'],
    ['another username', { ...good, username: 'bob' }, 'none'],
    ['anonymous', { ...good, username: undefined }, 'none'],
    ['another client id', { ...good, clientId: 'pump-1' }, 'none'],
    ['an address outside', { ...good, ip: '192.168.1.1' }, 'none'],
    ['an IPv6 address outside', { ...good, ip: '2001:db9::1' }, 'none'],
    ['no certificate', { ...good, cn: undefined }, 'none'],
    ['another certificate', { ...good, cn: 'device-2' }, 'none'],
    ['a peer that is not an IP address', { ...good, ip: 'in-process' }, 'none'],
  ];
  for (const [what, over, expected] of cases) {
    it(`${what}: ${expected}`, () => {
      assert.equal(decide(set, id(over), 'publish', 't'), expected);
    });
  }
});
