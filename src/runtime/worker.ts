/**
 * What every isolate threadkit starts runs, after its bootstrap (spawn.ts): attach the shared
 * heap, run the first thread, then wait in the mailbox for more threads (pool.ts) until idle
 * for `keepIdleMs`. Imported by the worker entry (worker-entry.ts) or, in a bundle, by the
 * bundle's own copy of threadkit (bundled-worker.ts); it does nothing until `runIsolate()`.
 */

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { workerData } from 'node:worker_threads';
import { ThreadError, describeError } from '../errors.js';
import { attachThread, heap } from '../shm/current.js';
import { decodeValue } from '../shm/codec.js';
import { futexWaitAsync, loopHolders } from '../shm/futex.js';
import { WaitKind, park } from '../shm/wait-site.js';
import { dropReference, releaseAllHeld } from '../shm/handles.js';
import { setLedgerSlot } from '../shm/ledger.js';
import { abandonThread, hasLiveChildren, onIsolateExit, runThreadBody } from '../thread/body.js';
import { attributeCallbacks } from '../thread/callback-owners.js';
import { ASSIGNED, BUSY, EXITED, IDLE, MAILBOX_INIT, MAILBOX_LEDGER, MAILBOX_STATE, type ThreadInit, type WorkerData } from './messages.js';
import { writeOutputDirectly } from './output.js';

/** How long an idle isolate blocks (event loop paused) for a next thread before waiting asynchronously. */
const SYNC_IDLE_MS = 2;
/** …of which it spins this long (µs): a next thread usually comes sooner than a futex wake-up would. */
const SPIN_IDLE_MICROS = 300;

let data: WorkerData;
let state = 0;

/**
 * Runs this isolate's threads, then ends the isolate. Every shared kind must be registered
 * first (index.ts). `bundleLoaded`: the evaluation of the bundle this isolate runs from
 * (bundled-worker.ts), awaited before the first thread runs.
 */
export async function runIsolate(bundleLoaded?: Promise<unknown>): Promise<never> {
  data = workerData as WorkerData;
  attachThread(data.sab, data.first.ident);
  // Before any wrapper exists: what this isolate holds is mirrored for its parent (ledger.ts).
  setLedgerSlot((data.mailbox >> 2) + MAILBOX_LEDGER);
  // What threads print goes straight to fd 1 and 2, in the order it was printed (output.ts).
  writeOutputDirectly();
  // A callback a thread or task left behind that throws is reported against it (callback-owners.ts).
  attributeCallbacks();
  const h = heap();
  state = (data.mailbox >> 2) + MAILBOX_STATE;
  process.on('exit', (code) => {
    // From now on no parent can hand us a thread (its compareExchange from IDLE fails). One
    // handed over and not yet taken (we died idle) ends with an error instead of never starting.
    if (Atomics.exchange(h.i32, state, EXITED) === ASSIGNED) {
      abandonThread(readAssigned(), new ThreadError(`the isolate the thread was handed to ended (exit code ${code}) before the thread could start`));
    }
    Atomics.notify(h.i32, state); // a parent waiting for our BUSY to end sees EXITED
    onIsolateExit(code);
    releaseAllHeld();
  });
  let next: ThreadInit | undefined = data.first;
  if (bundleLoaded !== undefined) {
    try {
      await bundleLoaded;
    } catch (error) {
      abandonThread(data.first, new ThreadError(`thread ${data.first.name} could not start: the app's bundle failed when the thread evaluated it: ${describeError(error)}`, { cause: error }));
      next = undefined;
    }
  }
  while (next !== undefined) {
    await runThreadBody(next);
    next = await waitForNextThread();
  }
  // Everything printed was written synchronously: nothing is on its way.
  process.exit(0);
}

/** A full collection in this isolate (Node's gc, reached without --expose-gc on the command line). */
function collectGarbage(): void {
  try {
    gc ??= (() => {
      setFlagsFromString('--expose-gc');
      return runInNewContext('gc') as () => void;
    })();
    gc();
  } catch {
    // not available: the finalizers will run when V8 collects on its own
  }
}

let gc: (() => void) | undefined;

/**
 * Work a thread left running in this isolate (timers, sockets, pending file operations…),
 * beyond the isolate's own stdio ports. Unref'd timers and handles are not listed.
 */
function leftovers(): number {
  // (Our own keep-alive timer, held while a Promise wait is pending — a child thread's end not yet
  // seen by its watcher, say — is not the thread's.)
  return process.getActiveResourcesInfo().filter((type) => type !== 'MessagePort' && type !== 'CloseReq').length - loopHolders();
}

/**
 * The thread that just ended left work running here: no other thread may run in this isolate
 * (a leftover timer that throws would end that thread). Marked EXITED at once, so no parent
 * hands us a thread; the leftovers run to completion, as in a Node worker, then we end.
 */
async function retire(): Promise<undefined> {
  const h = heap();
  Atomics.store(h.i32, state, EXITED);
  Atomics.notify(h.i32, state); // a parent waiting for our BUSY to end sees EXITED
  // Checked before each poll timer is made (the previous one has fired): it is not counted.
  while (leftovers() > 0 || hasLiveChildren()) await new Promise((resolve) => setTimeout(resolve, 20));
  return undefined;
}

/** Parks the isolate until a parent hands it a thread, or it has idled long enough (then undefined). */
async function waitForNextThread(): Promise<ThreadInit | undefined> {
  const h = heap();
  if (leftovers() > 0) return retire();
  if (data.keepIdleMs <= 0 && !hasLiveChildren()) return undefined;
  // Publish IDLE, then wake a parent that waits for us to finish the epilogue.
  Atomics.store(h.i32, state, IDLE);
  Atomics.notify(h.i32, state);
  // A program that starts threads one after another hands us the next one within
  // microseconds: wait a moment without the event loop's wake-up cost before going async.
  if (park(h.i32, state, IDLE, performance.now() + SYNC_IDLE_MS, WaitKind.Internal, 0, false, SPIN_IDLE_MICROS) !== 'timed-out' && Atomics.load(h.i32, state) === ASSIGNED) {
    return takeAssigned();
  }
  // Idle now: collect this isolate's garbage, so the wrappers the finished thread left (its
  // args, its Thread object) release their shared blocks instead of holding them while idle.
  collectGarbage();
  for (;;) {
    // Sleep only while the word says IDLE; a parent writes ASSIGNED before it notifies.
    await futexWaitAsync(h.i32, state, IDLE, performance.now() + Math.max(data.keepIdleMs, 1));
    if (Atomics.load(h.i32, state) === ASSIGNED) return takeAssigned();
    // Idle long enough. An isolate hosting threads it started must stay (they die with it).
    if (hasLiveChildren()) continue;
    if (Atomics.compareExchange(h.i32, state, IDLE, EXITED) === IDLE) return undefined;
    return takeAssigned(); // a parent won the race: run its thread
  }
}

function takeAssigned(): ThreadInit {
  Atomics.store(heap().i32, state, BUSY);
  return readAssigned();
}

/** The thread a parent handed over (the mailbox's INIT block, freed here). */
function readAssigned(): ThreadInit {
  const h = heap();
  const block = h.i32[(data.mailbox >> 2) + MAILBOX_INIT]!;
  h.ensureMapped(h.topBytes());
  try {
    return decodeValue(h.buf, block) as ThreadInit;
  } finally {
    dropReference(block);
  }
}
