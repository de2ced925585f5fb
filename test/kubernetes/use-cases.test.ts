// The seed's three use cases on the shipped manifests, without a cluster (test/kubernetes/cluster.ts:
// the Deployment's pods as local agent processes, probed and terminated as the kubelet does on a
// clock TIME_SCALE times faster, reached through agent-service with tokens):
// (1) pause, `kubectl rollout restart`, `kubectl rollout status`, resume: nothing lost;
// (2) an emergency pause and resume while work flows; (3) the CronJobs' command lines, run with
// curl. Every pod must exit 0 within its grace period.

import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';

import { expandVariables, resolveEnv } from '../helpers/kubelet.js';
import { postgresTarget, sqliteTarget } from '../helpers/targets.js';
import { waitFor } from '../helpers/wait.js';
import {
  assertCleanExits,
  deployment,
  manifests,
  service,
  SimulatedCluster,
  TIME_SCALE,
  token,
} from './cluster.js';
import { runCommand } from './cronjob.js';
import { type CronJob, cronJobContainer, type NetworkPolicy } from './manifests.js';

for (const target of [sqliteTarget, postgresTarget]) {
  describe(
    `the seed's use cases on the shipped manifests, on ${target.name}`,
    { skip: target.skip ?? false },
    () => {
      let cluster: SimulatedCluster;
      beforeEach(async () => (cluster = await SimulatedCluster.create(target)));
      afterEach(() => cluster.close());

      it('use case 1: pause through agent-service, roll every pod, wait for the rollout, resume: nothing lost', async (t) => {
        const { pods, store } = cluster;
        assert.equal(deployment.spec.replicas, 3);
        const first = await pods.create();
        const before = await cluster.feed(60, { delay_ms: 10 });
        await waitFor(async () => (await store.countDocuments()).processed >= 10, { what: 'work under way' });

        const pause = await cluster.viaService(
          'POST',
          '/api/cluster/pause?reason=Deploying+v2.0&updated_by=deploy_script',
        );
        assert.equal(pause.status, 200);
        assert.equal(
          pause.body.updated_by,
          'deploy-bot',
          "with tokens on, the history names the token's owner",
        );
        await cluster.allInState(first, 'paused');
        const processedAtPause = await cluster.processedCount();
        const during = await cluster.feed(30);

        const started = Date.now();
        const terminations = await pods.restart();
        const rolloutMs = Date.now() - started;
        assertCleanExits(terminations, t, 'old pods');
        assert.equal(pods.pods.length, 3);
        assert.ok(
          pods.pods.every((pod) => pod.ready && !first.includes(pod)),
          'rollout status: 3 new pods ready',
        );
        await cluster.allInState(pods.pods, 'paused');
        t.diagnostic(
          `${target.name}: rollout restart of 3 paused pods completed in ${rolloutMs} ms (manifest clock: ` +
            `${((rolloutMs * TIME_SCALE) / 1000).toFixed(0)} s); the new pods adopted the pause and passed readiness`,
        );
        assert.equal(await cluster.processedCount(), processedAtPause, 'nothing processed while paused');

        const registry = await cluster.viaService<{ agents: { agent_id: string }[] }>(
          'GET',
          '/api/cluster/agents',
        );
        assert.deepEqual(
          new Set(registry.body.agents.map((a) => a.agent_id)),
          new Set(pods.pods.map((p) => p.name)),
          'the old pods left the registry, the new ones are in it under their pod names',
        );

        const resume = await cluster.viaService(
          'POST',
          '/api/cluster/resume?reason=Deploy+complete&updated_by=deploy_script',
        );
        assert.equal(resume.status, 200);
        await cluster.assertEachProcessedOnce([...before, ...during]);
        assertCleanExits(await cluster.kubelet.terminateAll(), t, 'new pods');
      });

      it('use case 2: an emergency pause stops the work on every pod at once; resume finishes it', async (t) => {
        const { store } = cluster;
        const running = await cluster.pods.create();
        const ids = await cluster.feed(150, { delay_ms: 20 });
        await waitFor(async () => (await store.countDocuments()).processed >= 20, { what: 'work under way' });

        const sent = Date.now();
        const pause = await cluster.viaService(
          'POST',
          '/api/cluster/pause?reason=Data+issue+detected&updated_by=monitoring',
        );
        assert.equal(pause.status, 200);
        const state = await cluster.viaService<{ command: string; reason: string }>(
          'GET',
          '/api/cluster/control-state',
        );
        assert.equal(state.body.command, 'pause');
        assert.equal(state.body.reason, 'Data issue detected');
        await cluster.allInState(running, 'paused');
        t.diagnostic(
          `${target.name}: every pod paused and drained ${Date.now() - sent} ms after the command`,
        );
        const processed = await cluster.processedCount();
        const counts = await store.countDocuments();
        assert.equal(counts.processing, 0);
        assert.ok(counts.pending > 0, 'work was left to do');

        // Three more readiness probes of every pod: nothing is processed meanwhile, and the paused
        // pods stay ready (READINESS_WHEN_PAUSED=ready), so they stay in agent-service.
        const probed = running.map((pod) => pod.probes.readiness);
        await waitFor(() => running.every((pod, i) => pod.probes.readiness >= (probed[i] ?? 0) + 3), {
          what: 'three more readiness probes of every pod',
        });
        assert.equal(await cluster.processedCount(), processed, 'no document processed while paused');
        assert.ok(running.every((pod) => pod.ready));

        const resume = await cluster.viaService(
          'POST',
          '/api/cluster/resume?reason=Issue+fixed&updated_by=admin',
          cluster.tokens.admin,
        );
        assert.equal(resume.status, 200);
        assert.equal(resume.body.updated_by, 'admin');
        await cluster.assertEachProcessedOnce(ids);
        assertCleanExits(await cluster.kubelet.terminateAll(), t, 'pods');
      });

      it("use case 3: the CronJobs' command lines, run with curl against agent-service, pause and resume the fleet", async (t) => {
        const running = await cluster.pods.create();
        const serviceHost = `${service.metadata.name}:${service.spec.ports[0]?.port}`;
        const networkPolicy = manifests.get<NetworkPolicy>('NetworkPolicy', 'pulling-agent');
        const admitted = networkPolicy.spec.ingress.flatMap((rule) =>
          rule.from.map((f) => f.podSelector.matchLabels),
        );

        // The container's command line with the kubelet's $(VAR) expansion, sent to the address
        // agent-service routes to instead of the cluster's DNS name.
        const run = async (cronJob: CronJob, overrides: Record<string, string> = {}) => {
          const container = cronJobContainer(cronJob);
          const pod = {
            name: `${cronJob.metadata.name}-29000000-x7k2p`,
            secrets: cluster.secrets,
            configMaps: {},
          };
          const env = { ...resolveEnv(container, pod), ...overrides };
          const argv = [...(container.command ?? []), ...(container.args ?? [])].map((a) =>
            expandVariables(a, env),
          );
          assert.ok(
            argv.some((a) => a.startsWith(`http://${serviceHost}/`)),
            `the command calls ${serviceHost}`,
          );
          const address = new URL(cluster.agentService.url()).host;
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
          await cluster.allInState(running, state);
          t.diagnostic(`${name} (${schedule}) via ${result.via}: ${answer.command}, every pod ${state}`);
        }

        // A wrong token fails the Job (curl exits 22), so that Kubernetes retries it and it shows.
        const version = (await cluster.store.readControl()).version;
        const refused = await run(manifests.get<CronJob>('CronJob', 'nightly-pause'), { TOKEN: token() });
        assert.equal(refused.code, 22);
        assert.match(refused.stdout, /PA_UNAUTHORIZED/);
        assert.equal((await cluster.store.readControl()).version, version, 'nothing written');
        assertCleanExits(await cluster.kubelet.terminateAll(), t, 'pods');
      });
    },
  );
}
