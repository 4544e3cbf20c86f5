/**
 * Helpers that TypeScript transpilers put at the top of a module and call from inside its
 * functions. A self-contained function's source text carries the calls but not the module, so
 * the thread supplies them: `__name` (esbuild keepNames), and the `using` / `await using`
 * helpers of esbuild (tsx: `__using`, `__callDispose`) and of tsc (`__addDisposableResource`,
 * `__disposeResources`). Each follows the explicit-resource-management proposal: resources are
 * disposed in reverse order, and an error thrown while disposing after another error is wrapped
 * in a SuppressedError.
 */

type Disposer = [isAsync: boolean, dispose?: () => unknown, value?: unknown];

function disposerOf(value: unknown, isAsync: boolean): (() => unknown) | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value !== 'object' && typeof value !== 'function') throw new TypeError('Object expected');
  const record = value as Record<symbol, unknown>;
  let dispose = isAsync ? record[Symbol.asyncDispose] : undefined;
  if (dispose === undefined) dispose = record[Symbol.dispose];
  if (typeof dispose !== 'function') throw new TypeError('Object not disposable');
  return dispose as () => unknown;
}

function suppressed(error: unknown, previous: unknown): Error {
  const message = 'An error was suppressed during disposal';
  if (typeof SuppressedError === 'function') return new SuppressedError(error, previous, message);
  return Object.assign(new Error(message), { name: 'SuppressedError', error, suppressed: previous });
}

/** Runs the disposers in reverse; returns a Promise when one of them is async. */
function disposeAll(stack: Disposer[], error: unknown, hasError: boolean): unknown {
  const fail = (e: unknown): void => {
    error = hasError ? suppressed(e, error) : e;
    hasError = true;
  };
  const next = (): unknown => {
    for (let entry = stack.pop(); entry !== undefined; entry = stack.pop()) {
      const [isAsync, dispose, value] = entry;
      try {
        const result = dispose?.call(value);
        if (isAsync) return Promise.resolve(result).then(next, (e: unknown) => (fail(e), next()));
      } catch (e) {
        fail(e);
      }
    }
    if (hasError) throw error;
    return undefined;
  };
  return next();
}

// esbuild (tsx)
const __using = (stack: Disposer[], value: unknown, isAsync?: boolean): unknown => {
  const dispose = disposerOf(value, Boolean(isAsync));
  if (dispose !== undefined) stack.push([Boolean(isAsync), dispose, value]);
  else if (isAsync) stack.push([true]);
  return value;
};
const __callDispose = (stack: Disposer[], error: unknown, hasError: boolean): unknown => disposeAll(stack, error, hasError);

// tsc
interface TscEnv {
  stack: Disposer[];
  error: unknown;
  hasError: boolean;
}
const __addDisposableResource = (env: TscEnv, value: unknown, isAsync: boolean): unknown => __using(env.stack, value, isAsync);
const __disposeResources = (env: TscEnv): unknown => disposeAll(env.stack, env.error, env.hasError);

// As esbuild's: names the function (keepNames), so that `fn.name` reads as in the sending thread.
const __name = <T>(target: T, value: string): T => Object.defineProperty(target, 'name', { value, configurable: true });

/** Parameter names and values for `new Function(...)`. */
export const transpiledHelperNames = ['__name', '__using', '__callDispose', '__addDisposableResource', '__disposeResources'];
export const transpiledHelpers: unknown[] = [__name, __using, __callDispose, __addDisposableResource, __disposeResources];
