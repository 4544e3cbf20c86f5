/**
 * Output straight to the file descriptors, as Python writes. A Node worker's `process.stdout`
 * and `console` post what they print to the parent isolate, which writes it from its event
 * loop: lines arrive late while the parent blocks in `join()`, out of order across threads,
 * and are lost when the process exits first. Every isolate threadkit starts (and the main
 * thread, once it starts a thread) writes instead with `fs.writeSync` to fd 1 or 2, in the
 * order the calls were made: a line printed before a release, a put or a thread's end is in
 * the file before any line printed after the matching acquire, get or join.
 *
 * Bun and Deno give workers a native `console` that does not go through `process.stdout`:
 * the isolate's console methods are replaced by a `Console` over the same direct streams.
 */

import { Console } from 'node:console';
import { writeSync } from 'node:fs';
import { Writable } from 'node:stream';
import { isatty } from 'node:tty';

/** How long a writer sleeps when the pipe is full (ms): its reader is behind. */
const FULL_PIPE_SLEEP_MS = 1;
const napWord = new Int32Array(new SharedArrayBuffer(4));

/**
 * Writes all of `data` to `fd` now. The descriptor may be non-blocking (Node puts pipes in
 * that mode): a full pipe (EAGAIN) makes this thread sleep and retry, as a blocking write
 * would. Partial writes continue where they stopped.
 */
export function writeFully(fd: number, data: Uint8Array): void {
  let offset = 0;
  while (offset < data.length) {
    try {
      offset += writeSync(fd, data, offset, data.length - offset);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
      Atomics.wait(napWord, 0, 0, FULL_PIPE_SLEEP_MS); // nobody notifies this word: a plain sleep
    }
  }
}

type WriteCallback = (error?: Error | null) => void;

/** The bytes of a `write(chunk, encoding)` call, as a stream would encode them. */
function toBytes(chunk: unknown, encoding: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  const name = typeof encoding === 'string' && Buffer.isEncoding(encoding) ? encoding : 'utf8';
  return Buffer.from(String(chunk), name);
}

/**
 * Makes `stream` write each chunk to `fd` synchronously: its `_write`/`_writev`, below
 * `write()`, so a user's own wrapper of `write` (to capture output, say) keeps working, and a
 * chunk the stream queued before (a slow pipe) is still written first: a Writable hands its
 * implementation one write at a time, in order.
 */
function writeDirectly(stream: NodeJS.WriteStream, fd: number): void {
  const writeOne = (chunk: unknown, encoding: unknown): Error | null => {
    try {
      writeFully(fd, toBytes(chunk, encoding));
      return null;
    } catch (error) {
      // A closed or broken descriptor (EPIPE): the stream reports it as its own write error.
      return error as Error;
    }
  };
  const target = stream as unknown as {
    _write: (chunk: unknown, encoding: unknown, callback: WriteCallback) => void;
    _writev: ((chunks: { chunk: unknown; encoding: unknown }[], callback: WriteCallback) => void) | null;
  };
  target._write = (chunk, encoding, callback) => callback(writeOne(chunk, encoding));
  target._writev = (chunks, callback) => {
    let failure: Error | null = null;
    for (const { chunk, encoding } of chunks) failure ??= writeOne(chunk, encoding);
    callback(failure);
  };
}

/** A Writable for `Console` that writes each chunk to `fd` at once (a write that fails is dropped). */
function directStream(fd: number): Writable {
  const stream = new Writable({
    write(chunk: unknown, encoding: unknown, callback: WriteCallback) {
      try {
        writeFully(fd, toBytes(chunk, encoding));
      } catch {
        // closed or broken (EPIPE): dropped, as a console does once its destination is gone
      }
      callback();
    },
  });
  (stream as Writable & { isTTY?: boolean }).isTTY = isatty(fd);
  return stream;
}

const CONSOLE_METHODS = ['log', 'info', 'debug', 'warn', 'error', 'trace', 'dir', 'dirxml', 'table', 'group', 'groupCollapsed', 'groupEnd', 'count', 'countReset', 'time', 'timeEnd', 'timeLog', 'assert'] as const;

let installed = false;

/**
 * Makes this isolate's `process.stdout`/`process.stderr` and `console` write straight to fd 1
 * and 2. In a thread's isolate: always (runtime/worker.ts). In the main thread: when it starts
 * its first thread, so that its lines and the threads' lines share one order.
 */
export function writeOutputDirectly(): void {
  if (installed) return;
  installed = true;
  if (typeof process.stdout?.write === 'function') writeDirectly(process.stdout, 1);
  if (typeof process.stderr?.write === 'function') writeDirectly(process.stderr, 2);
  replaceConsole();
}

/**
 * Node's own console writes through `process.stdout.write` (already direct); Bun's and Deno's
 * do not: theirs are replaced, method by method, by a Console over direct streams.
 */
function replaceConsole(): void {
  if (typeof (globalThis as { Bun?: unknown }).Bun === 'undefined' && typeof (globalThis as { Deno?: unknown }).Deno === 'undefined') return;
  const direct = new Console({ stdout: directStream(1), stderr: directStream(2), colorMode: 'auto' });
  for (const method of CONSOLE_METHODS) {
    const fn = (direct as unknown as Record<string, unknown>)[method];
    if (typeof fn === 'function') (console as unknown as Record<string, unknown>)[method] = fn.bind(direct);
  }
}
