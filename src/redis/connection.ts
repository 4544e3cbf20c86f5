/**
 * Connections to Redis for the executor's bridge and for workers: ioredis clients made from a
 * URL or a plain options object (it crosses to the bridge thread, so it holds no functions),
 * and the optional peer packages loaded with a message that says what to install.
 */

import { describe } from '../shm/futex.js';

/** `redis://[user:password@]host:port[/db]`, or ioredis's options (`{ host, port, password, db, tls, … }`). */
export type RedisConnection = string | Record<string, unknown>;

// (Types kept loose: bullmq and ioredis are optional peers, absent from the core's build.)
export type RedisClient = any;
export type BullMQ = typeof import('bullmq');

let bullmq: Promise<BullMQ> | undefined;
let ioredis: Promise<new (...args: any[]) => RedisClient> | undefined;

const INSTALL = 'threadkit/redis needs the packages bullmq and ioredis: npm install bullmq ioredis';

export function loadBullMQ(): Promise<BullMQ> {
  return (bullmq ??= import('bullmq').catch((error: unknown) => {
    throw new Error(`${INSTALL} (${String(error)})`, { cause: error });
  }));
}

function loadIORedis(): Promise<new (...args: any[]) => RedisClient> {
  return (ioredis ??= import('ioredis').then(
    (m: any) => (m.Redis ?? m.default) as new (...args: any[]) => RedisClient,
    (error: unknown) => {
      throw new Error(`${INSTALL} (${String(error)})`, { cause: error });
    },
  ));
}

/** Checks a connection option where the user passed it. @throws TypeError naming the fix. */
export function checkConnection(connection: unknown, what: string): RedisConnection {
  if (typeof connection === 'string') {
    if (!/^rediss?:\/\//.test(connection)) throw new TypeError(`${what}: connection must be a URL such as "redis://127.0.0.1:6379", got ${describe(connection)}`);
    return connection;
  }
  if (typeof connection === 'object' && connection !== null && Object.getPrototypeOf(connection) === Object.prototype) return connection as Record<string, unknown>;
  throw new TypeError(`${what}: connection must be a URL such as "redis://127.0.0.1:6379" or an options object { host, port, … }, got ${describe(connection)}`);
}

/** The connection for messages: its URL without a password. */
export function describeConnection(connection: RedisConnection): string {
  if (typeof connection === 'string') return connection.replace(/\/\/([^@/]*)@/, (_, auth: string) => `//${auth.includes(':') ? auth.slice(0, auth.indexOf(':')) + ':***' : '***'}@`);
  const { host = '127.0.0.1', port = 6379 } = connection as { host?: string; port?: number };
  return `redis://${host}:${port}`;
}

/**
 * A new ioredis client. Commands wait while the server is away (no per-command retry limit,
 * as BullMQ needs): the executor's own timer decides when that is too long.
 */
export async function openRedis(connection: RedisConnection, name: string): Promise<RedisClient> {
  const Redis = await loadIORedis();
  const options = { maxRetriesPerRequest: null, connectionName: name, retryStrategy: (times: number) => Math.min(50 * times, 1000) };
  return typeof connection === 'string' ? new Redis(connection, options) : new Redis({ ...connection, ...options });
}
