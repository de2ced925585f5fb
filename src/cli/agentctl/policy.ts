// The fleet policy from the command line: `pause|resume --queue Q` and `throttle`, with the same
// audit fields, compare-and-set and --wait as the global commands, and the lines `status` shows.

import { type CommandOptions, type Context, postCommand } from './commands.js';
import { CliError, EXIT, type ExitCode } from './errors.js';
import { policyLines } from './format.js';
import type { PolicyAnswer } from './types.js';

/** The same audit fields, compare-and-set and --wait as the global commands. */
export type PolicyCommandOptions = CommandOptions;

export interface ThrottleOptions extends PolicyCommandOptions {
  queue?: string | undefined;
  rate?: string | undefined;
  concurrency?: string | undefined;
}

/** `agentctl pause --queue Q`, `agentctl resume --queue Q`, `agentctl throttle …`. */
export async function sendPolicyCommand(
  ctx: Context,
  path: 'pause' | 'resume' | 'throttle',
  query: Record<string, string | undefined>,
  options: PolicyCommandOptions,
): Promise<ExitCode> {
  const answer = await postCommand<PolicyAnswer>(ctx, path, options, query);
  const body = answer.body;
  if (body.policy_version === undefined) {
    // An agent older than queues takes /pause?queue= as a pause of the WHOLE fleet: say so loudly.
    throw new CliError(
      `the agent at ${ctx.client.base} does not know queues or the throttle (an older version?)` +
        (path === 'throttle'
          ? ''
          : `: it may have applied a ${path} of the WHOLE fleet; check agentctl status`),
    );
  }
  const timedOut = answer.status === 504;
  if (ctx.json) ctx.out(answer.text);
  else {
    ctx.out(body.message.replace(/; every agent applies it.*$/, '.'));
    for (const line of policyLines(ctx.style, body.policy)) ctx.out(`  ${line}`);
  }
  if (!options.wait) {
    if (!ctx.json && body.propagation) {
      const p = body.propagation;
      ctx.out(
        `${p.agents_registered} agent${p.agents_registered === 1 ? '' : 's'} registered; they apply it within ${p.expected_delay_seconds} s (${p.watch_mode}). To wait for them: --wait`,
      );
    }
    return EXIT.OK;
  }
  const barrier = body.barrier;
  if (!barrier)
    throw new CliError(`the agent at ${ctx.client.base} does not support --wait for policy commands`);
  if (!ctx.json) {
    const took =
      barrier.waited_ms < 1000
        ? `${Math.round(barrier.waited_ms)} ms`
        : `${(barrier.waited_ms / 1000).toFixed(1)} s`;
    const drained = body.command === 'pause' ? ` and finished every document of queue ${body.queue}` : '';
    ctx.out(
      timedOut
        ? `Not converged after ${took}.`
        : `All ${barrier.summary.live} live agents applied policy version ${body.policy_version}${drained} in ${took}.`,
    );
  }
  if (timedOut) {
    ctx.err(
      `agentctl: wait timed out after ${options.timeout} s: ${barrier.summary.stragglers.length} agent(s) had not complied: ` +
        `${barrier.summary.stragglers.join(', ')} (policy version ${body.policy_version} stays written)`,
    );
    return EXIT.WAIT_TIMEOUT;
  }
  return EXIT.OK;
}
