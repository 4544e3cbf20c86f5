/**
 * Thread: CPython's `threading.Thread` on a worker isolate. The parent keeps a small block in
 * the shared heap (state, ident, native id, result) that the thread itself updates, so
 * `join()` is a futex wait on the state word and works whether or not the parent's event loop
 * is free.
 *
 * Thread block (Int32 slots):
 *
 * | slot | field    | meaning                                                        |
 * |------|----------|----------------------------------------------------------------|
 * | 0    | state    | INITIAL 0, STARTED 1, STOPPED 2 (joiners sleep while it is 1)  |
 * | 1    | ident    | the thread's ident                                             |
 * | 2    | nativeId | the OS thread id, written by the thread                        |
 * | 3    | result   | offset of the encoded result (one reference), 0 for none       |
 */

import { readlinkSync } from 'node:fs';
import { inspect } from 'node:util';
import type { Worker } from 'node:worker_threads';
import { ThreadError } from '../errors.js';
import { decodeValue, dropEncoded, encodeToBytes, encodeValue } from '../shm/codec.js';
import { allocateIdent, heap } from '../shm/current.js';
import { S_NEXT_THREAD_NO } from '../shm/heap.js';
import { deadlineAfter, futexWait, futexWaitAsync, timeoutOrZero, describe } from '../shm/futex.js';
import { type FunctionDescriptor, type ThreadFunction, compileSource, describeFunction, explainMissingName } from '../shm/functions.js';
import { Kind, SharedObject, dropReference, registerKind, releaseAllHeld, reviveAs } from '../shm/handles.js';
import type { ThreadInit } from '../runtime/messages.js';
import { spawnWorker, typescriptLoader } from '../runtime/spawn.js';

const STATE = 0;
const IDENT = 1;
const NATIVE_ID = 2;
const RESULT = 3;

const INITIAL = 0;
const STARTED = 1;
const STOPPED = 2;

/** This thread's daemon flag: new threads inherit it. */
let currentIsDaemon = false;

/** The shared part of a Thread: a block only the Thread object and its worker hold. */
class ThreadBlock extends SharedObject {
  constructor() {
    super(Kind.Thread, 16);
  }
}

registerKind(Kind.Thread, {
  name: 'Thread',
  revive: (offset) => reviveAs(offset, () => new ThreadBlock()),
  destroy: (h, offset) => {
    const result = h.i32[(offset >> 2) + RESULT]!;
    if (result !== 0) {
      dropEncoded(h.buf, result);
      dropReference(result);
    }
  },
});

export interface ThreadOptions<A extends unknown[] = unknown[]> {
  /** What the thread runs: a self-contained function or `{ module, name }`. */
  target?: ThreadFunction;
  /** Default "Thread-N", or "Thread-N (targetName)". */
  name?: string;
  /** Arguments for the target, copied to the thread (shared objects by reference). */
  args?: Readonly<A>;
  /** Daemon threads do not keep the process alive. @default inherited from the creating thread */
  daemon?: boolean;
}

export class Thread<R = unknown> {
  name: string;
  private _daemon: boolean;
  private readonly target: FunctionDescriptor | undefined;
  private readonly args: readonly unknown[];
  private readonly block: ThreadBlock;
  private worker: Worker | undefined;
  private resultValue: { value: R } | undefined;

  /**
   * @throws TypeError when `target` is neither a function nor `{ module, name }`, or `args` is not an array.
   */
  constructor(options: ThreadOptions = {}) {
    if (typeof options !== 'object' || options === null) throw new TypeError(`Thread(options): expected an options object, got ${describe(options)}`);
    const { target, name, args = [], daemon } = options;
    this.target = target === undefined ? undefined : describeFunction(target, 'Thread target', callerModule());
    if (!Array.isArray(args)) throw new TypeError(`Thread args must be an array, got ${describe(args)}`);
    if (name !== undefined && typeof name !== 'string') throw new TypeError(`Thread name must be a string, got ${describe(name)}`);
    if (daemon !== undefined && typeof daemon !== 'boolean') throw new TypeError(`Thread daemon must be a boolean, got ${describe(daemon)}`);
    this.args = args;
    this._daemon = daemon ?? currentIsDaemon;
    this.block = new ThreadBlock();
    this.name = name ?? defaultName(this.target);
  }

  get daemon(): boolean {
    return this._daemon;
  }

  set daemon(value: boolean) {
    if (this.state() !== INITIAL) throw new ThreadError('cannot set daemon status of active thread');
    this._daemon = Boolean(value);
  }

  /** The thread's ident once started (non-zero, unique among live threads), else undefined. */
  get ident(): number | undefined {
    const ident = this.i32[this.base + IDENT]!;
    return ident === 0 ? undefined : ident;
  }

  /** The OS thread id (Linux TID) once the thread runs, else undefined. */
  get nativeId(): number | undefined {
    const id = Atomics.load(this.i32, this.base + NATIVE_ID);
    return id === 0 ? undefined : id;
  }

  /** What the target returned (awaited if a Promise), once the thread has ended. */
  get result(): R | undefined {
    if (this.resultValue === undefined && this.state() === STOPPED) this.resultValue = { value: this.takeResult() };
    return this.resultValue?.value;
  }

  set result(value: R | undefined) {
    this.resultValue = { value: value as R };
  }

  /**
   * Starts the thread: a worker isolate runs the target with a copy of `args`.
   * @throws ThreadError "threads can only be started once"; TypeError when an arg cannot be cloned.
   */
  start(): void {
    if (this.state() !== INITIAL) throw new ThreadError('threads can only be started once');
    const args = encodeToBytes(this.args, 'args');
    const h = heap();
    const ident = allocateIdent();
    this.i32[this.base + IDENT] = ident;
    h.retain(this.block._offset); // the thread's own reference, dropped when it ends
    const init: ThreadInit = {
      sab: h.sab,
      ident,
      threadBlock: this.block._offset,
      name: this.name,
      daemon: this._daemon,
      target: this.target,
      args,
      typescriptLoader,
    };
    Atomics.store(this.i32, this.base + STATE, STARTED);
    let worker: Worker;
    try {
      worker = spawnWorker(init);
    } catch (error) {
      dropEncoded(args);
      dropReference(this.block._offset);
      this.markStopped();
      throw error;
    }
    this.worker = worker;
    if (this._daemon) worker.unref();
    worker.on('error', (error) => reportException(this.name, error));
    // A thread that ended without reaching its own epilogue (killed isolate, out of memory)
    // is marked stopped here, so joiners wake.
    worker.on('exit', () => {
      if (this.state() !== STOPPED) this.markStopped();
      this.worker = undefined;
    });
  }

  /** Runs the target in the calling thread (what the new thread does; override in a subclass). */
  run(): unknown {
    if (this.target === undefined) return undefined;
    const fn = this.target.kind === 'source' ? compileSource(this.target.source) : undefined;
    if (fn === undefined) throw new ThreadError('run() of a module-function target can only run in its thread; call start()');
    return fn(...this.args);
  }

  /**
   * Waits until the thread ends, at most `timeout` ms (negative counts as 0). Never throws the
   * thread's error (that goes to the excepthook); check `isAlive()` after a timed join.
   * @throws ThreadError "cannot join thread before it is started".
   */
  join(timeout?: number): void {
    const deadline = deadlineAfter(timeoutOrZero(timeout, 'Thread.join'));
    if (this.state() === INITIAL) throw new ThreadError('cannot join thread before it is started');
    // Sleep only while the state word still says STARTED; the thread stores STOPPED first, then notifies.
    while (this.state() === STARTED) {
      if (futexWait(this.i32, this.base + STATE, STARTED, deadline) === 'timed-out') return;
    }
  }

  /** The Promise twin of `join`. */
  async joinAsync(options: { timeout?: number; signal?: AbortSignal } = {}): Promise<void> {
    const deadline = deadlineAfter(timeoutOrZero(options.timeout, 'Thread.joinAsync'));
    if (this.state() === INITIAL) throw new ThreadError('cannot join thread before it is started');
    while (this.state() === STARTED) {
      if ((await futexWaitAsync(this.i32, this.base + STATE, STARTED, deadline, options.signal)) === 'timed-out') return;
    }
  }

  /** True from `start()` until the thread's target has returned (or its isolate died). */
  isAlive(): boolean {
    return this.state() === STARTED;
  }

  toString(): string {
    const state = this.state();
    let status = state === INITIAL ? 'initial' : state === STARTED ? 'started' : 'stopped';
    if (this._daemon) status += ' daemon';
    if (this.ident !== undefined) status += ` ${this.ident}`;
    return `<Thread(${this.name}, ${status})>`;
  }

  [inspect.custom](): string {
    return this.toString();
  }

  private get i32(): Int32Array {
    return this.block._heap.i32;
  }

  private get base(): number {
    return this.block._offset >> 2;
  }

  private state(): number {
    return Atomics.load(this.i32, this.base + STATE);
  }

  private markStopped(): void {
    Atomics.store(this.i32, this.base + STATE, STOPPED);
    Atomics.notify(this.i32, this.base + STATE);
  }

  private takeResult(): R {
    const h = heap();
    const offset = Atomics.exchange(this.i32, this.base + RESULT, 0);
    if (offset === 0) return undefined as R;
    h.ensureMapped(offset + h.capacity(offset));
    try {
      return decodeValue(h.buf, offset) as R;
    } finally {
      dropReference(offset);
    }
  }
}

function defaultName(target: FunctionDescriptor | undefined): string {
  const n = Atomics.add(heap().i32, S_NEXT_THREAD_NO, 1) + 1;
  // `{ target: () => … }` names the arrow "target": that is not a name the user gave.
  const targetName = target === undefined || target.name === 'target' ? '' : target.name;
  return targetName ? `Thread-${n} (${targetName})` : `Thread-${n}`;
}

/** The module that called into threadkit (relative `import()` in a target resolves there). */
function callerModule(): string | undefined {
  const stack = new Error().stack?.split('\n') ?? [];
  for (const line of stack.slice(2)) {
    const match = /(file:\/\/[^\s):]+|\/[^\s):]+)(?::\d+){0,2}\)?$/.exec(line.trim());
    if (match && !match[1]!.includes('/threadkit/dist/') && !match[1]!.includes('/dist/thread/')) return match[1];
  }
  return undefined;
}

/** The default excepthook: Python's "Exception in thread NAME:" and the stack, to stderr. */
export function reportException(name: string, error: unknown): void {
  const text = error instanceof Error ? (error.stack ?? `${error.name}: ${error.message}`) : `Uncaught ${inspect(error)}`;
  process.stderr.write(`Exception in thread ${name}:\n${text}\n`);
}

// ---- the thread's side (runs inside the worker) ---------------------------------------------

let typescriptReady: Promise<void> | undefined;

/**
 * Installs the TypeScript loader in this thread (once) when the parent ran under tsx: Node 20
 * does not carry loader hooks into workers, so the thread registers tsx itself.
 */
function loadTypeScript(loader: string | undefined): Promise<void> {
  if (loader === undefined) return Promise.resolve();
  return (typescriptReady ??= import(loader).then((api: { register: () => unknown }) => {
    api.register();
  }));
}

const TYPESCRIPT_FILE = /\.(ts|mts|cts|tsx)(\?.*)?$/;

async function loadTarget(target: FunctionDescriptor, init: ThreadInit): Promise<(...args: unknown[]) => unknown> {
  if (target.kind === 'source') {
    // A self-contained function may `await import('./x.ts')`: have the loader ready.
    if (/\bimport\s*\(/.test(target.source)) await loadTypeScript(init.typescriptLoader);
    return compileSource(target.source);
  }
  if (TYPESCRIPT_FILE.test(target.module)) await loadTypeScript(init.typescriptLoader);
  let module: Record<string, unknown>;
  try {
    module = (await import(target.module)) as Record<string, unknown>;
  } catch (error) {
    throw new TypeError(`Thread target: cannot import module ${target.module} (for export "${target.name}"): ${(error as Error).message}`, { cause: error });
  }
  const fn = module[target.name];
  if (typeof fn !== 'function') {
    throw new TypeError(`Thread target: module ${target.module} has no exported function "${target.name}" (found ${describe(fn)})`);
  }
  return fn as (...args: unknown[]) => unknown;
}

/** Runs a thread's target inside its worker, then publishes the result and ends the thread. */
export async function runThreadBody(init: ThreadInit): Promise<void> {
  const h = heap();
  const base = init.threadBlock >> 2;
  currentIsDaemon = init.daemon;
  Atomics.store(h.i32, base + NATIVE_ID, readNativeId());
  let finished = false;
  const finish = (result: unknown): void => {
    if (finished) return;
    finished = true;
    publishResult(init, result);
    // Stopped first, then wake: joiners sleep only while the word says STARTED.
    Atomics.store(h.i32, base + STATE, STOPPED);
    Atomics.notify(h.i32, base + STATE);
    dropReference(init.threadBlock);
    releaseAllHeld();
  };
  // process.exit() inside the target ends the isolate at once; joiners must still wake.
  process.on('exit', () => finish(undefined));
  let result: unknown;
  try {
    const args = decodeValue(init.args) as unknown[];
    if (init.target !== undefined) {
      const fn = await loadTarget(init.target, init);
      try {
        result = await fn(...args);
      } catch (error) {
        throw init.target.kind === 'source' ? explainMissingName(error, 'the thread target') : error;
      }
    }
  } catch (error) {
    reportException(init.name, error);
  }
  finish(result);
  // End the isolate now (a thread ends when its target returns, even if it left timers), but
  // only after stdout and stderr have handed their pending output to the parent.
  await new Promise((resolve) => process.stdout.write('', resolve));
  await new Promise((resolve) => process.stderr.write('', resolve));
  process.exit(0);
}

function publishResult(init: ThreadInit, result: unknown): void {
  if (result === undefined) return;
  const h = heap();
  let bytes: Uint8Array;
  try {
    bytes = encodeValue(result, 'result');
  } catch (error) {
    reportException(init.name, error);
    return;
  }
  const block = h.alloc(bytes.length, Kind.Bytes);
  h.u8.set(bytes, block);
  Atomics.store(h.i32, (init.threadBlock >> 2) + RESULT, block);
}

function readNativeId(): number {
  try {
    // "/proc/thread-self" links to "<pid>/task/<tid>".
    return Number(readlinkSync('/proc/thread-self').split('/').pop()) || 0;
  } catch {
    return 0;
  }
}
