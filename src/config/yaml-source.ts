import { isAlias, isMap, isPair, isScalar, LineCounter, parseDocument, visit, type Document, type Node } from 'yaml';
import type { z } from 'zod';

/** One problem in a YAML input, located for a human: file, line, the field's dotted path, what was expected. */
export interface SourceIssue {
  readonly file: string;
  /** 1-based; 0 for a problem of the file as a whole (it cannot be read, it is too large), printed without a line. */
  readonly line: number;
  readonly path: string;
  readonly message: string;
}

export function formatIssue(i: SourceIssue): string {
  return `${i.file}${i.line > 0 ? `:${i.line}` : ''}: ${i.path ? `${i.path}: ` : ''}${i.message}`;
}

/** A parsed YAML file that can say on which line any path of it stands. */
export class YamlSource {
  readonly doc: Document.Parsed;
  private readonly lines = new LineCounter();

  /** The document as plain values, converted once; undefined when the syntax or the conversion failed. */
  readonly #value: unknown;
  /** Why the conversion failed (an alias bomb), located; the parse itself succeeded. */
  readonly #conversionIssue: SourceIssue | undefined;

  constructor(
    readonly file: string,
    text: string,
  ) {
    this.doc = parseDocument(text, { lineCounter: this.lines, prettyErrors: false, uniqueKeys: true });
    if (this.doc.errors.length > 0) return;
    try {
      this.#value = this.doc.toJS();
    } catch (error) {
      // The yaml library refuses to expand aliases past its limit ("billion laughs"); it throws without a position.
      this.#conversionIssue = {
        file,
        line: this.#firstAliasLine(),
        path: '',
        message: `the YAML aliases (*name) here expand to more than the parser allows (${(error as Error).message}); write the values out`,
      };
    }
  }

  /** YAML syntax errors, each with its line, and an alias expansion refused while converting. */
  syntaxIssues(): SourceIssue[] {
    const syntax = this.doc.errors.map((e) => ({
      file: this.file,
      line: this.lines.linePos(e.pos[0]).line,
      path: '',
      message: e.message.split('\n')[0]!,
    }));
    return this.#conversionIssue === undefined ? syntax : [...syntax, this.#conversionIssue];
  }

  /** The document as plain values (converted once, when it was parsed); undefined when syntaxIssues() has any. */
  toJS(): unknown {
    return this.#value;
  }

  #firstAliasLine(): number {
    let line = 1;
    visit(this.doc, {
      Alias: (_key, node) => {
        if (isAlias(node) && node.range) line = this.lines.linePos(node.range[0]).line;
        return visit.BREAK;
      },
    });
    return line;
  }

  /** The line of the node at `path`; for a missing node, the line of its nearest existing parent. */
  lineOf(path: readonly PropertyKey[]): number {
    for (let n = path.length; n >= 0; n--) {
      const sub = path.slice(0, n) as (string | number)[];
      const node = sub.length === 0 ? this.doc.contents : (this.doc.getIn(sub, true) as Node | undefined);
      const keyNode = n > 0 ? this.keyNodeAt(sub) : undefined;
      const range = keyNode?.range ?? (node && typeof node === 'object' && 'range' in node ? node.range : undefined);
      if (range) return this.lines.linePos(range[0]).line;
    }
    return 1;
  }

  /** The key node of the last path element in its parent map, so an error points at the key's own line. */
  private keyNodeAt(path: (string | number)[]): Node | undefined {
    const parent = path.length === 1 ? this.doc.contents : this.doc.getIn(path.slice(0, -1), true);
    if (!isMap(parent)) return undefined;
    const last = path[path.length - 1];
    for (const item of parent.items) {
      if (isPair(item) && isScalar(item.key) && String(item.key.value) === String(last)) return item.key as Node;
    }
    return undefined;
  }

  issue(path: readonly PropertyKey[], message: string): SourceIssue {
    return { file: this.file, line: this.lineOf(path), path: path.map(String).join('.'), message };
  }

  /** Turn zod issues into located issues; unknown keys point at the key itself. */
  /** `prefix` locates a sub-object that was validated on its own. */
  zodIssues(error: z.ZodError, prefix: readonly PropertyKey[] = []): SourceIssue[] {
    return error.issues.map((i) => {
      if (i.code === 'unrecognized_keys') {
        const key = i.keys[0]!;
        return this.issue([...prefix, ...i.path, key], `unknown field "${i.keys.join('", "')}"`);
      }
      return this.issue([...prefix, ...i.path], i.message);
    });
  }
}
