// The package version, reported in the registry, /api/stats and metrics.
import { readFileSync } from 'node:fs';

function readVersion(): string {
  // dist/src/version.js and src/version.ts sit two and one folders below package.json.
  for (const relative of ['../../package.json', '../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(relative, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'pulling-agent' && pkg.version) return pkg.version;
    } catch {
      // try the next location
    }
  }
  return '0.0.0';
}

export const SOFTWARE_VERSION = readVersion();
