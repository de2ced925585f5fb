// A tiny SVG writer for the benchmark's charts: rectangles, lines and text on a fixed canvas, a
// linear axis with round ticks, and a legend. No dependency, no charting service.

export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export class Svg {
  readonly #parts: string[] = [];
  constructor(
    readonly width: number,
    readonly height: number,
  ) {}

  rect(x: number, y: number, w: number, h: number, fill: string, title?: string): void {
    const t = title ? `<title>${escapeXml(title)}</title>` : '';
    this.#parts.push(
      `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${Math.max(0, w).toFixed(1)}" height="${Math.max(0, h).toFixed(1)}" fill="${fill}">${t}</rect>`,
    );
  }

  line(x1: number, y1: number, x2: number, y2: number, stroke: string, width = 1, dash?: string): void {
    const d = dash ? ` stroke-dasharray="${dash}"` : '';
    this.#parts.push(
      `<line x1="${x1.toFixed(1)}" y1="${y1.toFixed(1)}" x2="${x2.toFixed(1)}" y2="${y2.toFixed(1)}" stroke="${stroke}" stroke-width="${width}"${d}/>`,
    );
  }

  circle(x: number, y: number, r: number, fill: string): void {
    this.#parts.push(`<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="${r}" fill="${fill}"/>`);
  }

  text(
    x: number,
    y: number,
    content: string,
    options: {
      size?: number;
      anchor?: 'start' | 'middle' | 'end';
      weight?: string;
      fill?: string;
      rotate?: number;
    } = {},
  ): void {
    const { size = 12, anchor = 'start', weight = 'normal', fill = '#222', rotate } = options;
    const transform = rotate ? ` transform="rotate(${rotate} ${x.toFixed(1)} ${y.toFixed(1)})"` : '';
    this.#parts.push(
      `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" font-size="${size}" text-anchor="${anchor}" font-weight="${weight}" fill="${fill}"${transform}>${escapeXml(content)}</text>`,
    );
  }

  legend(x: number, y: number, entries: { label: string; color: string }[]): void {
    let cx = x;
    for (const entry of entries) {
      this.rect(cx, y - 10, 12, 12, entry.color);
      this.text(cx + 16, y, entry.label, { size: 12 });
      cx += 24 + entry.label.length * 6.6;
    }
  }

  toString(): string {
    return [
      `<svg xmlns="http://www.w3.org/2000/svg" width="${this.width}" height="${this.height}" viewBox="0 0 ${this.width} ${this.height}" font-family="Helvetica, Arial, sans-serif">`,
      `<rect width="100%" height="100%" fill="#fff"/>`,
      ...this.#parts,
      '</svg>',
      '',
    ].join('\n');
  }
}

/** Round ticks from `min` to at least `max`: 1, 2 or 5 × 10^k apart. */
export function ticks(min: number, max: number, count = 5): number[] {
  const span = Math.max(max - min, 1e-9);
  const raw = span / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? power * 10;
  const start = Math.floor(min / step) * step;
  const result: number[] = [];
  for (let v = start; v < max + step; v += step) result.push(Number(v.toPrecision(12)));
  return result;
}

export const COLORS = [
  '#1f77b4',
  '#ff7f0e',
  '#2ca02c',
  '#d62728',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
];
