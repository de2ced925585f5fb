// A simulated cluster for one test: the base's Deployment run by a Kubelet on a test database,
// agent-service in front of its pods, and the two Secrets the base expects, made with that
// database's URL and fresh tokens. Clients reach the agents as the seed's commands do: through
// the Service, with a Bearer token.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { TestContext } from 'node:test';

import type { Store } from '../../src/stores/types.js';
import { type KeyValues, Kubelet, type Pod, type Termination } from '../helpers/kubelet.js';
import { Fleet } from '../helpers/processes.js';
import type { TargetDatabase, TestTarget } from '../helpers/targets.js';
import { waitFor } from '../helpers/wait.js';
import { ClusterService, DeploymentController } from './controllers.js';
import { type Deployment, Manifests, type Service } from './manifests.js';

/** The simulated clock runs this many times faster than the manifests' seconds. */
export const TIME_SCALE = 10;

export const manifests = Manifests.base();
export const deployment = manifests.get<Deployment>('Deployment', 'pulling-agent');
export const service = manifests.get<Service>('Service', 'agent-service');

export const token = (): string => randomBytes(18).toString('hex');

/** The two Secrets the base expects, with the test's store and fresh tokens. */
export function makeSecrets(storeUrl: string) {
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

export async function call<T = Record<string, unknown>>(
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

/** Every pod exited 0 by itself, before the kubelet's SIGKILL; says how fast. */
export function assertCleanExits(terminations: Termination[], t: TestContext, what: string): void {
  for (const end of terminations) {
    assert.equal(end.killed, false, `a pod needed SIGKILL after ${end.graceMs} ms; ${end.log}`);
    assert.equal(end.code, 0, `a pod exited with ${end.code} (${end.signal}); ${end.log}`);
    assert.ok(end.ms < end.graceMs);
  }
  const ms = terminations.map((e) => e.ms);
  t.diagnostic(
    `${what}: ${terminations.length} pod(s) exited 0 after ${Math.min(...ms)}–${Math.max(...ms)} ms of SIGTERM ` +
      `(grace ${terminations[0]?.graceMs} ms = terminationGracePeriodSeconds / ${TIME_SCALE})`,
  );
}

export class SimulatedCluster {
  readonly fleet = new Fleet({});
  readonly kubelet: Kubelet;
  readonly pods: DeploymentController;
  readonly agentService: ClusterService;

  private constructor(
    readonly db: TargetDatabase,
    readonly store: Store,
    readonly tokens: ReturnType<typeof makeSecrets>['tokens'],
    readonly secrets: KeyValues,
  ) {
    const { STORE_URL: _storeUrl, ...extraEnv } = db.env; // PG_SCHEMA: the test's own schema
    this.kubelet = new Kubelet({
      fleet: this.fleet,
      timeScale: TIME_SCALE,
      secrets,
      configMaps: manifests.configMaps(),
      extraEnv,
    });
    this.pods = new DeploymentController(deployment.metadata.name, deployment.spec, this.kubelet);
    this.agentService = new ClusterService(service.spec, this.kubelet);
  }

  static async create(target: TestTarget): Promise<SimulatedCluster> {
    const db = await target.create();
    const store = await db.open();
    const { tokens, secrets } = makeSecrets(db.env.STORE_URL ?? '');
    return new SimulatedCluster(db, store, tokens, secrets);
  }

  /** A request through agent-service, with the deploy-bot's token unless told otherwise. */
  viaService<T = Record<string, unknown>>(method: string, path: string, bearer = this.tokens.deployBot) {
    return call<T>(this.agentService.url(), method, path, bearer);
  }

  /** Posts documents through the Service, as a producer with the deploy-bot token would. */
  async feed(count: number, payload: Record<string, unknown> = {}): Promise<string[]> {
    const documents = Array.from({ length: count }, (_, n) => ({ n, ...payload }));
    const url = this.agentService.url();
    const answer = await call<{ ids: string[] }>(
      url,
      'POST',
      '/api/documents',
      this.tokens.deployBot,
      documents,
    );
    assert.equal(answer.status, 201);
    return answer.body.ids;
  }

  async processedCount(): Promise<number> {
    return (await this.fleet.processedRecords()).length;
  }

  /** Every id handled exactly once by the record handler, across every pod that ever ran. */
  async assertEachProcessedOnce(ids: string[]): Promise<void> {
    await waitFor(async () => (await this.store.countDocuments()).processed === ids.length, {
      what: `${ids.length} documents processed`,
      timeoutMs: 60_000,
    });
    const records = await this.fleet.processedRecords();
    assert.equal(records.length, ids.length, 'each document handled once');
    assert.deepEqual(new Set(records.map((r) => r.id)), new Set(ids));
  }

  /** The seed's "verify all agents paused" loop, pod by pod (with a token now). */
  async allInState(pods: Pod[], state: string): Promise<void> {
    type AgentState = { state: string; batch_in_flight: boolean };
    await waitFor(
      async () => {
        const states = await Promise.all(
          pods.map(
            async (pod) =>
              (await call<AgentState>(pod.address('http'), 'GET', '/api/agent/state', this.tokens.deployBot))
                .body,
          ),
        );
        if (states.every((s) => s.state === state && !s.batch_in_flight)) return true;
        // waitFor reports the last error: the states that were not right yet.
        throw new Error(states.map((s) => `${s.state}${s.batch_in_flight ? ' (batch)' : ''}`).join(', '));
      },
      { what: `every pod ${state} with no batch in flight` },
    );
  }

  /** Terminates what still runs, fails on anything left behind or any probe that failed. */
  async close(): Promise<void> {
    try {
      await this.kubelet.terminateAll();
      await this.fleet.stopAll();
    } finally {
      await this.store.close();
      await this.db.cleanup();
    }
    for (const pod of this.kubelet.pods) assert.deepEqual(pod.failures, [], `${pod.name}'s probes failed`);
  }
}
