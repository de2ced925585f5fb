// What every scenario shares: its parameters (the full form and the quick one for CI), the agents'
// common environment, the result it returns (figures for the table, broken promises for the exit
// code), and the scope that releases everything it started, in reverse order, even on failure.

import type { ChaosFleet } from './agents.js';
import type { ChaosStore, StoreKind } from './stores.js';

/**
 * A backlog size, and the smaller one used on FerretDB: FerretDB 1.x on SQLite scans the whole
 * collection for each claim, completion and lease renewal, so its throughput falls with the
 * collection's size (about 20 documents/s beside 2,000 documents, 4/s beside 5,000, on this
 * machine); 100,000 documents would take days there.
 */
export interface Backlog {
  documents: number;
  ferretdbDocuments: number;
}

export interface Params {
  mode: 'full' | 'quick';
  outage: Backlog & { agents: number; handlerDelayMs: number; outageMs: number };
  kills: Backlog & {
    agents: number;
    kills: number;
    /** Kills are paced by progress, but never closer than minGapMs nor further than maxGapMs. */
    minGapMs: number;
    maxGapMs: number;
    leaseSeconds: number;
    /** FerretDB's renewals are too slow for the short lease (docs/chaos.md). */
    ferretdbLeaseSeconds: number;
    batchSize: number;
  };
  commanders: { agents: number; clients: number; commands: number };
  shutdown: {
    agents: number;
    shutdownTimeoutSeconds: number;
    handlerDelayMs: number;
    batchSize: number;
    concurrency: number;
    /** Allowed beyond the timeout (plus the command's propagation) before an exit counts as late. */
    marginMs: number;
  };
  steady: Backlog & { agents: number };
  poison: Backlog & {
    agents: number;
    leaseSeconds: number;
    ferretdbLeaseSeconds: number;
    maxRetries: number;
    /** How long a crashed agent stays down before it is started again (a pod's restart). */
    restartDelayMs: number;
    handlerDelayMs: number;
  };
  frozen: Backlog & {
    heartbeatSeconds: number;
    handlerDelayMs: number;
    batchSize: number;
    concurrency: number;
    barrierTimeoutSeconds: number;
    /** How long after the freeze the fleet is watched (paused) before the resume. */
    observeMs: number;
  };
  clock: Backlog & {
    agents: number;
    /** The offset of the one agent whose clock is moved (libfaketime), seconds. */
    offsetSeconds: number;
    leaseSeconds: number;
    handlerDelayMs: number;
    batchSize: number;
    /** How long the fleet works with the offset agent among it before the pause. */
    workMs: number;
  };
  replaced: Backlog & {
    handlerDelayMs: number;
    /** Documents posted through an agent after the file was replaced. */
    afterDocuments: number;
    /** How long the agents get to notice the new file. */
    noticeMs: number;
  };
}

/** The backlog for this store. */
export function backlog(b: Backlog, kind: StoreKind): number {
  return kind === 'mongodb' ? b.ferretdbDocuments : b.documents;
}

export const FULL: Params = {
  mode: 'full',
  outage: { agents: 3, documents: 6_000, ferretdbDocuments: 600, handlerDelayMs: 20, outageMs: 30_000 },
  kills: {
    agents: 4,
    documents: 100_000,
    ferretdbDocuments: 2_000,
    kills: 100,
    minGapMs: 2_000,
    maxGapMs: 5_000,
    leaseSeconds: 2,
    ferretdbLeaseSeconds: 10,
    batchSize: 20,
  },
  commanders: { agents: 5, clients: 10, commands: 1_000 },
  shutdown: {
    agents: 3,
    shutdownTimeoutSeconds: 5,
    handlerDelayMs: 15_000,
    batchSize: 4,
    concurrency: 2,
    marginMs: 2_000,
  },
  steady: { agents: 8, documents: 100_000, ferretdbDocuments: 2_000 },
  poison: {
    agents: 2,
    documents: 2_000,
    ferretdbDocuments: 200,
    leaseSeconds: 2,
    ferretdbLeaseSeconds: 10,
    maxRetries: 3,
    restartDelayMs: 1_000,
    handlerDelayMs: 5,
  },
  frozen: {
    documents: 3_000,
    ferretdbDocuments: 600,
    heartbeatSeconds: 5,
    handlerDelayMs: 100,
    batchSize: 10,
    concurrency: 2,
    barrierTimeoutSeconds: 60,
    observeMs: 120_000,
  },
  clock: {
    agents: 3,
    documents: 2_000,
    ferretdbDocuments: 300,
    // Behind in the full form, ahead in the quick one: each direction fools a different reader.
    offsetSeconds: -120,
    leaseSeconds: 10,
    handlerDelayMs: 50,
    batchSize: 10,
    workMs: 120_000,
  },
  replaced: {
    documents: 600,
    ferretdbDocuments: 0,
    handlerDelayMs: 100,
    afterDocuments: 100,
    noticeMs: 60_000,
  },
};

export const QUICK: Params = {
  mode: 'quick',
  outage: { agents: 3, documents: 1_000, ferretdbDocuments: 100, handlerDelayMs: 10, outageMs: 5_000 },
  kills: {
    agents: 4,
    documents: 2_000,
    ferretdbDocuments: 200,
    kills: 10,
    minGapMs: 700,
    maxGapMs: 2_000,
    leaseSeconds: 2,
    ferretdbLeaseSeconds: 10,
    batchSize: 10,
  },
  commanders: { agents: 5, clients: 10, commands: 100 },
  shutdown: {
    agents: 3,
    shutdownTimeoutSeconds: 2,
    handlerDelayMs: 6_000,
    batchSize: 4,
    concurrency: 2,
    marginMs: 2_000,
  },
  steady: { agents: 8, documents: 2_000, ferretdbDocuments: 200 },
  poison: {
    agents: 2,
    documents: 300,
    ferretdbDocuments: 60,
    leaseSeconds: 2,
    ferretdbLeaseSeconds: 10,
    maxRetries: 2,
    restartDelayMs: 500,
    handlerDelayMs: 5,
  },
  frozen: {
    documents: 600,
    ferretdbDocuments: 300,
    heartbeatSeconds: 5,
    handlerDelayMs: 200,
    batchSize: 4,
    concurrency: 2,
    barrierTimeoutSeconds: 30,
    observeMs: 25_000,
  },
  clock: {
    agents: 3,
    documents: 400,
    ferretdbDocuments: 80,
    offsetSeconds: 120,
    leaseSeconds: 10,
    handlerDelayMs: 50,
    batchSize: 5,
    workMs: 20_000,
  },
  replaced: {
    documents: 200,
    ferretdbDocuments: 0,
    handlerDelayMs: 100,
    afterDocuments: 40,
    noticeMs: 30_000,
  },
};

/** Every chaos agent: quick polls, a 1 s control polling interval, no rate limit in the way. */
export const FLEET_ENV: Record<string, string> = {
  POLL_INTERVAL: '0.2',
  HEARTBEAT_INTERVAL: '1',
  CONTROL_POLLING_INTERVAL: '1',
  RATE_LIMIT_COMMANDS: '1000000',
  RATE_LIMIT_DOCUMENTS: '1000000',
};

export interface Figure {
  /** Column header. */
  label: string;
  /** As printed. */
  text: string;
  /** For the JSON: the number (ms, counts) or flag behind the text. */
  value: number | string | boolean | null;
}

export interface ScenarioResult {
  scenario: string;
  store: string;
  figures: Figure[];
  /** Each promise broken, as one sentence naming it; empty when every promise held. */
  broken: string[];
  notes: string[];
  seconds: number;
}

export interface ScenarioContext {
  store: ChaosStore;
  params: Params;
  scope: Scope;
  /** Registers a fleet: the runner counts its crashes once the scope has stopped it. */
  watch(fleet: ChaosFleet): ChaosFleet;
  /** Progress for the terminal (stderr), prefixed with the scenario and the store. */
  log(message: string): void;
}

export interface Scenario {
  id: string;
  title: string;
  /** The stores it means something on; absent = every store. */
  stores?: StoreKind[];
  /**
   * The stores on which the quick form runs it unasked (CI); absent = all of `stores`. A scenario
   * whose promises cannot hold yet on a store is left out there, and runs with `--only=<id>`.
   */
  quickStores?: StoreKind[];
  run(ctx: ScenarioContext, result: ScenarioResult): Promise<void>;
}

/** Releases what a scenario started, last first; a failing release never hides the others. */
export class Scope {
  static readonly open = new Set<Scope>();
  readonly #releases: { what: string; release: () => Promise<void> | void }[] = [];
  readonly problems: string[] = [];

  constructor() {
    Scope.open.add(this);
  }

  defer(what: string, release: () => Promise<void> | void): void {
    this.#releases.push({ what, release });
  }

  async close(): Promise<void> {
    Scope.open.delete(this);
    for (const { what, release } of this.#releases.splice(0).reverse()) {
      try {
        await release();
      } catch (error) {
        this.problems.push(`${what}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  }
}

export const seconds = (ms: number, digits = 1): string => `${(ms / 1000).toFixed(digits)} s`;

export function figure(label: string, value: Figure['value'], text = String(value)): Figure {
  return { label, text, value };
}

/** Median and maximum of a list of durations, as "1.2 s / 3.4 s". */
export function medianMax(values: number[]): { median: number | null; max: number | null; text: string } {
  if (values.length === 0) return { median: null, max: null, text: '—' };
  const sorted = [...values].sort((a, b) => a - b);
  const median = sorted[Math.floor((sorted.length - 1) / 2)]!;
  const max = sorted[sorted.length - 1]!;
  return { median, max, text: `${seconds(median)} / ${seconds(max)}` };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
