/**
 * The thread side: what an isolate does to run one thread. Take the thread's ident, build its
 * Thread object (the subclass's, with the fields the parent copied), run it, then publish the
 * fields and any escaped error in the thread block, mark it STOPPED (waking joiners) and leave
 * the live list. Runs inside the worker (runtime/worker.ts), once per thread the isolate runs.
 */

import { workerData } from 'node:worker_threads';
import { ThreadError, describeError } from '../errors.js';
import { setCurrentIdent, heap } from '../shm/current.js';
import { decodeValue, dropEncoded } from '../shm/codec.js';
import { BUILTIN_MODULE, type FunctionDescriptor, builtins, compileSource, explainMissingName } from '../shm/functions.js';
import { dropReference, rememberIdentity, reviveAs } from '../shm/handles.js';
import type { ThreadInit, WorkerData } from '../runtime/messages.js';
import { bundled, inheritTypescriptLoader, typescriptLoader, workerEntry } from '../runtime/spawn.js';
import { actionsLoading, setActionImporter } from '../sync/barrier.js';
import { guardImport } from './bootstrapping.js';
import { type CallbackOwner, setCallbackOwner } from './callback-owners.js';
import { clearThreadLocals } from './local.js';
import * as B from './thread-block.js';
import { Thread, claimEnding, getNativeId, publishStopped, setCurrentThread, storeEncoded, storeException } from './thread.js';
import { resetExcepthook } from './excepthook.js';
import { TraceType, traceEvent, traceGen, traceThreadBegin, traceThreadEnded } from '../shm/trace-ring.js';

export { hasLiveChildren } from './thread.js';

let running: { thread: Thread; init: ThreadInit } | undefined;

/**
 * Work to settle when the isolate exits, before it releases the shared objects it holds.
 * `uncaught` is the error that ended the isolate, when an uncaught error did (else process.exit()).
 */
type ExitHook = (code: number, uncaught: unknown) => void;
const exitHooks: ExitHook[] = [];

export function addIsolateExitHook(hook: ExitHook): void {
  exitHooks.push(hook);
}

/** An error thrown where nothing catches it (a timer callback, say) ends the isolate: remember it for the exit hooks. */
let uncaughtError: { error: unknown } | undefined;
process.on('uncaughtExceptionMonitor', (error) => {
  uncaughtError = { error };
});

/** `process.exit()` (or an uncaught error) inside a thread ends the isolate at once: the thread still ends cleanly. */
export function onIsolateExit(code: number): void {
  const uncaught = uncaughtError?.error;
  for (const hook of exitHooks) hook(code, uncaught);
  if (running === undefined) return;
  const { thread } = running;
  running = undefined;
  const why =
    uncaughtError === undefined
      ? new ThreadError(`process.exit(${code}) was called in thread ${thread.name}: it ended the thread's isolate`)
      : new ThreadError(`an uncaught error ended thread ${thread.name}'s isolate: ${describeError(uncaught)}`, { cause: uncaught });
  thread._markDead(why);
}

let typescriptReady: Promise<void> | undefined;

/**
 * Installs the TypeScript loader in this isolate (once) when the parent ran under tsx: Node 20
 * does not carry loader hooks into workers, so the thread registers tsx itself.
 */
function loadTypeScript(loader: string | undefined): Promise<void> {
  if (loader === undefined) return Promise.resolve();
  return (typescriptReady ??= import(loader).then((api: { register: () => unknown }) => {
    api.register();
  }));
}

const TYPESCRIPT_FILE = /\.(ts|mts|cts|tsx)(\?.*)?$/;

/** Imports a module in this thread, installing the TypeScript loader first when it needs it. */
export async function importModule(url: string, what: string): Promise<Record<string, unknown>> {
  if (url === BUILTIN_MODULE) return builtins;
  if (bundled && url === workerEntry && (workerData as Partial<WorkerData> | null)?.evaluateBundle !== true) {
    // The bundle is this isolate's entry, held at its top-level await (bundled-worker.ts): an
    // import of it would wait for that await to end, for ever. (Threads started with a target
    // in the bundle get an isolate that evaluated it; pool threads do not.)
    throw new TypeError(
      `${what}: module ${url} is the bundle that holds threadkit; a pool thread cannot import it. In a bundled app, give the pool self-contained functions, or keep the module that exports the function out of the bundle`,
    );
  }
  if (TYPESCRIPT_FILE.test(url)) await loadTypeScript(typescriptLoader);
  try {
    return await guardImport(url, what, () => import(url) as Promise<Record<string, unknown>>);
  } catch (error) {
    throw new TypeError(`${what}: cannot import module ${url}: ${(error as Error).message}`, { cause: error });
  }
}

// Barrier actions given as module functions load through the same importer as targets.
setActionImporter(importModule);

async function loadTarget(target: FunctionDescriptor): Promise<(...args: unknown[]) => unknown> {
  if (target.kind === 'source') {
    // A self-contained function may `await import('./x.ts')`: have the loader ready.
    if (/\bimport\s*\(/.test(target.source)) await loadTypeScript(typescriptLoader);
    const fn = compileSource(target.source, target.origin, target.at);
    return (...args: unknown[]) => {
      try {
        const result = fn(...args);
        return result instanceof Promise ? result.catch((error: unknown) => Promise.reject(explainMissingName(error, 'the thread target'))) : result;
      } catch (error) {
        throw explainMissingName(error, 'the thread target');
      }
    };
  }
  const module = await importModule(target.module, `Thread target "${target.name}"`);
  const fn = module[target.name];
  if (typeof fn !== 'function') throw new TypeError(`Thread target: module ${target.module} has no exported function "${target.name}" (found ${typeof fn})`);
  return fn as (...args: unknown[]) => unknown;
}

/** Builds this thread's Thread object: the subclass's (fields copied in) or a plain Thread. */
async function threadObject(init: ThreadInit): Promise<Thread> {
  if (init.subclass === undefined) return reviveAs(init.threadBlock, () => new Thread());
  // (A revived wrapper adopts the reference the parent handed over with the block.)
  const { module, name } = init.subclass;
  const exports = await importModule(module, `Thread subclass ${name}`);
  const Class = Object.values(exports).find((value) => typeof value === 'function' && value.name === name && value.prototype instanceof Thread);
  if (Class === undefined) {
    throw new TypeError(`Thread subclass ${name} is not exported from ${module}: export the class (threadkit imports it in the thread), or set \`static module\` to the module that exports it`);
  }
  // Thread's constructor only (as a revival); the subclass's own state arrives as fields.
  return reviveAs(init.threadBlock, () => Reflect.construct(Thread, [], Class as typeof Thread));
}

/** Runs one thread in this isolate, from start to STOPPED. Never throws. */
export async function runThreadBody(init: ThreadInit): Promise<void> {
  const h = heap();
  setCurrentIdent(init.ident);
  inheritTypescriptLoader(init.typescriptLoader);
  // (Its bootstrap or its parent stored it already, unless /proc could not tell them: then now.)
  Atomics.store(h.i32, (init.threadBlock >> 2) + B.NATIVE_ID, getNativeId());
  Atomics.notify(h.i32, (init.threadBlock >> 2) + B.NATIVE_ID); // a parent's nativeId getter may sleep on it
  let thread: Thread | undefined;
  let error: unknown;
  let failed = false;
  const owner: CallbackOwner = { what: `thread ${init.name}`, ended: false };
  setCallbackOwner(owner);
  try {
    thread = await threadObject(init);
    rememberIdentity(thread);
    setCurrentThread(thread);
    if (traceGen() !== 0) traceThreadBegin(init.threadBlock, Atomics.load(h.i32, (init.threadBlock >> 2) + B.PARENT), thread.name);
    running = { thread, init };
    if (init.subclass !== undefined) Object.assign(thread, decodeValue(init.subclass.fields));
    const args = decodeValue(init.args) as unknown[];
    thread._setTargetForRun(init.target === undefined ? undefined : await loadTarget(init.target), args);
    // Barriers among the args (or fields) started importing their module-function actions: a
    // sync wait() in run() needs them loaded (sync/barrier.ts).
    const actions = actionsLoading();
    if (actions !== undefined) await actions;
    const returned = await thread.run();
    if (returned !== undefined) thread.result = returned as never;
  } catch (caught) {
    failed = true;
    error = caught;
  }
  owner.ended = true;
  setCallbackOwner(undefined);
  finish(init, thread, failed, error);
}

/**
 * A thread handed to this isolate that will never run here (the isolate is ending): it ends
 * with `error` (reported by its parent), and what was handed over with it is released.
 */
export function abandonThread(init: ThreadInit, error: Error): void {
  const h = heap();
  dropEncoded(init.args);
  if (init.subclass !== undefined) dropEncoded(init.subclass.fields);
  if (claimEnding(h, init.threadBlock)) {
    storeException(h, init.threadBlock, error);
    publishStopped(h, init.threadBlock);
  }
  dropReference(init.threadBlock); // the reference handed over with the block
}

function finish(init: ThreadInit, thread: Thread | undefined, failed: boolean, error: unknown): void {
  if (running === undefined && thread !== undefined) return; // ended by process.exit
  running = undefined;
  const h = heap();
  const block = init.threadBlock;
  resetExcepthook(); // a reused isolate's next thread starts with the default hook
  clearThreadLocals();
  if (traceGen() !== 0) traceEvent(TraceType.ThreadEnd, 0, block, failed ? 1 : 0);
  traceThreadEnded();
  setCurrentThread(undefined);
  if (!claimEnding(h, block)) {
    // The parent saw this isolate as dead first (it cannot be, but stay exact): nothing to publish.
    if (thread === undefined) dropReference(block);
    return;
  }
  if (thread !== undefined) {
    try {
      storeEncoded(h, block, B.RESULT, thread._ownFields(), 'thread result');
    } catch (encodeError) {
      if (!failed) {
        failed = true;
        error = encodeError;
      }
    }
  }
  if (failed) storeException(h, block, error);
  // Published above, then off the live list, then STOPPED and wake: joiners sleep while STARTED.
  publishStopped(h, block);
  // The parent handed over one reference with the block; the Thread object adopted it, unless
  // building that object failed.
  if (thread === undefined) dropReference(block);
}
