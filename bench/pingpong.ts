/**
 * Round trip between the main thread and one other thread, in µs: the main thread hands the
 * turn over and blocks until it comes back. threadkit does it (a) with two Events and (b) with a
 * Condition and a turn variable in a SharedValue; the anchors are a raw futex ping-pong (Atomics.wait / notify with a
 * plain node Worker, never spinning), a spin-only ping-pong (both sides spin on Atomics.load: the
 * lower limit) and CPython's threading.Event / threading.Condition ping-pong between two threads.
 *
 * Run alone: `node --import tsx bench/pingpong.ts`.
 */

import { Worker } from 'node:worker_threads';
import { Condition, Event, SharedValue, Thread } from 'threadkit';
import { type Row, isMain, measure, runAlone, runPython } from './lib.js';

const MIN_MS = 800;
/** The issue's goal for a threadkit round trip while both threads are busy with it (µs). */
const GOAL_US = 10;

/** The thread must have answered every round exactly once, or the numbers mean nothing. */
function checkRounds(what: string, answered: number | undefined, sent: number): void {
  if (answered !== sent) throw new Error(`${what} ping-pong: the thread answered ${answered} rounds, the main thread sent ${sent}`);
}

// ---- threadkit ---------------------------------------------------------------------------------

/** Thread side of the Event ping-pong. Self-contained: it is sent to the thread as source text. */
const eventTarget = (ping: Event, pong: Event, stop: Event): number => {
  let rounds = 0;
  for (;;) {
    ping.wait();
    ping.clear();
    if (stop.isSet()) return rounds;
    pong.set();
    rounds++;
  }
};

function threadkitEvents(): number {
  const ping = new Event();
  const pong = new Event();
  const stop = new Event();
  const thread = new Thread<number>({ target: eventTarget, args: [ping, pong, stop], daemon: true, name: 'bench-event-pong' });
  thread.start();
  let total = 0;
  // Main side: ping, wait for the pong, clear it. The thread clears ping before it sets pong,
  // so the next ping cannot be missed or seen twice.
  const rounds = (n: number): void => {
    for (let i = 0; i < n; i++) {
      ping.set();
      pong.wait();
      pong.clear();
    }
    total += n;
  };
  rounds(1); // blocks until the thread is up
  const ns = measure(rounds, { minMs: MIN_MS });
  stop.set();
  ping.set();
  thread.join();
  checkRounds('Event', thread.result, total);
  return ns;
}

/**
 * Thread side of the Condition ping-pong, Python's idiom: a turn variable guarded by the
 * condition's lock (a SharedValue, so both threads see it; plain reads and writes suffice
 * under the lock). 0: the main thread's turn, 1: the thread's turn, 2: stop.
 */
export const conditionTarget = (cond: Condition, turn: SharedValue<'int32'>): number => {
  let rounds = 0;
  cond.acquire();
  try {
    for (;;) {
      while (turn.value === 0) cond.wait();
      if (turn.value === 2) return rounds;
      turn.value = 0;
      cond.notify();
      rounds++;
    }
  } finally {
    cond.release();
  }
};

function threadkitCondition(): number {
  const cond = new Condition(); // an RLock inside, as in Python
  const turn = new SharedValue('int32', 0);
  const thread = new Thread<number>({ target: conditionTarget, args: [cond, turn], daemon: true, name: 'bench-condition-pong' });
  thread.start();
  let total = 0;
  const rounds = (n: number): void => {
    cond.acquire();
    for (let i = 0; i < n; i++) {
      turn.value = 1;
      cond.notify();
      while (turn.value === 1) cond.wait();
    }
    cond.release();
    total += n;
  };
  rounds(1);
  const ns = measure(rounds, { minMs: MIN_MS });
  cond.acquire();
  turn.value = 2;
  cond.notify();
  cond.release();
  thread.join();
  checkRounds('Condition', thread.result, total);
  return ns;
}

// ---- raw anchors: a plain node Worker and one Int32 word ------------------------------------------

/** Word states: whose turn it is, or stop. */
const MAIN_TURN = 0;
const WORKER_TURN = 1;
const STOP = 2;

/** The worker's side, as a CommonJS script (eval). `spin` replaces every sleep by a busy loop. */
function workerSource(spin: boolean): string {
  return `
    const { workerData } = require('node:worker_threads');
    const word = new Int32Array(workerData.sab);
    for (;;) {
      let v;
      while ((v = Atomics.load(word, 0)) === ${MAIN_TURN}) ${spin ? '' : `Atomics.wait(word, 0, ${MAIN_TURN})`};
      if (v === ${STOP}) break;
      Atomics.store(word, 0, ${MAIN_TURN});
      ${spin ? '' : 'Atomics.notify(word, 0, 1);'}
    }`;
}

async function rawPingPong(spin: boolean): Promise<number> {
  const sab = new SharedArrayBuffer(4);
  const word = new Int32Array(sab);
  // No --import tsx in the worker: it would only slow the start.
  const worker = new Worker(workerSource(spin), { eval: true, workerData: { sab }, execArgv: [] });
  const exited = new Promise((resolve) => worker.once('exit', resolve));
  const rounds = spin
    ? (n: number): void => {
        for (let i = 0; i < n; i++) {
          Atomics.store(word, 0, WORKER_TURN);
          while (Atomics.load(word, 0) === WORKER_TURN);
        }
      }
    : (n: number): void => {
        for (let i = 0; i < n; i++) {
          Atomics.store(word, 0, WORKER_TURN);
          Atomics.notify(word, 0, 1);
          // Sleep only while the word still says WORKER_TURN: the worker changes it before notifying.
          while (Atomics.load(word, 0) === WORKER_TURN) Atomics.wait(word, 0, WORKER_TURN);
        }
      };
  rounds(1);
  const ns = measure(rounds, { minMs: MIN_MS });
  Atomics.store(word, 0, STOP);
  Atomics.notify(word, 0);
  await exited;
  return ns;
}

// ---- Python ------------------------------------------------------------------------------------

/** CPython's Event and Condition ping-pong between two threads: median µs per round trip. */
const PYTHON = `
import threading, time
BATCH = 1000
def timed(rounds, cap_s=0.8):
    rounds(BATCH // 2)
    times = []
    deadline = time.perf_counter() + cap_s
    while len(times) < 7 or (time.perf_counter() < deadline and len(times) < 30):
        start = time.perf_counter_ns()
        rounds(BATCH)
        times.append((time.perf_counter_ns() - start) / BATCH / 1000)
    times.sort()
    return times[len(times) // 2]

def events():
    ping, pong, stop = threading.Event(), threading.Event(), [False]
    def pong_side():
        while True:
            ping.wait(); ping.clear()
            if stop[0]: return
            pong.set()
    t = threading.Thread(target=pong_side, daemon=True); t.start()
    def rounds(n):
        for _ in range(n):
            ping.set(); pong.wait(); pong.clear()
    us = timed(rounds)
    stop[0] = True; ping.set(); t.join()
    return us

def condition():
    cond, turn, stop = threading.Condition(), [0], [False]
    def pong_side():
        with cond:
            while True:
                while turn[0] != 1: cond.wait()
                if stop[0]: return
                turn[0] = 0; cond.notify()
    t = threading.Thread(target=pong_side, daemon=True); t.start()
    def rounds(n):
        with cond:
            for _ in range(n):
                turn[0] = 1; cond.notify()
                while turn[0] == 1: cond.wait()
    us = timed(rounds)
    with cond:
        stop[0] = True; turn[0] = 1; cond.notify()
    t.join()
    return us

print('Event:', events())
print('Condition:', condition())
`;

// ---- the rows ----------------------------------------------------------------------------------

function goalNote(us: number): string {
  return `goal ≤ ${GOAL_US} µs: ${us <= GOAL_US ? 'met' : `MISSED (${(us / GOAL_US).toFixed(1)}x)`}`;
}

export async function run(): Promise<Row[]> {
  const events = threadkitEvents() / 1000;
  const condition = threadkitCondition() / 1000;
  const futex = (await rawPingPong(false)) / 1000;
  const spin = (await rawPingPong(true)) / 1000;
  const python = runPython(PYTHON);
  const py = (name: string): number | undefined => (python.ok ? python.values.get(name) : undefined);
  const pyNote = python.ok ? `${python.version}, two threads` : python.note;

  const futexName = 'raw futex Worker';
  const spinName = 'spin-only Worker';
  const eventsWork = 'Event ping-pong round trip';
  const conditionWork = 'Condition ping-pong round trip';
  return [
    { group: 'pingpong', work: eventsWork, unit: 'µs', threadkit: events, anchorName: futexName, anchor: futex, note: goalNote(events) },
    { group: 'pingpong', work: eventsWork, unit: 'µs', threadkit: events, anchorName: spinName, anchor: spin, note: 'lower limit: nobody sleeps (meaningless when the cores are busy with other work)' },
    { group: 'pingpong', work: eventsWork, unit: 'µs', threadkit: events, anchorName: 'python3 Event', anchor: py('Event'), ratio: 'speedup', note: pyNote },
    { group: 'pingpong', work: conditionWork, unit: 'µs', threadkit: condition, anchorName: futexName, anchor: futex, note: `${goalNote(condition)}; turn variable: a SharedValue under the lock` },
    { group: 'pingpong', work: conditionWork, unit: 'µs', threadkit: condition, anchorName: 'python3 Condition', anchor: py('Condition'), ratio: 'speedup', note: pyNote },
  ];
}

if (isMain(import.meta.url)) await runAlone(run);
