// How much is waiting: the documents by status (in all and per queue) and the age of the oldest one that is due, read
// from the store at most once per interval however often metrics are scraped or screens refresh
// (concurrent readers share one read), so that a fleet's dashboards cost the store a few queries,
// not one per scrape per agent.

import type { DocumentCounts } from '../model/documents.js';
import type { QueueCounts, Store } from '../stores/types.js';

export interface Backlog {
  counts: DocumentCounts;
  /** The counts of each queue that has documents, by name. */
  queues: QueueCounts[];
  /** Seconds since the oldest due pending document was stored (0 when none is waiting). */
  oldest_pending_age_seconds: number;
  /** When the store was read. */
  read_at: Date;
}

export class BacklogReader {
  #last: Backlog | null = null;
  #reading: Promise<Backlog> | null = null;

  constructor(
    private readonly store: () => Store,
    private readonly maxAgeMs = 5_000,
  ) {}

  /** The backlog, read again only when the last read is older than the interval. */
  read(): Promise<Backlog> {
    if (this.#last && Date.now() - this.#last.read_at.getTime() < this.maxAgeMs)
      return Promise.resolve(this.#last);
    this.#reading ??= this.#readNow().finally(() => {
      this.#reading = null;
    });
    return this.#reading;
  }

  /**
   * For scrapes and screens that must answer: the backlog, or the last one read (null if none)
   * when the store fails or takes longer than ms.
   */
  async readWithin(ms: number): Promise<Backlog | null> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), ms);
    });
    try {
      return (await Promise.race([this.read(), late])) ?? this.#last;
    } catch {
      return this.#last;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The last read, if any, without asking the store. */
  get last(): Backlog | null {
    return this.#last;
  }

  async #readNow(): Promise<Backlog> {
    const store = this.store();
    const [counts, queues, oldest] = await Promise.all([
      store.countDocuments(),
      store.countQueues(),
      store.listDocuments({ status: 'pending', limit: 1 }),
    ]);
    const first = oldest.documents[0];
    const readAt = new Date();
    const age = first ? Math.max(0, (readAt.getTime() - first.created_at.getTime()) / 1000) : 0;
    this.#last = {
      counts,
      queues,
      oldest_pending_age_seconds: Math.round(age * 10) / 10,
      read_at: readAt,
    };
    return this.#last;
  }
}
