// How an agent learns that the control document changed: one event-driven mode per store, or
// polling. Listed once here; the API's schema, the metrics and the watcher use this list.

export const WATCH_MODES = ['file_events', 'listen_notify', 'change_streams', 'polling'] as const;
export type WatchMode = (typeof WATCH_MODES)[number];
/** The modes a store's watch can be in; polling is the watcher's fallback, not a store's. */
export type EventDrivenMode = Exclude<WatchMode, 'polling'>;
