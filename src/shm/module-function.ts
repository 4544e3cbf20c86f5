/**
 * `moduleFunction()`: a module function `{ module, name }` that carries the function's type, so
 * that a thread's `args` and a task's arguments are checked against its parameters and its
 * result is typed. The type comes from the function value given as the third argument (or from
 * an explicit type argument); the value itself is only looked at by the compiler: it is not
 * kept, and it is not sent (the receiving thread imports the export by name).
 */

import type { ModuleFunction } from './functions.js';

/**
 * A module function typed like `fn`: `moduleFunction(import.meta.url, 'work', work)`, or
 * without the value, `moduleFunction<typeof work>(url, 'work')` (`typeof` works on a type-only
 * import). TypeScript cannot see a module's exports from its URL: that `name` is exported, and
 * is `fn`, is up to the caller.
 * @param module `import.meta.url`, a URL, or a file path.
 * @param name the export's name (not `fn.name`, which a minifier may change).
 * @param fn the exported function, for its type only.
 * @example
 * export function work(n: number): number { return n * 2; }
 * const t = new Thread({ target: moduleFunction(import.meta.url, 'work', work), args: [21] }); // t.result: number | undefined
 */
export function moduleFunction<F extends (...args: any[]) => unknown = (...args: any[]) => unknown>(module: string | URL, name: string, fn?: F): ModuleFunction<F> {
  void fn;
  return { module, name };
}
