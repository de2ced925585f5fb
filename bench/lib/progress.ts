// The progress indicator: one line per step with its elapsed time, and a spinner with the step's
// running time on a terminal (stderr, so that the table on stdout stays clean when redirected).

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

export class Progress {
  readonly #total: number;
  readonly #started = Date.now();
  readonly #tty = process.stderr.isTTY === true;
  #index = 0;
  #label = '';
  #stepStarted = 0;
  #timer: NodeJS.Timeout | null = null;
  #frame = 0;

  constructor(total: number) {
    this.#total = total;
  }

  get elapsedSeconds(): number {
    return (Date.now() - this.#started) / 1000;
  }

  /** Starts the next step (ending the previous one). */
  step(label: string): void {
    this.done();
    this.#index++;
    this.#label = label;
    this.#stepStarted = Date.now();
    if (this.#tty) {
      this.#timer = setInterval(() => this.#draw(), 100);
      this.#timer.unref();
      this.#draw();
    } else {
      process.stderr.write(`${this.#prefix()} ${label} …\n`);
    }
  }

  /** A note under the current step. */
  note(text: string): void {
    if (this.#tty) process.stderr.write('\r\x1b[K');
    process.stderr.write(`    ${text}\n`);
    if (this.#tty && this.#timer) this.#draw();
  }

  done(outcome = 'done'): void {
    if (!this.#label) return;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    const seconds = ((Date.now() - this.#stepStarted) / 1000).toFixed(1);
    if (this.#tty) process.stderr.write('\r\x1b[K');
    process.stderr.write(`${this.#prefix()} ${this.#label}: ${outcome} in ${seconds} s\n`);
    this.#label = '';
  }

  #prefix(): string {
    return `[${String(this.#index).padStart(String(this.#total).length)}/${this.#total}]`;
  }

  #draw(): void {
    const seconds = ((Date.now() - this.#stepStarted) / 1000).toFixed(0);
    const frame = FRAMES[this.#frame++ % FRAMES.length] as string;
    const total = this.elapsedSeconds.toFixed(0);
    process.stderr.write(
      `\r\x1b[K${frame} ${this.#prefix()} ${this.#label} (${seconds} s; ${total} s in all)`,
    );
  }
}
