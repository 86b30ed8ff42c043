/**
 * Set commands. Adding and removing members is idempotent (a retry adds or removes nothing more); popping is not.
 *
 * @internal
 */
import type * as Option from "effect/Option"
import { boolean, type Command, integer } from "../command.ts"
import { Check, flatten, type Keys, positions, read, type Value, write } from "./arguments.ts"
import { buffers, integers, optionalString, strings } from "./replies.ts"

const members = (name: "SADD" | "SREM", key: string, values: ReadonlyArray<Value>): Command<number> => {
  const check = new Check(name)
  check.nonEmpty("members", values.length)
  return write(name, [key, ...values], [0], integer(name), { invalid: check.invalid })
}

/** SADD: how many members were new. Idempotent (after a retry the count may be lower). */
export const sadd = (key: string, ...values: ReadonlyArray<Value>): Command<number> =>
  members("SADD", key, values)

/** SREM: how many members were removed. Idempotent. */
export const srem = (key: string, ...values: ReadonlyArray<Value>): Command<number> =>
  members("SREM", key, values)

/** SMEMBERS: every member (in no particular order). */
export const smembers = (key: string): Command<ReadonlyArray<string>> =>
  read("SMEMBERS", [key], [0], strings("SMEMBERS"))

/** SMEMBERS, read as bytes. */
export const smembersBuffer = (key: string): Command<ReadonlyArray<Buffer>> =>
  read("SMEMBERS", [key], [0], buffers("SMEMBERS"), { binary: true })

/** SISMEMBER: whether `member` is in the set. */
export const sismember = (key: string, member: Value): Command<boolean> =>
  read("SISMEMBER", [key, member], [0], boolean("SISMEMBER"))

/** SMISMEMBER: per member, whether it is in the set. */
export const smismember = (key: string, ...values: ReadonlyArray<Value>): Command<ReadonlyArray<boolean>> => {
  const check = new Check("SMISMEMBER")
  check.nonEmpty("members", values.length)
  const decode = (reply: unknown) => integers("SMISMEMBER")(reply).map((n) => n === 1)
  return read("SMISMEMBER", [key, ...values], [0], decode, { invalid: check.invalid })
}

/** SCARD: how many members. */
export const scard = (key: string): Command<number> => read("SCARD", [key], [0], integer("SCARD"))

/** SPOP: removes and returns a random member (`None` when empty); with `count`, up to `count`. Not idempotent. */
export function spop(key: string): Command<Option.Option<string>>
export function spop(key: string, count: number): Command<ReadonlyArray<string>>
export function spop(key: string, count?: number): Command<Option.Option<string> | ReadonlyArray<string>> {
  if (count === undefined) return write("SPOP", [key], [0], optionalString("SPOP"))
  const check = new Check("SPOP")
  return write<ReadonlyArray<string>>("SPOP", [key, check.count("count", count)], [0], strings("SPOP"), {
    invalid: check.invalid
  })
}

/**
 * SRANDMEMBER: a random member (`None` when empty); with `count`, up to `count` distinct members (a negative count
 * allows repeats and returns exactly |count|).
 */
export function srandmember(key: string): Command<Option.Option<string>>
export function srandmember(key: string, count: number): Command<ReadonlyArray<string>>
export function srandmember(key: string, count?: number): Command<Option.Option<string> | ReadonlyArray<string>> {
  if (count === undefined) return read("SRANDMEMBER", [key], [0], optionalString("SRANDMEMBER"))
  const check = new Check("SRANDMEMBER")
  const args = [key, check.integer("count", count)]
  return read<ReadonlyArray<string>>("SRANDMEMBER", args, [0], strings("SRANDMEMBER"), { invalid: check.invalid })
}

const combine = (name: "SINTER" | "SUNION" | "SDIFF", keys: Keys): Command<ReadonlyArray<string>> => {
  const all = flatten(keys)
  const check = new Check(name)
  check.nonEmpty("keys", all.length)
  return read(name, all, positions(0, all.length), strings(name), { invalid: check.invalid })
}

/** SINTER: the members in every set. */
export const sinter = (...keys: Keys): Command<ReadonlyArray<string>> => combine("SINTER", keys)

/** SUNION: the members in any set. */
export const sunion = (...keys: Keys): Command<ReadonlyArray<string>> => combine("SUNION", keys)

/** SDIFF: the members of the first set in none of the others. */
export const sdiff = (...keys: Keys): Command<ReadonlyArray<string>> => combine("SDIFF", keys)

type Store = "SINTERSTORE" | "SUNIONSTORE" | "SDIFFSTORE"

const store = (name: Store, destination: string, keys: Keys): Command<number> => {
  const all = flatten(keys)
  const check = new Check(name)
  check.nonEmpty("keys", all.length)
  return write(name, [destination, ...all], positions(0, all.length + 1), integer(name), { invalid: check.invalid })
}

/** SINTERSTORE: stores SINTER in `destination`; its size. Idempotent. */
export const sinterstore = (destination: string, ...keys: Keys): Command<number> =>
  store("SINTERSTORE", destination, keys)

/** SUNIONSTORE: stores SUNION in `destination`; its size. Idempotent. */
export const sunionstore = (destination: string, ...keys: Keys): Command<number> =>
  store("SUNIONSTORE", destination, keys)

/** SDIFFSTORE: stores SDIFF in `destination`; its size. Idempotent. */
export const sdiffstore = (destination: string, ...keys: Keys): Command<number> =>
  store("SDIFFSTORE", destination, keys)

/** SMOVE: moves `member` from `source` to `destination`; true when moved. Not idempotent (a retry answers false). */
export const smove = (source: string, destination: string, member: Value): Command<boolean> =>
  write("SMOVE", [source, destination, member], [0, 1], boolean("SMOVE"))
