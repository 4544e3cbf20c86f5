/**
 * The queue block's layout: the Int32 slot of each field and the block's size (the protocol
 * that uses them is in core.ts's header).
 *
 * Queue block (Int32 slots; the payload starts 8 bytes into a 64-aligned block, so slots 14, 30,
 * 46 and 62 start cache lines). In the hot path each line has one writer: a put writes its own
 * line (TAIL) and PUT_WORD, a get writes its own line (HEAD) and GET_WORD; a getter polling
 * PUT_WORD while it waits costs the putter one line, not its private state; the first line
 * (state, bound, waiter counts) is only read while nobody waits.
 *
 * | slot | field          | written by           | meaning                                          |
 * |------|----------------|----------------------|--------------------------------------------------|
 * | 0    | FLAVOR         | constructor          | 0 Queue, 1 SimpleQueue, 2 LifoQueue, 3 PriorityQueue |
 * | 1    | STATE          | shutdown             | 0 open, 1 shut down (written under the put lock)  |
 * | 2    | MAXSIZE        | maxsize setter       | <= 0: unbounded (written under the put lock)      |
 * | 3    | GET_WAITERS    | getters (slow path)  | threads registered to sleep on NOT_EMPTY_SEQ      |
 * | 4    | PUT_WAITERS    | putters (slow path)  | threads registered to sleep on NOT_FULL_SEQ       |
 * | 5    | JOIN_WAITERS   | joiners              | threads registered to sleep on DONE_WORD          |
 * | 6    | NOT_EMPTY_SEQ  | putters, shutdown    | futex word of sleeping getters (bumped to wake)   |
 * | 7    | NOT_FULL_SEQ   | getters, shutdown, maxsize setter | futex word of sleeping putters       |
 * | 8    | STORE          | storage hooks        | offset of the storage block (0: none yet)         |
 * | 9    | CAP            | storage hooks        | storage capacity (bytes)                          |
 * | 14   | TAIL           | putters              | FIFO: bytes ever written (wrapping); LIFO: bytes used; priority: items |
 * | 15   | HEAD_CACHE     | putters              | FIFO: the last HEAD_PUB a putter read             |
 * | 16   | GET_CACHE      | putters              | the last GET_WORD a putter read (maxsize check)   |
 * | 18-19| SEQ            | putters (priority)   | Float64: insertion number, for stable order       |
 * | 30   | HEAD           | getters              | FIFO: bytes ever consumed                         |
 * | 31   | HEAD_SHOWN     | getters              | FIFO: the HEAD last stored in HEAD_PUB            |
 * | 32   | PUT_CACHE      | getters              | the last PUT_WORD a getter read                   |
 * | 33   | DONE_WORD      | taskDone, shutdown   | tasks ever done × 8                               |
 * | 46   | PUT_WORD       | putters              | items ever put × 8 + WAIT (getters sleep) + put lock state |
 * | 62   | GET_WORD       | getters              | items ever taken × 8 + WAIT (putters sleep) + get lock state (FIFO) |
 * | 63   | HEAD_PUB       | getters              | FIFO: a HEAD no newer than the real one           |
 */

export const FLAVOR = 0;
export const STATE = 1;
export const MAXSIZE = 2;
export const GET_WAITERS = 3;
export const PUT_WAITERS = 4;
export const JOIN_WAITERS = 5;
export const NOT_EMPTY_SEQ = 6;
export const NOT_FULL_SEQ = 7;
export const STORE = 8;
export const CAP = 9;
export const TAIL = 14;
export const HEAD_CACHE = 15;
export const GET_CACHE = 16;
export const SEQ = 18;
export const HEAD = 30;
export const HEAD_SHOWN = 31;
export const PUT_CACHE = 32;
export const DONE_WORD = 33;
export const PUT_WORD = 46;
export const GET_WORD = 62;
export const HEAD_PUB = 63;
/** Payload bytes of a queue block: slots 0..63 (a 512-byte block with its header). */
export const QUEUE_BLOCK_BYTES = 256;
