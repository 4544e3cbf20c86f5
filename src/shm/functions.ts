/**
 * Functions that travel between threads: thread targets, task functions, initializers and
 * barrier actions. Two forms (API.md, "What crosses between threads"):
 *
 * 1. a self-contained function, sent as its source text and compiled once per thread;
 * 2. a module function `{ module, name }`, imported in the receiving thread.
 *
 * A self-contained function that uses an outer variable is refused in the sending thread
 * (`describeFunction`: its source is parsed and its scopes resolved, outer-names.ts), with a
 * TypeError that names the variable and says how to pass it instead. What the static check
 * cannot see (`eval`, a global the sending thread has and the receiving one lacks) still fails in
 * the receiving thread with a ReferenceError, which `explainMissingName` explains the same way.
 *
 * The descriptor also says where the function was written (function-location.ts), so that the
 * receiving thread compiles it at that place: stack frames name the user's file and line.
 */

import { pathToFileURL } from 'node:url';
import { type FunctionLocation, identityMap, locateFunction, sourceMapComment } from './function-location.js';
import { describe } from './futex.js';
import { type OuterName, type SourceFacts, analyzeSource, parser } from './outer-names.js';
import { transpiledHelperNames, transpiledHelpers } from './transpiled-helpers.js';

/** Type only: the key of ModuleFunction's phantom field (no such field exists at run time). */
declare const functionType: unique symbol;

/**
 * A function exported by a module: `{ module: import.meta.url, name: 'work' }`. `F` is the
 * function's type when it is known (`moduleFunction(import.meta.url, 'work', work)`), so that
 * its arguments and result are checked; a plain `{ module, name }` fits every `F`.
 */
export interface ModuleFunction<F extends (...args: any[]) => unknown = (...args: any[]) => unknown> {
  /** The module: `import.meta.url`, a URL, or a file path. */
  module: string | URL;
  /** The export's name. */
  name: string;
  /** Type only, never set: carries `F`. */
  readonly [functionType]?: F;
}

/**
 * threadkit's own module functions and Thread subclasses (the pool thread's body, Timer): found
 * by name in this table instead of by importing a file, so that they work from a bundle too.
 */
export const BUILTIN_MODULE = 'threadkit:builtin';
export const builtins: Record<string, unknown> = Object.create(null) as Record<string, unknown>;

/** A function whose body uses only its parameters, globals and `await import(...)`. */
export type SelfContainedFunction = (...args: any[]) => unknown;

/** A function in either form; `F` its type when known (`ThreadFunction<(n: number) => string>`). */
export type ThreadFunction<F extends (...args: any[]) => unknown = SelfContainedFunction> = F | ModuleFunction<F>;

/** The form that crosses threads (a plain value the codec can carry). */
export type FunctionDescriptor =
  | { kind: 'source'; source: string; name: string; origin: string | undefined; at?: FunctionLocation }
  | { kind: 'module'; module: string; name: string };

/** What is known of a source text: its outer names, and where it was written (looked up once). */
interface SourceVerdict {
  facts: SourceFacts | undefined;
  /** Every outer name was a global when last checked (they are checked again only while some are missing). */
  passed: boolean;
  located: boolean;
  at: FunctionLocation | undefined;
}

/** By source text: a closure written inline in a loop is a new function each time, with the same text. */
const verdicts = new Map<string, SourceVerdict>();
const VERDICTS_KEPT = 2000;

/**
 * The verdict on a source text, made once (acorn parse and scope analysis). The location is the
 * first function's with that text: two copies of the same text written in two places share it.
 */
function verdictOn(source: string): SourceVerdict {
  let verdict = verdicts.get(source);
  if (verdict === undefined) {
    // No parser yet (a bundle, while it imports acorn): nothing is checked, and nothing kept.
    if (parser() === null) return { facts: undefined, passed: true, located: true, at: undefined };
    let facts = analyzeSource(source, false);
    // Method shorthand (`run() {…}`) is not an expression: it is read as an object's method.
    if (facts === undefined && !/^(async\s*)?(function\b|\(|[\w$]+\s*=>)/.test(source)) facts = analyzeSource(source, true);
    verdict = { facts, passed: facts === undefined || facts.outer.length === 0, located: false, at: undefined };
    if (verdicts.size >= VERDICTS_KEPT) verdicts.clear();
    verdicts.set(source, verdict);
  }
  return verdict;
}

/** Names the transpiler helpers the thread supplies (compileSource's parameters). */
const SUPPLIED = new Set([...transpiledHelperNames, '__import']);

/** The outer names that the receiving thread will not have (its globals are taken to be this thread's). */
function missingNames(outer: OuterName[]): OuterName[] {
  return outer.filter(({ name }) => !SUPPLIED.has(name) && !(name in globalThis));
}

const MODULE_FUNCTION = "a module function { module: import.meta.url, name: '<exported function>' }";

/** The TypeError for a self-contained function that uses outer names (the first one named, the others listed). */
function outerNameError(what: string, missing: OuterName[]): TypeError {
  const [{ name, called }] = missing as [OuterName, ...OuterName[]];
  let advice: string;
  if (/^__[A-Za-z]+$/.test(name)) {
    advice =
      `"${name}" looks like a helper that a compiler (tsc, esbuild, tsx) added to the function's code, which the thread does not have: ` +
      `write the function in a module and pass ${MODULE_FUNCTION}, or compile for a newer target so that the helper is not needed`;
  } else if (name === 'require') {
    advice = `require belongs to a CommonJS module, and compiled source text has none: use await import(...) inside the function, or ${MODULE_FUNCTION}`;
  } else if (called) {
    advice = `${name} is called like a function: define it inside the function, or use ${MODULE_FUNCTION} (a function cannot be passed in args)`;
  } else {
    advice = `${name} is used as a value: pass it in args (the function gets a copy as a parameter), import it inside with await import(...), or use ${MODULE_FUNCTION}`;
  }
  const others = missing.slice(1).map((n) => `"${n.name}"`);
  const also = others.length === 0 ? '' : ` (it also uses ${others.join(', ')})`;
  return new TypeError(
    `${what} uses "${name}", which is not defined in the thread: a self-contained function is sent as source text, so it cannot capture outer variables. ${advice}${also}`,
  );
}

/**
 * Turns a function or `{ module, name }` into a descriptor.
 * @param what names the argument in errors ("Thread target", "Barrier action").
 * @param origin the URL of the module that created the thread (relative imports resolve there).
 * @throws TypeError for anything else, or for functions that cannot be sent as source.
 */
export function describeFunction(fn: unknown, what: string, origin?: string): FunctionDescriptor {
  if (typeof fn === 'function') {
    const source = Function.prototype.toString.call(fn);
    if (/\{\s*\[native code\]\s*\}$/.test(source)) {
      throw new TypeError(`${what}: ${describe(fn)} is a native or bound function and cannot be sent to a thread; wrap it in an arrow function or use a module function { module, name }`);
    }
    if (/^class\b/.test(source)) {
      throw new TypeError(`${what}: ${describe(fn)} is a class; pass a function, or subclass Thread and override run()`);
    }
    const verdict = verdictOn(source);
    const facts = verdict.facts;
    if (!verdict.passed && facts !== undefined) {
      const missing = missingNames(facts.outer);
      if (missing.length > 0) throw outerNameError(what, missing);
      verdict.passed = true;
    }
    if (!verdict.located) {
      verdict.located = true;
      if (facts !== undefined) verdict.at = locateFunction(fn as (...args: unknown[]) => unknown, source, facts.positionOffset);
    }
    const descriptor: FunctionDescriptor = { kind: 'source', source, name: fn.name, origin };
    if (verdict.at !== undefined) descriptor.at = verdict.at;
    return descriptor;
  }
  if (typeof fn === 'object' && fn !== null && 'module' in fn && 'name' in fn) {
    const { module, name } = fn as ModuleFunction;
    if (typeof name !== 'string' || name === '') throw new TypeError(`${what}: the name of a module function must be a non-empty string, got ${describe(name)}`);
    return { kind: 'module', module: moduleUrl(module, what), name };
  }
  throw new TypeError(`${what} must be a function or { module, name }, got ${describe(fn)}`);
}

function moduleUrl(module: unknown, what: string): string {
  if (module instanceof URL) return module.href;
  if (typeof module !== 'string' || module === '') throw new TypeError(`${what}: module must be import.meta.url, a URL or a file path, got ${describe(module)}`);
  if (/^[a-z][a-z0-9+.-]*:/i.test(module) && !/^[a-z]:[\\/]/i.test(module)) return module;
  return pathToFileURL(module).href;
}

/**
 * Turns function source into an expression: method shorthand (`run() {…}`, `async *gen() {…}`)
 * becomes a function expression; arrows and `function` stay as they are.
 */
function asExpression(source: string): { head: string; cut: number } {
  if (/^(async\s+)?function\b/.test(source) || /^(async\s*)?(\([^)]*\)|[\w$]+)\s*=>/.test(source)) return { head: '', cut: 0 };
  const method = /^(async\s+)?(\*\s*)?[\w$]+\s*\(/.exec(source);
  if (!method) return { head: '', cut: 0 };
  const cut = (method[1]?.length ?? 0) + (method[2]?.length ?? 0);
  return { head: `${method[1] ?? ''}function${method[2] ? '*' : ''} `, cut };
}

const compiled = new Map<string, (...args: unknown[]) => unknown>();

/** `new Function(params, body)` compiles `(function anonymous(params\n) {\nbody\n})`: the body starts on line 2. */
const BODY_LINE = 2;

/** Compiled functions with a source map get URLs of their own (Node keeps one map per URL). */
let mappedFunctions = 0;

/**
 * The body that returns the function `head + source.slice(cut)`, for stack frames that point
 * where it was written (`at`). With a source map (transpiled code, such as tsx's, which may put
 * a whole module on one line), the text starts the body's second line, with its map and a URL
 * of its own (Node keeps one map per URL): frames show the map's original file and line.
 * Without one (the script is the file), `source.slice(cut)` is placed at its own line and
 * column, under the script's URL.
 */
function bodyAt(source: string, head: string, cut: number, rest: string, at: FunctionLocation): string {
  const opening = `"use strict"; return (${head}`;
  // Where `rest` starts: in the text (lines below its first, column), and in the script.
  const skipped = source.slice(0, cut);
  const below = skipped.split('\n').length - 1;
  const column = below === 0 ? cut : cut - skipped.lastIndexOf('\n') - 1;
  const line = at.line + below;
  // (Text in the first lines of its file cannot be placed there: it gets a map to itself.)
  const map = at.map ?? (line <= BODY_LINE ? identityMap(source, at) : undefined);
  if (map !== undefined) {
    const placed = `${opening}\n${'\n'.repeat(below)}${' '.repeat(column)}`;
    return `${placed}${rest}\n);\n${sourceMapComment(map, BODY_LINE + 1)}\n//# sourceURL=${safeUrl(at.url)}#threadkit-${++mappedFunctions}`;
  }
  const scriptColumn = below === 0 ? at.column + cut : column;
  const placed = `${opening}${'\n'.repeat(line - BODY_LINE)}${' '.repeat(scriptColumn)}`;
  return `${placed}${rest}\n);\n//# sourceURL=${safeUrl(at.url)}`;
}

function safeUrl(url: string): string {
  return url.replace(/[\s#]/g, (c) => encodeURIComponent(c));
}

/**
 * Compiles a self-contained function's source, once per thread. The helpers transpilers call
 * from inside functions (`__name`, and those of `using`) are supplied as parameters
 * (transpiled-helpers.ts), since the source text does not carry its module's copies. With an `origin`, `import('./x.js')`
 * inside resolves against that module (where the function was written), not against threadkit.
 * With `at` (the descriptor's: where the function was written), the text is compiled at that
 * line and column of that script's URL, with its source map: stack frames point there.
 */
export function compileSource(source: string, origin?: string, at?: FunctionLocation): (...args: unknown[]) => unknown {
  let key = origin === undefined ? source : `${origin}\n${source}`;
  if (at !== undefined) key = `${at.url}:${at.line}:${at.column}\n${key}`;
  let fn = compiled.get(key);
  if (fn === undefined) {
    const { head, cut } = asExpression(source);
    let rest = source.slice(cut);
    if (origin !== undefined) rest = rest.replace(/\bimport\s*\(/g, '__import(');
    const body = at === undefined ? `"use strict"; return (${head}${rest});` : bodyAt(source, head, cut, rest, at);
    const importFrom = (specifier: string): Promise<unknown> =>
      import(origin !== undefined && /^\.{1,2}\//.test(specifier) ? new URL(specifier, origin).href : specifier);
    fn = new Function(...transpiledHelperNames, '__import', body)(...transpiledHelpers, importFrom) as (...args: unknown[]) => unknown;
    compiled.set(key, fn);
  }
  return fn;
}

/**
 * Rewrites the ReferenceError a self-contained function throws when it uses an outer variable.
 */
export function explainMissingName(error: unknown, what: string): unknown {
  if (!(error instanceof ReferenceError)) return error;
  const match = /^([\w$]+) is not defined$/.exec(error.message);
  if (!match) return error;
  const name = match[1];
  const explained = new ReferenceError(
    `${what} uses "${name}", which is not defined in the thread: a self-contained function is sent as source text, ` +
      `so it cannot capture outer variables. Pass ${name} in args, import it inside with await import(...), ` +
      `or use a module function { module: import.meta.url, name: '<exported function>' }`,
  );
  explained.stack = `${explained.name}: ${explained.message}\n${(error.stack ?? '').split('\n').slice(1).join('\n')}`;
  return explained;
}
