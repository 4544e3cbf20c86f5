/**
 * Functions that travel between threads: thread targets, task functions, initializers and
 * barrier actions. Two forms (API.md, "What crosses between threads"):
 *
 * 1. a self-contained function, sent as its source text and compiled once per thread;
 * 2. a module function `{ module, name }`, imported in the receiving thread.
 *
 * A self-contained function that uses an outer variable fails in the receiving thread with a
 * ReferenceError; `explainMissingName` turns that into a message that names the variable and
 * says how to pass it instead.
 */

import { pathToFileURL } from 'node:url';
import { describe } from './futex.js';
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
  | { kind: 'source'; source: string; name: string; origin: string | undefined }
  | { kind: 'module'; module: string; name: string };

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
    return { kind: 'source', source, name: fn.name, origin };
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
function asExpression(source: string): string {
  if (/^(async\s+)?function\b/.test(source) || /^(async\s*)?(\([^)]*\)|[\w$]+)\s*=>/.test(source)) return source;
  const method = /^(async\s+)?(\*\s*)?[\w$]+\s*\(/.exec(source);
  if (!method) return source;
  const rest = source.slice((method[1]?.length ?? 0) + (method[2]?.length ?? 0));
  return `${method[1] ?? ''}function${method[2] ? '*' : ''} ${rest}`;
}

const compiled = new Map<string, (...args: unknown[]) => unknown>();

/**
 * Compiles a self-contained function's source, once per thread. The helpers transpilers call
 * from inside functions (`__name`, and those of `using`) are supplied as parameters
 * (transpiled-helpers.ts), since the source text does not carry its module's copies. With an `origin`, `import('./x.js')`
 * inside resolves against that module (where the function was written), not against threadkit.
 */
export function compileSource(source: string, origin?: string): (...args: unknown[]) => unknown {
  const key = origin === undefined ? source : `${origin}\n${source}`;
  let fn = compiled.get(key);
  if (fn === undefined) {
    let expression = asExpression(source);
    if (origin !== undefined) expression = expression.replace(/\bimport\s*\(/g, '__import(');
    const body = `"use strict"; return (${expression});`;
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
