// The figures as people read them: one table per scenario (a row per store), for the terminal and
// as Markdown (chaos/results/latest.md, the README), followed by every broken promise.

import type { ScenarioResult } from './scenario.js';

export interface RunReport {
  mode: 'full' | 'quick';
  startedAt: string;
  seconds: number;
  commit: string;
  warnings: string[];
  machine: string;
  stores: string[];
  skipped: string[];
  /** In the suite's order, with their fixed numbers (1 = outage … 5 = without kills). */
  scenarios: { id: string; title: string; n: number }[];
  results: ScenarioResult[];
}

function columns(results: ScenarioResult[]): string[] {
  const labels: string[] = [];
  for (const r of results) for (const f of r.figures) if (!labels.includes(f.label)) labels.push(f.label);
  return labels;
}

function rows(results: ScenarioResult[], labels: string[]): string[][] {
  return results.map((r) => [
    r.store,
    ...labels.map((label) => r.figures.find((f) => f.label === label)?.text ?? '—'),
    r.broken.length === 0 ? 'kept' : `BROKEN (${r.broken.length})`,
    `${r.seconds.toFixed(0)} s`,
  ]);
}

function tables(report: RunReport): { title: string; header: string[]; body: string[][] }[] {
  return report.scenarios.flatMap(({ id, title, n }) => {
    const results = report.results.filter((r) => r.scenario === id);
    if (results.length === 0) return [];
    const labels = columns(results);
    return [
      {
        title: `${n}. ${title}`,
        header: ['store', ...labels, 'promises', 'took'],
        body: rows(results, labels),
      },
    ];
  });
}

function brokenLines(report: RunReport): string[] {
  return report.results.flatMap((r) => r.broken.map((b) => `${r.scenario} on ${r.store}: ${b}`));
}

export function renderTerminal(report: RunReport): string {
  const out: string[] = [];
  for (const { title, header, body } of tables(report)) {
    const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => (row[i] ?? '').length)));
    const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
    out.push('', title, line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line));
  }
  const broken = brokenLines(report);
  out.push('', broken.length === 0 ? 'Every promise held.' : `BROKEN PROMISES (${broken.length}):`);
  for (const b of broken) out.push(`  - ${b}`);
  for (const s of report.skipped) out.push(`skipped: ${s}`);
  for (const w of report.warnings) out.push(`warning: ${w}`);
  return out.join('\n') + '\n';
}

const cell = (text: string) => text.replaceAll('|', '\\|');

export function renderMarkdown(report: RunReport): string {
  const out = [
    `Chaos run (${report.mode} form), ${report.startedAt}, commit ${report.commit}, ${report.machine}; ` +
      `${Math.round(report.seconds / 60)} min. Stores: ${report.stores.join(', ')}. ` +
      `Every figure is explained in [docs/chaos.md](../../docs/chaos.md).`,
  ];
  for (const { title, header, body } of tables(report)) {
    out.push(
      '',
      `**${title}**`,
      '',
      `| ${header.map(cell).join(' | ')} |`,
      `|${header.map(() => ' --- ').join('|')}|`,
    );
    for (const row of body) out.push(`| ${row.map(cell).join(' | ')} |`);
  }
  const broken = brokenLines(report);
  out.push('', broken.length === 0 ? 'Every promise held.' : `**Broken promises (${broken.length}):**`);
  for (const b of broken) out.push(`- ${cell(b)}`);
  for (const s of report.skipped) out.push(`- skipped: ${s}`);
  for (const w of report.warnings) out.push(`- warning: ${w}`);
  return out.join('\n') + '\n';
}
