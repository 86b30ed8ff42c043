/**
 * Key commands: deletion, existence, expiry, type, renaming, copying. TTLs are `Duration.Input`s (EXPIRE rounds up
 * to whole seconds, PEXPIRE to whole milliseconds); absolute times are `Date`s or unix milliseconds.
 *
 * @internal
 */
import type * as Duration from "effect/Duration"
import { type Argument, boolean, type Command, integer, string } from "../command.ts"
import { Check, command, flatten, type Keys, positions, read, write } from "./arguments.ts"
import { ignore } from "./replies.ts"

/**
 * The condition of an EXPIRE family command (Redis 7): NX only when the key has no expiry, XX only when it has one,
 * GT only when the new expiry is later, LT only when it is earlier.
 *
 * @since 0.2.0
 * @category models
 */
export type ExpireCondition = "NX" | "XX" | "GT" | "LT"

const multiKey = (name: "DEL" | "UNLINK" | "EXISTS" | "TOUCH", keys: Keys): Command<number> => {
  const all = flatten(keys)
  const check = new Check(name)
  check.nonEmpty("keys", all.length)
  return command(name, all, positions(0, all.length), integer(name), { invalid: check.invalid })
}

/**
 * DEL: how many keys were removed. Idempotent (after a retry the count may be lower than what was removed). Takes
 * keys or an array of keys (not spread: `del(keys)` for very many).
 */
export const del = (...keys: Keys): Command<number> => multiKey("DEL", keys)

/** UNLINK: DEL whose memory is reclaimed in the background. Idempotent. */
export const unlink = (...keys: Keys): Command<number> => multiKey("UNLINK", keys)

/** EXISTS: how many of the keys exist (a key named twice counts twice). */
export const exists = (...keys: Keys): Command<number> => multiKey("EXISTS", keys)

/** TOUCH: how many of the keys exist, updating their last access time. */
export const touch = (...keys: Keys): Command<number> => multiKey("TOUCH", keys)

// Whether a retry is safe depends on the condition (and, for GT, on the time being relative): see traits.ts.
const expiry = (
  name: "EXPIRE" | "PEXPIRE" | "EXPIREAT" | "PEXPIREAT",
  key: string,
  amount: (check: Check) => number,
  condition: ExpireCondition | undefined
): Command<boolean> => {
  const check = new Check(name)
  const args: Array<Argument> = [key, amount(check)]
  if (condition !== undefined) args.push(condition)
  return write(name, args, [0], boolean(name), { invalid: check.invalid })
}

/** EXPIRE: true when the expiry was set (false: no such key, or `condition` not met). Rounds up to whole seconds. */
export const expire = (key: string, ttl: Duration.Input, condition?: ExpireCondition): Command<boolean> =>
  expiry("EXPIRE", key, (check) => check.seconds("ttl", ttl), condition)

/** PEXPIRE: as `expire`, in whole milliseconds (rounded up). */
export const pexpire = (key: string, ttl: Duration.Input, condition?: ExpireCondition): Command<boolean> =>
  expiry("PEXPIRE", key, (check) => check.millis("ttl", ttl), condition)

/** EXPIREAT: expire at a time (a `Date` or unix milliseconds, rounded up to whole seconds). A past time deletes. */
export const expireat = (key: string, at: Date | number, condition?: ExpireCondition): Command<boolean> =>
  expiry("EXPIREAT", key, (check) => Math.ceil(check.epochMillis("at", at) / 1000), condition)

/** PEXPIREAT: as `expireat`, in milliseconds. */
export const pexpireat = (key: string, at: Date | number, condition?: ExpireCondition): Command<boolean> =>
  expiry("PEXPIREAT", key, (check) => check.epochMillis("at", at), condition)

/** TTL: seconds to live; -1 when the key has no expiry, -2 when it does not exist. */
export const ttl = (key: string): Command<number> => read("TTL", [key], [0], integer("TTL"))

/** PTTL: milliseconds to live; -1 when the key has no expiry, -2 when it does not exist. */
export const pttl = (key: string): Command<number> => read("PTTL", [key], [0], integer("PTTL"))

/** PERSIST: true when an expiry was removed. Idempotent (a retry answers false). */
export const persist = (key: string): Command<boolean> => write("PERSIST", [key], [0], boolean("PERSIST"))

/** TYPE: "string", "list", "set", "zset", "hash", "stream" (or a module's type); "none" when the key does not exist. */
export const type = (key: string): Command<string> => read("TYPE", [key], [0], string("TYPE"))

/** RENAME: fails with a `ReplyError` when the key does not exist. Not idempotent (a retry would fail so). */
export const rename = (key: string, newKey: string): Command<void> =>
  write("RENAME", [key, newKey], [0, 1], ignore)

/** RENAMENX: true when renamed, false when `newKey` exists. Not idempotent. */
export const renamenx = (key: string, newKey: string): Command<boolean> =>
  write("RENAMENX", [key, newKey], [0, 1], boolean("RENAMENX"))

/**
 * Options of `copy`.
 *
 * @since 0.2.0
 * @category models
 */
export interface CopyOptions {
  /** Overwrite `destination` if it exists (REPLACE). */
  readonly replace?: boolean | undefined
  /** The database of `destination` (DB). */
  readonly db?: number | undefined
}

/** COPY: true when copied. Idempotent only with `replace` (without it a retry answers false). */
export const copy = (source: string, destination: string, options?: CopyOptions): Command<boolean> => {
  const check = new Check("COPY")
  const args: Array<Argument> = [source, destination]
  if (options?.db !== undefined) args.push("DB", check.count("db", options.db))
  if (options?.replace === true) args.push("REPLACE")
  return write("COPY", args, [0, 1], boolean("COPY"), { invalid: check.invalid })
}
