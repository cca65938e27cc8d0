import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { PACKAGE_ROOT } from '../paths.js';

/** The console's own files: ES modules and CSS served as they are, no build step. */
export const STATIC_DIR = join(PACKAGE_ROOT, 'src', 'web', 'static');

const require = createRequire(import.meta.url);
const near = (module: string, file: string) => join(dirname(require.resolve(module)), file);

/** The npm packages the pages import, by the name the import map gives them (only these are served). */
export function vendorFiles(): ReadonlyMap<string, { body: Buffer; type: string }> {
  const js = 'text/javascript; charset=utf-8';
  const files: [string, string, string][] = [
    ['preact.mjs', near('preact', 'preact.mjs'), js],
    ['hooks.mjs', near('preact/hooks', 'hooks.mjs'), js],
    ['htm.mjs', near('htm', 'htm.module.js'), js],
    ['htm-preact.mjs', near('htm/preact', 'index.module.js'), js],
    ['uplot.mjs', near('uplot', 'uPlot.esm.js'), js],
    ['uplot.css', near('uplot', 'uPlot.min.css'), 'text/css; charset=utf-8'],
  ];
  return new Map(files.map(([name, path, type]) => [name, { body: readFileSync(path), type }]));
}

export const IMPORT_MAP = JSON.stringify({
  imports: {
    preact: '/vendor/preact.mjs',
    'preact/hooks': '/vendor/hooks.mjs',
    htm: '/vendor/htm.mjs',
    'htm/preact': '/vendor/htm-preact.mjs',
    uplot: '/vendor/uplot.mjs',
  },
});

/** The page shell, with the import map inline (allowed by its hash in the Content-Security-Policy). */
export function pageShell(): { html: string; csp: string } {
  const html = `<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>meterd</title>
<link rel="stylesheet" href="/vendor/uplot.css">
<link rel="stylesheet" href="/app/style.css">
<script type="importmap">${IMPORT_MAP}</script>
<script type="module" src="/app/app.js"></script>
</head>
<body><div id="app"></div><noscript>This console needs JavaScript. 本控制台需要启用 JavaScript。</noscript></body>
</html>
`;
  const hash = createHash('sha256').update(IMPORT_MAP).digest('base64');
  const csp = [
    "default-src 'self'",
    `script-src 'self' 'sha256-${hash}'`,
    // uPlot and the chart legend set inline styles.
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "frame-ancestors 'none'",
    "form-action 'self'",
    "base-uri 'none'",
    "object-src 'none'",
  ].join('; ');
  return { html, csp };
}
