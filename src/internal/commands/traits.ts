/**
 * What each command may do, in one table: whether it only reads, and whether running it twice has the effect of
 * running it once (only those are retried after a lost connection). The catalog's constructors take their flags
 * from here, and the public `isIdempotent` answers from here, so the two cannot drift. Some writes are idempotent
 * only without certain flags or for certain arguments (SET NX, ZADD INCR, EXPIRE NX, LTRIM 1 -1): the table decides
 * from the arguments as sent.
 *
 * @internal
 */
import type { Argument } from "../command.ts"

/**
 * A command that only reads: idempotent and read-only.
 *
 * @internal
 */
export interface Read {
  readonly _tag: "Read"
}

/**
 * A command that writes; `idempotent` tells from its arguments (keys and values included, as sent) whether a retry
 * has the effect of one run and a truthful reply.
 *
 * @internal
 */
export interface Write {
  readonly _tag: "Write"
  readonly idempotent: (args: ReadonlyArray<Argument>) => boolean
}

/** @internal */
export type Trait = Read | Write

const read: Read = { _tag: "Read" }
const idempotent: Write = { _tag: "Write", idempotent: () => true }
const notIdempotent: Write = { _tag: "Write", idempotent: () => false }

/** Idempotent unless one of `flags` is among the options, which start at `from` (SET's after its key and value). */
const idempotentUnless = (from: number, ...flags: ReadonlyArray<string>): Write => ({
  _tag: "Write",
  idempotent: (args) => !hasFlag(args, from, flags)
})

/** Idempotent only with `flag` among the options, which start at `from`. */
const idempotentWith = (from: number, flag: string): Write => ({
  _tag: "Write",
  idempotent: (args) => hasFlag(args, from, [flag])
})

/** Idempotent for the arguments `idempotent` accepts (a count, a range, a subcommand). */
const idempotentWhen = (idempotent: (args: ReadonlyArray<Argument>) => boolean): Write => ({
  _tag: "Write",
  idempotent
})

// ZADD's options come before the first score; a member may be named "INCR" without being the flag.
const zaddOptions: ReadonlyArray<string> = ["NX", "XX", "GT", "LT", "CH", "INCR"]
const zaddIncr = (args: ReadonlyArray<Argument>): boolean => {
  for (let i = 1; i < args.length; i++) {
    const option = flagOf(args[i])
    if (option === undefined || !zaddOptions.includes(option)) return false
    if (option === "INCR") return true
  }
  return false
}

// XGROUP's subcommands: a retry of CREATE fails with BUSYGROUP although the group was created; the others answer
// false or 0 on a retry, which callers read as "already done".
const xgroupIdempotent: ReadonlyArray<string> = ["DESTROY", "CREATECONSUMER", "DELCONSUMER", "SETID"]

const traits = {
  // Strings. SET ... GET answers the new value on a retry; SET ... NX answers false for a write that was applied.
  GET: read,
  MGET: read,
  STRLEN: read,
  GETRANGE: read,
  SET: idempotentUnless(2, "GET", "NX"),
  MSET: idempotent,
  // Setting (or removing) the time to live again has the same effect.
  GETEX: idempotent,
  SETRANGE: idempotent,
  SETNX: notIdempotent,
  MSETNX: notIdempotent,
  GETDEL: notIdempotent,
  INCR: notIdempotent,
  INCRBY: notIdempotent,
  INCRBYFLOAT: notIdempotent,
  DECR: notIdempotent,
  DECRBY: notIdempotent,
  APPEND: notIdempotent,

  // Keys. A relative expiry set again from a slightly later now is the same effect; NX and LT would answer false
  // for an expiry that was set, and so would GT on an absolute time. COPY without REPLACE answers false on a retry.
  EXISTS: read,
  TOUCH: read,
  TTL: read,
  PTTL: read,
  TYPE: read,
  SCAN: read,
  KEYS: read,
  DEL: idempotent,
  UNLINK: idempotent,
  PERSIST: idempotent,
  EXPIRE: idempotentUnless(2, "NX", "LT"),
  PEXPIRE: idempotentUnless(2, "NX", "LT"),
  EXPIREAT: idempotentUnless(2, "NX", "LT", "GT"),
  PEXPIREAT: idempotentUnless(2, "NX", "LT", "GT"),
  COPY: idempotentWith(2, "REPLACE"),
  RENAME: notIdempotent,
  RENAMENX: notIdempotent,

  // Hashes.
  HGET: read,
  HMGET: read,
  HGETALL: read,
  HEXISTS: read,
  HKEYS: read,
  HVALS: read,
  HLEN: read,
  HSTRLEN: read,
  HRANDFIELD: read,
  HSCAN: read,
  HSET: idempotent,
  HDEL: idempotent,
  HSETNX: notIdempotent,
  HINCRBY: notIdempotent,
  HINCRBYFLOAT: notIdempotent,

  // Lists. LREM with a bounded count removes more on a retry; LTRIM is idempotent when trimming again changes
  // nothing (`0..n`, `-n..-1`), not when it shifts (`1..-1`).
  LRANGE: read,
  LLEN: read,
  LINDEX: read,
  LPOS: read,
  LSET: idempotent,
  LREM: idempotentWhen((args) => integerOf(args[1]) === 0),
  LTRIM: idempotentWhen((args) => {
    const start = integerOf(args[1])
    const stop = integerOf(args[2])
    return (start === 0 && stop >= 0) || (start < 0 && stop === -1)
  }),
  LPUSH: notIdempotent,
  RPUSH: notIdempotent,
  LPUSHX: notIdempotent,
  RPUSHX: notIdempotent,
  LPOP: notIdempotent,
  RPOP: notIdempotent,
  LINSERT: notIdempotent,
  LMOVE: notIdempotent,
  LMPOP: notIdempotent,

  // Sets. A ...STORE overwrites its destination with the same result (sources unchanged in between).
  SMEMBERS: read,
  SISMEMBER: read,
  SMISMEMBER: read,
  SCARD: read,
  SRANDMEMBER: read,
  SINTER: read,
  SUNION: read,
  SDIFF: read,
  SSCAN: read,
  SADD: idempotent,
  SREM: idempotent,
  SINTERSTORE: idempotent,
  SUNIONSTORE: idempotent,
  SDIFFSTORE: idempotent,
  SPOP: notIdempotent,
  SMOVE: notIdempotent,

  // Sorted sets. ZADD sets the same scores again (NX, XX, GT, LT, CH included: only the count may be lower), except
  // with INCR; ZREMRANGEBYRANK removes the next ranks on a retry.
  ZRANGE: read,
  ZRANGEBYSCORE: read,
  ZRANK: read,
  ZREVRANK: read,
  ZSCORE: read,
  ZMSCORE: read,
  ZCARD: read,
  ZCOUNT: read,
  ZSCAN: read,
  ZADD: idempotentWhen((args) => !zaddIncr(args)),
  ZREM: idempotent,
  ZREMRANGEBYSCORE: idempotent,
  ZREMRANGEBYLEX: idempotent,
  ZINCRBY: notIdempotent,
  ZREMRANGEBYRANK: notIdempotent,
  ZPOPMIN: notIdempotent,
  ZPOPMAX: notIdempotent,

  // Streams. XADD appends a second entry (with "*") or fails although the first was applied (explicit id); a
  // claim counts another delivery or answers nothing for a claim that was made.
  XRANGE: read,
  XREVRANGE: read,
  XLEN: read,
  XPENDING: read,
  XINFO: read,
  XDEL: idempotent,
  XTRIM: idempotent,
  XACK: idempotent,
  XGROUP: idempotentWhen((args) => {
    const subcommand = flagOf(args[0])
    return subcommand !== undefined && xgroupIdempotent.includes(subcommand)
  }),
  XADD: notIdempotent,
  XCLAIM: notIdempotent,
  XAUTOCLAIM: notIdempotent,

  // Geo (positions in a sorted set: as ZADD).
  GEOPOS: read,
  GEODIST: read,
  GEOSEARCH: read,
  GEOADD: idempotent,

  // Bitmaps. SETBIT answers the previous bit, the new one on a retry.
  GETBIT: read,
  BITCOUNT: read,
  BITPOS: read,
  SETBIT: notIdempotent,

  // HyperLogLog.
  PFCOUNT: read,
  PFADD: idempotent,
  PFMERGE: idempotent,

  // Pub/sub: a retry delivers the message twice.
  PUBLISH: notIdempotent,
  SPUBLISH: notIdempotent,

  // Server.
  PING: read,
  ECHO: read,
  TIME: read,
  DBSIZE: read,
  INFO: read,

  // Scripts may write anything: a script's own command takes the flag its author declares (RedisScript.make).
  EVAL: notIdempotent,
  EVALSHA: notIdempotent
} satisfies Record<string, Trait>

type Traits = typeof traits

/**
 * Every command name the table knows.
 *
 * @internal
 */
export type CommandName = keyof Traits

/**
 * The names of the commands that only read.
 *
 * @internal
 */
export type ReadName = { readonly [K in CommandName]: Traits[K] extends Read ? K : never }[CommandName]

/**
 * The names of the commands that write.
 *
 * @internal
 */
export type WriteName = Exclude<CommandName, ReadName>

const byName: ReadonlyMap<string, Trait> = new Map(Object.entries(traits))

/**
 * The command names in the table, upper case.
 *
 * @internal
 */
export const commandNames: ReadonlyArray<string> = [...byName.keys()]

/**
 * A command's flags as the `Command` record carries them.
 *
 * @internal
 */
export interface Flags {
  readonly idempotent: boolean
  readonly readOnly: boolean
}

const readFlags: Flags = { idempotent: true, readOnly: true }
const idempotentWriteFlags: Flags = { idempotent: true, readOnly: false }
const writeFlags: Flags = { idempotent: false, readOnly: false }

/**
 * The flags of a command with these arguments. `name` is upper case, as the catalog spells it; a name the table does
 * not know is a non-idempotent write.
 *
 * @internal
 */
export const traitsFor = (name: string, args: ReadonlyArray<Argument>): Flags => {
  const trait = byName.get(name)
  if (trait === undefined) return writeFlags
  if (trait._tag === "Read") return readFlags
  return trait.idempotent(args) ? idempotentWriteFlags : writeFlags
}

/**
 * Whether a command is safe to run twice: reads, and writes whose retry has the effect of one run and a truthful
 * reply (SET without GET or NX, DEL, EXPIRE without NX/LT, HSET, SADD, ZADD without INCR, ...). INCR, LPUSH, XADD,
 * PUBLISH, pops, scripts and any command the table does not know are not. The name is case-insensitive; flags are
 * read where the command takes them (SET's after its key and value, ZADD's before the first score).
 *
 * @internal
 */
export const isIdempotent = (name: string, args: ReadonlyArray<Argument> = []): boolean =>
  traitsFor(name.toUpperCase(), args).idempotent

/**
 * Whether a command only reads (case-insensitive; unknown commands are taken as writes).
 *
 * @internal
 */
export const isReadOnly = (name: string): boolean => byName.get(name.toUpperCase())?._tag === "Read"

// An option as Redis compares it: case-insensitive, a string or bytes (never a number).
const flagOf = (arg: Argument | undefined): string | undefined =>
  typeof arg === "string"
    ? arg.toUpperCase()
    : Buffer.isBuffer(arg) && arg.length <= 16
    ? arg.toString("latin1").toUpperCase()
    : undefined

const hasFlag = (args: ReadonlyArray<Argument>, from: number, flags: ReadonlyArray<string>): boolean => {
  for (let i = from; i < args.length; i++) {
    const flag = flagOf(args[i])
    if (flag !== undefined && flags.includes(flag)) return true
  }
  return false
}

// An integer argument as Redis parses it; NaN for anything else (so that no comparison holds).
const integerOf = (arg: Argument | undefined): number => {
  if (typeof arg === "number") return Number.isSafeInteger(arg) ? arg : Number.NaN
  const text = typeof arg === "string" ? arg : Buffer.isBuffer(arg) ? arg.toString("latin1") : ""
  return /^-?\d+$/.test(text) ? Number(text) : Number.NaN
}
