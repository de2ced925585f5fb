// A kubelet in miniature, for tests that run the shipped Deployment's pods as local agent
// processes (through a Fleet). Pods get the manifest's environment (secrets and the downward API
// resolved, volumes materialised as folders) and are probed, restarted and terminated as the
// kubelet does: the startup probe first, then liveness and readiness with the manifest's periods
// and thresholds; a container that exits is started again; SIGTERM, then SIGKILL after the grace
// period. The Service and the Deployment's rollout are in test/kubernetes/controllers.ts.
//
// Time runs `timeScale` times faster than in the manifest: probe periods, delays, the grace
// period and every duration the agent is configured with (set by the manifest or defaulted) are
// divided by it. Probe timeouts are not scaled below 1 s, so a loaded machine does not fail them.

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { ENV_SCHEMA } from '../../src/config.js';
import type { AgentProcess, Fleet } from './processes.js';

export interface Probe {
  httpGet?: { path: string; port: number | string };
  initialDelaySeconds?: number;
  periodSeconds?: number;
  timeoutSeconds?: number;
  successThreshold?: number;
  failureThreshold?: number;
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    fieldRef?: { fieldPath: string };
    secretKeyRef?: { name: string; key: string; optional?: boolean };
    configMapKeyRef?: { name: string; key: string; optional?: boolean };
  };
}

export interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  ports?: { name?: string; containerPort: number }[];
  volumeMounts?: { name: string; mountPath: string }[];
  startupProbe?: Probe;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
}

interface KeyProjection {
  optional?: boolean;
  items?: { key: string; path: string }[];
}

export interface Volume {
  name: string;
  emptyDir?: object;
  configMap?: KeyProjection & { name: string };
  secret?: KeyProjection & { secretName: string };
}

export interface PodTemplate {
  metadata: { labels: Record<string, string> };
  spec: { containers: Container[]; volumes?: Volume[]; terminationGracePeriodSeconds?: number };
}

/** Where the pods' Secrets and ConfigMaps come from: name → key → value. */
export type KeyValues = Record<string, Record<string, string>>;

export interface Termination {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** From SIGTERM to exit. */
  ms: number;
  /** The grace period, scaled. */
  graceMs: number;
  killed: boolean;
  /** The pod's last log lines, when it needed SIGKILL or exited with another code than 0. */
  log?: string;
}

/** Kubernetes' $(VAR) expansion in command, args and env values; $$ escapes a $. */
export function expandVariables(text: string, env: Record<string, string>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (match, name: string | undefined) =>
    name === undefined ? '$' : (env[name] ?? match),
  );
}

/** Values of a Secret or ConfigMap, for a key reference; undefined when optional and missing. */
function lookUp(source: KeyValues, what: string, name: string, key: string, optional = false) {
  const value = source[name]?.[key];
  if (value === undefined && !optional) throw new Error(`${what} ${name} has no key ${key}`);
  return value;
}

/** One container's environment as the kubelet gives it (before the local adaptations). */
export function resolveEnv(
  container: Container,
  pod: { name: string; secrets: KeyValues; configMaps: KeyValues },
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of container.env ?? []) {
    const from = entry.valueFrom;
    let value: string | undefined;
    if (!from) value = expandVariables(entry.value ?? '', env);
    else if (from.fieldRef) {
      const fields: Record<string, string> = { 'metadata.name': pod.name, 'metadata.namespace': 'default' };
      value = fields[from.fieldRef.fieldPath];
      if (value === undefined) throw new Error(`fieldRef ${from.fieldRef.fieldPath} is not simulated`);
    } else if (from.secretKeyRef) {
      const { name, key, optional } = from.secretKeyRef;
      value = lookUp(pod.secrets, 'Secret', name, key, optional);
    } else if (from.configMapKeyRef) {
      const { name, key, optional } = from.configMapKeyRef;
      value = lookUp(pod.configMaps, 'ConfigMap', name, key, optional);
    } else throw new Error(`env ${entry.name}: valueFrom is not simulated`);
    if (value !== undefined) env[entry.name] = value;
  }
  return env;
}

/** Every duration variable of the agent (schema type number, in seconds), set or defaulted. */
const DURATIONS = Object.entries(
  ENV_SCHEMA.properties as Record<string, { type?: string; default?: unknown }>,
)
  .filter(([, schema]) => schema.type === 'number')
  .map(([name, schema]) => ({ name, default: Number(schema.default) }));
if (!DURATIONS.some((d) => d.name === 'SHUTDOWN_TIMEOUT'))
  throw new Error('kubelet.ts: the durations of src/config.ts are no longer numbers of seconds; update it');

export interface KubeletOptions {
  fleet: Fleet;
  timeScale: number;
  secrets: KeyValues;
  configMaps: KeyValues;
  /** Test-only additions to every pod's environment (e.g. PG_SCHEMA of a test database). */
  extraEnv?: Record<string, string>;
}

export class Pod {
  ready = false;
  started = false;
  terminating = false;
  readonly probes = { startup: 0, liveness: 0, readiness: 0 };
  /** Probe failures that made the kubelet kill the container: none is expected. */
  readonly failures: string[] = [];
  /** Exit codes of containers that ended by themselves and were restarted (restartPolicy Always). */
  readonly exits: (number | null)[] = [];
  /** A container restart in progress (from its exit until the new container runs). */
  restarting: Promise<void> | null = null;
  termination: Termination | undefined;
  #abort = new AbortController();
  #loops: Promise<void>[] = [];

  constructor(
    readonly name: string,
    readonly labels: Record<string, string>,
    public agent: AgentProcess,
    readonly container: Container,
    readonly graceMs: number,
    private readonly timeScale: number,
  ) {}

  /** The pod's address for a container port (number or name): the port it really listens on. */
  address(port: number | string): string {
    const declared = this.container.ports?.find((p) => p.name === port || p.containerPort === port);
    if (!declared) throw new Error(`${this.name}: no container port ${port}`);
    return this.agent.url;
  }

  /** Probes a new container: the startup probe first, then liveness and readiness. */
  startProbing(): void {
    this.#abort = new AbortController();
    this.#loops = [];
    this.started = false;
    this.ready = false;
    const { startupProbe, livenessProbe, readinessProbe } = this.container;
    const afterStartup = () => {
      this.started = true;
      if (livenessProbe) this.#loops.push(this.#probeLoop('liveness', livenessProbe));
      if (readinessProbe) this.#loops.push(this.#probeLoop('readiness', readinessProbe));
      else this.ready = true;
    };
    if (startupProbe) this.#loops.push(this.#probeLoop('startup', startupProbe, afterStartup));
    else afterStartup();
  }

  /** Stops probing once the probes in flight have answered. */
  async stopProbing(): Promise<void> {
    this.#abort.abort();
    await Promise.all(this.#loops);
  }

  #ms(seconds: number | undefined, fallback: number): number {
    return ((seconds ?? fallback) * 1000) / this.timeScale;
  }

  async #probeOnce(probe: Probe): Promise<boolean> {
    if (!probe.httpGet) throw new Error(`${this.name}: only httpGet probes are simulated`);
    const timeout = Math.max(1000, this.#ms(probe.timeoutSeconds, 1));
    try {
      // Not aborted when probing stops: a probe in flight ends as the kubelet's would. (An abort
      // during the connect leaves undici an unused pooled connection, and an agent's server
      // close waits for such a connection; see the todo test in test/kubernetes.)
      const response = await fetch(this.address(probe.httpGet.port) + probe.httpGet.path, {
        signal: AbortSignal.timeout(timeout),
      });
      await response.arrayBuffer();
      return response.status >= 200 && response.status < 400;
    } catch {
      return false;
    }
  }

  async #probeLoop(kind: keyof Pod['probes'], probe: Probe, onStarted?: () => void): Promise<void> {
    const signal = this.#abort.signal;
    const successThreshold = probe.successThreshold ?? 1;
    const failureThreshold = probe.failureThreshold ?? 3;
    let successes = 0;
    let failures = 0;
    try {
      await sleep(this.#ms(probe.initialDelaySeconds, 0), undefined, { signal });
      for (;;) {
        const ok = await this.#probeOnce(probe);
        if (signal.aborted) return;
        this.probes[kind]++;
        successes = ok ? successes + 1 : 0;
        failures = ok ? 0 : failures + 1;
        if (kind === 'startup' && successes >= successThreshold) return onStarted?.();
        if (kind === 'readiness') {
          if (successes >= successThreshold) this.ready = true;
          if (failures >= failureThreshold) this.ready = false;
        } else if (failures >= failureThreshold) {
          // The kubelet would kill and restart the container; a test only records it and fails.
          this.failures.push(`${kind} probe failed ${failures} times`);
          this.agent.child.kill('SIGTERM');
          return;
        }
        await sleep(this.#ms(probe.periodSeconds, 10), undefined, { signal });
      }
    } catch (error) {
      if (!signal.aborted) throw error;
    }
  }
}

export class Kubelet {
  readonly pods: Pod[] = [];

  constructor(private readonly options: KubeletOptions) {}

  get timeScale(): number {
    return this.options.timeScale;
  }

  /** Starts one pod of a template: its volumes, its environment, its process, then its probes. */
  async runPod(template: PodTemplate, name: string): Promise<Pod> {
    const { fleet, timeScale, secrets, configMaps } = this.options;
    const [container, ...sidecars] = template.spec.containers;
    if (!container || sidecars.length > 0) throw new Error('one container per pod is simulated');
    if (container.command || container.args)
      throw new Error("the image's entrypoint is simulated, not a command");
    const root = join(fleet.dir, name);
    const mounts = this.#mountVolumes(template, container, root);
    const env = resolveEnv(container, { name, secrets, configMaps });
    // One machine for every pod: each listens on a free loopback port, which address() maps
    // the container port to, and its paths lie under its own folder.
    const declaredPort = env.PORT ?? '8000';
    if (!container.ports?.some((p) => String(p.containerPort) === declaredPort))
      throw new Error(`PORT=${declaredPort} is not a container port of ${container.name}`);
    env.PORT = '0';
    env.HOST = '127.0.0.1';
    for (const [key, value] of Object.entries(env)) {
      const mount = mounts.find((m) => value === m.path || value.startsWith(`${m.path}/`));
      if (mount) env[key] = mount.local + value.slice(mount.path.length);
    }
    for (const duration of DURATIONS) {
      const seconds = env[duration.name] === undefined ? duration.default : Number(env[duration.name]);
      if (!Number.isFinite(seconds)) throw new Error(`${duration.name}=${env[duration.name]}: not seconds`);
      env[duration.name] = String(seconds / timeScale);
    }
    const graceMs = ((template.spec.terminationGracePeriodSeconds ?? 30) * 1000) / timeScale;
    const agent = await fleet.start({ ...env, ...this.options.extraEnv }, name);
    const pod = new Pod(name, template.metadata.labels, agent, container, graceMs, timeScale);
    this.pods.push(pod);
    pod.startProbing();
    this.#superviseContainer(pod, { ...env, ...this.options.extraEnv });
    return pod;
  }

  /**
   * restartPolicy Always: a container that exits by itself (a cluster shutdown makes every agent
   * exit 0) is started again in the same pod after the kubelet's first back-off (10 s, scaled).
   */
  #superviseContainer(pod: Pod, env: Record<string, string>): void {
    const agent = pod.agent;
    void agent.exited.then((code) => {
      if (pod.terminating || pod.agent !== agent) return;
      pod.exits.push(code);
      pod.restarting = (async () => {
        await pod.stopProbing();
        pod.ready = false;
        pod.started = false;
        await sleep(10_000 / this.options.timeScale);
        if (pod.terminating) return;
        pod.agent = await this.options.fleet.start(env, pod.name);
        pod.startProbing();
        this.#superviseContainer(pod, env);
      })()
        .catch((error: Error) => void pod.failures.push(`restart failed: ${error.message}`))
        .finally(() => (pod.restarting = null));
    });
  }

  /** Folders for the container's volume mounts, with the ConfigMaps' and Secrets' keys as files. */
  #mountVolumes(template: PodTemplate, container: Container, root: string) {
    const volumes = new Map((template.spec.volumes ?? []).map((v) => [v.name, v]));
    // Longest mount path first, so that /tmp/control wins over /tmp.
    const mounts = (container.volumeMounts ?? [])
      .map((m) => ({ path: m.mountPath.replace(/\/$/, ''), local: join(root, m.mountPath), name: m.name }))
      .sort((a, b) => b.path.length - a.path.length);
    for (const mount of mounts) {
      const volume = volumes.get(mount.name);
      if (!volume) throw new Error(`volume mount ${mount.name} has no volume`);
      mkdirSync(mount.local, { recursive: true });
      const projected = volume.configMap
        ? { source: this.options.configMaps[volume.configMap.name], what: 'ConfigMap', ...volume.configMap }
        : volume.secret
          ? { source: this.options.secrets[volume.secret.secretName], what: 'Secret', ...volume.secret }
          : undefined;
      if (!projected) {
        if (!volume.emptyDir) throw new Error(`volume ${volume.name}: only emptyDir, configMap and secret`);
        continue;
      }
      if (!projected.source) {
        if (projected.optional) continue;
        throw new Error(`${projected.what} of volume ${volume.name} does not exist`);
      }
      const source = projected.source;
      const items = projected.items ?? Object.keys(source).map((key) => ({ key, path: key }));
      for (const item of items) {
        const value = source[item.key];
        if (value === undefined) {
          if (projected.optional) continue;
          throw new Error(`${projected.what} of volume ${volume.name} has no key ${item.key}`);
        }
        mkdirSync(dirname(join(mount.local, item.path)), { recursive: true });
        writeFileSync(join(mount.local, item.path), value);
      }
    }
    return mounts;
  }

  /** Terminates a pod as the kubelet does: out of the Service, SIGTERM, SIGKILL after the grace. */
  async terminate(pod: Pod): Promise<Termination> {
    if (pod.termination) return pod.termination;
    pod.terminating = true;
    pod.ready = false;
    await pod.restarting;
    await pod.stopProbing();
    const sent = Date.now();
    const child = pod.agent.child;
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, pod.graceMs);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const code = await pod.agent.exited;
    clearTimeout(timer);
    pod.termination = { code, signal: child.signalCode, ms: Date.now() - sent, graceMs: pod.graceMs, killed };
    if (killed || code !== 0)
      pod.termination.log = `${pod.name}:\n${pod.agent.output().split('\n').slice(-40).join('\n')}`;
    return pod.termination;
  }

  /** Terminates every pod still running; the Fleet then finds nothing left behind. */
  async terminateAll(): Promise<Termination[]> {
    return Promise.all(this.pods.filter((p) => !p.termination).map((p) => this.terminate(p)));
  }
}
