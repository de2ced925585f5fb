// The file's clock. SQLite's own `now` is the reading process's clock, so a process whose clock is
// wrong (a libfaketime shim, a bad time namespace, a bug) would stamp leases, heartbeats and due
// times the others misread. In WAL mode every process sharing the file runs on one host (the WAL
// index is shared memory), so one kernel stamps the file system's timestamps for all of them: each
// process writes one byte to a probe file beside the database (`<file>-clock`) and reads its
// modification time back, which is the kernel's clock, whatever this process's clock says. The
// difference is this process's offset; SQL reads the time through pa_now_ms(), corrected by it.

import { closeSync, constants, fstatSync, openSync, writeSync } from 'node:fs';

/** Offsets below this are the timestamp's own granularity (or noise), not a wrong clock: left alone. */
export const CORRECT_FROM_MS = 1_000;
/** How old a measurement may be before the next store call measures again. */
const MAX_AGE_MS = 10_000;

export class FileClock {
  #fd: number | null = null;
  #offsetMs = 0;
  #measuredAt = Number.NEGATIVE_INFINITY;

  /** `probePath` null (an in-memory database): no file system, this process's clock as it is. */
  constructor(readonly probePath: string | null) {}

  /** This process's clock minus the file system's, as applied (0 below CORRECT_FROM_MS or unmeasured). */
  get offsetMs(): number {
    return this.#offsetMs;
  }

  /** The store's time in milliseconds since the epoch: the process's clock, corrected. */
  nowMs(): number {
    return Date.now() - this.#offsetMs;
  }

  /** Measures again when the last measurement is older than MAX_AGE_MS (cheap otherwise). */
  refresh(): void {
    if (performance.now() - this.#measuredAt >= MAX_AGE_MS) this.measure();
  }

  /**
   * One write and one fstat on the probe (a few microseconds). The kernel stamps the write between
   * the two readings of this process's clock, at a granularity of a few milliseconds. A probe that
   * cannot be written (read-only directory) leaves the process's clock in use.
   */
  measure(): void {
    this.#measuredAt = performance.now();
    if (this.probePath === null) return;
    try {
      // Read-write at offset 0, never appending: the probe stays one byte long.
      this.#fd ??= openSync(this.probePath, constants.O_RDWR | constants.O_CREAT, 0o644);
      const before = Date.now();
      writeSync(this.#fd, '.', 0);
      const stamped = fstatSync(this.#fd).mtimeMs;
      const after = Date.now();
      const offset = Math.round((before + after) / 2 - stamped);
      this.#offsetMs = Math.abs(offset) >= CORRECT_FROM_MS ? offset : 0;
    } catch {
      this.close();
    }
  }

  /** Releases the probe (the store closes, or the file at the path is another one now). */
  close(): void {
    const fd = this.#fd;
    this.#fd = null;
    if (fd !== null) {
      try {
        closeSync(fd);
      } catch {
        // already gone with its directory
      }
    }
    this.#measuredAt = Number.NEGATIVE_INFINITY;
  }
}
