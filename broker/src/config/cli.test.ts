import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { SmqError } from '../errors.js';
import { CliError, USAGE, parseArgs } from './cli.js';

function assertCliError(argv: readonly string[], message: RegExp): void {
  assert.throws(
    () => parseArgs(argv),
    (err: unknown) => {
      assert.ok(err instanceof CliError);
      assert.ok(err instanceof SmqError);
      assert.equal(err.code, 'ERR_CLI');
      assert.match(err.message, message);
      return true;
    },
  );
}

describe('parseArgs', () => {
  it('runs with built-in defaults when given nothing', () => {
    assert.deepEqual(parseArgs([]), { command: 'run' });
  });

  it('takes the configuration file from -c, --config and --config=', () => {
    assert.deepEqual(parseArgs(['-c', 'smq.yaml']), { command: 'run', configFile: 'smq.yaml' });
    assert.deepEqual(parseArgs(['--config', '/etc/smq.yaml']), { command: 'run', configFile: '/etc/smq.yaml' });
    assert.deepEqual(parseArgs(['--config=/etc/smq.yaml']), { command: 'run', configFile: '/etc/smq.yaml' });
  });

  it('answers version and help, help first', () => {
    assert.deepEqual(parseArgs(['-v']), { command: 'version' });
    assert.deepEqual(parseArgs(['--version']), { command: 'version' });
    assert.deepEqual(parseArgs(['-h']), { command: 'help' });
    assert.deepEqual(parseArgs(['--help']), { command: 'help' });
    assert.deepEqual(parseArgs(['-c', 'smq.yaml', '-v']), { command: 'version' });
    assert.deepEqual(parseArgs(['-v', '-h']), { command: 'help' });
  });

  it('hands everything after passwd to the passwd subcommand', () => {
    assert.deepEqual(parseArgs(['passwd']), { command: 'passwd', args: [] });
    assert.deepEqual(parseArgs(['passwd', '-c', 'pw', 'alice']), { command: 'passwd', args: ['-c', 'pw', 'alice'] });
  });

  it('rejects unknown options', () => {
    assertCliError(['--conf', 'x.yaml'], /unknown option "--conf"/);
    assertCliError(['-x'], /unknown option "-x"/);
    assertCliError(['-h', '--bogus'], /unknown option "--bogus"/);
  });

  it('rejects -c without a file', () => {
    assertCliError(['-c'], /option -c needs a file argument/);
    assertCliError(['--config'], /option --config needs a file argument/);
    assertCliError(['-c', '-v'], /option -c needs a file argument/);
    assertCliError(['--config='], /non-empty file name/);
  });

  it('rejects positional arguments and a repeated file', () => {
    assertCliError(['smq.yaml'], /unexpected argument "smq\.yaml".*-c <file>/);
    assertCliError(['-c', 'a.yaml', '--config=b.yaml'], /more than once/);
  });
});

describe('USAGE', () => {
  it('starts with the seed usage text and names the passwd command', () => {
    assert.ok(
      USAGE.startsWith(
        'Usage: smq [options]\n' +
          'Options:\n' +
          '    -c, --config <file>   Configuration file\n' +
          '    -v, --version         Show version\n' +
          '    -h, --help            Show this message\n',
      ),
    );
    assert.match(USAGE, /smq passwd/);
  });
});
