// What must not outlive an interrupted run (Ctrl-C, SIGTERM): every agent process, fleet host and
// temp folder registers a synchronous kill here while it exists; run.ts calls abortAll() on a
// signal before it stops the servers.

const cleanups = new Set<() => void>();

/** Registers a synchronous cleanup; call the returned function once it is no longer needed. */
export function onAbort(cleanup: () => void): () => void {
  cleanups.add(cleanup);
  return () => cleanups.delete(cleanup);
}

export function abortAll(): void {
  for (const cleanup of cleanups) {
    try {
      cleanup();
    } catch {
      // best effort: the others still run
    }
  }
  cleanups.clear();
}
