// The two controllers the use cases need, over the Kubelet's pods: a Service's endpoints (its
// selector, and publishNotReadyAddresses) and a Deployment's rolling update (`kubectl rollout
// restart` until `kubectl rollout status` would return).

import { type Kubelet, type Pod, type PodTemplate, type Termination } from '../helpers/kubelet.js';
import { waitFor } from '../helpers/wait.js';

export interface ServicePort {
  name?: string;
  port: number;
  targetPort?: number | string;
}

/** A Service's endpoints: matching pods that run, also unready ones with publishNotReadyAddresses. */
export class ClusterService {
  #next = 0;

  constructor(
    readonly spec: {
      selector: Record<string, string>;
      publishNotReadyAddresses?: boolean;
      ports: ServicePort[];
    },
    private readonly kubelet: Kubelet,
  ) {}

  endpoints(): Pod[] {
    return this.kubelet.pods.filter(
      (pod) =>
        !pod.terminating &&
        Object.entries(this.spec.selector).every(([k, v]) => pod.labels[k] === v) &&
        (pod.ready || (this.spec.publishNotReadyAddresses === true && pod.started)),
    );
  }

  /** The URL of the next endpoint (round robin) for the Service's port, as a client reaches it. */
  url(port = this.spec.ports[0]?.port): string {
    const servicePort = this.spec.ports.find((p) => p.port === port);
    if (!servicePort) throw new Error(`the Service has no port ${port}`);
    const endpoints = this.endpoints();
    const pod = endpoints[this.#next++ % Math.max(1, endpoints.length)];
    if (!pod) throw new Error('the Service has no endpoint: no client can reach any agent');
    return pod.address(servicePort.targetPort ?? servicePort.port);
  }
}

export interface DeploymentSpec {
  replicas: number;
  progressDeadlineSeconds?: number;
  strategy?: {
    type?: string;
    rollingUpdate?: { maxSurge?: number | string; maxUnavailable?: number | string };
  };
  template: PodTemplate;
}

/** The Deployment controller, for the shipped strategy: maxSurge 1, maxUnavailable 0. */
export class DeploymentController {
  pods: Pod[] = [];
  #revision = 0;

  constructor(
    readonly name: string,
    readonly spec: DeploymentSpec,
    private readonly kubelet: Kubelet,
  ) {
    const rolling = spec.strategy?.rollingUpdate;
    if (spec.strategy?.type !== 'RollingUpdate' || rolling?.maxSurge !== 1 || rolling.maxUnavailable !== 0)
      throw new Error('only the RollingUpdate strategy with maxSurge 1 and maxUnavailable 0 is simulated');
  }

  get #deadlineMs(): number {
    return ((this.spec.progressDeadlineSeconds ?? 600) * 1000) / this.kubelet.timeScale;
  }

  #podName(hash: string): string {
    return `${this.name}-${hash}-${Math.random().toString(36).slice(2, 7)}`;
  }

  async #startReady(hash: string): Promise<Pod> {
    const pod = await this.kubelet.runPod(this.spec.template, this.#podName(hash));
    await waitFor(() => pod.ready || pod.failures.length > 0, {
      what: `${pod.name} to pass its readiness probe (progressDeadlineSeconds)`,
      timeoutMs: this.#deadlineMs,
    });
    if (pod.failures.length > 0) throw new Error(`${pod.name}: ${pod.failures.join('; ')}`);
    return pod;
  }

  /** Creates the replicas and waits until each is ready (`kubectl rollout status`). */
  async create(): Promise<Pod[]> {
    const hash = `rev${++this.#revision}`;
    this.pods = await Promise.all(Array.from({ length: this.spec.replicas }, () => this.#startReady(hash)));
    return this.pods;
  }

  /**
   * `kubectl rollout restart` until `kubectl rollout status` returns: one new pod at a time, each
   * ready before an old one is terminated. Resolves with the old pods' terminations.
   */
  async restart(): Promise<Termination[]> {
    const hash = `rev${++this.#revision}`;
    const old = [...this.pods];
    const terminations: Termination[] = [];
    for (const oldPod of old) {
      const pod = await this.#startReady(hash);
      terminations.push(await this.kubelet.terminate(oldPod));
      this.pods = [...this.pods.filter((p) => p !== oldPod), pod];
    }
    return terminations;
  }
}
