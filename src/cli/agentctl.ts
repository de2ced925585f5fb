#!/usr/bin/env node
// `agentctl`: the operator's command line for a fleet of pulling agents. It talks only to an agent's
// HTTP API (docs/api.md); docs/agentctl.md describes every command. Exit codes scripts can rely on:
// 0 done, 1 error, 2 usage, 3 wait timed out (130 for a watch ended by Ctrl-C).

import { userInfo } from 'node:os';

import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';

import { EXPIRY_RULE, parseExpiry } from '../control/duration.js';
import { DOCUMENT_STATUSES } from '../model/documents.js';
import { MAX_CONCURRENCY_CAP, MAX_RATE, queueNameProblem } from '../model/policy.js';
import { SOFTWARE_VERSION } from '../version.js';
import { AgentClient } from './agentctl/client.js';
import {
  agents,
  type CommandOptions,
  type Context,
  discardDocument,
  enqueue,
  history,
  listDocuments,
  type ListOptions,
  listQueues,
  retryDocuments,
  sendCommand,
  showDocument,
  status,
  type Verb,
} from './agentctl/commands.js';
import { CliError, EXIT, type ExitCode } from './agentctl/errors.js';
import { styleFor } from './agentctl/format.js';
import { sendPolicyCommand, type ThrottleOptions } from './agentctl/policy.js';
import { watch } from './agentctl/watch.js';

interface GlobalOptions {
  url: string;
  token?: string;
  json?: boolean;
  timeoutMs: number;
}

// Option values are checked here, so that a bad one is a usage error (2) and never reaches the server.
function wholeNumber(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || n < min || n > max) {
      throw new InvalidArgumentError(`expected a whole number from ${min}${max < 1e15 ? ` to ${max}` : ''}.`);
    }
    return n;
  };
}

function queueName(value: string): string {
  const problem = queueNameProblem(value);
  if (problem !== null) throw new InvalidArgumentError(`${problem}.`);
  return value;
}

function seconds(max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+(\.\d+)?$/.test(value.trim()) || !(n >= 0.1) || n > max) {
      throw new InvalidArgumentError(`expected seconds from 0.1${max < 1e9 ? ` to ${max}` : ''}.`);
    }
    return n;
  };
}

function baseUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError('expected a URL such as http://localhost:8000.');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new InvalidArgumentError('expected http(s).');
  return value;
}

/** As the API allows in `reason` and `updated_by`: at most 256 characters, no control characters. */
function auditText(value: string): string {
  // eslint-disable-next-line no-control-regex
  if (value.length > 256 || /[\u0000-\u001f\u007f]/.test(value)) {
    throw new InvalidArgumentError('at most 256 characters, without control characters.');
  }
  return value;
}

/** Seconds (`7200`) or a duration (`2h`, `30m`, `90s`, `1h30m`): passed to the server as given. */
function expiry(value: string): string {
  // The server's own grammar and range, so that what passes here the server accepts too.
  if (parseExpiry(value) === null) throw new InvalidArgumentError(`${EXPIRY_RULE}.`);
  return value.trim();
}

function numberOrOff(value: string): string {
  if (value === 'off' || (/^\d+(\.\d+)?$/.test(value) && Number(value) > 0 && Number(value) <= MAX_RATE))
    return value;
  throw new InvalidArgumentError(`a number of documents per second above 0 and at most ${MAX_RATE}, or off`);
}

function wholeOrOff(value: string): string {
  if (value === 'off' || (/^\d+$/.test(value) && Number(value) >= 1 && Number(value) <= MAX_CONCURRENCY_CAP))
    return value;
  throw new InvalidArgumentError(`a whole number from 1 to ${MAX_CONCURRENCY_CAP}, or off`);
}

function osUser(): string {
  try {
    return userInfo().username;
  } catch {
    // No passwd entry (a container running as an arbitrary uid).
    return process.env.USER ?? process.env.LOGNAME ?? 'agentctl';
  }
}

const EXAMPLES = `
Examples:
  agentctl status
  agentctl pause --wait --reason deploy       pause, and return once every agent is paused and drained
  agentctl resume --reason "deploy done"
  agentctl watch --until-converged            follow the fleet until every agent applied the command
  agentctl history --limit 10 --json
  agentctl enqueue invoices.json              a JSON array, one JSON value, or JSON lines (- for stdin)
  agentctl documents list --status failed     the dead letters; then documents retry --all-failed
  agentctl documents --queue emails           one queue's documents; agentctl queues counts every queue

Exit codes: 0 done, 1 error, 2 usage error, 3 wait timed out. See docs/agentctl.md.`;

function buildProgram(run: (action: (ctx: Context) => Promise<ExitCode>, command: Command) => Promise<void>) {
  const program = new Command('agentctl')
    .description("Pause, resume, shut down and watch a fleet of pulling agents through any agent's HTTP API.")
    .version(SOFTWARE_VERSION, '-V, --version')
    .addOption(
      new Option('--url <url>', 'the agent to talk to (any agent of the fleet)')
        .env('AGENT_URL')
        .default('http://localhost:8000')
        .argParser(baseUrl),
    )
    .addOption(new Option('--token <token>', 'sent as Authorization: Bearer <token>').env('AGENT_TOKEN'))
    .option('--json', "machine output: the API's JSON, one document (watch: one JSON line per event)")
    .addOption(
      new Option('--timeout-ms <ms>', 'how long one HTTP request may take')
        .default(10_000)
        .argParser(wholeNumber(1)),
    )
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(text.replace(/^error: /, 'agentctl: ')) })
    .showHelpAfterError('(agentctl --help lists the commands and options)')
    .addHelpText('after', EXAMPLES);

  program
    .command('status')
    .description('the cluster command (who, when, why) and how far the agents are')
    .action((_options, command: Command) => run((ctx) => status(ctx), command));

  program
    .command('agents')
    .description('the agents table: state, applied version, heartbeat, batch, watch mode, host')
    .action((_options, command: Command) => run((ctx) => agents(ctx), command));

  program
    .command('history')
    .description('the audit trail of commands, newest first')
    .addOption(
      new Option('--limit <n>', 'how many entries (1–1000)').default(20).argParser(wholeNumber(1, 1000)),
    )
    .action((options: { limit: number }, command: Command) =>
      run((ctx) => history(ctx, options.limit), command),
    );

  const verbs: [Verb, string][] = [
    ['pause', 'pause every agent: they finish the documents they hold and claim nothing more'],
    ['resume', 'resume every agent'],
    ['shutdown', 'shut every agent down: each drains and exits 0 (asks nothing: made for scripts)'],
  ];
  for (const [verb, description] of verbs) {
    const sub = program
      .command(verb)
      .description(description)
      .addOption(new Option('--reason <text>', 'why (kept in the history)').argParser(auditText))
      .addOption(
        new Option('--by <who>', 'who (kept in the history)')
          .default(osUser(), 'your OS user name')
          .argParser(auditText),
      )
      .option(
        '--wait',
        'answer only once every live agent applied it' + (verb === 'resume' ? '' : ' and drained'),
      )
      .addOption(
        new Option('--timeout <seconds>', 'how long --wait waits before exit code 3')
          .default(30)
          .argParser(seconds(3600)),
      )
      .addOption(
        new Option(
          '--expected-version <n>',
          'fail (nothing written) unless the current version is n',
        ).argParser(wholeNumber(0)),
      );
    if (verb === 'pause') {
      sub.addOption(
        new Option('--expires-in <duration>', 'resume by itself after: seconds, or 2h, 30m, 90s').argParser(
          expiry,
        ),
      );
    }
    if (verb !== 'shutdown') {
      sub.addOption(
        new Option(
          '--queue <name>',
          `${verb} this queue only, across the fleet (agents stay running; a fleet policy command)`,
        ).argParser(queueName),
      );
    }
    sub.action((options: CommandOptions & { queue?: string }, command: Command) =>
      run(
        (ctx) =>
          options.queue !== undefined && verb !== 'shutdown'
            ? sendPolicyCommand(ctx, verb, { queue: options.queue }, options)
            : sendCommand(ctx, verb, options),
        command,
      ),
    );
  }

  program
    .command('throttle')
    .description(
      'cap the fleet (or one queue) at a rate, and each agent at a number of slots, without a restart',
    )
    .addOption(
      new Option('--rate <n|off>', 'documents per second for the whole fleet, or off').argParser(numberOrOff),
    )
    .addOption(
      new Option('--concurrency <n|off>', 'slots per agent at most, or off for CONCURRENCY').argParser(
        wholeOrOff,
      ),
    )
    .addOption(new Option('--queue <name>', 'throttle this queue only (with --rate)').argParser(queueName))
    .addOption(new Option('--reason <text>', 'why (kept in the history)').argParser(auditText))
    .addOption(
      new Option('--by <who>', 'who (kept in the history)')
        .default(osUser(), 'your OS user name')
        .argParser(auditText),
    )
    .option('--wait', 'answer only once every live agent applied it')
    .addOption(
      new Option('--timeout <seconds>', 'how long --wait waits before exit code 3')
        .default(30)
        .argParser(seconds(3600)),
    )
    .addOption(
      new Option('--expected-version <n>', 'fail (nothing written) unless the policy version is n').argParser(
        wholeNumber(0),
      ),
    )
    .addOption(
      new Option(
        '--expires-in <duration>',
        'remove the throttle by itself after: seconds, or 2h, 30m, 90s',
      ).argParser(expiry),
    )
    .action((options: ThrottleOptions, command: Command) =>
      run((ctx) => {
        if (options.rate === undefined && options.concurrency === undefined) {
          throw new CliError('give --rate (a number or off) or --concurrency (a number or off)', EXIT.USAGE);
        }
        return sendPolicyCommand(
          ctx,
          'throttle',
          { queue: options.queue, rate: options.rate, concurrency: options.concurrency },
          options,
        );
      }, command),
    );

  program
    .command('watch')
    .description('follow the fleet live (events stream); a table on a terminal, one line per event otherwise')
    .option(
      '--until-converged',
      'exit 0 once every live agent applied the command (and drained, for pause and shutdown)',
    )
    .addOption(
      new Option('--timeout <seconds>', 'give up with exit code 3 after this long').argParser(seconds(1e9)),
    )
    .action((options: { untilConverged?: boolean; timeout?: number }, command: Command) =>
      run(
        (ctx) => watch(ctx, { untilConverged: options.untilConverged === true, timeout: options.timeout }),
        command,
      ),
    );

  program
    .command('enqueue')
    .description('store documents as pending: a JSON array, one JSON value or JSON lines')
    .argument('[file]', 'the file to read; - or nothing for standard input')
    .addOption(
      new Option('--queue <queue>', 'the queue of every document (default: default)').argParser(queueName),
    )
    .action((file: string | undefined, options: { queue?: string }, command: Command) =>
      run((ctx) => enqueue(ctx, file, options.queue), command),
    );

  program
    .command('queues')
    .description('every queue that has documents, with how many are in each status')
    .action((_options, command: Command) => run((ctx) => listQueues(ctx), command));

  const documents = program
    .command('documents')
    .description('list, show, retry and discard documents (failed ones above all)');
  documents
    // The default: `agentctl documents --queue emails` lists too.
    .command('list', { isDefault: true })
    .description('a page of documents: id, status, queue, attempts, updated, error; the next page as a hint')
    .addOption(new Option('--status <status>', 'only this status').choices([...DOCUMENT_STATUSES]))
    .addOption(new Option('--queue <queue>', "only this queue's documents").argParser(queueName))
    .addOption(new Option('--limit <n>', 'documents per page (1–500)').argParser(wholeNumber(1, 500)))
    .addOption(new Option('--cursor <cursor>', 'the page after this cursor (from the hint line)'))
    .action((options: ListOptions, command: Command) => run((ctx) => listDocuments(ctx, options), command));
  documents
    .command('show')
    .description('one document: status, attempts, last error, when it is due, key, payload')
    .argument('<id>', 'the document id')
    .action((id: string, _options, command: Command) => run((ctx) => showDocument(ctx, id), command));
  documents
    .command('retry')
    .description('put a failed document (or every one) back to pending, due now, with a fresh retry budget')
    .argument('[id]', 'the failed document to retry')
    .option('--all-failed', 'retry every failed document')
    .addOption(
      new Option('--by <who>', 'who, for the agent log')
        .default(osUser(), 'your OS user name')
        .argParser(auditText),
    )
    .action((id: string | undefined, options: { allFailed?: boolean; by: string }, command: Command) => {
      if ((id === undefined) === (options.allFailed !== true)) {
        command.error('agentctl: give a document id or --all-failed (one of them)', { exitCode: EXIT.USAGE });
      }
      return run(
        (ctx) => retryDocuments(ctx, id === undefined ? { allFailed: true } : { id }, options.by),
        command,
      );
    });
  documents
    .command('discard')
    .description('discard one document (refused while it is processing)')
    .argument('<id>', 'the document id')
    .addOption(
      new Option('--by <who>', 'who, for the agent log')
        .default(osUser(), 'your OS user name')
        .argParser(auditText),
    )
    .action((id: string, options: { by: string }, command: Command) =>
      run((ctx) => discardDocument(ctx, id, options.by), command),
    );

  return program;
}

async function main(argv: string[]): Promise<number> {
  let exitCode: ExitCode = EXIT.OK;
  let json = false;
  const program = buildProgram(async (action, command) => {
    const globals = command.optsWithGlobals<GlobalOptions>();
    json = globals.json === true;
    const ctx: Context = {
      client: new AgentClient({ url: globals.url, token: globals.token, timeoutMs: globals.timeoutMs }),
      json,
      timeoutMs: globals.timeoutMs,
      style: styleFor(process.stdout),
      out: (text) => process.stdout.write(`${text}\n`),
      err: (text) => process.stderr.write(`${text}\n`),
    };
    exitCode = await action(ctx);
  });
  try {
    await program.parseAsync(argv);
    return exitCode;
  } catch (error) {
    // Help and --version end with a CommanderError of exit code 0; every other one is a usage error.
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    if (error instanceof CliError) {
      if (json && error.answer !== undefined) process.stdout.write(`${error.answer}\n`);
      console.error(`agentctl: ${error.message}`);
      return error.exitCode;
    }
    console.error(
      `agentctl: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
    );
    return EXIT.ERROR;
  }
}

// A reader that went away (agentctl watch | head) ends the output, not with a stack trace.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : EXIT.OK);
  throw error;
});
// exitCode rather than exit(): stdout, when piped, is flushed before the process ends.
process.exitCode = await main(process.argv);
