/**
 * The hang watchdog's thread (`dumpThreadsLater`, thread/dump.ts): a daemon threadkit thread
 * that waits on an Event for the interval, then prints a thread dump to stderr with a
 * synchronous write (the other threads may all be blocked), and with `exit` ends the process.
 */

import { existsSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';
import { BUILTIN_MODULE, builtins } from '../shm/functions.js';
import { Event } from '../sync/event.js';
import { heap } from '../shm/current.js';
import { dropReference, wrapperFor } from '../shm/handles.js';
import { S_WATCHDOG } from '../shm/heap.js';
import { dumpThreads, wantWaitStacks } from './dump.js';
import { dumpRequestPaths } from './dump-request.js';
import { Thread } from './thread.js';
import { writeTraceFromEnvironment } from '../trace/trace.js';

function runWatchdog(stop: Event, ms: number, repeat: boolean, exit: boolean): void {
  while (!stop.wait(ms)) {
    writeSync(2, `${dumpThreads().toString()}\n`);
    // THREADKIT_TRACE: the program hangs, so its exit may never come: write the trace now.
    writeTraceFromEnvironment();
    // A worker cannot exit the process, and the main thread may be blocked: a signal ends it.
    if (exit) process.kill(process.pid, 'SIGKILL');
    if (!repeat) break;
  }
}

builtins.runWatchdog = runWatchdog;

/**
 * The hang watchdog: after `ms` (again every `ms` with `repeat`), prints `dumpThreads()` to
 * stderr; with `exit`, then ends the process at once. It runs on a daemon thread of its own,
 * so it fires while every other thread, main included, is blocked. One per process: a call
 * from any thread replaces the one armed before. From the call until it is cancelled or
 * replaced, threads record their stacks when they begin a wait.
 * @throws RangeError for a negative or non-finite `ms`; TypeError for options that are not an object.
 */
export function dumpThreadsLater(ms: number, options: { repeat?: boolean; exit?: boolean } = {}): void {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) throw new RangeError(`dumpThreadsLater(ms): expected a non-negative, finite number of milliseconds, got ${String(ms)}`);
  if (typeof options !== 'object' || options === null) throw new TypeError(`dumpThreadsLater(ms, options): expected an options object such as { repeat: true }, got ${String(options)}`);
  const stop = new Event();
  const thread = new Thread({ name: 'threadkit-watchdog', daemon: true, target: { module: BUILTIN_MODULE, name: 'runWatchdog' }, args: [stop, ms, options.repeat === true, options.exit === true] });
  // Stacks are asked for from now (threads that begin a wait from here record it) until this
  // watchdog leaves the slot (cancelled or replaced): the slot's event stands for the request.
  wantWaitStacks(1);
  try {
    thread._start();
  } catch (error) {
    wantWaitStacks(-1);
    throw error;
  }
  // The slot holds a reference on the stop Event of the armed watchdog.
  const h = heap();
  h.retain(stop._offset);
  // Nobody sleeps on the slot; the exchange hands the previous watchdog's Event to exactly one
  // caller, which sets it (the set() is what wakes that watchdog).
  stopWatchdog(Atomics.exchange(h.i32, S_WATCHDOG, stop._offset));
}

/** Disarms the watchdog armed by `dumpThreadsLater` in any thread (nothing when none is armed). */
export function cancelDumpThreadsLater(): void {
  stopWatchdog(Atomics.exchange(heap().i32, S_WATCHDOG, 0));
}

/** Sets the stop Event of a watchdog taken out of the slot, and drops the slot's reference. */
function stopWatchdog(event: number): void {
  if (event === 0) return;
  (wrapperFor(event) as Event).set();
  dropReference(event);
  wantWaitStacks(-1);
}

// ---- dumps asked for from outside ----------------------------------------------------------------

/** How often the listener looks for a request (ms). */
const REQUEST_POLL_MS = 200;

function runDumpListener(stop: Event, request: string, output: string): void {
  while (!stop.wait(REQUEST_POLL_MS)) {
    if (!existsSync(request)) continue;
    // Written whole, then renamed: a reader never sees half a dump.
    writeFileSync(`${output}.part`, `${dumpThreads().toString()}\n`);
    renameSync(`${output}.part`, output);
    rmSync(request, { force: true });
  }
}

builtins.runDumpListener = runDumpListener;

/**
 * With THREADKIT_DUMP_ON_REQUEST=1 in the environment, the main thread starts a daemon thread
 * that writes a dump whenever `npx threadkit-dump <pid>` (or any creator of the request file)
 * asks. Called once threadkit's modules are loaded (index.ts).
 */
export function listenForDumpRequestsFromEnv(): void {
  const setting = process.env.THREADKIT_DUMP_ON_REQUEST;
  if (setting === undefined || setting === '' || setting === '0' || !isMainThread) return;
  const { request, output } = dumpRequestPaths(process.pid);
  const thread = new Thread({ name: 'threadkit-dump-listener', daemon: true, target: { module: BUILTIN_MODULE, name: 'runDumpListener' }, args: [new Event(), request, output] });
  thread._start();
}
