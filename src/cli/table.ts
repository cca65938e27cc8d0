/**
 * Lines of a plain-text table: each column as wide as its widest cell, `right[i]` columns right-aligned, the last
 * column left ragged, two spaces between columns.
 */
export function columns(rows: readonly string[][], right: readonly boolean[]): string[] {
  const widths: number[] = [];
  for (const r of rows) for (const [i, cell] of r.entries()) widths[i] = Math.max(widths[i] ?? 0, cell.length);
  return rows.map((r) =>
    r
      .map((cell, i) => (i === r.length - 1 && !right[i] ? cell : right[i] ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
}
