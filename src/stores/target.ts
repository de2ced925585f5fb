// Which store to open, as the configuration names it (STORE_URL and friends, parsed in config.ts).

export type StoreTarget =
  | { kind: 'sqlite'; path: string }
  | { kind: 'postgres'; url: string; schema: string }
  | {
      kind: 'mongodb';
      url: string;
      database: string | undefined;
      collection: string;
      /** QUEUE_FIELD; `queue` when absent. */
      queueField?: string;
      /** MONGODB_WATCH_DOCUMENTS: a change stream on the collection wakes idle agents (default true). */
      watchDocuments?: boolean;
    };
