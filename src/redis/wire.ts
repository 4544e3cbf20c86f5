/**
 * What a RedisExecutor's job carries through Redis, and how both ends read it: the task's
 * function (a module function, imported by the worker), its arguments and its outcome, encoded
 * by threadkit's codec (errors keep class, message, stack and cause) into base64 text, since
 * BullMQ stores JSON. Shared objects cannot leave their process: encodePortable refuses them
 * with a TypeError naming the path.
 */

import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { relative, resolve, sep } from 'node:path';
import { decodePortable, encodePortable } from '../shm/codec.js';
import { describe } from '../shm/futex.js';
import { describeError } from '../errors.js';

/** The wire format's version: a worker refuses a job of another (both ends must run the same threadkit). */
export const WIRE_VERSION = 1;

/** A job's data (BullMQ stores it as JSON). */
export interface JobData {
  /** WIRE_VERSION. */
  tk: number;
  /** The module's URL on the client, and its path relative to the client's working directory. */
  module: string;
  relative: string | null;
  name: string;
  /** base64 of the encoded argument list (or, for a map chunk, list of argument lists). */
  args: string;
  /** 1 for a map chunk: the outcome is the list of results. */
  chunk: number;
  /** Times the task may start (a start after a worker died mid-task counts). */
  attempts: number;
}

/** A returnvalue: 'r' + base64 of the encoded result, or CANCELLED_OUTCOME. */
export const CANCELLED_OUTCOME = 'c';
/** Marks, in a failed job's reason, the encoded error that follows (after a readable first line). */
const ERROR_MARK = '\n[threadkit error] ';

export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

function fromBase64(text: string): Uint8Array {
  return Buffer.from(text, 'base64');
}

/** The job data for `fn(...args)` (or a chunk: `args` is a list of argument lists). */
export function jobData(fn: { module: string; name: string }, args: unknown[], chunk: boolean, attempts: number, root: string): JobData {
  return { tk: WIRE_VERSION, module: fn.module, relative: relativeToCwd(fn.module), name: fn.name, args: toBase64(encodePortable(args, root)), chunk: chunk ? 1 : 0, attempts };
}

/** By module URL (the working directory is taken as fixed once a module is sent). */
const relatives = new Map<string, string | null>();

function relativeToCwd(module: string): string | null {
  let path = relatives.get(module);
  if (path === undefined) {
    path = module.startsWith('file:') ? relative(process.cwd(), fileURLToPath(module)) : null;
    if (path !== null) path = path.startsWith('..') ? null : path.split(sep).join('/');
    if (relatives.size > 1000) relatives.clear();
    relatives.set(module, path);
  }
  return path;
}

/** Reads a job's data on the worker. @throws TypeError for a job that threadkit did not write. */
export function readJobData(data: unknown): JobData {
  const d = data as Partial<JobData> | null;
  if (typeof d !== 'object' || d === null || typeof d.tk !== 'number') throw new TypeError(`not a threadkit job (its data is ${describe(data)}): only RedisExecutor may add jobs to a threadkit worker's queue`);
  if (d.tk !== WIRE_VERSION) throw new TypeError(`a job in wire format ${d.tk}, and this worker reads format ${WIRE_VERSION}: run the same threadkit version on clients and workers`);
  if (typeof d.module !== 'string' || typeof d.name !== 'string' || typeof d.args !== 'string') throw new TypeError('a threadkit job without its module, name or args');
  return d as JobData;
}

export function decodeArgs(data: JobData): unknown[] {
  return decodePortable(fromBase64(data.args)) as unknown[];
}

/**
 * The module a worker imports for a job: the client's own URL when that file exists here
 * (one machine, or the same path on each), else the same path relative to this worker's
 * working directory (clients and workers each run from their project's root).
 * @throws Error naming both places when neither exists.
 */
export function resolveTaskModule(data: JobData, cwd = process.cwd()): string {
  const key = `${data.module}\n${data.relative}`;
  let found = resolved.get(key);
  if (found === undefined) {
    // (Only what was found is kept: a module copied here later is found then.)
    found = findTaskModule(data, cwd);
    if (resolved.size > 1000) resolved.clear();
    resolved.set(key, found);
  }
  return found;
}

const resolved = new Map<string, string>();

function findTaskModule(data: JobData, cwd: string): string {
  const { module } = data;
  if (!module.startsWith('file:') || existsSync(fileURLToPath(module))) return module;
  if (data.relative !== null) {
    const here = resolve(cwd, data.relative);
    if (existsSync(here)) return pathToFileURL(here).href;
  }
  const tried = data.relative === null ? '' : ` nor ${resolve(cwd, data.relative)} (its path relative to the client's working directory, from this worker's)`;
  throw new Error(`the task's module is not on this worker: neither ${fileURLToPath(module)}${tried} exists. Run workers from a copy of the same code (started in the project's root, as the client)`);
}

/** A worker's returnvalue for a result. @throws TypeError naming the path of what cannot cross. */
export function encodeResult(value: unknown): string {
  return 'r' + toBase64(encodePortable(value, 'result'));
}

/** The client's reading of a returnvalue: the result, or CANCELLED_OUTCOME's marker. */
export function decodeResult(returnvalue: unknown): { cancelled: true } | { cancelled: false; value: unknown } {
  // QueueEvents hands the returnvalue as JSON text; Job.returnvalue as the parsed value.
  let text = returnvalue;
  if (typeof text === 'string' && text.startsWith('"')) text = JSON.parse(text) as unknown;
  if (text === CANCELLED_OUTCOME) return { cancelled: true };
  if (typeof text !== 'string' || !text.startsWith('r')) throw new TypeError(`a job completed with ${describe(returnvalue)}, which is not a threadkit result (was it processed by a threadkit worker?)`);
  return { cancelled: false, value: decodePortable(fromBase64(text.slice(1))) };
}

/**
 * A failed job's reason for a task's error: `Name: message` first (what dashboards show), then
 * the encoded error. An error that cannot be encoded travels as what can be said of it.
 */
export function encodeFailure(error: unknown): string {
  let bytes: Uint8Array;
  try {
    bytes = encodePortable(error, 'exception');
  } catch (whyNot) {
    bytes = encodePortable(new Error(`${describeError(error)} (the error itself could not be sent: ${describeError(whyNot)})`), 'exception');
  }
  return firstLine(describeError(error)) + ERROR_MARK + toBase64(bytes);
}

/** The client's reading of a failed job's reason: the task's own error, or an Error saying what BullMQ said. */
export function decodeFailure(reason: unknown): unknown {
  const text = String(reason);
  const at = text.indexOf(ERROR_MARK);
  if (at < 0) return undefined;
  return decodePortable(fromBase64(text.slice(at + ERROR_MARK.length)));
}

function firstLine(text: string): string {
  const end = text.indexOf('\n');
  return end < 0 ? text : text.slice(0, end);
}
