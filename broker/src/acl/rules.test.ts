import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SmqError } from '../errors.js';
import { AclFileError, loadRulesFile, parseRules } from './rules.js';

describe('parseRules accepts', () => {
  it('the documented example', () => {
    const rules = parseRules(`
rules:
  - permission: allow          # allow | deny
    action: publish            # publish | subscribe | all
    username: alice
    clientid: "sensor-*"
    address: 10.0.0.0/8
    cn: device-1
    topics: ["sensors/%u/#", "cmd/%c"]
  - permission: deny
    action: all
    topics: ["#"]
`, 'acl.yaml');
    assert.equal(rules.length, 2);
    const [a, b] = rules;
    assert.ok(a && b);
    assert.deepEqual([a.index, a.allow, a.publish, a.subscribe], [0, true, true, false]);
    assert.deepEqual(a.usernames, ['alice']);
    assert.deepEqual(a.clientIds, ['sensor-*']);
    assert.deepEqual(a.cns, ['device-1']);
    assert.equal(a.addresses?.[0]?.source, '10.0.0.0/8');
    assert.deepEqual(a.topics.map((t) => t.source), ['sensors/%u/#', 'cmd/%c']);
    assert.deepEqual([b.index, b.allow, b.publish, b.subscribe], [1, false, true, true]);
    assert.equal(b.usernames, null);
    assert.equal(b.addresses, null);
  });

  it('an empty rules list, lists for identity matchers, and one topic as a string', () => {
    assert.deepEqual(parseRules('rules: []', 'acl.yaml'), []);
    const [r] = parseRules('rules: [{permission: allow, action: subscribe, username: [a, b], address: ["::1", 127.0.0.1], topics: "x/#"}]', 'acl.yaml');
    assert.deepEqual(r?.usernames, ['a', 'b']);
    assert.equal(r?.addresses?.length, 2);
    assert.deepEqual(r?.topics.map((t) => t.source), ['x/#']);
  });
});

describe('parseRules refuses, naming the file, the rule and the field', () => {
  const ok = 'permission: allow, action: all, topics: ["a"]';
  const cases: [what: string, yaml: string, rule: number, field: string, says: RegExp][] = [
    ['an empty file', '', -1, '', /expected a mapping with a "rules" list, got null/],
    ['a list at the top', '- a', -1, '', /"rules" list, got a list/],
    ['rules that are not a list', 'rules: {}', -1, '', /"rules" list/],
    ['an unknown top-level key', 'rules: []\nextra: 1', -1, '', /unknown top-level key "extra"/],
    ['broken YAML', 'rules: [', -1, '', /line \d+, column \d+: invalid YAML/],
    ['a duplicate key', `rules:\n  - {${ok}, action: publish}`, -1, '', /invalid YAML/],
    ['a rule that is not a mapping', 'rules: ["allow all"]', 0, '', /rules\[0\]: expected a mapping/],
    ['an unknown field', `rules: [{${ok}}, {${ok}, topic: "a"}]`, 1, 'topic', /rules\[1\], field "topic": unknown field/],
    ['a missing permission', 'rules: [{action: all, topics: [a]}]', 0, 'permission', /expected "allow" or "deny", got nothing/],
    ['a bad permission', 'rules: [{permission: yes, action: all, topics: [a]}]', 0, 'permission', /got "yes"/],
    ['a bad action', 'rules: [{permission: allow, action: pub, topics: [a]}]', 0, 'action', /"publish", "subscribe", "all", got "pub"/],
    ['no topics', 'rules: [{permission: allow, action: all}]', 0, 'topics', /non-empty list of topic filters/],
    ['an empty topics list', 'rules: [{permission: allow, action: all, topics: []}]', 0, 'topics', /non-empty list/],
    ['an invalid filter', 'rules: [{permission: allow, action: all, topics: [a, "a/#/b"]}]', 0, 'topics[1]', /valid MQTT topic filter.*"a\/#\/b"/],
    ['a partial-level wildcard', 'rules: [{permission: allow, action: all, topics: ["a+"]}]', 0, 'topics[0]', /valid MQTT topic filter/],
    ['a $share filter', 'rules: [{permission: allow, action: all, topics: ["$share/g/a/#"]}]', 0, 'topics[0]', /inside a shared subscription.*write "a\/#"/],
    ['a number as username', `rules: [{${ok}, username: 123}]`, 0, 'username', /non-empty string.*got 123/],
    ['an empty clientid', `rules: [{${ok}, clientid: ""}]`, 0, 'clientid', /got ""/],
    ['an empty cn list', `rules: [{${ok}, cn: []}]`, 0, 'cn', /got a list/],
    ['a bad address', `rules: [{${ok}, address: 10.0.0.0/40}]`, 0, 'address', /prefix length from 0 to 32/],
    ['a bad address in a list', `rules: [{${ok}, address: [10.0.0.0/8, nope]}]`, 0, 'address[1]', /IPv4 or IPv6 address.*got "nope"/],
    ['host bits in a range', `rules: [{${ok}, address: 10.0.0.1/8}]`, 0, 'address', /did you mean 10\.0\.0\.0\/8/],
  ];
  for (const [what, yaml, rule, field, says] of cases) {
    it(what, () => {
      assert.throws(() => parseRules(yaml, '/etc/smq/acl.yaml'), (err: unknown) => {
        assert.ok(err instanceof AclFileError);
        assert.ok(err instanceof SmqError);
        assert.equal(err.code, 'ERR_ACL_FILE');
        assert.equal(err.file, '/etc/smq/acl.yaml');
        assert.equal(err.rule, rule);
        assert.equal(err.field, field);
        assert.match(err.message, /^acl file error in \/etc\/smq\/acl\.yaml: /);
        assert.match(err.message, says);
        return true;
      });
    });
  }

  it('a file that cannot be read', () => {
    const dir = mkdtempSync(join(tmpdir(), 'smq-acl-'));
    assert.throws(() => loadRulesFile(join(dir, 'missing.yaml')), /acl file error in .*missing\.yaml: cannot read the file/);
    const file = join(dir, 'acl.yaml');
    writeFileSync(file, 'rules: []\n');
    assert.deepEqual(loadRulesFile(file).rules, []);
  });
});
