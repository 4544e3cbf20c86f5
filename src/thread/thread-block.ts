/**
 * The shared record of one thread, in the heap, so that any thread can see it (`enumerate()`,
 * `join()` from anywhere, `isAlive()`), and the thread itself can publish its end.
 *
 * | slot   | field     | meaning                                                              |
 * |--------|-----------|----------------------------------------------------------------------|
 * | 0      | STATE     | INITIAL 0, STARTED 1, STOPPED 2 (joiners sleep while it is STARTED)  |
 * | 1      | IDENT     | the thread's ident (0 before start)                                  |
 * | 2      | NATIVE_ID | the OS thread id, written by the thread                              |
 * | 3      | RESULT    | encoded `{ fields }` the thread hands back (one reference), or 0     |
 * | 4      | FLAGS     | DAEMON 1, MAIN 2, ENDING 4 (claimed by whoever ends the thread),     |
 * |        |           | POOL 8 (a pool thread: its pool's work holds the process, not it)    |
 * | 5      | EXCEPTION | encoded error that escaped run() (one reference), or 0               |
 * | 6      | PARENT    | ident of the thread that started it                                 |
 * | 7, 8   | NEXT/PREV | links of the live-thread list (registry.ts), guarded by its mutex    |
 * | 9      | NAME_LEN  | bytes of the name below                                              |
 * | 10     | TASK      | a pool thread's running task: its future's offset, or 0 (the thread  |
 * |        |           | holds a reference on it; whoever takes it with an exchange, the      |
 * |        |           | thread or a parent that saw its isolate die, settles the future)     |
 * | 11..17 | WAIT      | what the thread waits on now (shm/wait-site.ts: kind, object, since) |
 * | 18     | STACK     | a Bytes block with the thread's stack when its wait began, or 0      |
 * |        |           | (recorded only while stacks are asked for: dumps, watchdog)          |
 * | 19     | RAISE     | part of the wait record (W_RAISE: a wait asked to end with an error) |
 * | 20     | INTERRUPT | an interrupt not yet taken: the thread's, or one pool task's         |
 * | 21     | NOTICE    | bumped by every interrupt (shm/interrupts.ts: the Promise side sleeps |
 * |        |           | on it), and by a pool owner's service requests                       |
 * | 22, 23 | KILL_AT   | float64 epoch ms: a pool owner terminates this isolate then if the   |
 * |        |           | task KILL_TASK still runs (futures/task-stopper.ts), 0 for none      |
 * | 24     | KILL_TASK | the future KILL_AT is for (its negative: the kill is under way)      |
 * | 25     | KILL_KIND | what happens at KILL_AT: the task times out (1), or is killed (2)    |
 * | 26     | INSIDE    | 1 while the thread is inside an internal locked section (kill-guard) |
 * | 27     | OWNER_WORD| a pool thread's: the service word of the isolate that started it     |
 * |        |           | (futures/task-stopper.ts: deadline requests are announced there)     |
 * | 28..   | NAME      | the name, UTF-8, at most NAME_BYTES (longer names are cut there)     |
 *
 * The thread writes RESULT and EXCEPTION before it stores STOPPED and notifies, so a joiner
 * that sees STOPPED also sees them.
 */

import type { Heap } from '../shm/heap.js';
import { WAIT_RECORD_END, W_KIND } from '../shm/wait-site.js';
import { W_INTERRUPT, W_NOTICE } from '../shm/interrupts.js';
import { W_KILL_TASK } from '../shm/kill-guard.js';

export const STATE = 0;
export const IDENT = 1;
export const NATIVE_ID = 2;
export const RESULT = 3;
export const FLAGS = 4;
export const EXCEPTION = 5;
export const PARENT = 6;
export const NEXT = 7;
export const PREV = 8;
export const NAME_LEN = 9;
export const TASK = 10;
export const WAIT = W_KIND;
export const STACK = WAIT_RECORD_END;
export const INTERRUPT = W_INTERRUPT;
export const NOTICE = W_NOTICE;
/** Float64 slot index (Int32 slots 22, 23). */
export const KILL_AT_F64 = 11;
export const KILL_TASK = W_KILL_TASK;
export const KILL_KIND = 25;
export const OWNER_WORD = 27;
export const NAME = 28;

/** The block is 512 bytes with its header (aligned so, its float64 slots are 8-aligned). */
export const NAME_BYTES = 204;
export const BLOCK_BYTES = NAME * 4 + NAME_BYTES;

export const INITIAL = 0;
export const STARTED = 1;
export const STOPPED = 2;

export const DAEMON = 1;
export const MAIN = 2;
export const ENDING = 4;
export const POOL = 8;

export function writeName(h: Heap, block: number, name: string): void {
  // Cut at NAME_BYTES; `write` never splits a multi-byte character.
  const length = h.buf.write(name, block + NAME * 4, NAME_BYTES, 'utf8');
  Atomics.store(h.i32, (block >> 2) + NAME_LEN, length);
}

export function readName(h: Heap, block: number): string {
  const length = Atomics.load(h.i32, (block >> 2) + NAME_LEN);
  return h.buf.toString('utf8', block + NAME * 4, block + NAME * 4 + length);
}
