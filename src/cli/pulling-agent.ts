#!/usr/bin/env node
// `pulling-agent` (and `npm start`): one agent process configured by the environment. A thin layer
// over createAgent() and buildApp(): it validates the configuration, loads the handler module,
// listens, wires signals, and exits 0 after a graceful shutdown.

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import { createAgent } from '../agent/agent.js';
import { installSignalHandlers } from '../agent/local-control.js';
import type { DocumentHandler } from '../agent/pipeline.js';
import { AUTH_OFF_WARNING } from '../auth/tokens.js';
import { loadConfig, publicConfig } from '../config.js';
import { ConfigError, describeError } from '../errors.js';
import { buildApp } from '../http/app.js';
import { createLogger } from '../logging.js';
import { openStore } from '../stores/index.js';

const HELP = `Usage: pulling-agent [--help]

Runs one pulling agent, configured by environment variables (see docs/configuration.md):
  PORT (8000), STORE_URL (sqlite:./data/pulling-agent.db), HANDLER, BATCH_SIZE, CONCURRENCY, …
The HTTP API is described at /docs once it runs.`;

/**
 * A start-up failure whose message names its cause and the variable to change, printed as one
 * line without a stack trace.
 */
class StartupError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'StartupError';
  }
}

/** An error's message on one line: what a thrown module or a failed listen said. */
function oneLine(error: unknown): string {
  const text = error instanceof Error ? `${error.name}: ${describeError(error)}` : describeError(error);
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

async function loadHandler(path: string): Promise<DocumentHandler> {
  const file = resolve(path);
  if (!existsSync(file)) {
    throw new StartupError(
      `HANDLER=${path}: ${file} does not exist (a relative HANDLER is resolved from the working directory, ${process.cwd()})`,
      2,
    );
  }
  let module: { default?: unknown; handle?: unknown };
  try {
    module = (await import(pathToFileURL(file).href)) as { default?: unknown; handle?: unknown };
  } catch (error) {
    throw new StartupError(`HANDLER=${path}: importing ${file} failed: ${oneLine(error)}`);
  }
  const handler = module.default ?? module.handle;
  if (typeof handler !== 'function') {
    throw new ConfigError([
      `HANDLER=${path}: the module has no default export function (document, context) => …`,
    ]);
  }
  return handler as DocumentHandler;
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { help: { type: 'boolean', short: 'h' } }, strict: true });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const config = loadConfig();
  const logger = createLogger({ level: config.logLevel, format: config.logFormat });
  process.on('unhandledRejection', (reason) =>
    logger.error({ err: reason }, 'Unhandled rejection (the agent keeps running)'),
  );

  const { handler: handlerPath, ...settings } = config;
  const handler = handlerPath ? await loadHandler(handlerPath) : undefined;
  const storeInstance = await openStore(config.store);
  const agent = createAgent({ ...settings, ...(handler ? { handler } : {}), storeInstance, logger });
  if (config.apiTokens.length === 0) logger.warn(AUTH_OFF_WARNING);
  else
    logger.info(
      `Authentication on: ${config.apiTokens.length} token(s) (${config.apiTokens.map((t) => `${t.name}:${t.role}`).join(', ')})`,
    );
  const app = await buildApp({
    plane: agent.plane,
    view: agent.view,
    logger,
    publicConfig: publicConfig(config),
    security: {
      tokens: config.apiTokens,
      metricsAuth: config.metricsAuth,
      rateLimitCommands: config.rateLimitCommands,
      rateLimitDocuments: config.rateLimitDocuments,
    },
  });
  try {
    await app.listen({ port: config.port, host: config.host });
  } catch (error) {
    throw listenError(error, config.port, config.host);
  }
  const uninstall = installSignalHandlers(agent);

  try {
    await agent.start();
  } catch (error) {
    // Only a refusal that retrying cannot fix ends up here (a schema newer than this agent).
    logger.fatal(describeError(error));
    await app.close();
    return 1;
  }
  await agent.done;
  uninstall();
  // The agent has drained: a client that keeps a connection open (even one that never sent a
  // request) must not hold the exit past Kubernetes' grace period.
  const closing = app.close();
  setTimeout(() => app.server.closeAllConnections(), 1_000).unref();
  await closing;
  logger.info('Exiting');
  return 0;
}

/** What a failed listen means for PORT or HOST, or the error itself when it is neither. */
function listenError(error: unknown, port: number, host: string): unknown {
  const code = (error as { code?: unknown } | undefined)?.code;
  switch (code) {
    case 'EADDRINUSE':
      return new StartupError(
        `PORT=${port} is already in use by another process; set PORT to a free port (0 picks one)`,
      );
    case 'EACCES':
      return new StartupError(
        `PORT=${port} needs privileges this process does not have (ports below 1024 do); set PORT to 1024 or above`,
      );
    case 'EADDRNOTAVAIL':
      return new StartupError(
        `HOST=${host} is not an address of this machine; set HOST to one of its addresses (0.0.0.0 listens on all of them, 127.0.0.1 on loopback only)`,
      );
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
      return new StartupError(
        `HOST=${host} does not resolve to an address (${code}); set HOST to an address of this machine (0.0.0.0 listens on all of them) or a name that resolves to one`,
      );
    default:
      return error;
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof ConfigError) console.error(error.message);
    else console.error(`pulling-agent: ${describeError(error)}`);
    process.exit(
      error instanceof StartupError
        ? error.exitCode
        : error instanceof ConfigError ||
            (error as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION'
          ? 2
          : 1,
    );
  },
);
