/**
 * Beyond one machine: a RedisExecutor sends tasks through Redis to `threadkit worker`
 * processes, which run them on their own thread pools. Here the client and two workers run on
 * one machine, but nothing changes when the workers run elsewhere: they need the same code
 * (they import the task functions below by their module's path) and the Redis URL.
 *
 * It uses REDIS_URL if set, else starts its own redis-server (no persistence) on a free
 * loopback port and stops it at the end. Without either it says how to run it, and exits.
 * The task functions are exported from this module, which does nothing else when imported
 * (its main() runs only when it is the program), so workers may import it. (In a project, keep
 * them in a module of their own: workers then import only that.)
 *
 * Run: node --import tsx examples/redis.ts
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Lock, ThreadPoolExecutor, asCompleted, currentThread, isMainThread, moduleFunction, sleep, type Future } from 'threadkit';
import { RedisExecutor } from 'threadkit/redis';

// ---- the tasks (workers import this module and call these) ------------------------------------

/** CPU-heavy: the number of primes in [lo, hi), by trial division. */
export function countPrimes(lo: number, hi: number): number {
  let count = 0;
  for (let n = Math.max(2, lo); n < hi; n++) {
    let prime = true;
    for (let d = 2; d * d <= n; d++) {
      if (n % d === 0) {
        prime = false;
        break;
      }
    }
    if (prime) count++;
  }
  return count;
}

/** countPrimes, and where it ran: the worker's process id and pool thread. */
export function countPrimesWhere(lo: number, hi: number): { primes: number; pid: number; thread: string } {
  return { primes: countPrimes(lo, hi), pid: process.pid, thread: currentThread().name };
}

/** Throws a RangeError with a cause and a field of its own: all of it comes back to the client. */
export function squareRoot(x: number): number {
  if (x < 0) throw Object.assign(new RangeError(`no real square root of ${x}`, { cause: new TypeError('expected a number >= 0') }), { code: 'E_NEGATIVE' });
  return Math.sqrt(x);
}

/** Sleeps on its worker's thread (an interrupt ends the sleep with InterruptedError). */
export function nap(ms: number): string {
  sleep(ms);
  return `slept ${ms} ms`;
}

// ---- Redis and the workers -----------------------------------------------------------------------

const REDIS_SERVER = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((path) => existsSync(path));
/** The package's CLI, `threadkit worker` (in a project: node_modules/threadkit/dist/cli/threadkit.js). */
const CLI = fileURLToPath(new URL('../dist/cli/threadkit.js', import.meta.url));
const WORKERS = 2;
const THREADS = 2;

/** A free TCP port on the loopback interface. */
async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.end();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`redis-server did not listen on port ${port}`);
}

/** Starts a redis-server without persistence (nothing written to disk). */
async function startRedis(server: string): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(server, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'], { stdio: ['ignore', 'ignore', 'inherit'] });
  try {
    await waitForPort(port);
  } catch (error) {
    await stop(child);
    throw error;
  }
  return { url: `redis://127.0.0.1:${port}`, child };
}

interface WorkerProcess {
  child: ChildProcess;
  stderr: () => string;
}

/**
 * Starts `threadkit worker`, as `node --import tsx node_modules/.bin/threadkit worker …` in a
 * project (under tsx: the tasks are in this .ts module); adds it to `workers` at once, and
 * resolves once it takes jobs.
 */
async function startWorker(url: string, queue: string, workers: WorkerProcess[]): Promise<void> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'worker', '--connection', url, '--queue', queue, '--threads', String(THREADS)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let text = '';
  workers.push({ child, stderr: () => text });
  child.stderr!.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (chunk: string) => {
      text += chunk;
      if (text.includes('taking jobs')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`threadkit worker exited (${code}) before it took jobs:\n${text}`)));
  });
}

/** Stops a child process with SIGTERM; resolves with its exit code (or signal). */
async function stop(child: ChildProcess): Promise<number | string> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode ?? child.signalCode!;
  const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
  child.kill('SIGTERM');
  const [code, signal] = await exited;
  return code ?? signal ?? -1;
}

// ---- the client ---------------------------------------------------------------------------------

const thousands = (n: number): string => n.toLocaleString('en-US');

async function client(url: string, queue: string, workers: WorkerProcess[]): Promise<string[]> {
  const lines: string[] = [];
  await using ex = new RedisExecutor({ connection: url, queue });

  // submit: a Future, as a pool's; the task ran in another process.
  const where = await ex.submit(moduleFunction(import.meta.url, 'countPrimesWhere', countPrimesWhere), 0, 1_000_000);
  const ranOnWorker = workers.some((w) => w.child.pid === where.pid);
  lines.push(`submit: primes below 1,000,000 = ${where.primes} (counted on ${where.thread} in a worker process: ${ranOnWorker})`);

  // An error comes back as its class, with its message, cause, fields and the worker's stack.
  try {
    await ex.submit(moduleFunction(import.meta.url, 'squareRoot', squareRoot), -4);
  } catch (error) {
    const e = error as RangeError & { code?: string; cause?: Error };
    lines.push(`error: ${e.name}: ${e.message} (instanceof RangeError: ${e instanceof RangeError}, code: ${e.code}, cause: ${e.cause?.name}: ${e.cause?.message})`);
    lines.push(`error: its stack names the worker's frame: ${e.stack?.includes('at squareRoot') ?? false}`);
  }

  // map with chunksize: 10 blocks, 4 per job (3 jobs); results come back in order.
  const starts = Array.from({ length: 10 }, (_, i) => i * 100_000);
  const ends = starts.map((s) => s + 100_000);
  const counts = [...ex.map(moduleFunction(import.meta.url, 'countPrimes', countPrimes), starts, ends, { chunksize: 4 })];
  lines.push(`map: primes per block of 100,000 (chunksize 4): ${counts.join(', ')}`);
  lines.push(`map: total ${thousands(counts.reduce((a, b) => a + b, 0))} primes below 1,000,000`);

  // Remote and local futures mix: asCompleted over a local pool's future and two remote ones.
  {
    using pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    const task = moduleFunction(import.meta.url, 'countPrimes', countPrimes);
    const futures = new Map<Future<number>, string>([
      [pool.submit(task, 0, 200_000), 'local'],
      [ex.submit(task, 0, 300_000), 'remote'],
      [ex.submit(task, 0, 400_000), 'remote'],
    ]);
    const finished: string[] = [];
    for (const done of asCompleted(futures.keys())) finished.push(`${futures.get(done)} (${thousands(done.result())})`);
    lines.push(`asCompleted: ${finished.sort().join(', ')} (listed sorted; they finish in any order)`);
  }

  // Shared objects live in one process's memory: they cannot be sent to a worker. (A plain
  // { module, name } works as well as moduleFunction(), without the types.)
  try {
    ex.submit({ module: import.meta.url, name: 'countPrimes' }, { lock: new Lock() }, 10);
  } catch (error) {
    lines.push(`a Lock in the arguments: ${(error as Error).name}: ${(error as Error).message.replace(/ \(send plain values instead\)$/, '')}`);
  }

  // cancel({ interrupt: true }) of a running task: it is interrupted on its worker. Sleepers
  // take every slot (a worker takes 2 x threads jobs at once), one more waits for a slot.
  const slots = WORKERS * THREADS * 2;
  const napTask = moduleFunction(import.meta.url, 'nap', nap);
  const sleepers = Array.from({ length: slots + 1 }, () => ex.submit(napTask, 2000));
  const queued = ex.submit(napTask, 2000);
  const first = sleepers[0]!;
  while (!first.running()) await new Promise((resolve) => setTimeout(resolve, 10));
  const asked = first.cancel({ interrupt: true });
  await Promise.allSettled([first]);
  lines.push(`cancel: ${slots + 1} sleepers on the workers' ${slots} slots; cancel({ interrupt: true }) of a running one -> ${asked}; it ended cancelled: ${first.cancelled()}`);

  // cancel() of a queued task (the last sleeper took the freed slot): its job is removed from
  // Redis, and it never runs.
  lines.push(`cancel: cancel() of a task queued behind them -> ${queued.cancel()}, cancelled: ${queued.cancelled()}`);
  await Promise.allSettled(sleepers);
  lines.push(`cancel: the other ${slots} sleepers slept: ${sleepers.slice(1).every((f) => f.result() === 'slept 2000 ms')}`);

  await ex.shutdownAsync(); // (leaving the block would do it too: `await using`)
  lines.push(`shutdown: ${ex}`);
  return lines;
}

export async function main(): Promise<string[]> {
  const lines: string[] = [];
  const url = process.env.REDIS_URL;
  if (url === undefined && REDIS_SERVER === undefined) {
    return ['redis: skipped: set REDIS_URL=redis://host:6379, or install redis-server (Debian, Ubuntu: apt-get install redis-server), to run this example'];
  }
  const redis = url === undefined ? await startRedis(REDIS_SERVER!) : undefined;
  const connection = url ?? redis!.url;
  lines.push(url === undefined ? 'redis: a redis-server started for this example (no persistence)' : 'redis: the one at REDIS_URL');
  const queue = `redis-example-${process.pid}`;
  const workers: WorkerProcess[] = [];
  try {
    const started = await Promise.allSettled(Array.from({ length: WORKERS }, () => startWorker(connection, queue, workers)));
    for (const result of started) if (result.status === 'rejected') throw result.reason;
    lines.push(`workers: ${WORKERS} \`threadkit worker --threads ${THREADS}\` processes take jobs from queue "${queue}"`);
    lines.push(...(await client(connection, queue, workers)));

    // SIGTERM: a worker takes no more jobs, finishes its running tasks, and exits, saying how
    // many jobs it took. 17 were sent: 1 + 1 + 3 map jobs + 2 + 9 sleepers + the cancelled one.
    const codes = await Promise.all(workers.map((w) => stop(w.child)));
    const taken = workers.map((w) => Number(/closed after (\d+) jobs?/.exec(w.stderr())?.[1] ?? NaN)).reduce((a, b) => a + b, 0);
    const removed = taken === 16 ? ": not the cancelled task's (its job was removed before a worker took it)" : '';
    lines.push(`workers: SIGTERM -> exit codes ${codes.join(', ')}; they took ${taken} of the 17 jobs sent${removed}`);
  } finally {
    await Promise.all(workers.map((w) => stop(w.child)));
    if (redis !== undefined) await stop(redis.child);
  }
  return lines;
}

if (isMainThread && process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const line of await main()) console.log(line);
}
