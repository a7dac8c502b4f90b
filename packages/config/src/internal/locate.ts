import { isAlias, isMap, isPair, isScalar, isSeq, type Document, type LineCounter } from 'yaml';
import type { DocPath } from './path.js';

/** Line and column (1-based) of a node in the YAML source. */
export interface SourcePosition {
  line: number;
  column: number;
}

interface Step {
  node: unknown;
  key?: unknown;
}

/** Maps document paths back to where they are written, for error messages. */
export class SourceLocator {
  readonly #doc: Document;
  readonly #lines: LineCounter;

  constructor(doc: Document, lines: LineCounter) {
    this.#doc = doc;
    this.#lines = lines;
  }

  /** Position of a character offset in the source. */
  at(offset: number): SourcePosition {
    const { line, col } = this.#lines.linePos(offset);
    return { line, column: col };
  }

  /**
   * Where `path` is written: its value, or with `'key'` its map key (for unknown keys).
   * When the path does not exist (a missing key), the closest written ancestor is used: the
   * key of the map the entry belongs in, or the list item.
   */
  locate(path: DocPath, target: 'value' | 'key' = 'value'): SourcePosition | undefined {
    let step: Step = { node: this.#doc.contents };
    let complete = true;
    for (const seg of path) {
      const next = this.#child(step.node, seg);
      if (!next) {
        complete = false;
        break;
      }
      step = next;
    }
    if (complete && target === 'value') return this.#start(step.node) ?? this.#start(step.key);
    return this.#start(step.key) ?? this.#start(step.node);
  }

  #child(parent: unknown, seg: string | number): Step | undefined {
    const node = isAlias(parent) ? parent.resolve(this.#doc) : parent;
    if (isMap(node)) {
      const pair = node.items.find(
        (p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg),
      );
      return pair ? { node: pair.value, key: pair.key } : undefined;
    }
    if (isSeq(node) && typeof seg === 'number' && seg < node.items.length)
      return { node: node.items[seg] };
    return undefined;
  }

  #start(node: unknown): SourcePosition | undefined {
    const range = (node as { range?: readonly number[] } | null | undefined)?.range;
    return range ? this.at(range[0]!) : undefined;
  }
}
