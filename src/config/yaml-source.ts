import { LineCounter, isMap, isPair, isScalar, parseDocument, type Document, type Node } from 'yaml';
import type { z } from 'zod';

/** One problem in a YAML input, located for a human: file, line, the field's dotted path, what was expected. */
export interface SourceIssue {
  readonly file: string;
  readonly line: number;
  readonly path: string;
  readonly message: string;
}

export function formatIssue(i: SourceIssue): string {
  return `${i.file}:${i.line}: ${i.path ? `${i.path}: ` : ''}${i.message}`;
}

/** A parsed YAML file that can say on which line any path of it stands. */
export class YamlSource {
  readonly doc: Document.Parsed;
  private readonly lines = new LineCounter();

  constructor(
    readonly file: string,
    text: string,
  ) {
    this.doc = parseDocument(text, { lineCounter: this.lines, prettyErrors: false, uniqueKeys: true });
  }

  /** YAML syntax errors, each with its line. */
  syntaxIssues(): SourceIssue[] {
    return this.doc.errors.map((e) => ({
      file: this.file,
      line: this.lines.linePos(e.pos[0]).line,
      path: '',
      message: e.message.split('\n')[0]!,
    }));
  }

  toJS(): unknown {
    return this.doc.toJS();
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
