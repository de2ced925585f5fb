// `npm test`: runs every compiled *.test.js under dist/test with node's own test runner.
// Node 20's runner treats every .js file under a `test` folder as a test file, so the list is
// made here instead of passing the folder. Extra arguments select files by substring.
// After node's own closing lines it prints the skipped suites and tests, one line each with its
// reason (collected by scripts/skip-reporter.mjs): node's `skipped` counts skipped tests only.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

function list(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return list(path);
    return entry.name.endsWith('.test.js') ? [path] : [];
  });
}

const filters = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const flags = process.argv.slice(2).filter((a) => a.startsWith('--'));
const files = list('dist/test')
  .map((f) => relative('.', f))
  .filter((f) => filters.length === 0 || filters.some((needle) => f.includes(needle)))
  .sort();
if (files.length === 0) {
  console.error(`no test file matches ${filters.join(' ')}`);
  process.exit(1);
}
const skipsDir = mkdtempSync(join(tmpdir(), 'pa-test-skips-'));
const skipsFile = join(skipsDir, 'skips.jsonl');
const reporters = [
  '--test-reporter=spec',
  '--test-reporter-destination=stdout',
  `--test-reporter=${fileURLToPath(new URL('skip-reporter.mjs', import.meta.url))}`,
  `--test-reporter-destination=${skipsFile}`,
];
const result = spawnSync(process.execPath, ['--test', ...reporters, ...flags, ...files], {
  stdio: 'inherit',
});
summariseSkips();
rmSync(skipsDir, { recursive: true, force: true });
process.exit(result.status ?? 1);

function summariseSkips() {
  let lines = [];
  try {
    lines = readFileSync(skipsFile, 'utf8').split('\n').filter(Boolean);
  } catch {
    return; // the run stopped before the reporter wrote anything
  }
  const skips = lines.map((line) => JSON.parse(line));
  for (const [type, label] of [
    ['suite', 'skipped suites'],
    ['test', 'skipped tests'],
  ]) {
    const these = skips.filter((s) => s.type === type);
    if (type === 'test' && these.length === 0) continue;
    console.log(`${label}: ${these.length}`);
    for (const s of these) {
      const file = s.file ? ` (${relative('.', s.file)})` : '';
      console.log(`  ${s.name}${file}: ${s.reason || 'no reason given'}`);
    }
  }
}
