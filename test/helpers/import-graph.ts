// The graph of static imports between the files of src/, read from the TypeScript sources: every
// `import` and `export … from` of ours, `import type` included. Dynamic import() is not counted.
// Used by the tests that keep the layers' arrows pointing down (test/unit/import-cycles.test.ts,
// test/unit/http-layers.test.ts).

import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, from dist/test/unit/ when compiled or test/unit/ when run from sources. */
export function repositoryRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!readdirSync(dir).includes('package.json')) dir = dirname(dir);
  return dir;
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** `import x from './a.js'`, `import type {…} from`, `import './a.js'`, `export * from`, over lines. */
const STATIC_IMPORT = /^\s*(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\sfrom\s+)?['"](\.{1,2}\/[^'"]+)['"]/gm;

/** File → the files of ours it imports, as paths relative to the root. */
export function importGraph(root: string): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sources(join(root, 'src'))) {
    const text = readFileSync(file, 'utf8');
    const targets = new Set<string>();
    for (const [, specifier] of text.matchAll(STATIC_IMPORT)) {
      targets.add(relative(root, resolve(dirname(file), specifier!.replace(/\.js$/, '.ts'))));
    }
    graph.set(relative(root, file), [...targets].sort());
  }
  return graph;
}
