/**
 * A real redis-server for the RedisExecutor tests, examples and bench: started on a free
 * loopback port (no persistence: a restart loses its data, as an unconfigured one would), and
 * `threadkit worker` processes started against it. No mock anywhere.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const REDIS_SERVER = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((path) => existsSync(path));
const CLI = fileURLToPath(new URL('../../dist/cli/threadkit.js', import.meta.url));

/** A free TCP port on 127.0.0.1 (the OS picks it; it is free again once we close). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

export interface RedisServer {
  port: number;
  url: string;
  /** Stops the server (SIGKILL: as a crash; its data is gone). */
  kill(): Promise<void>;
  /** Starts it again on the same port, empty. */
  start(): Promise<void>;
}

/** Starts a redis-server on a free loopback port; resolves once it accepts connections. */
export async function startRedis(): Promise<RedisServer> {
  if (REDIS_SERVER === undefined) throw new Error('redis-server is not installed (Debian: apt-get install redis-server; .ci/run installs it)');
  const port = await freePort();
  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    child = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'], { stdio: ['ignore', 'ignore', 'inherit'] });
    await waitForPort(port);
  };
  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async kill() {
      if (child === undefined || child.exitCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    },
    start,
  };
}

async function waitForPort(port: number): Promise<void> {
  const { connect } = await import('node:net');
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.end();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`redis-server did not listen on port ${port}`);
}

export interface WorkerProcess {
  child: ChildProcess;
  /** What it wrote to stderr so far. */
  stderr(): string;
  /** Resolves with its exit code (or signal). */
  exited: Promise<number | string>;
}

/** Starts `threadkit worker` (the package's CLI, from dist/) and resolves once it takes jobs. */
export async function startWorker(url: string, queue: string, extra: string[] = [], env: Record<string, string> = {}): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [CLI, 'worker', '--connection', url, '--queue', queue, ...extra], { stdio: ['ignore', 'inherit', 'pipe'], env: { ...process.env, ...env } });
  let text = '';
  child.stderr!.setEncoding('utf8');
  const ready = new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (chunk: string) => {
      text += chunk;
      if (text.includes('taking jobs')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`threadkit worker exited (${code}) before it took jobs:\n${text}`)));
  });
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  await ready;
  return { child, stderr: () => text, exited };
}
