/**
 * Waiting until threads are where a test wants them, shared by the deadlock and dump tests:
 *
 * - in the main thread, without blocking its event loop: until an Event is set, until a
 *   thread's wait shows in dumpThreads(), joining with a bound (`until`, `untilWaiting`,
 *   `joinAll`);
 * - in any thread, blocking: until a thread's OS thread sleeps in the kernel in the wait its
 *   record shows, so that its own look at the wait-for graph is over (`untilAsleep`,
 *   `untilAsleepIn`): the order in which threads park decides which one closes a cycle;
 * - running a test with deadlock detection in a given mode (`detecting`, `withDetectionOff`).
 *
 * Threads use it too: a self-contained target can `await import('./helpers/waiting.js')`
 * (relative imports resolve at the module that created the thread), and `releaseWhenAsleep`
 * runs as a module function `{ module: WAITING, name: 'releaseWhenAsleep' }`. A thread that
 * imports this module evaluates it: nothing here runs at import.
 */

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { type Event, type Lock, type Thread, type ThreadDump, type ThreadSnapshot, configureThreads, dumpThreads, sleep, sleepAsync } from 'threadkit';

/** This module's URL, for module-function targets (`{ module: WAITING, name }`). */
export const WAITING = import.meta.url;

/** Every wait in a thread is bounded by this, so that a failing test cannot hang the suite. */
export const LONG = 30_000;
/** How long a test polls for a thread's wait to show before it fails. */
export const POLL_MS = 10_000;

type DetectionMode = 'off' | 'warn' | 'raise';

/** Runs `body` with deadlock detection in `mode`, and sets it to `after` once it is over, whatever happens. */
async function withDetection<T>(mode: DetectionMode, after: DetectionMode, body: () => Promise<T> | T): Promise<T> {
  configureThreads({ deadlockDetection: mode });
  try {
    return await body();
  } finally {
    configureThreads({ deadlockDetection: after });
  }
}

/** Runs `body` with deadlock detection in `mode`, and turns it off after, whatever happens. */
export function detecting<T>(mode: DetectionMode, body: () => Promise<T> | T): Promise<T> {
  return withDetection(mode, 'off', body);
}

/**
 * Runs `body` with deadlock detection off (the default, but the environment may set it:
 * THREADKIT_DEADLOCK_DETECTION), so that the threads of a cycle go to sleep and the cycle stays
 * for a dump to find; the mode from the environment is restored after.
 */
export function withDetectionOff<T>(body: () => Promise<T> | T): Promise<T> {
  const detection = (process.env.THREADKIT_DEADLOCK_DETECTION || 'off') as DetectionMode;
  return withDetection('off', detection, body);
}

/** The snapshot of the thread `ident` in `dump`, if it is listed. */
export function snapshotOf(dump: ThreadDump, ident: number | undefined): ThreadSnapshot | undefined {
  return dump.threads.find((t) => t.ident === ident);
}

/**
 * Polls dumpThreads() until `thread` shows a wait of `kind` (and `more`, when given, holds of
 * the dump), and returns that dump and the thread's snapshot; fails, printing the last dump,
 * if it does not show within POLL_MS.
 */
export async function untilWaiting(thread: Thread | number, kind: string, more: (s: ThreadSnapshot, d: ThreadDump) => boolean = () => true): Promise<{ dump: ThreadDump; snapshot: ThreadSnapshot }> {
  const ident = typeof thread === 'number' ? thread : thread.ident;
  assert.ok(ident !== undefined, 'the thread has started');
  const deadline = performance.now() + POLL_MS;
  for (;;) {
    const dump = dumpThreads();
    const snapshot = snapshotOf(dump, ident);
    if (snapshot?.waitingOn?.kind === kind && more(snapshot, dump)) return { dump, snapshot };
    if (performance.now() > deadline) {
      assert.fail(`thread ${ident} never showed a wait on ${kind} within ${POLL_MS} ms; its snapshot: ${JSON.stringify(snapshot)}\nlast dump:\n${dump.toString()}`);
    }
    await sleepAsync(2);
  }
}

/** Waits (in the main thread, without blocking its event loop) until `event` is set. */
export async function until(event: Event, what: string): Promise<void> {
  assert.equal(await event.waitAsync({ timeout: LONG }), true, `${what} within ${LONG} ms`);
}

/** Joins each thread (bounded) and checks it ended. */
export function joinAll(...threads: Thread[]): void {
  for (const t of threads) {
    t.join(LONG);
    assert.equal(t.isAlive(), false, `${t.name} ended`);
  }
}

/**
 * True when the OS thread `tid` of this process sleeps in the kernel (state S in
 * /proc/self/task/<tid>/stat: a futex wait, as Atomics.wait is). A wait record is written
 * before the thread looks at the wait-for graph and sleeps; the record alone does not say the
 * look is over.
 */
export function sleepsInKernel(tid: number | undefined): boolean {
  if (tid === undefined) return false;
  try {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('S');
  } catch {
    return false;
  }
}

/**
 * Waits until a thread whose snapshot matches sleeps: its record matches, and its OS thread
 * sleeps in the kernel twice in a row (a short sleep on some internal lock on the way is not
 * taken for it). Returns its snapshot. Bounded, so that a thread that never gets there fails
 * the test instead of hanging it. Blocks the calling thread (any thread).
 */
export function untilAsleep(match: (s: ThreadSnapshot) => boolean, what: string): ThreadSnapshot {
  let streak = 0;
  for (let i = 0; i < 20_000; i++) {
    const found = dumpThreads().threads.find(match);
    streak = found !== undefined && sleepsInKernel(found.nativeId) ? streak + 1 : 0;
    if (streak === 2) return found!;
    sleep(1);
  }
  throw new Error(`${what} never happened: ${String(dumpThreads())}`);
}

/** Waits until the thread named `name` sleeps in a wait of `kind` (as dumpThreads() names it: 'Lock', 'RLock', 'join', 'Future', 'Event', …). */
export function untilAsleepIn(name: string, kind: string): ThreadSnapshot {
  return untilAsleep((s) => s.name === name && s.waitingOn?.kind === kind, `thread ${name} asleep on a ${kind}`);
}

/**
 * A thread target (`{ module: WAITING, name: 'releaseWhenAsleep' }`) that breaks a cycle: waits
 * until the thread named `name` sleeps in a wait of `kind`, lets it sleep `ms` more, then
 * releases `lock` (any thread may release a Lock).
 */
export function releaseWhenAsleep(lock: Lock, name: string, kind: string, ms: number): string {
  untilAsleepIn(name, kind);
  sleep(ms);
  lock.release();
  return 'released';
}

/**
 * Polls until `t` is parked: in a sync wait that dumps show as `kind`, or (kind undefined: a
 * Promise wait) in no sync wait; its OS thread asleep in the kernel twice in a row.
 */
export async function untilParked(t: Thread, kind: string | undefined): Promise<void> {
  const deadline = performance.now() + POLL_MS;
  let streak = 0;
  for (;;) {
    const s = snapshotOf(dumpThreads(), t.ident);
    const there = s !== undefined && (kind === undefined ? s.waitingOn === undefined : s.waitingOn?.kind === kind);
    streak = there && sleepsInKernel(s.nativeId) ? streak + 1 : 0;
    if (streak >= 2) return;
    if (performance.now() > deadline) assert.fail(`${t.name} never parked ${kind === undefined ? 'in a Promise wait' : `in a wait on ${kind}`}: ${JSON.stringify(s)}`);
    await sleepAsync(1);
  }
}
