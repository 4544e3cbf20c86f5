/**
 * Runs every example the way its comment says (`node --import tsx examples/<file>.ts`, which
 * calls its main() and prints the lines) and checks what it printed, so that no example can rot.
 * Only deterministic facts are asserted (exact totals, every item consumed, phases run, error
 * classes and messages), never timings or which thread happened to win a race. Each example
 * runs in its own process, with a time limit: a deadlock fails its test instead of hanging
 * the suite.
 */

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { REDIS_SERVER } from './helpers/redis.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const LIMIT_MS = 40_000;

/** Runs examples/<file>.ts in a child process; returns the lines it printed on stdout. */
function run(file: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', `examples/${file}.ts`], { cwd: ROOT, timeout: LIMIT_MS }, (error, stdout, stderr) => {
      if (error) {
        const why = error.killed ? `did not finish within ${LIMIT_MS / 1000} s` : `failed (${error.message.split('\n')[0]})`;
        reject(new Error(`examples/${file}.ts ${why}\nstdout:\n${stdout}\nstderr:\n${stderr}`));
        return;
      }
      const lines = stdout.split('\n').filter((l) => l !== '');
      if (lines.length === 0) reject(new Error(`examples/${file}.ts printed nothing\nstderr:\n${stderr}`));
      else resolve(lines);
    });
  });
}

/** The one line matching `pattern` (fails, showing every line, if there is none). */
function line(lines: string[], pattern: RegExp): string {
  const found = lines.find((l) => pattern.test(l));
  assert.ok(found !== undefined, `no line matches ${pattern} in:\n${lines.join('\n')}`);
  return found;
}

/** The first capture group of `pattern` in its line, as a number. */
function number(lines: string[], pattern: RegExp): number {
  return Number(pattern.exec(line(lines, pattern))![1]);
}

const TESTED = [
  'threads-and-join',
  'subclass-result',
  'exceptions',
  'daemon-threads',
  'racing-counter',
  'rlock',
  'condition',
  'semaphore',
  'event',
  'barrier-phases',
  'thread-local',
  'producer-consumer',
  'timer',
  'pool',
  'deadlock',
  'cancel',
  'trace',
  'redis',
];

/** examples/redis.ts needs a Redis: REDIS_URL, or a redis-server it starts itself. */
const NO_REDIS = REDIS_SERVER === undefined && process.env.REDIS_URL === undefined ? 'redis-server is not installed and REDIS_URL is not set (Debian: apt-get install redis-server)' : false;

it('every example has a test here (the tour runs them all)', () => {
  const files = readdirSync(new URL('../examples/', import.meta.url))
    .filter((f) => f.endsWith('.ts') && f !== 'tour.ts')
    .map((f) => f.slice(0, -3));
  assert.deepEqual(files.sort(), [...TESTED].sort());
});

describe('examples', { concurrency: 2 }, () => {
  it('threads-and-join: result, name, ident, currentThread inside', async () => {
    const lines = await run('threads-and-join');
    line(lines, /^before start: <Thread\(doubler, initial\)>, ident=undefined$/);
    line(lines, /^after join: +<Thread\(doubler, stopped \d+\)>, alive=false, result=42$/);
    line(lines, /^inside introspector: currentThread\(\)\.ident=\d+ \(same as outside: true\), isMainThread=false$/);
    line(lines, /^outside: currentThread\(\)\.name=MainThread$/);
    line(lines, /^module function: hello from greeter \(ident \d+, daemon=false\)$/);
    line(lines, /^squares: 1, 4, 9, 16 {2}\(names: (Thread-\d+ \(square\)(, )?){4}\)$/);
    line(lines, /^join\(20\) on a 300 ms sleeper returned; alive=true$/);
    line(lines, /^await joinAsync\(\): alive=false, result=timed-out$/);
  });

  it('subclass-result: run() sets this.result and fields come back', async () => {
    const lines = await run('subclass-result');
    assert.deepEqual(
      lines.slice(0, 4).map((l) => /^(primes\[\d+, \d+\)): (\d+) primes, largest (\d+) \(run\(\) ran in thread "(.*)"\)$/.exec(l)?.slice(1)),
      [
        ['primes[0, 100000)', '9592', '99991', 'primes[0, 100000)'],
        ['primes[100000, 200000)', '8392', '199999', 'primes[100000, 200000)'],
        ['primes[200000, 300000)', '8013', '299993', 'primes[200000, 300000)'],
        ['primes[300000, 400000)', '7863', '399989', 'primes[300000, 400000)'],
      ],
    );
    line(lines, /^total: 33860 primes below 400000$/);
  });

  it('exceptions: default excepthook text, a custom hook, the outer-variable error', async () => {
    const lines = await run('exceptions');
    line(lines, /^join\(\) returned normally; alive=false, result=undefined$/);
    line(lines, /^ {2}Exception in thread failing:$/);
    line(lines, /^ {2}RangeError: negative input: -1$/);
    line(lines, /^custom hook: thread misuse raised ThreadError: release unlocked lock \(a real ThreadError here too\)$/);
    line(lines, /^custom hook: thread typo raised SyntaxError: /);
    line(lines, /^outer variable: TypeError: Thread target uses "factor"/);
  });

  it('daemon-threads: the flag is inherited; a daemon thread does not keep a program alive', async () => {
    const lines = await run('daemon-threads');
    line(lines, /^a thread created inside a daemon thread is a daemon too: true$/);
    line(lines, /^child: main program: reached its end \(forever: daemon=true, alive=true; slow: daemon=false\)$/);
    line(lines, /^child: slow \(non-daemon\) thread: finished, after the main program$/);
    line(lines, /^child process exited by itself with code 0 /);
  });

  it('racing-counter: the locked counter is exact', async () => {
    const lines = await run('racing-counter');
    assert.ok(number(lines, /^without a lock: (\d+)/) <= 400_000);
    line(lines, /^with a Lock: +400000 \(exact\)$/);
  });

  it('rlock: re-entrant, owner-only release, nested locking conserves the total', async () => {
    const lines = await run('rlock');
    line(lines, /^RLock: acquire true, again true/);
    line(lines, /^Lock: +acquire true, again with a 50 ms timeout: false/);
    line(lines, /^4 threads made 80000 nested-locking transfers: balances -?\d+ \+ -?\d+ = 20000 \(was 20000\)$/);
    line(lines, /^another thread calling release\(\): ThreadError: cannot release un-acquired lock$/);
  });

  it('cancel: the first search result stops the others (cancelled), a timeout, a kill', async () => {
    const lines = await run('cancel');
    line(lines, /^search: 4 tasks look for the number whose hash is 0x1b5ea1e8, 1,073,741,824 numbers each$/);
    line(lines, /^search: task 3 found 2,167,483,648 \(hash 0x1b5ea1e8\) after [\d.]+ ms/);
    line(lines, /^search: cancel\(\{ interrupt: true \}\) on the 3 others -> true, true, true$/);
    line(lines, /^search: all 3 stopped within [\d.]+ ms; cancelled: true, true, true$/);
    line(lines, /^timeout: submitWith\(\{ timeout: 200 \}\) on a 60 s sleep failed after [\d.]+ ms: TimeoutError: the task ran longer than its timeout \(200 ms\) and was interrupted$/);
    line(lines, /^timeout: the task's sleep was interrupted and its finally block ran: true$/);
    line(lines, /^killAfter: cancel\(\{ interrupt: true, killAfter: 100 \}\) -> true; right after, the loop still runs: true$/);
    line(lines, /^killAfter: await -> CancelledError [\d.]+ ms after the interrupt: its isolate was terminated; cancelled: true$/);
    line(lines, /^killAfter: the pool goes on: 4 more tasks ran \(on searcher_\d+(, searcher_\d+)*\)$/);
  });

  it('trace: tracks per thread, lock waits naming the holder, hand-off arrows, named pool tasks, queue depth', async () => {
    const lines = await run('trace');
    line(lines, /^counter: 40 \(2 producers x 20\)$/);
    line(lines, /^traced \d+ events on 5 threads: MainThread, digest_0, digest_1, producer-1, producer-2$/);
    line(lines, /^waits on the lock: yes, each naming its holder \(producer-1( or producer-2)?|producer-2\)$/);
    line(lines, /^hand-off arrows \(a release, put or set to the wait it ended\): yes$/);
    line(lines, /^pool tasks: 8 spans named digest$/);
    line(lines, /^queue depth counter: yes$/);
  });

  it('redis: a client and two `threadkit worker` processes: submit, an error keeping its class, map with chunksize, asCompleted mixing local and remote, cancel, SIGTERM', { skip: NO_REDIS }, async () => {
    const lines = await run('redis');
    line(lines, /^redis: (a redis-server started for this example \(no persistence\)|the one at REDIS_URL)$/);
    line(lines, /^workers: 2 `threadkit worker --threads 2` processes take jobs from queue "redis-example-\d+"$/);
    line(lines, /^submit: primes below 1,000,000 = 78498 \(counted on threadkit-worker-redis-example-\d+_\d+ in a worker process: true\)$/);
    line(lines, /^error: RangeError: no real square root of -4 \(instanceof RangeError: true, code: E_NEGATIVE, cause: TypeError: expected a number >= 0\)$/);
    line(lines, /^error: its stack names the worker's frame: true$/);
    line(lines, /^map: primes per block of 100,000 \(chunksize 4\): 9592, 8392, 8013, 7863, 7678, 7560, 7445, 7408, 7323, 7224$/);
    line(lines, /^map: total 78,498 primes below 1,000,000$/);
    line(lines, /^asCompleted: local \(17,984\), remote \(25,997\), remote \(33,860\) \(listed sorted; they finish in any order\)$/);
    line(lines, /^a Lock in the arguments: TypeError: args\[0\]\.lock: a Lock: shared objects live in one process's memory and cannot be sent to another machine$/);
    line(lines, /^cancel: 9 sleepers on the workers' 8 slots; cancel\(\{ interrupt: true \}\) of a running one -> true; it ended cancelled: true$/);
    line(lines, /^cancel: cancel\(\) of a task queued behind them -> true, cancelled: true$/);
    line(lines, /^cancel: the other 8 sleepers slept: true$/);
    line(lines, /^shutdown: <threadkit\.RedisExecutor queue=redis-example-\d+ at redis:\/\/\S+: shut down>$/);
    line(lines, /^workers: SIGTERM -> exit codes 0, 0; they took 16 of the 17 jobs sent: not the cancelled task's \(its job was removed before a worker took it\)$/);
  });

  it('deadlock: the inversion raises DeadlockError in one thread, the dump names the holder, join cycles raise', async () => {
    const lines = await run('deadlock');
    line(lines, /^lock-order inversion: DeadlockError \/ took both locks$/);
    line(lines, /^dump: waiter is waiting, on a Lock held by MainThread$/);
    line(lines, /^main holds: 1 lock\(s\)$/);
    line(lines, /^two threads joining each other: DeadlockError \/ joined$/);
  });

  it('condition: every consumer gets what it waited for', async () => {
    const lines = await run('condition');
    line(lines, /^waitFor\(stock > 0, 50 ms\) on an empty stock: false$/);
    line(lines, /^wait\(\) without holding the lock: ThreadError: cannot wait on un-acquired lock$/);
    line(lines, /^producer added 120 items$/);
    for (const i of [1, 2, 3]) line(lines, new RegExp(`^consumer-${i} took 40 items`));
    line(lines, /^stock left: 0$/);
  });

  it('semaphore: never more than 3 inside', async () => {
    const lines = await run('semaphore');
    line(lines, /^8 threads entered 80 times through a BoundedSemaphore\(3\)$/);
    const most = number(lines, /^most threads inside at once: (\d+)/);
    assert.ok(most >= 1 && most <= 3, `most inside: ${most}`);
    line(lines, /^inside now: 0, semaphore value back to 3$/);
    line(lines, /^one release too many: RangeError: Semaphore released too many times$/);
  });

  it('event: every waiter wakes on set()', async () => {
    const lines = await run('event');
    line(lines, /^before set\(\): isSet=false, wait\(30\) -> false/);
    for (const i of [1, 2, 3]) line(lines, new RegExp(`^runner-${i}: wait\\(\\) returned true, `));
    line(lines, /^after clear\(\): isSet=false, wait\(0\) -> false$/);
    line(lines, /^await waitAsync\(\) -> true, /);
  });

  it('barrier-phases: the action runs once per phase; the phases compute a fixed result', async () => {
    const lines = await run('barrier-phases');
    line(lines, /^the action ran 5 times for 5 phases of 4 workers$/);
    line(lines, /^cells after 5 phases: 10\.1 8\.9 5\.9 3\.0 1\.0 0\.2 0\.0 0\.0 0\.0 0\.0 0\.0 0\.2 1\.0 3\.0 5\.9 8\.9$/);
    line(lines, /^sum of the cells after each phase: 48\.0, 48\.0, 48\.0, 48\.0, 48\.0 \(conserved\)$/);
    line(lines, /^in every phase the 4 threads got distinct arrival indexes from wait\(\): true$/);
    line(lines, /^barrier: parties=4, nWaiting=0, broken=false$/);
  });

  it('thread-local: each thread sees only its own values', async () => {
    const lines = await run('thread-local');
    assert.deepEqual(lines, [
      'ann: saw user=undefined at first, then user=ann, handled=10',
      'bob: saw user=undefined at first, then user=bob, handled=20',
      'cy: saw user=undefined at first, then user=cy, handled=30',
      'main thread still sees user=main, handled=undefined',
    ]);
  });

  it('producer-consumer: every item is consumed, the bound holds, shutdown stops the consumers', async () => {
    const lines = await run('producer-consumer');
    line(lines, /^producers put 100 items; queue\.join\(\) returned with unfinishedTasks=0$/);
    const taken = [1, 2, 3].map((i) => number(lines, new RegExp(`^consumer-${i} took (\\d+) items$`)));
    assert.equal(taken.reduce((a, b) => a + b, 0), 100);
    line(lines, /^consumed 100 items in all, sum 7450 \(expected 7450\)$/);
    const peak = number(lines, /^the queue never held more than (\d+) items \(maxsize 5\)$/);
    assert.ok(peak >= 1 && peak <= 5, `peak qsize ${peak}`);
    line(lines, /^put\(\) after shutdown: QueueShutDown$/);
  });

  it('timer: fires with its result; a cancelled timer never calls its function', async () => {
    const lines = await run('timer');
    line(lines, /^fired after ~\d+ ms: result="time to stretch"$/);
    line(lines, /^cancelled a 60 s timer: it ended after well under 5 s, result=undefined$/);
  });

  it('pool: map with chunksize, submit + callback, asCompleted', async () => {
    const lines = await run('pool');
    line(lines, /^map: primes per block of 25,000 below 1,000,000: 2762, 2371, 2260, 2199, 2142, 2114, … \(40 blocks\)$/);
    line(lines, /^map: total 78498 primes below 1,000,000$/);
    line(lines, /^submit: await future -> 9592$/);
    line(lines, /^addDoneCallback: primes below 100,000 = 9592$/);
    const finished = line(lines, /^asCompleted: /);
    assert.ok(finished.includes('short (168)') && finished.includes('long (49098)'), finished);
    line(lines, /^threads: primes_\d+(, primes_\d+)* \(maxWorkers \d+\)$/);
    line(lines, /^self-contained task: 6 \* 7 = 42$/);
  });
});
