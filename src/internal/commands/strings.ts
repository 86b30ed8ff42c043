/**
 * String commands: GET, SET and their variants, counters, ranges. A value argument is a string or bytes; every
 * value-returning read has a `...Buffer` form that reads bytes.
 *
 * @internal
 */
import type * as Duration from "effect/Duration"
import type * as Option from "effect/Option"
import * as RedisScript from "../../RedisScript.ts"
import { type Argument, bigint, buffer, type Command, float, integer, string, written } from "../command.ts"
import { Check, flatten, type Keys, positions, read, type Value, write } from "./arguments.ts"
import { ignore, optionalBuffer, optionalString, optionals } from "./replies.ts"

/**
 * Options of `set` and `setGet`.
 *
 * @since 0.2.0
 * @category models
 */
export interface SetOptions {
  /** Expire the key after this long (PX, whole milliseconds, rounded up). Must be positive and finite. */
  readonly ttl?: Duration.Input | undefined
  /** NX: only if the key does not exist; XX: only if it does. */
  readonly mode?: "NX" | "XX" | undefined
  /** KEEPTTL: keep the key's current time to live (not with `ttl`). */
  readonly keepTtl?: boolean | undefined
}

// The decoders of the most used commands, made once (not per command built).
const replies = {
  get: optionalString("GET"),
  getBuffer: optionalBuffer("GET"),
  set: written("SET"),
  incr: integer("INCR"),
  decr: integer("DECR"),
  strlen: integer("STRLEN")
}

const setArgs = (check: Check, key: string, value: Value, options: SetOptions | undefined): Array<Argument> => {
  const args: Array<Argument> = [key, value]
  if (options?.ttl !== undefined) args.push("PX", check.millis("ttl", options.ttl))
  if (options?.keepTtl === true) {
    if (options.ttl !== undefined) check.refuse("keepTtl", "cannot be combined with ttl")
    args.push("KEEPTTL")
  }
  if (options?.mode !== undefined) args.push(options.mode)
  return args
}

/** GET: the value, `None` when the key does not exist. */
export const get = (key: string): Command<Option.Option<string>> => read("GET", [key], [0], replies.get)

/** GET, read as bytes. */
export const getBuffer = (key: string): Command<Option.Option<Buffer>> =>
  read("GET", [key], [0], replies.getBuffer, { binary: true })

/**
 * SET: true when written, false when `mode` (NX/XX) prevented it. Idempotent (retried after a lost connection)
 * except with NX, whose retry would answer false for a write that was applied.
 */
export const set = (key: string, value: Value, options?: SetOptions): Command<boolean> => {
  const check = new Check("SET")
  const args = setArgs(check, key, value, options)
  return write("SET", args, [0], replies.set, { invalid: check.invalid })
}

/** SET ... GET: writes and returns the previous value. Never retried (a retry would return the new value). */
export const setGet = (key: string, value: Value, options?: SetOptions): Command<Option.Option<string>> => {
  const check = new Check("SET")
  const args = [...setArgs(check, key, value, options), "GET"]
  return write("SET", args, [0], optionalString("SET"), { invalid: check.invalid })
}

/** SETNX: true when the key did not exist and was written. Not idempotent. */
export const setnx = (key: string, value: Value): Command<boolean> =>
  write("SETNX", [key, value], [0], (reply) => integer("SETNX")(reply) === 1)

/** GETDEL: the value, deleting the key. Not idempotent (a retry would find nothing). */
export const getdel = (key: string): Command<Option.Option<string>> =>
  write("GETDEL", [key], [0], optionalString("GETDEL"))

/** GETDEL, read as bytes. */
export const getdelBuffer = (key: string): Command<Option.Option<Buffer>> =>
  write("GETDEL", [key], [0], optionalBuffer("GETDEL"), { binary: true })

/**
 * Options of `getex`.
 *
 * @since 0.2.0
 * @category models
 */
export interface GetExOptions {
  /** Set the time to live (PX). */
  readonly ttl?: Duration.Input | undefined
  /** Remove the time to live (PERSIST; not with `ttl`). */
  readonly persist?: boolean | undefined
}

const getexCommand = <A>(
  key: string,
  options: GetExOptions | undefined,
  decode: (reply: unknown) => A,
  binary: boolean
) => {
  const check = new Check("GETEX")
  const args: Array<Argument> = [key]
  if (options?.ttl !== undefined) args.push("PX", check.millis("ttl", options.ttl))
  if (options?.persist === true) {
    if (options.ttl !== undefined) check.refuse("persist", "cannot be combined with ttl")
    args.push("PERSIST")
  }
  return write("GETEX", args, [0], decode, { binary, invalid: check.invalid })
}

/** GETEX: the value, setting or removing its time to live. Idempotent. */
export const getex = (key: string, options?: GetExOptions): Command<Option.Option<string>> =>
  getexCommand(key, options, optionalString("GETEX"), false)

/** GETEX, read as bytes. */
export const getexBuffer = (key: string, options?: GetExOptions): Command<Option.Option<Buffer>> =>
  getexCommand(key, options, optionalBuffer("GETEX"), true)

const entriesOf = (command: string, entries: Readonly<Record<string, Value>>) => {
  const check = new Check(command)
  const args: Array<Argument> = []
  for (const [key, value] of Object.entries(entries)) args.push(key, value)
  check.nonEmpty("entries", args.length)
  return { args, keys: positions(0, args.length / 2, 2), invalid: check.invalid }
}

/** MSET: writes every key. Idempotent. */
export const mset = (entries: Readonly<Record<string, Value>>): Command<void> => {
  const { args, invalid, keys } = entriesOf("MSET", entries)
  return write("MSET", args, keys, ignore, { invalid })
}

/** MSETNX: writes every key, or none when any exists; true when written. Not idempotent. */
export const msetnx = (entries: Readonly<Record<string, Value>>): Command<boolean> => {
  const { args, invalid, keys } = entriesOf("MSETNX", entries)
  return write("MSETNX", args, keys, (reply) => integer("MSETNX")(reply) === 1, { invalid })
}

const mgetCommand = <A>(keys: Keys, decode: (reply: unknown) => A, binary: boolean) => {
  const all = flatten(keys)
  const check = new Check("MGET")
  check.nonEmpty("keys", all.length)
  return read("MGET", all, positions(0, all.length), decode, { binary, invalid: check.invalid })
}

/** MGET: a value (or `None`) per key, in order. At least one key. */
export const mget = (...keys: Keys): Command<ReadonlyArray<Option.Option<string>>> =>
  mgetCommand(keys, optionals("MGET", string("MGET")), false)

/** MGET, read as bytes. */
export const mgetBuffer = (...keys: Keys): Command<ReadonlyArray<Option.Option<Buffer>>> =>
  mgetCommand(keys, optionals("MGET", buffer("MGET")), true)

const by = (name: "INCRBY" | "DECRBY", key: string, amount: number): Command<number> => {
  const check = new Check(name)
  return write(name, [key, check.integer("increment", amount)], [0], integer(name), { invalid: check.invalid })
}

/** INCR: the new value. Not idempotent. A value beyond 2^53 fails with `DecodeError` (see `incrBigint`). */
export const incr = (key: string): Command<number> => write("INCR", [key], [0], replies.incr)

/** INCRBY: the new value. Not idempotent. `increment` must be a safe integer. */
export const incrby = (key: string, increment: number): Command<number> => by("INCRBY", key, increment)

/** INCRBYFLOAT: the new value. Not idempotent. `increment` must be finite. */
export const incrbyfloat = (key: string, increment: number): Command<number> => {
  const check = new Check("INCRBYFLOAT")
  const args = [key, check.finite("increment", increment)]
  return write("INCRBYFLOAT", args, [0], float("INCRBYFLOAT"), { invalid: check.invalid })
}

/** DECR: the new value. Not idempotent. */
export const decr = (key: string): Command<number> => write("DECR", [key], [0], replies.decr)

/** DECRBY: the new value. Not idempotent. */
export const decrby = (key: string, decrement: number): Command<number> => by("DECRBY", key, decrement)

// ioredis reads integer replies as JavaScript numbers, losing precision beyond 2^53 (unless `stringNumbers`, which
// applies to every reply): the increment runs in a script that returns the new value as a string.
const incrementBigint = RedisScript.make<bigint>({
  lua: "redis.call('INCRBY', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1])",
  keys: 1,
  decode: bigint("INCRBY")
})

const bigintCommand = (name: string, key: string, amount: bigint | number, sign: 1n | -1n): Command<bigint> => {
  const check = new Check(name)
  const n = typeof amount === "bigint" ? amount : BigInt(check.integer("increment", amount))
  const command = incrementBigint([key], [String(n * sign)])
  return check.invalid === undefined ? command : { ...command, invalid: check.invalid }
}

/**
 * INCRBY with a bigint result: exact beyond 2^53. Runs as a script (EVALSHA) so that the reply is the exact new
 * value. Not idempotent.
 */
export const incrbyBigint = (key: string, increment: bigint | number): Command<bigint> =>
  bigintCommand("INCRBY", key, increment, 1n)

/** INCR with a bigint result (see `incrbyBigint`). */
export const incrBigint = (key: string): Command<bigint> => incrbyBigint(key, 1n)

/** DECRBY with a bigint result (see `incrbyBigint`). */
export const decrbyBigint = (key: string, decrement: bigint | number): Command<bigint> =>
  bigintCommand("DECRBY", key, decrement, -1n)

/** DECR with a bigint result (see `incrbyBigint`). */
export const decrBigint = (key: string): Command<bigint> => decrbyBigint(key, 1n)

/** APPEND: the new length. Not idempotent. */
export const append = (key: string, value: Value): Command<number> =>
  write("APPEND", [key, value], [0], integer("APPEND"))

/** STRLEN: the length of the value in bytes (0 when the key does not exist). */
export const strlen = (key: string): Command<number> => read("STRLEN", [key], [0], replies.strlen)

/** GETRANGE: the substring between two byte offsets (inclusive; negative from the end). */
export const getrange = (key: string, start: number, end: number): Command<string> => {
  const check = new Check("GETRANGE")
  const args = [key, check.integer("start", start), check.integer("end", end)]
  return read("GETRANGE", args, [0], string("GETRANGE"), { invalid: check.invalid })
}

/** GETRANGE, read as bytes. */
export const getrangeBuffer = (key: string, start: number, end: number): Command<Buffer> => {
  const check = new Check("GETRANGE")
  const args = [key, check.integer("start", start), check.integer("end", end)]
  return read("GETRANGE", args, [0], buffer("GETRANGE"), { binary: true, invalid: check.invalid })
}

/** SETRANGE: overwrites from a byte offset; the new length. Idempotent. */
export const setrange = (key: string, offset: number, value: Value): Command<number> => {
  const check = new Check("SETRANGE")
  const args = [key, check.count("offset", offset), value]
  return write("SETRANGE", args, [0], integer("SETRANGE"), { invalid: check.invalid })
}
