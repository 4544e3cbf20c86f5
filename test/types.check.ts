/**
 * Type tests: checked by `npm run typecheck` (tsc over test/), never run (the test runner takes
 * only `*.test.ts`). Each misuse carries `@ts-expect-error`, so a regression that lets it
 * compile fails the typecheck; each inferred type is pinned with `expectType`.
 */

import { type Future, type ModuleFunction, Thread, type ThreadFunction, ThreadPoolExecutor, moduleFunction } from 'threadkit';

/** True when `A` and `B` are the same type (not merely assignable either way). */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;

/** Compiles only when the value's type is exactly `Expected`: `expectType<number>()(x)`. */
function expectType<Expected>() {
  return <Actual>(_value: Actual, ..._proof: Equal<Actual, Expected> extends true ? [] : [never]): void => {};
}

/** Exported functions for module-function targets (typed by moduleFunction below). */
export function work(a: number, b: string): number {
  return a + b.length;
}

export async function workAsync(n: number): Promise<string> {
  return String(n);
}

export function setUp(_label: string, _size?: number): void {}

/** Never called: the checks only need to compile. */
export function threadChecks(): void {
  // Arguments are checked against the target's parameters; the result is inferred.
  const t = new Thread({ target: (a: number, b: string) => a + b.length, args: [1, 'x'] });
  expectType<number | undefined>()(t.result);
  // @ts-expect-error wrong type
  new Thread({ target: (a: number, b: string) => a + b.length, args: ['x'] });
  // @ts-expect-error one missing
  new Thread({ target: (a: number, b: string) => a + b.length, args: [1] });
  // @ts-expect-error one too many
  new Thread({ target: (a: number, b: string) => a + b.length, args: [1, 'x', 2] });
  // @ts-expect-error required parameters need args
  new Thread({ target: (a: number) => a });
  new Thread({ target: (a: number, b: string) => a + b.length, args: [1, 'x'] as const });

  // No parameters: no args (and none allowed).
  expectType<string | undefined>()(new Thread({ target: () => 'hi' }).result);
  new Thread({ target: () => 'hi', args: [] });
  // @ts-expect-error no parameters, one arg
  new Thread({ target: () => 'hi', args: [1] });

  // Optional and rest parameters.
  new Thread({ target: (a?: number) => a });
  new Thread({ target: (a?: number) => a, args: [1] });
  // @ts-expect-error wrong type for an optional parameter
  new Thread({ target: (a?: number) => a, args: ['x'] });
  new Thread({ target: (...xs: number[]) => xs.length, args: [1, 2, 3] });
  // @ts-expect-error wrong type in a rest parameter
  new Thread({ target: (...xs: number[]) => xs.length, args: [1, 'x'] });

  // An unannotated target takes its parameter types from args.
  expectType<number | undefined>()(new Thread({ target: (a, b) => a * 2 + b.length, args: [1, 'x'] }).result);

  // Async targets: the result is the awaited value.
  expectType<number | undefined>()(new Thread({ target: async (n: number) => n * 2, args: [1] }).result);
  expectType<void | undefined>()(new Thread({ target: async () => {} }).result);

  // No target, an untyped target, an explicit result type.
  expectType<unknown>()(new Thread().result);
  expectType<unknown>()(new Thread({ name: 'idle', daemon: true }).result);
  const untyped: ThreadFunction = (x: number) => x;
  expectType<unknown>()(new Thread({ target: untyped, args: ['anything', 1] }).result);
  expectType<number | undefined>()(new Thread<number>({ target: (n: number) => n * 2, args: [21] }).result);
  // @ts-expect-error the target returns a number, not a string
  new Thread<string>({ target: (n: number) => n * 2, args: [21] });

  // Module functions: typed by moduleFunction (from the value, or from a type argument) ...
  const typed = moduleFunction(import.meta.url, 'work', work);
  expectType<ModuleFunction<typeof work>>()(typed);
  expectType<number | undefined>()(new Thread({ target: typed, args: [1, 'x'] }).result);
  // @ts-expect-error a typed module function checks its args
  new Thread({ target: typed, args: ['x', 1] });
  // @ts-expect-error and needs them
  new Thread({ target: typed });
  const typedAsync = moduleFunction<typeof workAsync>(new URL(import.meta.url), 'workAsync');
  expectType<string | undefined>()(new Thread({ target: typedAsync, args: [1] }).result);
  // ... or untyped: any args, an unknown result (or the one given).
  expectType<unknown>()(new Thread({ target: { module: import.meta.url, name: 'work' }, args: ['x', 1, 2] }).result);
  expectType<number | undefined>()(new Thread<number>({ target: { module: import.meta.url, name: 'work' }, args: [1, 'x'] }).result);
  const plain: ModuleFunction = { module: import.meta.url, name: 'work' };
  new Thread({ target: plain, args: [1, 2, 3] });

  // The inferred parameters do not show in the instance type: any Thread<R> fits Thread<R>.
  const list: Thread<number>[] = [t, new Thread({ target: () => 1 })];
  const any: Thread[] = [t, new Thread()];
  void list;
  void any;
}

/** A subclass fixes the result type; its run() sets it. */
export class Squarer extends Thread<number> {
  constructor(public n = 0) {
    super();
  }

  override run(): void {
    this.result = this.n * this.n;
    // @ts-expect-error result is a number
    this.result = 'x';
  }
}

export class Named extends Thread {
  constructor() {
    super({ name: 'named', target: (a: number) => a, args: [1] });
  }
}

export async function poolChecks(): Promise<void> {
  using pool = new ThreadPoolExecutor({ maxWorkers: 2 });

  // submit: arguments checked, the future typed (awaited for async functions).
  const doubled: Future<number> = pool.submit((a: number) => a * 2, 1);
  expectType<Future<number>>()(pool.submit((a: number) => a * 2, 1));
  expectType<Future<string>>()(pool.submit(async (n: number) => String(n), 1));
  expectType<number>()(await doubled);
  expectType<number>()(doubled.result());
  // @ts-expect-error wrong type
  pool.submit((a: number) => a * 2, 'x');
  // @ts-expect-error missing
  pool.submit((a: number) => a * 2);
  // @ts-expect-error one too many
  pool.submit((a: number) => a * 2, 1, 2);
  expectType<Future<number>>()(pool.submit(() => 1));
  expectType<Future<string>>()(pool.submit((a, b) => b.repeat(a), 2, 'x'));

  // submit with module functions: typed ones check their args; untyped ones take any.
  expectType<Future<number>>()(pool.submit(moduleFunction(import.meta.url, 'work', work), 1, 'x'));
  expectType<Future<string>>()(pool.submit(moduleFunction(import.meta.url, 'workAsync', workAsync), 1));
  // @ts-expect-error a typed module function checks its args
  pool.submit(moduleFunction(import.meta.url, 'work', work), 1, 2);
  expectType<Future<unknown>>()(pool.submit({ module: import.meta.url, name: 'work' }, 'anything', 1));
  const untyped: ThreadFunction = (n: number) => n;
  expectType<Future<unknown>>()(pool.submit(untyped, 'anything'));

  // map: one iterable per parameter, element types checked; optional trailing options.
  expectType<IterableIterator<string>>()(pool.map((a: number, b: string) => b.repeat(a), [1, 2], ['a', 'b']));
  expectType<IterableIterator<string>>()(pool.map((a: number, b: string) => b.repeat(a), [1, 2], new Set(['a']), { timeout: 1000, chunksize: 2 }));
  expectType<IterableIterator<number>>()(pool.map(async (n: number) => n, [1, 2, 3]));
  // @ts-expect-error wrong element type
  pool.map((a: number, b: string) => b.repeat(a), [1, 2], [3, 4]);
  // @ts-expect-error an iterable missing
  pool.map((a: number, b: string) => b.repeat(a), [1, 2]);
  // @ts-expect-error an iterable too many
  pool.map((a: number) => a, [1, 2], ['a']);
  // @ts-expect-error bad options
  pool.map((a: number) => a, [1, 2], { chunksize: '2' });
  // @ts-expect-error a non-iterable
  pool.map((a: number) => a, 1);
  expectType<IterableIterator<string>>()(pool.map((a, b) => b.repeat(a), [1, 2], ['a', 'b'], { chunksize: 2 }));
  for (const n of pool.map(moduleFunction(import.meta.url, 'work', work), [1], ['x'])) expectType<number>()(n);
  expectType<IterableIterator<unknown>>()(pool.map(untyped, [1], ['x'], { timeout: 5 }));
  expectType<IterableIterator<unknown>>()(pool.map({ module: import.meta.url, name: 'work' }, [1], ['x'], { chunksize: 2 }));

  // mapAsync: the same checks, an async iterator.
  expectType<AsyncIterableIterator<number>>()(pool.mapAsync((a: number) => a * 2, [1, 2], { timeout: 10 }));
  for await (const s of pool.mapAsync(async (n: number) => String(n), [1])) expectType<string>()(s);
  // @ts-expect-error wrong element type
  pool.mapAsync((a: number) => a * 2, ['x']);
}

export function initializerChecks(): void {
  new ThreadPoolExecutor({ initializer: (x: number) => void x, initargs: [1] });
  new ThreadPoolExecutor({ initializer: setUp, initargs: ['label'] });
  new ThreadPoolExecutor({ initializer: () => {} });
  new ThreadPoolExecutor({ initializer: (label) => void label.toUpperCase(), initargs: ['x'] });
  new ThreadPoolExecutor({ initializer: moduleFunction(import.meta.url, 'setUp', setUp), initargs: ['label', 2] });
  new ThreadPoolExecutor({ initializer: { module: import.meta.url, name: 'setUp' }, initargs: [1, 2, 3] });
  // @ts-expect-error wrong type
  new ThreadPoolExecutor({ initializer: (x: number) => void x, initargs: ['x'] });
  // @ts-expect-error required parameters need initargs
  new ThreadPoolExecutor({ initializer: (x: number) => void x });
  // @ts-expect-error one too many
  new ThreadPoolExecutor({ initializer: () => {}, initargs: [1] });
  // @ts-expect-error a typed module function checks its initargs
  new ThreadPoolExecutor({ initializer: moduleFunction(import.meta.url, 'setUp', setUp), initargs: [1] });

  // The initializer's parameters do not show in the instance type: every pool fits ThreadPoolExecutor.
  const pools: ThreadPoolExecutor[] = [new ThreadPoolExecutor({ initializer: setUp, initargs: ['x'] }), new ThreadPoolExecutor()];
  void pools;
}
