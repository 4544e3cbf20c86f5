/**
 * Isolates kept warm for reuse. A worker isolate costs tens of milliseconds to start; when a
 * thread ends, its isolate waits a while (`keepIdleMs`) for another thread to run, so that
 * `start()` + `join()` of a short thread costs microseconds instead.
 *
 * Each isolate has a mailbox block in the heap: [STATE, INIT, TID, BOOT_ERROR, boot error
 * text] (the last three written by its bootstrap, spawn.ts). The isolate stores IDLE and
 * sleeps on STATE (Atomics.waitAsync, so its event loop stays free for its own children).
 * A parent hands it a thread by writing INIT, then compareExchange IDLE → ASSIGNED, then
 * notify; the isolate wakes, sees ASSIGNED and runs it. An isolate that waited long enough
 * leaves with compareExchange IDLE → EXITED. Whichever compareExchange wins decides, so a
 * thread is never handed to an isolate that is leaving.
 *
 * What persists in a reused isolate: modules it imported (and their top-level state), globals
 * a target set, compiled functions. What does not: the thread's name, ident, `currentThread()`,
 * `local()` values. Opt out with `configureThreads({ keepIdleMs: 0 })`.
 */


import { Worker } from 'node:worker_threads';
import { encodeToBlock } from '../shm/codec.js';
import { heap } from '../shm/current.js';
import { WaitKind, park } from '../shm/wait-site.js';
import { Kind, dropReference } from '../shm/handles.js';
import { takeDeadLedger } from '../shm/ledger.js';
import { S_FAULT_STARTS } from '../shm/heap.js';
import { ASSIGNED, BUSY, IDLE, MAILBOX_BOOT_ERROR, MAILBOX_BOOT_TEXT, MAILBOX_BYTES, MAILBOX_INIT, MAILBOX_LEDGER, MAILBOX_STATE, MAILBOX_TID, type ThreadInit, type WorkerData } from './messages.js';
import { NATIVE_ID } from '../thread/thread-block.js';
import { BOOTSTRAP, workerEntry, workerExecArgv, workerPreloads } from './spawn.js';

export interface PooledWorker {
  worker: Worker;
  mailbox: number;
  stackBytes: number;
  /** The resourceLimits it was started with, as JSON ('' for none): reused only for the same. */
  limitsKey: string;
  /** In a bundle: the isolate evaluated the whole bundle, so it can run threads that import it. */
  evaluatesBundle: boolean;
  /** Called when the isolate exits, with the error that killed it if any. */
  onExit: ((code: number, error: Error | undefined) => void) | undefined;
  lastError: Error | undefined;
}

const idle: PooledWorker[] = [];
/** The smallest stack a worker isolate starts with (smaller ones crash or hang while it loads). */
const MIN_STACK_BYTES = 1024 * 1024;
let keepIdleMs = 5000;
let stackBytes = 0;

/**
 * How long a finished thread's isolate waits for another thread (ms); 0 = never reuse
 * (`configureThreads({ keepIdleMs })`, thread/configure.ts, checks the value).
 */
export function setKeepIdleMs(ms: number): void {
  keepIdleMs = ms;
}

/** threading.stack_size: the stack size (bytes) of threads started from now on; 0 = default. */
export function setStackBytes(bytes: number): void {
  stackBytes = bytes;
}

export function getStackBytes(): number {
  return stackBytes;
}

/**
 * Runs a thread on a warm isolate when one is idle, else on a new one.
 * @throws whatever `new Worker` throws (the caller undoes the start).
 */
export function runOnIsolate(init: ThreadInit): PooledWorker {
  const limitsKey = init.resourceLimits === undefined ? '' : JSON.stringify(init.resourceLimits);
  for (let i = idle.length - 1; i >= 0; i--) {
    const candidate = idle[i]!;
    if (candidate.stackBytes !== stackBytes || candidate.limitsKey !== limitsKey) continue;
    if (init.needsBundle && !candidate.evaluatesBundle) continue;
    idle.splice(i, 1);
    if (handOver(candidate, init)) return candidate;
  }
  return spawnIsolate(init);
}

/** The thread on `pooled` has ended: its isolate may take another. */
export function releaseIsolate(pooled: PooledWorker): void {
  if (keepIdleMs > 0 && !idle.includes(pooled)) idle.push(pooled);
}

function handOver(pooled: PooledWorker, init: ThreadInit): boolean {
  const h = heap();
  const state = pooled.mailbox >> 2;
  // The isolate may still be finishing the previous thread's epilogue (BUSY): that takes
  // microseconds, so wait for its IDLE briefly rather than start a new isolate.
  if (Atomics.load(h.i32, state + MAILBOX_STATE) === BUSY) park(h.i32, state + MAILBOX_STATE, BUSY, performance.now() + 20, WaitKind.Internal, 0);
  const block = encodeToBlock(h, init, 'thread');
  h.i32[state + MAILBOX_INIT] = block;
  // INIT is written before the compareExchange publishes ASSIGNED; the isolate reads it after.
  if (Atomics.compareExchange(h.i32, state + MAILBOX_STATE, IDLE, ASSIGNED) !== IDLE) {
    dropReference(block); // it left (EXITED) or is still busy: not ours to use
    return false;
  }
  // The warm isolate's OS thread is the new thread's: known now, for thread.nativeId right after
  // start() (nobody sleeps on the slot before start() returns: no notify needed).
  const tid = Atomics.load(h.i32, state + MAILBOX_TID);
  if (tid > 0) Atomics.store(h.i32, (init.threadBlock >> 2) + NATIVE_ID, tid);
  Atomics.notify(h.i32, state + MAILBOX_STATE);
  return true;
}

function spawnIsolate(init: ThreadInit): PooledWorker {
  const h = heap();
  const mailbox = h.alloc(MAILBOX_BYTES, Kind.Bytes);
  h.i32.fill(0, mailbox >> 2, (mailbox + MAILBOX_BYTES) >> 2); // a reused block may hold an old boot error
  const data: WorkerData = { threadkit: true, entry: workerEntry, evaluateBundle: init.needsBundle, failStart: takeStartFault(), preloads: workerPreloads, sab: h.sab, mailbox, keepIdleMs, first: init };
  const options: ConstructorParameters<typeof Worker>[1] = { eval: true, workerData: data, execArgv: workerExecArgv };
  // A worker isolate needs about 1 MiB of stack to load its modules: smaller sizes get that.
  if (init.resourceLimits !== undefined) options.resourceLimits = { ...init.resourceLimits };
  if (stackBytes > 0) options.resourceLimits = { ...options.resourceLimits, stackSizeMb: Math.max(stackBytes, MIN_STACK_BYTES) / (1024 * 1024) };
  let worker: Worker;
  try {
    worker = new Worker(BOOTSTRAP, options);
  } catch (error) {
    dropReference(mailbox);
    throw error;
  }
  // Threads never hold the process open by themselves: the main thread's keep-alive counts
  // live non-daemon threads instead (thread.ts), as Python's shutdown does.
  worker.unref();
  const limitsKey = init.resourceLimits === undefined ? '' : JSON.stringify(init.resourceLimits);
  const pooled: PooledWorker = { worker, mailbox, stackBytes, limitsKey, evaluatesBundle: init.needsBundle, onExit: undefined, lastError: undefined };
  worker.on('error', (error) => {
    pooled.lastError = error;
  });
  worker.on('exit', (code) => {
    const at = idle.indexOf(pooled);
    if (at >= 0) idle.splice(at, 1);
    pooled.onExit?.(code, pooled.lastError);
    // An isolate that died abruptly (out of memory, terminated) could not drop what its objects
    // held: drop it for it (ledger.ts; empty after a normal exit).
    for (const [offset, count] of takeDeadLedger((mailbox >> 2) + MAILBOX_LEDGER)) {
      for (let i = 0; i < count; i++) dropReference(offset);
    }
    dropReference(mailbox);
  });
  return pooled;
}

/** True when a test asked this isolate start to fail (threadkit/testing failNextIsolateStarts): one taken from the countdown. */
function takeStartFault(): boolean {
  const i32 = heap().i32;
  // (A countdown nobody sleeps on: each start that fails takes one with a compareExchange.)
  for (let left = Atomics.load(i32, S_FAULT_STARTS); left > 0; left = Atomics.load(i32, S_FAULT_STARTS)) {
    if (Atomics.compareExchange(i32, S_FAULT_STARTS, left, left - 1) === left) return true;
  }
  return false;
}

/**
 * Why the isolate could not load threadkit (its bootstrap wrote it, spawn.ts), or undefined.
 * Read from any thread, without the isolate's exit event: a parent blocked in `join()` calls it.
 */
export function bootFailure(pooled: PooledWorker): string | undefined {
  const h = heap();
  // A read for a check only (nobody sleeps on it); the bootstrap stores the length last.
  const length = Atomics.load(h.i32, (pooled.mailbox >> 2) + MAILBOX_BOOT_ERROR);
  if (length === 0) return undefined;
  // The text was written before the length was stored: all of it is there.
  const start = pooled.mailbox + MAILBOX_BOOT_TEXT * 4;
  return String.fromCharCode(...new Uint16Array(h.sab, start, length));
}

/** The isolate's OS thread id once its bootstrap ran (-1 when it cannot tell), else undefined. */
export function isolateTid(pooled: PooledWorker): number | undefined {
  return Atomics.load(heap().i32, (pooled.mailbox >> 2) + MAILBOX_TID) || undefined;
}
