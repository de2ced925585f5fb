// The shipped manifests as the tests read them: the files that deploy/kubernetes/base's
// kustomization lists, parsed with `yaml`. The base uses no kustomize transformation, so these
// objects are its build; tools/k8scheck checks them strictly against the API types.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { parseAllDocuments } from 'yaml';

import type { Container, PodTemplate } from '../helpers/kubelet.js';
import type { DeploymentSpec, ServicePort } from './controllers.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const KUBERNETES = join(ROOT, 'deploy/kubernetes');

export interface KubernetesObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
}

export interface Deployment extends KubernetesObject {
  spec: DeploymentSpec & { selector: { matchLabels: Record<string, string> } };
}

export interface Service extends KubernetesObject {
  spec: { selector: Record<string, string>; publishNotReadyAddresses?: boolean; ports: ServicePort[] };
}

export interface ConfigMap extends KubernetesObject {
  data?: Record<string, string>;
}

export interface Secret extends KubernetesObject {
  stringData?: Record<string, string>;
}

export interface NetworkPolicy extends KubernetesObject {
  spec: { ingress: { from: { podSelector: { matchLabels: Record<string, string> } }[] }[] };
}

export interface CronJob extends KubernetesObject {
  spec: { schedule: string; jobTemplate: { spec: { template: PodTemplate } } };
}

export function readObjects(path: string): KubernetesObject[] {
  return parseAllDocuments(readFileSync(path, 'utf8')).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${path}: ${doc.errors[0]?.message}`);
    return doc.toJS() as KubernetesObject;
  });
}

export class Manifests {
  constructor(readonly objects: KubernetesObject[]) {}

  /** The base, read through its kustomization, which must do nothing but list resources. */
  static base(): Manifests {
    const dir = join(KUBERNETES, 'base');
    const [kustomization] = readObjects(join(dir, 'kustomization.yaml')) as unknown as Record<
      string,
      unknown
    >[];
    const { apiVersion, kind, resources, ...rest } = kustomization ?? {};
    if (kind !== 'Kustomization' || !apiVersion || Object.keys(rest).length > 0)
      throw new Error(
        `the base's kustomization does more than list resources: ${Object.keys(rest).join(', ')}`,
      );
    return new Manifests((resources as string[]).flatMap((file) => readObjects(join(dir, file))));
  }

  get<T extends KubernetesObject>(kind: string, name: string): T {
    const found = this.objects.find((o) => o.kind === kind && o.metadata.name === name);
    if (!found) throw new Error(`no ${kind} ${name} in the manifests`);
    return found as T;
  }

  all<T extends KubernetesObject>(kind: string): T[] {
    return this.objects.filter((o) => o.kind === kind) as T[];
  }

  /** ConfigMaps' data by name, as the kubelet projects them into volumes. */
  configMaps(): Record<string, Record<string, string>> {
    return Object.fromEntries(this.all<ConfigMap>('ConfigMap').map((c) => [c.metadata.name, c.data ?? {}]));
  }
}

/** The one container of a CronJob's pods. */
export function cronJobContainer(cronJob: CronJob): Container {
  const [container] = cronJob.spec.jobTemplate.spec.template.spec.containers;
  if (!container) throw new Error(`CronJob ${cronJob.metadata.name} has no container`);
  return container;
}
