import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

// The repository stands on its own: comments and documents cite docs/ by section name, and no file names a path
// outside the repository. A section renamed in docs/reference must be renamed where it is cited.

const root = join(import.meta.dirname, '..', '..');
const SCANNED = ['src', 'protocols', 'scripts', 'test', 'bin', 'device-profiles', 'docs', 'README.md'];
const EXTENSIONS = /\.(ts|js|mjs|cjs|md|ya?ml|json)$/;

function filesUnder(path: string): string[] {
  const full = join(root, path);
  if (!statSync(full).isDirectory()) return [path];
  return readdirSync(full).flatMap((name) => (name === 'node_modules' ? [] : filesUnder(join(path, name))));
}

const files = SCANNED.flatMap(filesUnder)
  .filter((f) => EXTENSIONS.test(f))
  .map((f) => ({ path: relative(root, join(root, f)), text: readFileSync(join(root, f), 'utf8') }));

/** The headings of a markdown file, without their leading #. */
function headingsOf(doc: string): string[] {
  return readFileSync(join(root, doc), 'utf8')
    .split('\n')
    .filter((l) => /^#{1,6} /.test(l))
    .map((l) => l.replace(/^#+ /, '').trim());
}

describe('documentation citations', () => {
  it('no file names a path outside the repository', () => {
    const outside = /\.\.\/shared|\/work\/shared|prepaid-domain\.md|field-practice\.md|toolchain\.md|ARCHITECTURE\.md/;
    const offenders = files.filter((f) => f.path !== 'test/unit/docs-citations.test.ts' && outside.test(f.text)).map((f) => f.path);
    expect(offenders).toEqual([]);
  });

  it('every "docs/<page>.md § <section>" names a heading of that page', () => {
    const cite = /docs\/((?:reference\/)?[a-z0-9-]+\.md) § ([^\n`'"]+)/g;
    const headings = new Map<string, string[]>();
    const broken: string[] = [];
    let count = 0;
    for (const f of files) {
      for (const m of f.text.matchAll(cite)) {
        const [, page, rest] = m as unknown as [string, string, string];
        if (rest.startsWith('<')) continue; // the citation format itself, as documented
        const doc = `docs/${page}`;
        if (!headings.has(doc)) headings.set(doc, headingsOf(doc));
        count++;
        // A citation may run on into the sentence ("§ Purchase counter, § Security error word SERR)"), so the
        // section is the longest heading the cited text starts with.
        if (!headings.get(doc)!.some((h) => rest.startsWith(h))) broken.push(`${f.path}: ${doc} § ${rest.slice(0, 60)}`);
      }
    }
    expect(count).toBeGreaterThan(40);
    expect(broken).toEqual([]);
  });

  it('every relative markdown link names a file of the repository, and its #anchor a heading there', () => {
    // GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens.
    const slug = (heading: string): string =>
      heading
        .toLowerCase()
        .replace(/[^\p{L}\p{N}_\- ]/gu, '')
        .replace(/ /g, '-');
    const broken: string[] = [];
    let count = 0;
    for (const f of files.filter((f) => f.path.endsWith('.md'))) {
      for (const m of f.text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const link = m[1]!;
        if (/^[a-z]+:/.test(link)) continue;
        const [path, anchor] = link.split('#') as [string, string | undefined];
        const target = path === '' ? f.path : normalize(join(dirname(f.path), path));
        count++;
        let exists = true;
        try {
          statSync(join(root, target));
        } catch {
          exists = false;
        }
        if (!exists) broken.push(`${f.path}: ${link} (no such file)`);
        else if (anchor && target.endsWith('.md') && !headingsOf(target).map(slug).includes(anchor))
          broken.push(`${f.path}: ${link} (no such heading)`);
      }
    }
    expect(count).toBeGreaterThan(20);
    expect(broken).toEqual([]);
  });
});
