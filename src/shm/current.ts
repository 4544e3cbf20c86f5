/**
 * This thread's view of the process: the one shared heap (created on first use in the main
 * thread, handed over at spawn in threads threadkit starts) and this thread's ident.
 */

import { isMainThread } from 'node:worker_threads';
import { Heap, S_DEADLOCK_MODE, S_MAIN_IDENT, S_NEXT_IDENT, type HeapOptions } from './heap.js';
import { ThreadError } from '../errors.js';

let theHeap: Heap | undefined;
let pendingOptions: HeapOptions = {};
let myIdent = 0;
/**
 * What this thread writes into a mutex word it takes (shm/mutex.ts): its ident shifted left,
 * the low bit left for CONTENDED. Never 0 (0 is the unlocked word).
 */
export let myLockWord = 2;

function setIdent(ident: number): void {
  myIdent = ident;
  myLockWord = ident > 0 && ident < 0x40000000 ? ident << 1 : 0x7ffffffe;
}

/** The process-wide shared heap, created on first use. */
export function heap(): Heap {
  return theHeap ?? createHeap();
}

function createHeap(): Heap {
  theHeap = Heap.create(pendingOptions);
  // The creating thread (normally the main thread) takes the first ident.
  setIdent(Atomics.add(theHeap.i32, S_NEXT_IDENT, 1) + 1);
  Atomics.store(theHeap.i32, S_MAIN_IDENT, myIdent);
  detectionFromEnvironment(theHeap);
  return theHeap;
}

/**
 * THREADKIT_DEADLOCK_DETECTION=off|warn|raise: deadlock detection from the start, without a
 * code change (configureThreads can change it later). The CI runs the whole suite with 'raise'.
 */
function detectionFromEnvironment(h: Heap): void {
  const setting = process.env.THREADKIT_DEADLOCK_DETECTION;
  if (setting === undefined || setting === '') return;
  const mode = ['off', 'warn', 'raise'].indexOf(setting);
  if (mode < 0) throw new ThreadError(`THREADKIT_DEADLOCK_DETECTION must be off, warn or raise, got ${JSON.stringify(setting)}`);
  Atomics.store(h.i32, S_DEADLOCK_MODE, mode);
}

/**
 * Sets the shared heap's size limits. Call it before any shared object is created.
 * @throws ThreadError when the heap already exists.
 */
export function configureHeap(options: HeapOptions): void {
  if (theHeap) throw new ThreadError('configureHeap() must be called before the first shared object is created');
  pendingOptions = { ...options };
}

/** Called by the thread entry before user code runs: adopt the parent's heap and our ident. */
export function attachThread(sab: SharedArrayBuffer, ident: number): Heap {
  theHeap = new Heap(sab);
  setIdent(ident);
  return theHeap;
}

/** A reused isolate runs a new thread: it takes that thread's ident. */
export function setCurrentIdent(ident: number): void {
  setIdent(ident);
}

/** Hands out a fresh thread ident (non-zero, never reused in the process). */
export function allocateIdent(): number {
  return Atomics.add(heap().i32, S_NEXT_IDENT, 1) + 1;
}

/** This thread's ident (non-zero). */
export function currentIdent(): number {
  if (myIdent === 0) heap();
  return myIdent;
}

/** True when this thread is the one that created the heap (Node's main thread in practice). */
export function isHeapCreator(): boolean {
  return isMainThread || (theHeap !== undefined && Atomics.load(theHeap.i32, S_MAIN_IDENT) === myIdent);
}
