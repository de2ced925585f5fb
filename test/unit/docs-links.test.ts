// Every relative link in README.md and docs/*.md points at a file that exists, and every
// `file.md#anchor` (or `#anchor`) at a heading of that file, slugged as GitHub does.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** The Markdown text without fenced code blocks and inline code, where links are not links. */
function prose(markdown: string): string {
  return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '').replace(/(`+)[\s\S]*?\1/g, '');
}

/** GitHub's heading anchor: the heading's text, lower-cased, punctuation dropped, spaces to '-'. */
function githubSlug(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // links and images: their text
    .replace(/<[^>]+>/g, '') // inline HTML
    .replace(/[*_~`]/g, (c) => (c === '_' ? '_' : '')); // emphasis markers, but keep '_'
  return text
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** Every anchor a Markdown file offers: its headings' slugs (repeats get -1, -2, …), and ids. */
function anchors(markdown: string): Set<string> {
  const found = new Set<string>();
  const seen = new Map<string, number>();
  const withoutCode = markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '');
  for (const match of withoutCode.matchAll(/^#{1,6}[ \t]+(.+?)[ \t#]*$/gm)) {
    const slug = githubSlug(match[1] as string);
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    found.add(n === 0 ? slug : `${slug}-${n}`);
  }
  for (const match of withoutCode.matchAll(/<a\s+(?:name|id)="([^"]+)"/g)) found.add(match[1] as string);
  return found;
}

/** The link targets of a Markdown file: inline links and images, and reference definitions. */
function linkTargets(markdown: string): string[] {
  const text = prose(markdown);
  const targets: string[] = [];
  for (const match of text.matchAll(/!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g))
    targets.push(match[1] as string);
  for (const match of text.matchAll(/^\s{0,3}\[[^\]]+\]:\s+<?(\S+?)>?(?:\s+"[^"]*")?\s*$/gm))
    targets.push(match[1] as string);
  return targets;
}

const isExternal = (target: string) => /^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('//');

function documents(): string[] {
  const docs = readdirSync(join(ROOT, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => join('docs', name));
  return ['README.md', ...docs.sort()];
}

/** Every broken relative link of one file, as `target: why`. */
function brokenLinks(path: string): string[] {
  const markdown = readFileSync(join(ROOT, path), 'utf8');
  const broken: string[] = [];
  for (const target of linkTargets(markdown)) {
    if (isExternal(target)) continue;
    const [rawFile = '', rawAnchor] = target.split('#', 2);
    const file = decodeURIComponent(rawFile);
    const resolved = file === '' ? join(ROOT, path) : join(ROOT, dirname(path), file);
    if (!existsSync(resolved)) {
      broken.push(`${target}: ${relative(ROOT, resolved)} does not exist`);
      continue;
    }
    if (rawAnchor === undefined || rawAnchor === '' || !resolved.endsWith('.md')) continue;
    const anchor = decodeURIComponent(rawAnchor).toLowerCase();
    if (!anchors(readFileSync(resolved, 'utf8')).has(anchor))
      broken.push(`${target}: ${relative(ROOT, resolved)} has no heading #${anchor}`);
  }
  return broken;
}

describe('documentation links', () => {
  it('slugs headings as GitHub does', () => {
    assert.equal(githubSlug('For operators'), 'for-operators');
    assert.equal(githubSlug('`agentctl pause --wait`'), 'agentctl-pause---wait');
    assert.equal(githubSlug('MongoDB, as in the seed'), 'mongodb-as-in-the-seed');
    assert.equal(
      githubSlug('Pause: what it guarantees (and what not)'),
      'pause-what-it-guarantees-and-what-not',
    );
    assert.equal(githubSlug('[Dashboard](x.md) & more'), 'dashboard--more');
    assert.equal(githubSlug('Große Übung'), 'große-übung');
    const repeated = anchors('# Notes\n\n## Notes\n\n```\n# not a heading\n```\n');
    assert.deepEqual([...repeated].sort(), ['notes', 'notes-1']);
  });

  it('finds links, images and reference definitions, not code', () => {
    const targets = linkTargets(
      [
        'See [a](a.md#x) and ![img](p.png "title"), <https://example.com>.',
        '`[not](code.md)`',
        '```',
        '[not](fenced.md)',
        '```',
        '[ref]: docs/ref.md',
      ].join('\n'),
    );
    assert.deepEqual(targets, ['a.md#x', 'p.png', 'docs/ref.md']);
  });

  for (const path of documents()) {
    it(`every relative link in ${path} resolves`, () => {
      assert.deepEqual(brokenLinks(path), [], `broken links in ${path}`);
    });
  }
});
