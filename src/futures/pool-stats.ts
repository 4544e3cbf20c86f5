/**
 * What `ThreadPoolExecutor#stats()` reports: how many tasks ended which way, and how long they
 * waited in the queue and ran, as distributions. Every pool thread counts into a shard of its
 * own (a block in the shared heap that only it writes, with plain stores): a task costs its
 * thread no shared read-modify-write and no cache line another thread writes. Tasks that leave
 * the pool outside a pool thread's loop (cancelled while queued, drained by shutdown or a broken
 * pool, settled for a thread that died) are counted in the task queue's OUTCOMES, under its LOCK.
 * `stats()` adds it all up, in any thread, under that LOCK (which keeps the list of shards still).
 *
 * Shard block (Int32 slots, then Float64 slots from byte 16):
 *
 * | slot      | field       | meaning                                              | written by        |
 * |-----------|-------------|------------------------------------------------------|-------------------|
 * | i32 0     | OWNER       | block of the pool thread writing it; 0 when free     | under pool LOCK   |
 * | i32 1     | NEXT        | next shard of the pool's list (0: the last)          | under pool LOCK   |
 * | f64 2-4   | outcomes    | COMPLETED, FAILED, CANCELLED tasks                   | owner             |
 * | f64 5-…   | WAIT        | submit → start: COUNT, SUM (ms), MAX (ms), BUCKETS   | owner             |
 * | f64 …     | RUN         | start → end: the same                                | owner             |
 *
 * No fence on the owner's side: a sequence lock around each write (two seq-cst stores) cost a
 * round trip through the pool ~0.4 µs, the stores it waits for being the future's, which the
 * submitter reads. So a reader sees each value as it is (aligned 8-byte accesses do not tear on
 * x64 and arm64), and while a task is being counted the numbers of one distribution may be one
 * task apart (its count counted, its sum not yet). Counted before the task's future settles (a
 * seq-cst step), a task is in what any thread reads once it has seen that future done.
 *
 * A shard is freed when the pool takes its thread off the list; the next pool thread that starts
 * takes it over and goes on counting in it, so counts outlive threads.
 *
 * Durations are on one clock for all threads (`sharedClock`: process.hrtime in ms, as traces
 * use; performance.now() differs per isolate). Histogram: bucket 0 holds durations under 1 µs,
 * then 4 buckets per doubling (bucket i ≥ 1 holds [2^((i-1)/4), 2^(i/4)) µs) up to 2^40 µs
 * (~12.7 days), the last one open. A percentile is the middle (geometric) of the bucket that
 * holds the ⌈q·count⌉-th smallest duration: within 9.1% of it (2^(1/8)), never above max.
 */

import { traceClock } from '../shm/trace-ring.js';
import type { Heap } from '../shm/heap.js';
import { Kind } from '../shm/handles.js';
import { CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED, type Future } from './future.js';

/** One duration's distribution (milliseconds). */
export interface DurationStats {
  /** Durations counted. */
  count: number;
  /** Their mean (exact), 0 when none. */
  mean: number;
  /** Median, from the histogram: within 9.1% of the true value (0.0005 under 1 µs). */
  p50: number;
  /** 99th percentile, as p50. */
  p99: number;
  /** The longest (exact), 0 when none. */
  max: number;
}

/** `ThreadPoolExecutor#stats()`. */
export interface PoolStats {
  /** Pool threads alive (started or starting, not yet ended). */
  threads: number;
  /** Of those, threads waiting for a task (or about to take the next one). */
  idle: number;
  /** Tasks queued, not yet started (not counting queued ones cancelled meanwhile). */
  queued: number;
  /** Tasks that returned (their future has a result). */
  completed: number;
  /** Tasks that threw, timed out, or whose thread died under them; tasks of a broken pool. */
  failed: number;
  /** Tasks cancelled: queued ones, and running ones ended by `cancel({ interrupt })`. */
  cancelled: number;
  /** From submit until a pool thread starts the task (tasks started). */
  waitTime: DurationStats;
  /** From its start until its pool thread is done with the task (tasks ended in their thread). */
  runTime: DurationStats;
}

/** How a task ended: the index of its count (Float64 slot after OUTCOMES). */
export const COMPLETED_TASK = 0;
export const FAILED_TASK = 1;
export const CANCELLED_TASK = 2;
export type Outcome = typeof COMPLETED_TASK | typeof FAILED_TASK | typeof CANCELLED_TASK;

const OWNER = 0;
const NEXT = 1;
/** Float64 slots (from the block's offset >> 3). */
const OUTCOMES = 2;
const BUCKETS = 161;
/** A distribution: COUNT, SUM, MAX, then BUCKETS counts. */
const D_COUNT = 0;
const D_SUM = 1;
const D_MAX = 2;
const D_BUCKETS = 3;
const DISTRIBUTION = D_BUCKETS + BUCKETS;
const WAIT = OUTCOMES + 3;
const RUN = WAIT + DISTRIBUTION;
const SHARD_F64 = RUN + DISTRIBUTION;
const SHARD_BYTES = SHARD_F64 * 8;
/** Float64 slots a reader copies (outcomes and both distributions). */
const DATA_F64 = SHARD_F64 - OUTCOMES;

/** The clock of submit and start times (ms): the same in every isolate. */
export const sharedClock = traceClock;

/** sharedClock() minus performance.now() in this isolate (within a µs): for local deadlines. */
const SHARED_AHEAD = traceClock() - performance.now();

/** The performance.now() of a sharedClock() time. */
export function localTime(shared: number): number {
  return shared - SHARED_AHEAD;
}

/** How a future ended, for the counts; -1 while it is not done. */
export function outcomeOf(future: Future<unknown>): Outcome | -1 {
  const state = future._state();
  if (state === FINISHED) return future._failed() ? FAILED_TASK : COMPLETED_TASK;
  if (state === CANCELLED || state === CANCELLED_AND_NOTIFIED) return CANCELLED_TASK;
  return -1;
}

// ---- the shard list (under the pool's LOCK) ---------------------------------------------------

/**
 * Gives the pool thread `owner` a shard: a free one of the list that starts at `head`, or a new
 * one (returned with `added` set: the caller puts it at the head). 0 when the heap is full (the
 * thread then counts nothing). Under the pool's LOCK.
 */
export function claimShardLocked(h: Heap, head: number, owner: number): { shard: number; added: boolean } {
  for (let shard = head; shard !== 0; shard = h.i32[(shard >> 2) + NEXT]!) {
    if (h.i32[(shard >> 2) + OWNER] === 0) {
      h.i32[(shard >> 2) + OWNER] = owner;
      return { shard, added: false };
    }
  }
  let shard: number;
  try {
    shard = h.alloc(SHARD_BYTES, Kind.Bytes);
  } catch {
    return { shard: 0, added: false };
  }
  h.i32[(shard >> 2) + OWNER] = owner;
  h.i32[(shard >> 2) + NEXT] = head;
  return { shard, added: true };
}

/** The pool thread `owner` has ended: its shard is free (its counts stay). Under the pool's LOCK. */
export function releaseShardLocked(h: Heap, head: number, owner: number): void {
  for (let shard = head; shard !== 0; shard = h.i32[(shard >> 2) + NEXT]!) {
    const at = shard >> 2;
    if (h.i32[at + OWNER] !== owner) continue;
    h.i32[at + OWNER] = 0;
    return;
  }
}

/** Every shard of the list, for the pool's destructor. */
export function shardsOf(h: Heap, head: number): number[] {
  const shards: number[] = [];
  for (let shard = head; shard !== 0; shard = h.i32[(shard >> 2) + NEXT]!) shards.push(shard);
  return shards;
}

// ---- counting (the shard's owner) --------------------------------------------------------------

/** A pool thread started a task that waited `waited` ms since its submit. */
export function countStart(h: Heap, shard: number, waited: number): void {
  if (shard !== 0) addSample(h.f64, (shard >> 3) + WAIT, waited);
}

/** A pool thread is done with a task that ran `ran` ms and ended as `outcome`. */
export function countEnd(h: Heap, shard: number, ran: number, outcome: Outcome): void {
  if (shard === 0) return;
  h.f64[(shard >> 3) + OUTCOMES + outcome]! += 1;
  addSample(h.f64, (shard >> 3) + RUN, ran);
}

/** A task ended as `outcome` (no durations: it never ran, or its thread is exiting). */
export function countOutcome(h: Heap, shard: number, outcome: Outcome): void {
  if (shard !== 0) h.f64[(shard >> 3) + OUTCOMES + outcome]! += 1;
}

/** A count made before the future settled was wrong (another thread settled it first): moved. */
export function recountOutcome(h: Heap, shard: number, from: Outcome, to: Outcome): void {
  if (shard === 0) return;
  h.f64[(shard >> 3) + OUTCOMES + from]! -= 1;
  h.f64[(shard >> 3) + OUTCOMES + to]! += 1;
}

function addSample(f64: Float64Array, at: number, ms: number): void {
  // (Clocks of two isolates agree within a µs: a wait that short may come out negative.)
  const value = ms > 0 ? ms : 0;
  f64[at + D_COUNT]! += 1;
  f64[at + D_SUM]! += value;
  if (value > f64[at + D_MAX]!) f64[at + D_MAX] = value;
  f64[at + D_BUCKETS + bucketOf(value)]! += 1;
}

/** The histogram bucket of a duration in ms (see the header). */
function bucketOf(ms: number): number {
  const micros = ms * 1000;
  if (!(micros >= 1)) return 0;
  const bucket = 1 + Math.floor(4 * Math.log2(micros));
  return bucket < BUCKETS ? bucket : BUCKETS - 1;
}

/** The value reported for a percentile that falls in `bucket` (ms): its geometric middle. */
function bucketValue(bucket: number): number {
  return bucket === 0 ? 0.0005 : 2 ** ((bucket - 0.5) / 4) / 1000;
}

// ---- reading (any thread, under the pool's LOCK) ---------------------------------------------

/** Sums of shards, and of the counts the pool keeps itself (tasks that left it outside a pool thread). */
export class StatsTotals {
  readonly #data = new Float64Array(DATA_F64);

  /** Adds tasks that ended as `outcome` outside any shard (counted by the pool). */
  addOutcomes(outcome: Outcome, n: number): void {
    this.#data[outcome]! += n;
  }

  /** Adds every shard of the list that starts at `head`. Under the pool's LOCK (it keeps the list). */
  addShards(h: Heap, head: number): void {
    for (let shard = head; shard !== 0; shard = h.i32[(shard >> 2) + NEXT]!) this.addShard(h, shard);
  }

  private addShard(h: Heap, shard: number): void {
    const from = (shard >> 3) + OUTCOMES;
    // (Plain reads, while the owner may write: see the header.)
    const copy = h.f64.slice(from, from + DATA_F64);
    const data = this.#data;
    const waitMax = Math.max(data[WAIT - OUTCOMES + D_MAX]!, copy[WAIT - OUTCOMES + D_MAX]!);
    const runMax = Math.max(data[RUN - OUTCOMES + D_MAX]!, copy[RUN - OUTCOMES + D_MAX]!);
    for (let i = 0; i < DATA_F64; i++) data[i]! += copy[i]!;
    // (Maxima are not sums.)
    data[WAIT - OUTCOMES + D_MAX] = waitMax;
    data[RUN - OUTCOMES + D_MAX] = runMax;
  }

  /** The numbers as `stats()` returns them. */
  result(threads: number, idle: number, queued: number, cancelledInQueue: number): PoolStats {
    const data = this.#data;
    return {
      threads,
      idle,
      queued,
      completed: data[COMPLETED_TASK]!,
      failed: data[FAILED_TASK]!,
      cancelled: data[CANCELLED_TASK]! + cancelledInQueue,
      waitTime: distribution(data, WAIT - OUTCOMES),
      runTime: distribution(data, RUN - OUTCOMES),
    };
  }
}

function distribution(data: Float64Array, at: number): DurationStats {
  const count = data[at + D_COUNT]!;
  if (count === 0) return { count: 0, mean: 0, p50: 0, p99: 0, max: 0 };
  const max = data[at + D_MAX]!;
  // (A sum of equal values may round up past them: the mean never reads above max.)
  return { count, mean: Math.min(data[at + D_SUM]! / count, max), p50: Math.min(percentile(data, at, 0.5), max), p99: Math.min(percentile(data, at, 0.99), max), max };
}

/** The bucket value of the ⌈q·n⌉-th smallest duration (n: the histogram's total). */
function percentile(data: Float64Array, at: number, q: number): number {
  let total = 0;
  for (let i = 0; i < BUCKETS; i++) total += data[at + D_BUCKETS + i]!;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (let i = 0; i < BUCKETS; i++) {
    seen += data[at + D_BUCKETS + i]!;
    if (seen >= rank) return bucketValue(i);
  }
  return bucketValue(BUCKETS - 1);
}
