// The exit codes agentctl promises to scripts, and the one error type its commands throw: a message
// that names the cause, and the code to exit with. Anything else that escapes is a bug (exit 1).

export const EXIT = {
  /** Done. */
  OK: 0,
  /** The agent could not be reached, answered with an error, or answered something unreadable. */
  ERROR: 1,
  /** The command line is wrong: unknown command or option, a bad value, unreadable input. */
  USAGE: 2,
  /** --wait (or watch --until-converged --timeout) ran out of time before the fleet converged. */
  WAIT_TIMEOUT: 3,
  /** watch ended by Ctrl-C (SIGINT) or SIGTERM, as a shell reports a SIGINT. */
  INTERRUPTED: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode = EXIT.ERROR,
    /** The server's JSON error body as received, which --json prints on stdout for scripts. */
    readonly answer?: string,
  ) {
    super(message);
    this.name = 'CliError';
  }
}
