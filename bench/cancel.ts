/**
 * Stopping work, in µs. (a) `thread.interrupt()` of a thread blocked in `event.wait()`: the
 * round trip until the thread has caught InterruptedError and set an Event back, against the
 * same threads' Event ping-pong (a plain wake-up each way). (b) `future.cancel({ interrupt:
 * true })` of a running pool task blocked in a wait: until its future is cancelled and the pool
 * has run the next task, against piscina's abort of a running task (its promise rejects at once,
 * but its worker is terminated and a new one started before the next task runs); the same for a
 * CPU loop that polls `interrupted()`. (c) The same
 * with `killAfter: 0` on a task that never looks (threadkit terminates and replaces the isolate
 * too), against the same piscina abort.
 *
 * Run alone: `node --import tsx bench/cancel.ts`.
 */

import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Event, type Future, Thread, ThreadPoolExecutor } from 'threadkit';
import { type Row, measureInterleaved, median, isMain, runAlone } from './lib.js';

/** Time spent measuring each interrupt loop, per pass (ms). */
const ROUND_TRIP_MS = 200;
/** Round trips timed one at a time, for the median of single ones. */
const SINGLE_ROUND_TRIPS = 1000;
/** Time budget of each stop-a-task row (ms), and the fewest and most stops it takes. */
const STOP_BUDGET_MS = 400;
const MIN_STOPS = 5;
const MAX_STOPS = 2000;
/** The goal: stopping a cooperative task at least this many times faster than piscina. */
const GOAL = 100;
const BUSY = new URL('./fixtures/busy.mjs', import.meta.url);

// ---- (a) interrupt round trip ----------------------------------------------------------------

/**
 * The thread side: blocks in `blocker.wait()`; each interrupt makes that wait throw
 * InterruptedError, and the thread answers on `caught`. `blocker` set means stop. Self-contained:
 * it is sent to the thread as source text.
 */
const interruptTarget = (blocker: Event, caught: Event): number => {
  let rounds = 0;
  for (;;) {
    try {
      blocker.wait();
      return rounds;
    } catch (error) {
      if ((error as Error).name !== 'InterruptedError') throw error;
      rounds++;
      caught.set();
    }
  }
};

/** The anchor's thread side: the Event ping-pong of bench/pingpong.ts. */
const pongTarget = (ping: Event, pong: Event, stop: Event): number => {
  let rounds = 0;
  for (;;) {
    ping.wait();
    ping.clear();
    if (stop.isSet()) return rounds;
    pong.set();
    rounds++;
  }
};

function checkRounds(what: string, answered: number | undefined, sent: number): void {
  if (answered !== sent) throw new Error(`${what}: the thread answered ${answered} rounds, the main thread sent ${sent}`);
}

/**
 * [interrupt round trip, Event round trip] in µs, measured in interleaved passes (`measure`: the
 * median batch's mean), then the median of single round trips of each.
 */
function roundTrips(): [number, number, number, number] {
  const blocker = new Event();
  const caught = new Event();
  const interruptee = new Thread<number>({ target: interruptTarget, args: [blocker, caught], daemon: true, name: 'bench-interruptee' });
  const ping = new Event();
  const pong = new Event();
  const stop = new Event();
  const ponger = new Thread<number>({ target: pongTarget, args: [ping, pong, stop], daemon: true, name: 'bench-event-pong' });
  interruptee.start();
  ponger.start();
  let interrupts = 0;
  let pings = 0;
  // The thread takes the interrupt before it sets `caught`, and `caught` is cleared before the
  // next interrupt: one answer per interrupt (one not yet blocked again throws at its next wait).
  const interruptLoop = (n: number): void => {
    for (let i = 0; i < n; i++) {
      interruptee.interrupt();
      caught.wait();
      caught.clear();
    }
    interrupts += n;
  };
  const pingLoop = (n: number): void => {
    for (let i = 0; i < n; i++) {
      ping.set();
      pong.wait();
      pong.clear();
    }
    pings += n;
  };
  interruptLoop(1); // blocks until the threads are up
  pingLoop(1);
  const [interruptNs, pingNs] = measureInterleaved([interruptLoop, pingLoop], { minMs: ROUND_TRIP_MS, passes: 2 });
  // One at a time as well: a batch's mean carries the scheduler's tail (a wake-up the OS is slow
  // to run), the median of single round trips does not.
  const single = [interruptLoop, pingLoop].map((loop) =>
    median(
      Array.from({ length: SINGLE_ROUND_TRIPS }, () => {
        const t0 = performance.now();
        loop(1);
        return (performance.now() - t0) * 1000;
      }),
    ),
  );
  blocker.set();
  stop.set();
  ping.set();
  interruptee.join();
  ponger.join();
  checkRounds('interrupt round trip', interruptee.result, interrupts);
  checkRounds('Event ping-pong', ponger.result, pings);
  return [interruptNs! / 1000, pingNs! / 1000, single[0]!, single[1]!];
}

// ---- (b), (c) stopping a running task ---------------------------------------------------------

/**
 * Runs `stop()` (which times its own parts and returns them in ms) until `STOP_BUDGET_MS` has
 * passed, at least `MIN_STOPS` times (at most `MAX_STOPS`), after `warmup` untimed runs.
 * Returns the median of each part, in µs.
 */
async function sampleStops(stop: () => number[] | Promise<number[]>, warmup: number): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await stop();
  const samples: number[][] = [];
  const end = performance.now() + STOP_BUDGET_MS;
  while (samples.length < MIN_STOPS || (performance.now() < end && samples.length < MAX_STOPS)) samples.push(await stop());
  return samples[0]!.map((_, part) => median(samples.map((s) => s[part]!)) * 1000);
}

/** A pool task that waits until it is interrupted (cancel({ interrupt: true }) ends it cancelled). */
const cooperative = (started: Event, never: Event): void => {
  started.set();
  never.wait();
};

/**
 * A pool task that computes and polls `interrupted()` (every 1,000 steps, about a microsecond),
 * throwing InterruptedError when it is set, as a CPU loop that wants to be stoppable does.
 * Self-contained: it imports what it needs.
 */
const polling = async (started: Event): Promise<number> => {
  const { InterruptedError, interrupted } = await import('threadkit');
  started.set();
  let x = 1;
  for (;;) {
    for (let i = 0; i < 1000; i++) x = (Math.imul(x, 1103515245) + 12345) | 0;
    if (interrupted()) throw new InterruptedError(`stopped at ${x}`);
  }
};

/** A pool task that never waits and never looks: only a kill ends it. */
const stubborn = (started: Event): number => {
  started.set();
  let x = 1;
  for (;;) x = (Math.imul(x, 1103515245) + 12345) | 0;
};

const echo = (x: number): number => x;

type Stopped = 'waiting' | 'polling' | 'killed';

/**
 * threadkit: submits a task, waits until it runs, cancels it (with `killAfter: 0` for the task
 * that never looks); returns [cancel → future cancelled, cancel → the next task's result back] in ms.
 * Both awaited (`resultAsync`, what `await future` does), as piscina's promises are: the event
 * loop stays free (it is where the pool sees a killed thread end and replaces it).
 */
async function threadkitStop(pool: ThreadPoolExecutor, task: Stopped): Promise<number[]> {
  const started = new Event();
  const future: Future<unknown> =
    task === 'waiting' ? pool.submit(cooperative, started, new Event()) : task === 'polling' ? pool.submit(polling, started) : pool.submit(stubborn, started);
  started.wait();
  const t0 = performance.now();
  future.cancel(task === 'killed' ? { interrupt: true, killAfter: 0 } : { interrupt: true });
  const outcome = await future.resultAsync({ timeout: 10_000 }).then(
    (value) => value,
    (error: unknown) => error,
  );
  const settled = performance.now();
  if (!future.cancelled()) throw new Error(`the ${task} task's future is not cancelled: ${String(outcome)}`);
  if ((await pool.submit(echo, 7).resultAsync({ timeout: 10_000 })) !== 7) throw new Error('the next task gave a wrong result');
  return [settled - t0, performance.now() - t0];
}

type PiscinaPool = { run(task: unknown, options?: { name?: string; signal?: AbortSignal }): Promise<unknown>; destroy(): Promise<void> };
type PiscinaModule = { Piscina: new (options: object) => PiscinaPool };

/**
 * piscina: runs the spinning task, waits until it runs, aborts it; returns [abort → promise
 * rejected, abort → the next task's result back] in ms.
 */
async function piscinaStop(pool: PiscinaPool): Promise<number[]> {
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const abort = new AbortController();
  const running = pool.run(flag, { name: 'spin', signal: abort.signal }).then(
    () => new Error('the spinning task finished instead of being aborted'),
    (error: unknown) => error,
  );
  while (Atomics.load(flag, 0) === 0) await yieldToLoop();
  const t0 = performance.now();
  abort.abort();
  const outcome = (await running) as Error;
  const rejected = performance.now();
  if (outcome.name !== 'AbortError') throw outcome;
  if ((await pool.run(7)) !== 7) throw new Error('piscina: the next task gave a wrong result');
  return [rejected - t0, performance.now() - t0];
}

async function importOptional<T>(name: string): Promise<T | undefined> {
  try {
    return (await import(name)) as T;
  } catch {
    return undefined;
  }
}

export async function run(): Promise<Row[]> {
  const rows: Row[] = [];
  const [interruptUs, pingUs, oneInterruptUs, onePingUs] = roundTrips();
  rows.push({
    group: 'cancel',
    work: 'interrupt() of a thread blocked in event.wait() → it caught InterruptedError and answered (round trip)',
    unit: 'µs',
    threadkit: interruptUs,
    anchorName: 'Event ping-pong',
    anchor: pingUs,
    note: `anchor: the same threads, set() → wait() each way; one at a time, median: ${oneInterruptUs.toFixed(1)} µs (Event: ${onePingUs.toFixed(1)} µs)`,
  });

  const pool = new ThreadPoolExecutor({ maxWorkers: 1, threadNamePrefix: 'bench-cancel' });
  const [waitingSettled, waitingNext] = await sampleStops(() => threadkitStop(pool, 'waiting'), 20);
  const [pollingSettled, pollingNext] = await sampleStops(() => threadkitStop(pool, 'polling'), 20);
  const [killSettled, killNext] = await sampleStops(() => threadkitStop(pool, 'killed'), 1);
  pool.shutdown();

  const piscina = await importOptional<PiscinaModule>('piscina');
  let abortRejected: number | undefined;
  let abortNext: number | undefined;
  if (piscina) {
    // No --import tsx in its workers (threadkit leaves it out of its own too): a respawn pays only Node's start.
    const p = new piscina.Piscina({ filename: fileURLToPath(BUSY), minThreads: 1, maxThreads: 1, execArgv: [] });
    await p.run(0);
    [abortRejected, abortNext] = await sampleStops(() => piscinaStop(p), 1);
    await p.destroy();
  }
  const missing = piscina ? undefined : 'piscina not installed';
  rows.push({
    group: 'cancel',
    work: 'cancel({ interrupt: true }) of a running task blocked in a wait → cancelled, and the next task ran',
    unit: 'µs',
    threadkit: waitingNext,
    anchorName: 'piscina abort',
    anchor: abortNext,
    ratio: 'speedup',
    goal: { op: '>=', value: GOAL },
    note: missing ?? `until cancelled alone: ${waitingSettled!.toFixed(1)} µs (piscina's promise rejects in ${abortRejected!.toFixed(1)} µs, then it replaces the worker)`,
  });
  rows.push({
    group: 'cancel',
    work: 'cancel({ interrupt: true }) of a running CPU loop polling interrupted() → cancelled, and the next task ran',
    unit: 'µs',
    threadkit: pollingNext,
    anchorName: 'piscina abort',
    anchor: abortNext,
    ratio: 'speedup',
    goal: { op: '>=', value: GOAL },
    note: missing ?? `until cancelled alone: ${pollingSettled!.toFixed(1)} µs`,
  });
  rows.push({
    group: 'cancel',
    work: 'cancel({ interrupt: true, killAfter: 0 }) of a task that never looks → cancelled, and the next task ran',
    unit: 'µs',
    threadkit: killNext,
    anchorName: 'piscina abort',
    anchor: abortNext,
    ratio: 'speedup',
    note: missing ?? `both terminate the isolate and start another; until cancelled alone: ${killSettled!.toFixed(1)} µs`,
  });
  return rows;
}

if (isMain(import.meta.url)) await runAlone(run);
