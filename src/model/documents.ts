// Documents of the domain: the statuses a document shows, and the error a crash leaves on it.

/**
 * `scheduled` is not stored: it is a pending document that is not due yet (its run_at is later
 * than the store's clock), shown apart in counts, lists and reads.
 */
export const DOCUMENT_STATUSES = ['pending', 'scheduled', 'processing', 'processed', 'failed'] as const;
export type DocumentStatus = (typeof DOCUMENT_STATUSES)[number];
export type DocumentCounts = Record<DocumentStatus, number>;

/** The error a document gets when its lease ran out: its agent died or lost the store mid-run. */
export const LEASE_EXPIRED_ERROR = 'the agent processing it stopped before finishing (lease expired)';
