/**
 * Output on its way to the process's stdout and stderr. A thread's isolate does not write to
 * the file descriptors: Node forwards its `process.stdout`/`stderr` to the isolate that started
 * it, asynchronously, so a thread started by a thread prints through its parent's isolate. The
 * main thread must not let the process exit while output of threads that have ended is still
 * on the way (thread.ts, keepProcessAlive), and no thread may wait for its parent to forward its
 * output before it ends (a parent blocked in `join()` would never do it).
 *
 * Each isolate has an output word: in its mailbox (pool.ts), the main thread's in a block of its
 * own. The word after it holds the parent's output word (0 for the main thread's).
 *
 * | bits  | meaning                                                                    |
 * |-------|----------------------------------------------------------------------------|
 * | 0..29 | bytes this isolate wrote that its parent has not yet forwarded, plus one   |
 * |       | for each child isolate whose word is held (far below 2^30 in practice)     |
 * | 30    | DETACHED: the isolate runs a daemon thread (or has exited)                 |
 *
 * A word is held when its count is non-zero and DETACHED is clear; a held word counts one in
 * its parent's word. So the main thread's word is non-zero while output is on its way through
 * isolates that are free to forward it. An isolate running a daemon thread may be blocked for
 * good (its own output and its children's then waits in it): it does not hold the process, so
 * what passes through it may be lost at exit, as a daemon thread's own would be.
 *
 * The writer counts bytes before it writes them; the parent subtracts them after it has written
 * them on (which counts them in its own word first). A word becoming held counts one in its
 * parent before it changes, and uncounts it if it did not become held; a word that stops being
 * held uncounts after it changed. So no word ever shows less than is on its way below it: the
 * main thread's word reaches 0 only when every byte has been written out.
 */

import { Buffer } from 'node:buffer';
import { finished } from 'node:stream';
import type { Worker } from 'node:worker_threads';
import { heap } from '../shm/current.js';
import { Kind } from '../shm/handles.js';

const DETACHED = 1 << 30;

function isHeld(value: number): boolean {
  return value !== 0 && (value & DETACHED) === 0;
}

/** This isolate's output word (an Int32 index); the main thread allocates its own on first use. */
let ownWord = 0;

export function ownOutputWord(): number {
  if (ownWord === 0) ownWord = heap().alloc(8, Kind.Bytes) >> 2; // [count, parent 0]; never freed
  return ownWord;
}

/**
 * Adds `n` (> 0) to `word`. Only the main thread's word has a sleeper (thread.ts), and it waits
 * for 0, which an addition never makes: the atomics here need no notify.
 */
function add(word: number, n: number): void {
  const i32 = heap().i32;
  for (;;) {
    // A held word stays held when it grows: nothing to tell the parent.
    const value = Atomics.load(i32, word);
    if (!isHeld(value)) break;
    if (Atomics.compareExchange(i32, word, value, value + n) === value) return;
  }
  const parent = i32[word + 1]!;
  if (parent !== 0) add(parent, 1); // before the word may become held; undone below if it did not
  const before = Atomics.add(i32, word, n);
  if (parent !== 0 && (isHeld(before) || !isHeld(before + n))) subtract(parent, 1);
}

/** Subtracts `n` (> 0) from `word`, which holds at least that much. */
function subtract(word: number, n: number): void {
  const i32 = heap().i32;
  // The change is stored before the parent hears of it (below): the parent never shows less.
  const before = Atomics.sub(i32, word, n);
  const parent = i32[word + 1]!;
  if (parent === 0) {
    // The main thread's word: its keep-alive sleeps only while the word is non-zero, and we
    // stored the 0 before this notify, so it either sees the 0 before sleeping or is woken.
    if (before === n) Atomics.notify(i32, word);
  } else if (isHeld(before) && !isHeld(before - n)) {
    subtract(parent, 1);
  }
}

/** True when an isolate's word counts output of its own or of its children (held or not). */
export function hasPendingOutput(word: number): boolean {
  // A read for a choice only (pool.ts): no one sleeps on it.
  return (Atomics.load(heap().i32, word) & ~DETACHED) !== 0;
}

/** A thread isolate's entry: adopt its word, and count what it writes to stdout and stderr. */
export function initThreadOutput(word: number): void {
  ownWord = word;
  countWrites(process.stdout);
  countWrites(process.stderr);
}

/** Encodings whose strings Node's worker stdio turns into exactly `Buffer.byteLength` bytes. */
const EXACT = new Set(['utf8', 'utf-8', 'ascii', 'latin1', 'binary', 'ucs2', 'ucs-2', 'utf16le', 'utf-16le']);

/** Counts the bytes of each write in this isolate's word before the stream posts them to the parent. */
function countWrites(stream: NodeJS.WriteStream): void {
  const write = stream.write;
  const counted = function (this: NodeJS.WriteStream, chunk: unknown, encoding?: unknown, callback?: unknown): boolean {
    let data = chunk;
    let bytes = 0;
    if (stream.writable && typeof chunk === 'string') {
      const state = (stream as { _writableState?: { defaultEncoding?: string } })._writableState;
      const name = typeof encoding === 'string' ? encoding : (state?.defaultEncoding ?? 'utf8');
      if (EXACT.has(name.toLowerCase())) {
        bytes = Buffer.byteLength(chunk, name as BufferEncoding);
      } else if (Buffer.isEncoding(name)) {
        // hex, base64: the length of the decoded bytes is known only after decoding them.
        const buffer = Buffer.allocUnsafeSlow(Buffer.byteLength(chunk, name));
        data = buffer.subarray(0, buffer.write(chunk, name));
        bytes = (data as Buffer).length;
      }
    } else if (stream.writable && chunk instanceof Uint8Array) {
      bytes = chunk.byteLength;
    }
    if (bytes > 0) add(ownWord, bytes);
    try {
      return Reflect.apply(write, this, [data, encoding, callback]) as boolean;
    } catch (error) {
      if (bytes > 0) subtract(ownWord, bytes); // refused before it was posted
      throw error;
    }
  };
  stream.write = counted as typeof stream.write;
}

/** While this isolate runs a daemon thread, its output does not hold the process (module comment). */
export function detachOutput(detached: boolean): void {
  const i32 = heap().i32;
  const parent = i32[ownWord + 1]!;
  if (detached) {
    // Stored first, then the parent uncounts us (subtract notifies the main thread if need be).
    if (isHeld(Atomics.or(i32, ownWord, DETACHED))) subtract(parent, 1);
    return;
  }
  add(parent, 1); // before the word may become held again; undone if it did not
  const before = Atomics.and(i32, ownWord, ~DETACHED);
  if (isHeld(before) || !isHeld(before & ~DETACHED)) subtract(parent, 1);
}

/** The streams of child isolates this isolate takes output from. */
const forwarded = new WeakSet<object>();
let watchingUnpipe = false;

/**
 * In the parent, for a new isolate whose output word is `word`: subtract what it wrote once it
 * has been written on. Node pipes the worker's streams into ours first, so these listeners run
 * after the bytes were written to our own streams (and counted in our word).
 */
export function forwardOutput(worker: Worker, word: number): void {
  for (const readable of [worker.stdout, worker.stderr]) {
    forwarded.add(readable);
    readable.on('data', (chunk: Buffer) => {
      if (chunk.length > 0) subtract(word, chunk.length);
    });
  }
  if (watchingUnpipe) return;
  watchingUnpipe = true;
  // Node unpipes (and pauses) a child's stream when ours fails or closes: keep taking its
  // output then (dropped: it cannot be written) rather than hold the process for it.
  for (const ours of [process.stdout, process.stderr]) {
    ours.on('unpipe', (source: NodeJS.ReadableStream) => {
      if (forwarded.has(source)) source.resume();
    });
  }
}

/**
 * After the isolate exited: once everything it wrote has been taken (its streams have ended),
 * its word stops being held; then `done` (the word's block may be freed). Its own child
 * isolates ended before it did.
 */
export function settleOutput(worker: Worker, word: number, done: () => void): void {
  let open = 2;
  const settle = (): void => {
    if (--open > 0) return;
    const i32 = heap().i32;
    // Nothing adds to the word any more; stored, then the parent uncounts it (and notifies).
    if (isHeld(Atomics.exchange(i32, word, DETACHED))) subtract(i32[word + 1]!, 1);
    done();
  };
  finished(worker.stdout, settle);
  finished(worker.stderr, settle);
}
