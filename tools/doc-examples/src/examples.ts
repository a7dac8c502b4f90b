import { readdirSync, readFileSync } from 'node:fs';
import ts from 'typescript';

/** One `@example` block of a source file. */
export interface Example {
  file: string;
  /** 1-based line of `@example`. */
  line: number;
  code: string;
}

/** The `@example` blocks of the non-spec `.ts` files directly in `dir`. */
export function examplesIn(dir: URL): Example[] {
  const out: Example[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (!name.endsWith('.ts') || name.endsWith('.spec.ts')) continue;
    const lines = readFileSync(new URL(name, dir), 'utf8').split('\n');
    for (let i = 0; i < lines.length; i++) {
      if (!/^\s*\*\s*@example\s*$/.test(lines[i]!)) continue;
      const body: string[] = [];
      let j = i + 1;
      for (; j < lines.length; j++) {
        const l = lines[j]!;
        if (/^\s*\*\//.test(l) || /^\s*\*\s*@\w+/.test(l)) break;
        body.push(l.replace(/^\s*\* ?/, ''));
      }
      out.push({ file: name, line: i + 1, code: body.join('\n') });
      i = j - 1;
    }
  }
  return out;
}

function parsesAs(code: string): boolean {
  const sf = ts.createSourceFile('x.ts', code, ts.ScriptTarget.ES2022, false, ts.ScriptKind.TS);
  return (sf as unknown as { parseDiagnostics: unknown[] }).parseDiagnostics.length === 0;
}

/** Whether `expr` is one JavaScript/TypeScript expression. */
function parses(expr: string): boolean {
  return expr !== '' && parsesAs(`(${expr});`);
}

/** `statement; // expected` split at the last `; //` whose comment is an expression. */
function splitComment(line: string): [string, string] | undefined {
  const re = /;\s*\/\/\s?/g;
  const cuts: [number, number][] = [];
  for (let m = re.exec(line); m; m = re.exec(line)) cuts.push([m.index, m.index + m[0].length]);
  for (const [at, after] of cuts.reverse()) {
    const expected = line.slice(after).trim();
    // The statement part must stand alone (a cut inside a string literal would not).
    if (parses(expected) && parsesAs(`${line.slice(0, at)};`)) return [line.slice(0, at), expected];
  }
  return undefined;
}

const NOT_EXPRESSION =
  /^(?:const|let|var|if|for|while|try|catch|finally|else|return|throw|import|export|function|class|\}|\{)\b/;

/**
 * Turns an example into code that checks its promises: `expr; // value` asserts that `expr`
 * deep-equals `value`, `expr; // a === b` (or a comment line after the statement) asserts the
 * comparison after running the statement, `console.log(x); // value` asserts `x`. A comment
 * that is not a JavaScript expression (`{ app, … }`) only documents; the statement still runs.
 */
export function instrument(code: string): { js: string; checks: number } {
  const lines = code.split('\n');
  const out: string[] = [];
  let checks = 0;
  let open: string[] = [];
  let last: { index: number; expr: string | undefined } | undefined;
  const wrap = (statement: string, expected: string) => {
    const s = statement.trim().replace(/;$/, '');
    const log = /^((?:if\s*\(.*\)\s*)?)console\.log\((.*)\)$/s.exec(s);
    if (/===|!==/.test(expected) && !/^'/.test(expected.trim())) {
      checks++;
      return `${statement}\n__truthy(() => (${expected}), ${JSON.stringify(expected)});`;
    }
    if (log) {
      checks++;
      return `${log[1]}__equal(() => (${log[2]}), () => (${expected}), ${JSON.stringify(s)});`;
    }
    if (NOT_EXPRESSION.test(s)) return statement;
    checks++;
    return `__equal(() => (${s}), () => (${expected}), ${JSON.stringify(s)});`;
  };
  for (const raw of lines) {
    const comment = splitComment(raw);
    const commentOnly = /^\s*\/\/\s?(.*)$/.exec(raw);
    if (commentOnly) {
      const expected = commentOnly[1]!.trim();
      if (open.length === 0 && last && last.expr === undefined && parses(expected)) {
        out[last.index] = wrap(out[last.index]!, expected);
        last.expr = expected;
      }
      out.push('');
      continue;
    }
    if (comment) {
      // Inside `try {` / `} catch (err) {` / `if (…) {` only this line is the statement.
      const block =
        open.length > 0 &&
        /\{\s*$/.test(open[open.length - 1]!) &&
        /^\s*(?:\}\s*)?(?:try|catch|if|else|for|finally)\b/.test(open[open.length - 1]!);
      if (block) {
        out.push(open.join('\n'));
        open = [];
      }
      const statement = [...open, `${comment[0]};`].join('\n');
      open = [];
      out.push(wrap(statement, comment[1]));
      last = { index: out.length - 1, expr: comment[1] };
      continue;
    }
    open.push(raw);
    if (/;\s*(?:\/\/.*)?$/.test(raw) || /^\s*}\s*$/.test(raw)) {
      out.push(open.join('\n'));
      open = [];
      last = { index: out.length - 1, expr: undefined };
    }
  }
  if (open.length) out.push(open.join('\n'));
  const js = ts.transpileModule(out.join('\n'), {
    compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext },
  }).outputText;
  return { js, checks };
}
