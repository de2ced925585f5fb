// The seed's three use cases on the shipped manifests, without a cluster: the Deployment's pods run
// as local agent processes with the manifest's environment, probed and terminated as the kubelet
// does (test/helpers/kubelet.ts, on a clock TIME_SCALE times faster than the manifest's), reached
// through agent-service as the Service routes, with the API tokens of a Secret the test makes.
// (1) pause, `kubectl rollout restart`, `kubectl rollout status`, resume: nothing lost;
// (2) an emergency pause and resume while work flows; (3) the CronJobs' command lines, run with
// curl. Every pod must exit 0 within its grace period.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it, type TestContext } from 'node:test';

import type { Store } from '../../src/stores/types.js';
import {
  ClusterService,
  DeploymentController,
  expandVariables,
  type KeyValues,
  Kubelet,
  type Pod,
  resolveEnv,
  type Termination,
} from '../helpers/kubelet.js';
import { Fleet } from '../helpers/processes.js';
import { postgresTarget, sqliteTarget, type TargetDatabase } from '../helpers/targets.js';
import { waitFor } from '../helpers/wait.js';
import { runCommand } from './cronjob.js';
import {
  type CronJob,
  cronJobContainer,
  type Deployment,
  KUBERNETES,
  Manifests,
  type NetworkPolicy,
  readObjects,
  type Secret,
  type Service,
} from './manifests.js';

/** The simulated clock runs this many times faster than the manifests' seconds. */
const TIME_SCALE = 10;

const manifests = Manifests.base();
const deployment = manifests.get<Deployment>('Deployment', 'pulling-agent');
const service = manifests.get<Service>('Service', 'agent-service');

const token = () => randomBytes(18).toString('hex');

/** The two Secrets the base expects, with this test's store and fresh tokens. */
function makeSecrets(storeUrl: string) {
  const tokens = { cronjob: token(), deployBot: token(), admin: token() };
  const secrets: KeyValues = {
    'pulling-agent': {
      'store-url': storeUrl,
      tokens: `cronjob:operator:${tokens.cronjob}\ndeploy-bot:operator:${tokens.deployBot}\nadmin:admin:${tokens.admin}\n`,
    },
    'pulling-agent-cronjob': { token: tokens.cronjob },
  };
  return { tokens, secrets };
}

async function call<T = Record<string, unknown>>(
  url: string,
  method: string,
  path: string,
  bearer: string,
  body?: unknown,
): Promise<{ status: number; body: T }> {
  const response = await fetch(url + path, {
    method,
    headers: {
      authorization: `Bearer ${bearer}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, body: (await response.json()) as T };
}

function assertCleanExits(terminations: Termination[], t: TestContext, what: string): void {
  for (const end of terminations) {
    assert.equal(end.killed, false, `a pod needed SIGKILL after ${end.graceMs} ms; ${end.log}`);
    assert.equal(end.code, 0, `a pod exited with ${end.code} (${end.signal}); ${end.log}`);
    assert.ok(end.ms < end.graceMs);
  }
  const ms = terminations.map((e) => e.ms);
  t.diagnostic(
    `${what}: ${terminations.length} pods exited 0 after ${Math.min(...ms)}–${Math.max(...ms)} ms of SIGTERM ` +
      `(grace ${terminations[0]?.graceMs} ms = terminationGracePeriodSeconds / ${TIME_SCALE})`,
  );
}

for (const target of [sqliteTarget, postgresTarget]) {
  describe(
    `the seed's use cases on the shipped manifests, on ${target.name}`,
    { skip: target.skip ?? false },
    () => {
      let db: TargetDatabase;
      let store: Store;
      let fleet: Fleet;
      let kubelet: Kubelet;
      let pods: DeploymentController;
      let agentService: ClusterService;
      let tokens: ReturnType<typeof makeSecrets>['tokens'];
      let secrets: KeyValues;

      beforeEach(async () => {
        db = await target.create();
        store = await db.open();
        fleet = new Fleet({});
        const { STORE_URL: storeUrl, ...extraEnv } = db.env; // PG_SCHEMA: this test's own schema
        ({ tokens, secrets } = makeSecrets(storeUrl ?? ''));
        kubelet = new Kubelet({
          fleet,
          timeScale: TIME_SCALE,
          secrets,
          configMaps: manifests.configMaps(),
          extraEnv,
        });
        pods = new DeploymentController(deployment.metadata.name, deployment.spec, kubelet);
        agentService = new ClusterService(service.spec, kubelet);
      });

      afterEach(async () => {
        try {
          await kubelet.terminateAll();
          await fleet.stopAll();
        } finally {
          await store.close();
          await db.cleanup();
        }
        for (const pod of kubelet.pods) assert.deepEqual(pod.failures, [], `${pod.name}'s probes failed`);
      });

      /** Posts documents through the Service, as a producer with the deploy-bot token would. */
      async function feed(count: number, payload: Record<string, unknown> = {}): Promise<string[]> {
        const documents = Array.from({ length: count }, (_, n) => ({ n, ...payload }));
        const answer = await call<{ ids: string[] }>(
          agentService.url(),
          'POST',
          '/api/documents',
          tokens.deployBot,
          documents,
        );
        assert.equal(answer.status, 201);
        return answer.body.ids;
      }

      /** Every id handled exactly once by the record handler, across every pod that ever ran. */
      async function assertEachProcessedOnce(ids: string[]): Promise<void> {
        await waitFor(async () => (await store.countDocuments()).processed === ids.length, {
          what: `${ids.length} documents processed`,
          timeoutMs: 60_000,
        });
        const records = await fleet.processedRecords();
        assert.equal(records.length, ids.length, 'each document handled once');
        assert.deepEqual(new Set(records.map((r) => r.id)), new Set(ids));
      }

      async function allInState(running: Pod[], state: string): Promise<void> {
        // The seed's "verify all agents paused" loop, pod by pod (with a token now).
        await waitFor(
          async () => {
            const states = await Promise.all(
              running.map(
                async (pod) =>
                  (
                    await call<{ state: string; batch_in_flight: boolean }>(
                      pod.address('http'),
                      'GET',
                      '/api/agent/state',
                      tokens.deployBot,
                    )
                  ).body,
              ),
            );
            if (states.every((s) => s.state === state && !s.batch_in_flight)) return true;
            // waitFor reports the last error: the states that were not yet right.
            throw new Error(states.map((s) => `${s.state}${s.batch_in_flight ? ' (batch)' : ''}`).join(', '));
          },
          { what: `every pod ${state} with no batch in flight` },
        );
      }

      it('use case 1: pause through agent-service, roll every pod, wait for the rollout, resume: nothing lost', async (t) => {
        assert.equal(deployment.spec.replicas, 3);
        const first = await pods.create();
        const before = await feed(60, { delay_ms: 10 });
        await waitFor(async () => (await store.countDocuments()).processed >= 10, { what: 'work under way' });

        const pause = await call(
          agentService.url(),
          'POST',
          '/api/cluster/pause?reason=Deploying+v2.0&updated_by=deploy_script',
          tokens.deployBot,
        );
        assert.equal(pause.status, 200);
        assert.equal(
          pause.body.updated_by,
          'deploy-bot',
          "with tokens on, the history names the token's owner",
        );
        await allInState(first, 'paused');
        const processedAtPause = (await fleet.processedRecords()).length;
        const during = await feed(30);

        const started = Date.now();
        const terminations = await pods.restart();
        const rolloutMs = Date.now() - started;
        assertCleanExits(terminations, t, 'old pods');
        assert.equal(pods.pods.length, 3);
        assert.ok(
          pods.pods.every((pod) => pod.ready && !first.includes(pod)),
          'rollout status: 3 new pods ready',
        );
        await allInState(pods.pods, 'paused');
        t.diagnostic(
          `${target.name}: rollout restart of 3 paused pods completed in ${rolloutMs} ms (manifest clock: ` +
            `${((rolloutMs * TIME_SCALE) / 1000).toFixed(0)} s); the new pods adopted the pause and passed readiness`,
        );
        assert.equal(
          (await fleet.processedRecords()).length,
          processedAtPause,
          'nothing processed while paused',
        );

        const registry = await call<{ agents: { agent_id: string; state: string }[] }>(
          agentService.url(),
          'GET',
          '/api/cluster/agents',
          tokens.deployBot,
        );
        assert.deepEqual(
          new Set(registry.body.agents.map((a) => a.agent_id)),
          new Set(pods.pods.map((p) => p.name)),
          'the old pods left the registry, the new ones are in it under their pod names',
        );

        const resume = await call(
          agentService.url(),
          'POST',
          '/api/cluster/resume?reason=Deploy+complete&updated_by=deploy_script',
          tokens.deployBot,
        );
        assert.equal(resume.status, 200);
        await assertEachProcessedOnce([...before, ...during]);
        assertCleanExits(await kubelet.terminateAll(), t, 'new pods');
      });

      it('use case 2: an emergency pause stops the work on every pod at once; resume finishes it', async (t) => {
        const running = await pods.create();
        const ids = await feed(150, { delay_ms: 20 });
        await waitFor(async () => (await store.countDocuments()).processed >= 20, { what: 'work under way' });

        const sent = Date.now();
        const pause = await call(
          agentService.url(),
          'POST',
          '/api/cluster/pause?reason=Data+issue+detected&updated_by=monitoring',
          tokens.deployBot,
        );
        assert.equal(pause.status, 200);
        const state = await call<{ command: string; reason: string }>(
          agentService.url(),
          'GET',
          '/api/cluster/control-state',
          tokens.deployBot,
        );
        assert.equal(state.body.command, 'pause');
        assert.equal(state.body.reason, 'Data issue detected');
        await allInState(running, 'paused');
        t.diagnostic(
          `${target.name}: every pod paused and drained ${Date.now() - sent} ms after the command`,
        );
        const processed = (await fleet.processedRecords()).length;
        const counts = await store.countDocuments();
        assert.equal(counts.processing, 0);
        assert.ok(counts.pending > 0, 'work was left to do');

        // Three more readiness probes of every pod: nothing is processed meanwhile, and the paused
        // pods stay ready (READINESS_WHEN_PAUSED=ready), so they stay in agent-service.
        const probed = running.map((pod) => pod.probes.readiness);
        await waitFor(() => running.every((pod, i) => pod.probes.readiness >= (probed[i] ?? 0) + 3), {
          what: 'three more readiness probes of every pod',
        });
        assert.equal(
          (await fleet.processedRecords()).length,
          processed,
          'no document processed while paused',
        );
        assert.ok(running.every((pod) => pod.ready));

        const resume = await call(
          agentService.url(),
          'POST',
          '/api/cluster/resume?reason=Issue+fixed&updated_by=admin',
          tokens.admin,
        );
        assert.equal(resume.status, 200);
        assert.equal(resume.body.updated_by, 'admin');
        await assertEachProcessedOnce(ids);
        assertCleanExits(await kubelet.terminateAll(), t, 'pods');
      });

      it("use case 3: the CronJobs' command lines, run with curl against agent-service, pause and resume the fleet", async (t) => {
        const running = await pods.create();
        const serviceHost = `${service.metadata.name}:${service.spec.ports[0]?.port}`;
        const networkPolicy = manifests.get<NetworkPolicy>('NetworkPolicy', 'pulling-agent');
        const admitted = networkPolicy.spec.ingress.flatMap((rule) =>
          rule.from.map((f) => f.podSelector.matchLabels),
        );

        const run = async (cronJob: CronJob, overrides: Record<string, string> = {}) => {
          const container = cronJobContainer(cronJob);
          const env = {
            ...resolveEnv(container, {
              name: `${cronJob.metadata.name}-29000000-x7k2p`,
              secrets,
              configMaps: {},
            }),
            ...overrides,
          };
          const argv = [...(container.command ?? []), ...(container.args ?? [])].map((a) =>
            expandVariables(a, env),
          );
          assert.ok(
            argv.some((a) => a.startsWith(`http://${serviceHost}/`)),
            `the command calls ${serviceHost}`,
          );
          const address = new URL(agentService.url()).host;
          return runCommand(argv.map((a) => a.replace(`http://${serviceHost}/`, `http://${address}/`)));
        };

        for (const [name, schedule, command, state] of [
          ['nightly-pause', '0 2 * * *', 'pause', 'paused'],
          ['nightly-resume', '0 4 * * *', 'running', 'running'],
        ] as const) {
          const cronJob = manifests.get<CronJob>('CronJob', name);
          assert.equal(cronJob.spec.schedule, schedule);
          const labels = cronJob.spec.jobTemplate.spec.template.metadata.labels;
          assert.ok(
            admitted.some((want) => Object.entries(want).every(([k, v]) => labels[k] === v)),
            `the NetworkPolicy admits ${name}'s pods`,
          );
          assert.ok(
            !Object.entries(service.spec.selector).every(([k, v]) => labels[k] === v),
            `agent-service must not select ${name}'s pods`,
          );

          const result = await run(cronJob);
          assert.equal(result.code, 0, `${name} failed: ${result.stderr}${result.stdout}`);
          const answer = JSON.parse(result.stdout) as { command: string; updated_by: string; reason: string };
          assert.equal(answer.command, command);
          assert.equal(answer.updated_by, 'cronjob');
          assert.match(answer.reason, /^Nightly maintenance/);
          await allInState(running, state);
          t.diagnostic(`${name} (${schedule}) via ${result.via}: ${answer.command}, every pod ${state}`);
        }

        // A wrong token fails the Job (curl exits 22), so that Kubernetes retries it and it shows.
        const version = (await store.readControl()).version;
        const refused = await run(manifests.get<CronJob>('CronJob', 'nightly-pause'), { TOKEN: token() });
        assert.equal(refused.code, 22);
        assert.match(refused.stdout, /PA_UNAUTHORIZED/);
        assert.equal((await store.readControl()).version, version, 'nothing written');
        assertCleanExits(await kubelet.terminateAll(), t, 'pods');
      });

      it('a cluster shutdown through agent-service: pods exit 0, come back stopped and unready, and a resume still reaches them', async (t) => {
        const running = await pods.create();
        const shutdown = await call(
          agentService.url(),
          'POST',
          '/api/cluster/shutdown?reason=Emergency&updated_by=admin',
          tokens.admin,
        );
        assert.equal(shutdown.status, 200);
        // restartPolicy Always: each agent exits 0, the kubelet starts it again, and it waits, stopped.
        await waitFor(() => running.every((pod) => pod.exits.length === 1 && pod.started), {
          what: 'every container exited and restarted',
        });
        assert.deepEqual(
          running.map((pod) => pod.exits[0]),
          [0, 0, 0],
        );
        await allInState(running, 'stopped');
        assert.ok(
          running.every((pod) => !pod.ready),
          'stopped agents fail readiness',
        );
        // No pod is ready, yet agent-service still has all three (publishNotReadyAddresses).
        assert.equal(agentService.endpoints().length, 3);
        const resume = await call(
          agentService.url(),
          'POST',
          '/api/cluster/resume?reason=Issue+fixed&updated_by=admin',
          tokens.admin,
        );
        assert.equal(resume.status, 200);
        await allInState(running, 'running');
        await waitFor(() => running.every((pod) => pod.ready), { what: 'every pod ready again' });
        t.diagnostic(`${target.name}: resumed through agent-service while no pod was ready`);
        assertCleanExits(await kubelet.terminateAll(), t, 'pods');
      });

      if (target === sqliteTarget)
        it('a pod that cannot reach its store stays live and never ready, so a rollout never puts it in service', async (t) => {
          const unreachable = new Kubelet({
            fleet,
            timeScale: TIME_SCALE,
            secrets: {
              ...secrets,
              'pulling-agent': {
                ...secrets['pulling-agent'],
                'store-url': 'postgres://agent:x@127.0.0.1:1/none',
              },
            },
            configMaps: manifests.configMaps(),
          });
          const pod = await unreachable.runPod(deployment.spec.template, 'pulling-agent-rev9-nostore');
          const threshold =
            deployment.spec.template.spec.containers[0]?.readinessProbe?.failureThreshold ?? 3;
          await waitFor(() => pod.started && pod.probes.readiness >= threshold + 2, {
            what: 'the startup probe passed and readiness probed',
          });
          assert.equal(pod.ready, false, 'readiness fails while the agent waits for its store');
          assert.deepEqual(pod.failures, [], 'liveness does not restart it');
          assertCleanExits([await unreachable.terminate(pod)], t, 'the pod without a store');
        });

      // A client connection that has sent nothing yet (a pooled or pre-opened connection: a
      // browser's, a proxy's) keeps app.close() waiting after the agent drained, until the client
      // drops it or Node's headers timeout (60 s, checked every 30 s): longer than the grace period.
      const HANG =
        'src/cli/pulling-agent.ts: after agent.done, app.close() waits for open connections that sent no request';
      if (target === sqliteTarget)
        it(
          'a pod exits 0 within its grace period even while a client holds an unused connection',
          { todo: HANG },
          async () => {
            const [pod] = await pods.create();
            const socket = connect(Number(new URL(pod!.address('http')).port), '127.0.0.1');
            await once(socket, 'connect');
            try {
              const end = await kubelet.terminate(pod!);
              assert.equal(end.killed, false, `needed SIGKILL after ${end.graceMs} ms`);
              assert.equal(end.code, 0);
            } finally {
              socket.destroy();
            }
          },
        );
    },
  );
}

describe('the shipped manifests, as the use cases rely on them', () => {
  it('name the Secrets and keys that secret.example.yaml shows', () => {
    const { secrets } = makeSecrets('postgres://example');
    const example = readObjects(join(KUBERNETES, 'secret.example.yaml')) as Secret[];
    assert.deepEqual(
      Object.fromEntries(example.map((s) => [s.metadata.name, Object.keys(s.stringData ?? {}).sort()])),
      Object.fromEntries(Object.entries(secrets).map(([name, keys]) => [name, Object.keys(keys).sort()])),
    );
  });

  it('keep paused agents ready, publish unready ones, and give a grace period longer than SHUTDOWN_TIMEOUT', () => {
    const [container] = deployment.spec.template.spec.containers;
    const env = Object.fromEntries((container?.env ?? []).map((e) => [e.name, e.value]));
    assert.equal(env.READINESS_WHEN_PAUSED, 'ready', 'use case 1 needs paused pods to pass readiness');
    assert.equal(service.spec.publishNotReadyAddresses, true, 'a resume must reach unready (stopped) agents');
    assert.ok(
      Number(env.SHUTDOWN_TIMEOUT) + 10 <=
        (deployment.spec.template.spec.terminationGracePeriodSeconds ?? 30),
      'a draining agent must exit before the kubelet kills it',
    );
    assert.equal(
      manifests.configMaps()['pulling-agent-control']?.state,
      undefined,
      'no control file by default',
    );
  });
});
