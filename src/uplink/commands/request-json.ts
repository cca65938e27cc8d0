/**
 * How deep a request may nest: the request object is level 1, `esam` and `points` level 2. Nothing a station sends
 * needs more; the margin is for fields to come. Everything that walks a request afterwards (the schema,
 * `canonicalJson`) therefore walks at most this deep, whatever a sender tries.
 */
export const MAX_REQUEST_DEPTH = 16;

/** Field paths in messages are cut to this many characters: a 16-level path of long keys is still one readable line. */
const MAX_FIELD_TEXT = 120;

export type RequestJson =
  | { readonly ok: true; readonly value: unknown }
  /** Not JSON at all (bad UTF-8 is the caller's to catch). */
  | { readonly ok: false; readonly kind: 'syntax'; readonly message: string }
  /** Well-formed JSON a request must not be: nested too deep, or an object naming a key twice. `value` is the parse. */
  | { readonly ok: false; readonly kind: 'structure'; readonly field: string; readonly message: string; readonly value: unknown };

type Frame = { readonly keys: Set<string>; key: string; expectKey: boolean } | { readonly keys: null; index: number };

/**
 * Parses a request's text, refusing what JSON allows but a request must not carry: nesting deeper than
 * MAX_REQUEST_DEPTH, and a key repeated in one object (`{"amountFen":-5,"amountFen":100}`: a proxy that keeps the
 * first key and the gateway that keeps the last would disagree on the amount). Neither check recurses: the text is
 * scanned once, token by token, with an explicit stack that never grows past the limit. `JSON.parse` itself is
 * iterative in V8, so no part of this spends stack in proportion to what a sender nests. Pure.
 *
 * ```ts
 * parseRequestJson('{"requestId":"r-1","amountFen":-5,"amountFen":100}');
 * // { ok: false, kind: 'structure', field: 'amountFen', message: 'amountFen appears twice in the request; …', value: {…} }
 * ```
 */
export function parseRequestJson(text: string): RequestJson {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { ok: false, kind: 'syntax', message: (error as Error).message };
  }
  // The text is valid JSON from here on, so the scan needs no error handling of its own.
  const stack: Frame[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let end = i + 1;
      let escaped = false;
      while (text[end] !== '"') {
        if (text[end] === '\\') {
          escaped = true;
          end++;
        }
        end++;
      }
      const top = stack.at(-1);
      if (top !== undefined && top.keys !== null && top.expectKey) {
        // Compared decoded: "a" and "\u0061" are the same key.
        const key = escaped ? (JSON.parse(text.slice(i, end + 1)) as string) : text.slice(i + 1, end);
        if (top.keys.has(key)) {
          const field = pathOf(stack, key);
          return {
            ok: false,
            kind: 'structure',
            field,
            message: `${field} appears twice in the request; give each field once (JSON parsers disagree on which one counts)`,
            value,
          };
        }
        top.keys.add(key);
        top.key = key;
        top.expectKey = false;
      }
      i = end;
    } else if (c === '{' || c === '[') {
      if (stack.length >= MAX_REQUEST_DEPTH) {
        const field = stack.length === 0 ? '(payload)' : pathOf(stack);
        return {
          ok: false,
          kind: 'structure',
          field,
          message: `${field} nests deeper than ${MAX_REQUEST_DEPTH} levels; no request needs that`,
          value,
        };
      }
      stack.push(c === '{' ? { keys: new Set(), key: '', expectKey: true } : { keys: null, index: 0 });
    } else if (c === '}' || c === ']') {
      stack.pop();
    } else if (c === ',') {
      const top = stack.at(-1);
      if (top === undefined) continue;
      if (top.keys === null) top.index++;
      else top.expectKey = true;
    }
  }
  return { ok: true, value };
}

/** The dotted field path of the value being read (plus `key`, when given), as the schema names fields. */
function pathOf(stack: readonly Frame[], key?: string): string {
  // Each frame's position is its parent's current key or index; the deepest frame's own position is where the value
  // being read sits, unless a repeated key inside it is what is named.
  const positions = stack.map((frame) => (frame.keys === null ? String(frame.index) : frame.key));
  const parts = key === undefined ? positions : [...positions.slice(0, -1), key];
  const path = parts.join('.');
  return path.length > MAX_FIELD_TEXT ? `${path.slice(0, MAX_FIELD_TEXT)}…` : path;
}
