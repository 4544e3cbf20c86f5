/**
 * `npm start`: a tour of threadkit. It runs every example with a line of narration and the first
 * lines of what it prints, then shows the point of real threads: the same CPU-heavy job on one
 * thread and on every core, the measured speedup, and a timeline of which thread did what.
 */

import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { SharedValue, Thread, configureThreads, isMainThread, sharedArray, startTrace, stopTrace } from 'threadkit';
import { countPrimes } from './pool.js';

// ---- the CPU-heavy job --------------------------------------------------------------------------

/** Numbers to test for primality, split into chunks that threads take one at a time. */
const LIMIT = 6_000_000;
const CHUNKS = 48;

/**
 * A thread's share of the job (a module function: threads import this module). Takes chunk
 * after chunk from the shared counter `next` until none is left; records, per chunk, which
 * thread ran it and when (epoch milliseconds, comparable across threads).
 */
export function countChunks(slot: number, limit: number, next: SharedValue<'int32'>, finished: SharedValue<'int32'>, counts: Int32Array, spans: Float64Array): number {
  const size = limit / CHUNKS;
  let mine = 0;
  for (let chunk = next.add(1); chunk < CHUNKS; chunk = next.add(1)) {
    const start = performance.timeOrigin + performance.now();
    counts[chunk] = countPrimes(chunk * size, (chunk + 1) * size);
    spans.set([slot, start, performance.timeOrigin + performance.now()], chunk * 3);
    finished.add(1);
    mine++;
  }
  return mine;
}

interface Run {
  threads: Thread<number>[];
  primes: number;
  ms: number;
  spans: Float64Array;
  startedAt: number;
}

/** Runs the job on `n` threads; on a terminal, updates a progress line while it waits. */
async function runJob(n: number, limit: number, label: string): Promise<Run> {
  const next = new SharedValue('int32');
  const finished = new SharedValue('int32');
  const counts = sharedArray(Int32Array, CHUNKS);
  const spans = sharedArray(Float64Array, CHUNKS * 3);
  const startedAt = performance.timeOrigin + performance.now();
  const threads = Array.from(
    { length: n },
    (_, slot) => new Thread<number>({ name: `worker-${slot + 1}`, target: { module: import.meta.url, name: 'countChunks' }, args: [slot, limit, next, finished, counts, spans] }),
  );
  threads.forEach((t) => t.start());
  // The main thread is free meanwhile: joinAsync() leaves the event loop running.
  const show = (): boolean => process.stdout.isTTY && process.stdout.write(`\r   ${label}: ${finished.value}/${CHUNKS} chunks done…`);
  const progress = setInterval(show, 100);
  await Promise.all(threads.map((t) => t.joinAsync()));
  clearInterval(progress);
  const ms = performance.timeOrigin + performance.now() - startedAt;
  if (process.stdout.isTTY) process.stdout.write(`\r${' '.repeat(60)}\r`);
  return { threads, primes: counts.reduce((a, b) => a + b, 0), ms, spans, startedAt };
}

/** One line per thread: `█` where it was busy with a chunk, on a 60-column scale of `scaleMs`. */
function timeline(run: Run, scaleMs: number): string[] {
  const columns = 60;
  const perColumn = scaleMs / columns;
  return run.threads.map((thread, slot) => {
    const row = Array.from({ length: columns }, () => ' ');
    for (let c = 0; c < Math.min(columns, Math.round(run.ms / perColumn)); c++) row[c] = '·';
    for (let chunk = 0; chunk < CHUNKS; chunk++) {
      if (run.spans[chunk * 3] !== slot) continue;
      const from = Math.floor((run.spans[chunk * 3 + 1]! - run.startedAt) / perColumn);
      const to = Math.ceil((run.spans[chunk * 3 + 2]! - run.startedAt) / perColumn);
      for (let c = Math.max(0, from); c < Math.min(columns, Math.max(to, from + 1)); c++) row[c] = '█';
    }
    return `     ${thread.name.padEnd(9)}|${row.join('')}| ${thread.result} chunks`;
  });
}

// ---- the tour -------------------------------------------------------------------------------------

interface Example {
  file: string;
  say: string;
}

const EXAMPLES: Example[] = [
  { file: 'threads-and-join', say: 'Start threads, join them, read their results; currentThread() inside a thread.' },
  { file: 'subclass-result', say: 'An exported Thread subclass overrides run() and sets this.result.' },
  { file: 'exceptions', say: 'Errors escaping a thread go to the excepthook, not to join().' },
  { file: 'daemon-threads', say: 'Daemon threads do not keep the program alive (checked in a child process).' },
  { file: 'racing-counter', say: 'Four threads add 1 to a shared counter 100,000 times each.' },
  { file: 'rlock', say: 'An RLock may be re-acquired by its owner; a Lock may not.' },
  { file: 'condition', say: 'Condition: consumers wait for a predicate, the producer notifies.' },
  { file: 'semaphore', say: 'A BoundedSemaphore(3) lets at most three threads in at once.' },
  { file: 'event', say: 'An Event starts three waiting runners at once.' },
  { file: 'barrier-phases', say: 'A Barrier keeps four workers in step, phase after phase, with an action.' },
  { file: 'thread-local', say: 'local(): one object, a separate value in each thread.' },
  { file: 'producer-consumer', say: 'A bounded Queue between two producers and three consumers.' },
  { file: 'timer', say: 'A Timer runs a function after a delay, unless cancelled.' },
  { file: 'pool', say: 'ThreadPoolExecutor: map with a chunksize, submit, callbacks, asCompleted.' },
  { file: 'deadlock', say: 'A thread dump names who waits on what; deadlock detection raises instead of hanging.' },
  { file: 'cancel', say: 'Stopping work: the first search task to finish cancels the rest; a timeout; a kill.' },
  { file: 'trace', say: 'A timeline of a real run: who waited on whom, who held the lock, which release woke whom.' },
  { file: 'redis', say: 'Beyond one machine: a RedisExecutor sends tasks through Redis to two `threadkit worker` processes.' },
];

const SHOWN_LINES = 4;

async function tour(): Promise<void> {
  const began = performance.now();
  const failed: string[] = [];
  console.log('threadkit tour: Python threading on real parallel threads\n');
  for (const [i, { file, say }] of EXAMPLES.entries()) {
    console.log(`${String(i + 1).padStart(2)}. ${say}  (examples/${file}.ts)`);
    try {
      const example = (await import(`./${file}.js`)) as { main: () => string[] | Promise<string[]> };
      const lines = await example.main();
      for (const line of lines.slice(0, SHOWN_LINES)) console.log(`     ${line}`);
      if (lines.length > SHOWN_LINES) console.log(`     … (${lines.length - SHOWN_LINES} more lines)`);
    } catch (error) {
      failed.push(file);
      console.log(`     FAILED: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
    }
  }

  const cores = availableParallelism();
  console.log(`\n${EXAMPLES.length + 1}. No GIL: count the primes below ${LIMIT.toLocaleString('en-US')} (${CHUNKS} chunks) on 1 thread, then on ${cores} (one per core).`);
  configureThreads({ keepIdleMs: 30_000 }); // keep the warmed-up isolates for both runs
  await runJob(cores, CHUNKS * 100, 'warming up'); // start the isolates, load this module in each
  const one = await runJob(1, LIMIT, 'on 1 thread');
  console.log(`   1 thread:  ${(one.ms / 1000).toFixed(2)} s, ${one.primes} primes`);
  startTrace(); // a timeline of the parallel run, for a browser (or Perfetto)
  const all = await runJob(cores, LIMIT, `on ${cores} threads`);
  const trace = stopTrace();
  const tracePath = join(tmpdir(), 'threadkit-tour-trace');
  trace.writeHTML(`${tracePath}.html`, `threadkit tour: primes on ${cores} threads`);
  trace.writeJSON(`${tracePath}.json`);
  console.log(`   ${cores} threads: ${(all.ms / 1000).toFixed(2)} s, ${all.primes} primes: ${(one.ms / all.ms).toFixed(2)}x faster on ${cores} cores`);
  console.log(`   what each thread did (60 columns = ${(one.ms / 1000).toFixed(2)} s; █ busy with a chunk, · waiting):`);
  console.log('   on 1 thread:');
  for (const line of timeline(one, one.ms)) console.log(line);
  console.log(`   on ${cores} threads:`);
  for (const line of timeline(all, one.ms)) console.log(line);
  console.log(`   the ${cores}-thread run traced (${trace.events} events): open ${tracePath}.html in a browser (${tracePath}.json opens in ui.perfetto.dev)`);
  configureThreads({ keepIdleMs: 5000 });

  console.log(`\ntour finished in ${((performance.now() - began) / 1000).toFixed(1)} s`);
  if (failed.length > 0) {
    console.log(`examples that failed: ${failed.join(', ')}`);
    process.exitCode = 1;
  }
}

if (isMainThread) await tour();
