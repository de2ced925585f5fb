// One worker process of a peer queue (BullMQ or graphile-worker) running a no-op job with
// concurrency 1, as a pulling agent runs CONCURRENCY=1. It connects, says `ready`, starts taking
// jobs on `go`, and on `stop` closes gracefully and reports when it handled its first and last job
// and how many. Forked by scenarios/throughput.ts; PEER, and REDIS_PORT or PG_URL and PG_SCHEMA, say what.
// With PEER_HANDLER=latency (scenarios/latency.ts) the job runs bench/fixtures/latency-handler.mjs,
// the very module the agents load as HANDLER, with PEER_CONCURRENCY jobs at a time, and the stats
// it reports are that module's (with each document's start time).

import { Worker } from 'bullmq';
import { Logger, run, type Runner } from 'graphile-worker';
import { Redis } from 'ioredis';

interface LatencyModule {
  default(document: { id: string; payload: unknown; attempts: number }): Promise<void>;
  stats(): Record<string, unknown>;
}

let first = 0;
let last = 0;
let count = 0;

function handled(): void {
  const now = performance.timeOrigin + performance.now();
  if (count === 0) first = now;
  last = now;
  count++;
}

function send(message: Record<string, unknown>): Promise<void> {
  return new Promise((resolve) => process.send?.(message, () => resolve()) ?? resolve());
}

async function main(): Promise<void> {
  const peer = process.env.PEER;
  const concurrency = Number(process.env.PEER_CONCURRENCY ?? 1);
  const latency =
    process.env.PEER_HANDLER === 'latency'
      ? ((await import(
          new URL('../../../bench/fixtures/latency-handler.mjs', import.meta.url).href
        )) as LatencyModule)
      : null;
  const report = () => (latency ? latency.stats() : { first, last, count });
  let start: () => Promise<void> | void;
  let stop: () => Promise<void>;
  if (peer === 'bullmq') {
    const worker = new Worker(
      'bench',
      async (job) => {
        // attemptsMade counts failed attempts (0 on the first), as pulling-agent's `attempts`.
        if (latency)
          await latency.default({ id: String(job.id), payload: job.data, attempts: job.attemptsMade });
        else handled();
      },
      {
        // BullMQ 6 takes an ioredis client (from ESM it cannot load ioredis itself).
        connection: new Redis({
          host: '127.0.0.1',
          port: Number(process.env.REDIS_PORT),
          maxRetriesPerRequest: null,
        }),
        concurrency,
        autorun: false,
      },
    );
    await worker.waitUntilReady();
    start = () => {
      void worker.run();
    };
    stop = () => worker.close();
  } else if (peer === 'graphile-worker') {
    let runner: Runner | null = null;
    start = async () => {
      runner = await run({
        connectionString: process.env.PG_URL as string,
        schema: process.env.PG_SCHEMA as string,
        concurrency,
        noHandleSignals: true,
        pollInterval: 1_000,
        logger: new Logger(() => () => undefined),
        taskList: {
          noop: async () => {
            handled();
          },
          // graphile-worker counts the attempt being made (1 on the first).
          latency: async (payload, helpers) => {
            await latency?.default({
              id: helpers.job.id,
              payload,
              attempts: helpers.job.attempts - 1,
            });
          },
        },
      });
    };
    stop = async () => {
      await (runner as Runner | null)?.stop();
    };
  } else {
    throw new Error(`unknown PEER ${peer}`);
  }
  process.on('message', (message: string) => {
    if (message === 'go') void start();
    if (message === 'stop') {
      void stop().then(async () => {
        await send({ type: 'stats', ...report() });
        process.exit(0);
      });
    }
  });
  await send({ type: 'ready' });
}

main().catch(async (error: unknown) => {
  await send({ type: 'error', message: String((error as Error).stack ?? error) });
  process.exit(1);
});
