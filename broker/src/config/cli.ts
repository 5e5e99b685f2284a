/**
 * Argument parsing for the `smq` command, kept pure (no printing, no exit) so that main.ts decides what to do
 * and tests can call it directly.
 */
import { SmqError } from '../errors.js';

/** The seed's usage text, printed by `smq --help` and after a usage error. */
export const USAGE = [
  'Usage: smq [options]',
  'Options:',
  '    -c, --config <file>   Configuration file',
  '    -v, --version         Show version',
  '    -h, --help            Show this message',
  '',
  '       smq passwd [-c | -D | -b] <file> <username> [<password>]',
  '                             Manage a password file (smq passwd -h for details)',
].join('\n');

/** A command line the broker cannot act on: an unknown option, or an option without its value. */
export class CliError extends SmqError {
  constructor(message: string) {
    super('ERR_CLI', message);
  }
}

/** What the command line asks for. `passwd` is reserved for the password-file tool; its args are its own. */
export type CliCommand =
  | { readonly command: 'run'; readonly configFile?: string }
  | { readonly command: 'version' }
  | { readonly command: 'help' }
  | { readonly command: 'passwd'; readonly args: readonly string[] };

/**
 * Parses the arguments after the script name (`process.argv.slice(2)`). The whole line is checked before
 * answering, so `smq -h --bogus` reports the typo rather than hiding it; then help wins over version, and
 * version over run.
 */
export function parseArgs(argv: readonly string[]): CliCommand {
  // A subcommand owns everything after it, so its options never clash with the broker's.
  if (argv[0] === 'passwd') return { command: 'passwd', args: argv.slice(1) };

  let configFile: string | undefined;
  let help = false;
  let version = false;

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    let file: string | undefined;
    if (arg === '-h' || arg === '--help') {
      help = true;
      continue;
    } else if (arg === '-v' || arg === '--version') {
      version = true;
      continue;
    } else if (arg === '-c' || arg === '--config') {
      const next = argv[i + 1];
      // `smq -c -v` is a forgotten file name, not a file called "-v".
      if (next === undefined || next.startsWith('-')) {
        throw new CliError(`option ${arg} needs a file argument: ${arg} <file>`);
      }
      file = next;
      i++;
    } else if (arg.startsWith('--config=')) {
      file = arg.slice('--config='.length);
    } else if (arg.startsWith('-')) {
      throw new CliError(`unknown option "${arg}"; run smq --help for the options`);
    } else {
      throw new CliError(`unexpected argument "${arg}"; the configuration file is given with -c <file>`);
    }

    if (file === '') throw new CliError('option --config needs a non-empty file name');
    if (configFile !== undefined) throw new CliError('the configuration file is given more than once');
    configFile = file;
  }

  if (help) return { command: 'help' };
  if (version) return { command: 'version' };
  return configFile === undefined ? { command: 'run' } : { command: 'run', configFile };
}
