/**
 * threadkit/redis: the Executor interface across machines, on BullMQ and Redis. Needs the
 * optional peer packages bullmq and ioredis (npm install bullmq ioredis).
 */

export { RedisExecutor, type RedisExecutorOptions } from './executor.js';
export { runWorker, type RunWorkerOptions, type RedisWorker } from './worker.js';
export type { RedisConnection } from './connection.js';
export { ConnectionError } from '../errors.js';
