/**
 * List commands, non-blocking (BLPOP and the other blocking ones run on `RedisBlocking`). Pushes and pops are never
 * retried after a lost connection: a retry would push twice or pop another element.
 *
 * @internal
 */
import type * as Option from "effect/Option"
import * as O from "effect/Option"
import { type Argument, buffer, type Command, decodeFailure, integer, string } from "../command.ts"
import { Check, positions, read, type Value, write } from "./arguments.ts"
import { buffers, ignore, integers, optionalBuffer, optionalInteger, optionalString, strings } from "./replies.ts"

/**
 * An end of a list.
 *
 * @since 0.2.0
 * @category models
 */
export type ListEnd = "LEFT" | "RIGHT"

type Push = "LPUSH" | "RPUSH" | "LPUSHX" | "RPUSHX"

const push = (name: Push, key: string, values: ReadonlyArray<Value>): Command<number> => {
  const check = new Check(name)
  check.nonEmpty("values", values.length)
  return write(name, [key, ...values], [0], integer(name), { invalid: check.invalid })
}

/** LPUSH: pushes at the head (the last value ends first); the new length. Not idempotent. */
export const lpush = (key: string, ...values: ReadonlyArray<Value>): Command<number> => push("LPUSH", key, values)

/** RPUSH: pushes at the tail; the new length. Not idempotent. */
export const rpush = (key: string, ...values: ReadonlyArray<Value>): Command<number> => push("RPUSH", key, values)

/** LPUSHX: LPUSH only when the list exists (0 otherwise). Not idempotent. */
export const lpushx = (key: string, ...values: ReadonlyArray<Value>): Command<number> => push("LPUSHX", key, values)

/** RPUSHX: RPUSH only when the list exists (0 otherwise). Not idempotent. */
export const rpushx = (key: string, ...values: ReadonlyArray<Value>): Command<number> => push("RPUSHX", key, values)

const pop = <One, Many>(
  name: "LPOP" | "RPOP",
  key: string,
  count: number | undefined,
  one: (reply: unknown) => One,
  many: (reply: unknown) => Many,
  binary: boolean
): Command<One | Many> => {
  if (count === undefined) return write(name, [key], [0], one, { binary })
  const check = new Check(name)
  const args = [key, check.positive("count", count)]
  return write<One | Many>(name, args, [0], many, { binary, invalid: check.invalid })
}

/** LPOP: the head (`None` when empty); with `count`, up to `count` elements (`[]` when empty). Not idempotent. */
export function lpop(key: string): Command<Option.Option<string>>
export function lpop(key: string, count: number): Command<ReadonlyArray<string>>
export function lpop(key: string, count?: number): Command<Option.Option<string> | ReadonlyArray<string>> {
  return pop("LPOP", key, count, optionalString("LPOP"), strings("LPOP"), false)
}

/** LPOP, read as bytes. */
export function lpopBuffer(key: string): Command<Option.Option<Buffer>>
export function lpopBuffer(key: string, count: number): Command<ReadonlyArray<Buffer>>
export function lpopBuffer(key: string, count?: number): Command<Option.Option<Buffer> | ReadonlyArray<Buffer>> {
  return pop("LPOP", key, count, optionalBuffer("LPOP"), buffers("LPOP"), true)
}

/** RPOP: the tail (`None` when empty); with `count`, up to `count` elements. Not idempotent. */
export function rpop(key: string): Command<Option.Option<string>>
export function rpop(key: string, count: number): Command<ReadonlyArray<string>>
export function rpop(key: string, count?: number): Command<Option.Option<string> | ReadonlyArray<string>> {
  return pop("RPOP", key, count, optionalString("RPOP"), strings("RPOP"), false)
}

/** RPOP, read as bytes. */
export function rpopBuffer(key: string): Command<Option.Option<Buffer>>
export function rpopBuffer(key: string, count: number): Command<ReadonlyArray<Buffer>>
export function rpopBuffer(key: string, count?: number): Command<Option.Option<Buffer> | ReadonlyArray<Buffer>> {
  return pop("RPOP", key, count, optionalBuffer("RPOP"), buffers("RPOP"), true)
}

const indices = (name: string, key: string, start: number, stop: number) => {
  const check = new Check(name)
  return { args: [key, check.integer("start", start), check.integer("stop", stop)], invalid: check.invalid }
}

/** LRANGE: the elements from `start` to `stop` (inclusive; negative from the end). */
export const lrange = (key: string, start: number, stop: number): Command<ReadonlyArray<string>> => {
  const { args, invalid } = indices("LRANGE", key, start, stop)
  return read("LRANGE", args, [0], strings("LRANGE"), { invalid })
}

/** LRANGE, read as bytes. */
export const lrangeBuffer = (key: string, start: number, stop: number): Command<ReadonlyArray<Buffer>> => {
  const { args, invalid } = indices("LRANGE", key, start, stop)
  return read("LRANGE", args, [0], buffers("LRANGE"), { binary: true, invalid })
}

/** LLEN: the length (0 when the key does not exist). */
export const llen = (key: string): Command<number> => read("LLEN", [key], [0], integer("LLEN"))

const lindexCommand = <A>(key: string, index: number, decode: (reply: unknown) => A, binary: boolean) => {
  const check = new Check("LINDEX")
  return read("LINDEX", [key, check.integer("index", index)], [0], decode, { binary, invalid: check.invalid })
}

/** LINDEX: the element at `index` (negative from the end), `None` when out of range. */
export const lindex = (key: string, index: number): Command<Option.Option<string>> =>
  lindexCommand(key, index, optionalString("LINDEX"), false)

/** LINDEX, read as bytes. */
export const lindexBuffer = (key: string, index: number): Command<Option.Option<Buffer>> =>
  lindexCommand(key, index, optionalBuffer("LINDEX"), true)

/** LSET: sets the element at `index`; a `ReplyError` when out of range. Idempotent. */
export const lset = (key: string, index: number, value: Value): Command<void> => {
  const check = new Check("LSET")
  return write("LSET", [key, check.integer("index", index), value], [0], ignore, { invalid: check.invalid })
}

/**
 * LREM: removes `count` occurrences of `value` (from the head when positive, the tail when negative, all when 0);
 * how many were removed. Idempotent only with count 0 (a retry of a bounded one would remove more).
 */
export const lrem = (key: string, count: number, value: Value): Command<number> => {
  const check = new Check("LREM")
  const args = [key, check.integer("count", count), value]
  return write("LREM", args, [0], integer("LREM"), { invalid: check.invalid })
}

/**
 * LTRIM: keeps the elements from `start` to `stop`. Idempotent when trimming again changes nothing (`0..n` or
 * `-n..-1`); `1..-1` drops one more element per run and is never retried.
 */
export const ltrim = (key: string, start: number, stop: number): Command<void> => {
  const { args, invalid } = indices("LTRIM", key, start, stop)
  return write("LTRIM", args, [0], ignore, { invalid })
}

/** LINSERT: inserts before or after `pivot`; the new length, -1 when `pivot` is absent, 0 when the key is. */
export const linsert = (key: string, where: "BEFORE" | "AFTER", pivot: Value, value: Value): Command<number> =>
  write("LINSERT", [key, where, pivot, value], [0], integer("LINSERT"))

/**
 * Options of `lpos`.
 *
 * @since 0.2.0
 * @category models
 */
export interface LposOptions {
  /** Which match to return: 1 the first, 2 the second, -1 the last, ... (RANK, not 0). */
  readonly rank?: number | undefined
  /** Compare at most this many elements (MAXLEN; 0: all). */
  readonly maxlen?: number | undefined
}

/** LPOS: the index of `element` (`None` when absent); with `count` (0: all), the indexes of the matches. */
export function lpos(key: string, element: Value, options?: LposOptions): Command<Option.Option<number>>
export function lpos(
  key: string,
  element: Value,
  options: LposOptions & { readonly count: number }
): Command<ReadonlyArray<number>>
export function lpos(
  key: string,
  element: Value,
  options?: LposOptions & { readonly count?: number | undefined }
): Command<Option.Option<number> | ReadonlyArray<number>> {
  const check = new Check("LPOS")
  const args: Array<Argument> = [key, element]
  if (options?.rank !== undefined) {
    args.push("RANK", check.integer("rank", options.rank))
    if (options.rank === 0) check.refuse("rank", "must not be 0")
  }
  if (options?.count !== undefined) args.push("COUNT", check.count("count", options.count))
  if (options?.maxlen !== undefined) args.push("MAXLEN", check.count("maxlen", options.maxlen))
  const decode = options?.count === undefined ? optionalInteger("LPOS") : integers("LPOS")
  return read<Option.Option<number> | ReadonlyArray<number>>("LPOS", args, [0], decode, { invalid: check.invalid })
}

/** LMOVE: pops from one end of `source` and pushes to one end of `destination`; the element moved. Not idempotent. */
export const lmove = (
  source: string,
  destination: string,
  from: ListEnd,
  to: ListEnd
): Command<Option.Option<string>> =>
  write("LMOVE", [source, destination, from, to], [0, 1], optionalString("LMOVE"))

/** LMOVE, read as bytes. */
export const lmoveBuffer = (
  source: string,
  destination: string,
  from: ListEnd,
  to: ListEnd
): Command<Option.Option<Buffer>> =>
  write("LMOVE", [source, destination, from, to], [0, 1], optionalBuffer("LMOVE"), { binary: true })

/**
 * The elements popped by LMPOP, and the list they came from (its name as given, without the layer's `keyPrefix`).
 *
 * @since 0.2.0
 * @category models
 */
export interface ListPop<A> {
  readonly key: string
  readonly values: ReadonlyArray<A>
}

// Redis names the list with ioredis' keyPrefix, which a decoder does not know: the reply is mapped back to the key as
// given (the same key, or the longest given key it ends with: `keyPrefix + key`).
const givenKey = (keys: ReadonlyArray<string>, named: string): string =>
  keys.includes(named)
    ? named
    : keys.reduce((found, key) => (named.endsWith(key) && key.length > found.length ? key : found), "") || named

const listPop = <A>(keys: ReadonlyArray<string>, decode: (reply: unknown) => A) =>
(reply: unknown): Option.Option<ListPop<A>> => {
  if (reply === null || reply === undefined) return O.none()
  if (!Array.isArray(reply) || reply.length < 2 || !Array.isArray(reply[1])) {
    throw decodeFailure("LMPOP", "[key, elements]", reply)
  }
  return O.some({ key: givenKey(keys, string("LMPOP")(reply[0])), values: reply[1].map(decode) })
}

const lmpopCommand = <A>(keys: ReadonlyArray<string>, end: ListEnd, count: number | undefined, binary: boolean) => {
  const check = new Check("LMPOP")
  check.nonEmpty("keys", keys.length)
  const args: Array<Argument> = [keys.length, ...keys, end]
  if (count !== undefined) args.push("COUNT", check.positive("count", count))
  const decode = listPop(keys, (binary ? buffer("LMPOP") : string("LMPOP")) as (reply: unknown) => A)
  return write("LMPOP", args, positions(1, keys.length), decode, { binary, invalid: check.invalid })
}

/** LMPOP: pops up to `count` (default 1) elements from the first non-empty list of `keys`. Not idempotent. */
export const lmpop = (
  keys: ReadonlyArray<string>,
  end: ListEnd,
  count?: number
): Command<Option.Option<ListPop<string>>> => lmpopCommand<string>(keys, end, count, false)

/** LMPOP, the elements read as bytes. */
export const lmpopBuffer = (
  keys: ReadonlyArray<string>,
  end: ListEnd,
  count?: number
): Command<Option.Option<ListPop<Buffer>>> => lmpopCommand<Buffer>(keys, end, count, true)
