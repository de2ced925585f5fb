// What the shipped manifests promise beyond the seed's use cases, on the same simulated cluster:
// a resume reaches a fleet in which no pod is ready (publishNotReadyAddresses), a pod that cannot
// reach its store is never put in service, and the settings the use cases rely on stay as they are.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';

import { Kubelet } from '../helpers/kubelet.js';
import { postgresTarget, sqliteTarget } from '../helpers/targets.js';
import { waitFor } from '../helpers/wait.js';
import {
  assertCleanExits,
  deployment,
  makeSecrets,
  manifests,
  service,
  SimulatedCluster,
  TIME_SCALE,
} from './cluster.js';
import { KUBERNETES, readObjects, type Secret } from './manifests.js';

for (const target of [sqliteTarget, postgresTarget]) {
  describe(`pods of the shipped Deployment, on ${target.name}`, { skip: target.skip ?? false }, () => {
    let cluster: SimulatedCluster;
    beforeEach(async () => (cluster = await SimulatedCluster.create(target)));
    afterEach(() => cluster.close());

    it('a cluster shutdown through agent-service: pods exit 0, come back stopped and unready, and a resume still reaches them', async (t) => {
      const running = await cluster.pods.create();
      const admin = cluster.tokens.admin;
      const shutdown = await cluster.viaService(
        'POST',
        '/api/cluster/shutdown?reason=Emergency&updated_by=admin',
        admin,
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
      await cluster.allInState(running, 'stopped');
      assert.ok(
        running.every((pod) => !pod.ready),
        'stopped agents fail readiness',
      );
      // No pod is ready, yet agent-service still has all three (publishNotReadyAddresses).
      assert.equal(cluster.agentService.endpoints().length, 3);
      const resume = await cluster.viaService(
        'POST',
        '/api/cluster/resume?reason=Issue+fixed&updated_by=admin',
        admin,
      );
      assert.equal(resume.status, 200);
      await cluster.allInState(running, 'running');
      await waitFor(() => running.every((pod) => pod.ready), { what: 'every pod ready again' });
      t.diagnostic(`${target.name}: resumed through agent-service while no pod was ready`);
      assertCleanExits(await cluster.kubelet.terminateAll(), t, 'pods');
    });

    if (target !== sqliteTarget) return;

    it('a pod that cannot reach its store stays live and never ready, so a rollout never puts it in service', async (t) => {
      const secrets = cluster.secrets;
      const unreachable = new Kubelet({
        fleet: cluster.fleet,
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
      const threshold = deployment.spec.template.spec.containers[0]?.readinessProbe?.failureThreshold ?? 3;
      await waitFor(() => pod.started && pod.probes.readiness >= threshold + 2, {
        what: 'the startup probe passed and readiness probed',
      });
      assert.equal(pod.ready, false, 'readiness fails while the agent waits for its store');
      assert.deepEqual(pod.failures, [], 'liveness does not restart it');
      assertCleanExits([await unreachable.terminate(pod)], t, 'the pod without a store');
    });

    // A client connection that has sent nothing yet (a pooled or pre-opened connection: a
    // browser's, a proxy's) used to keep app.close() waiting after the agent drained, past the
    // grace period; the CLI now closes every connection a second after the drain.
    it('a pod exits 0 within its grace period even while a client holds an unused connection', async () => {
      const [pod] = await cluster.pods.create();
      const socket = connect(Number(new URL(pod!.address('http')).port), '127.0.0.1');
      await once(socket, 'connect');
      try {
        const end = await cluster.kubelet.terminate(pod!);
        assert.equal(end.killed, false, `needed SIGKILL after ${end.graceMs} ms`);
        assert.equal(end.code, 0);
      } finally {
        socket.destroy();
      }
    });
  });
}

describe('the shipped manifests, as the simulated use cases rely on them', () => {
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
    const grace = deployment.spec.template.spec.terminationGracePeriodSeconds ?? 30;
    assert.ok(
      Number(env.SHUTDOWN_TIMEOUT) + 10 <= grace,
      'a draining agent must exit before the kubelet kills it',
    );
    const control = manifests.configMaps()['pulling-agent-control'];
    assert.equal(control?.state, undefined, 'no control file by default: a `running` one would undo pauses');
  });
});
