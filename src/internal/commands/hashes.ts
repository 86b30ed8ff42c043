/**
 * Hash commands. A hash reads back as a record (`{ field: value }`), whatever shape ioredis hands over; values
 * written are strings or bytes, and the value-returning reads have `...Buffer` forms.
 *
 * @internal
 */
import type * as Option from "effect/Option"
import { type Argument, boolean, buffer, type Command, float, integer, optional, string } from "../command.ts"
import { Check, read, type Value, write } from "./arguments.ts"
import { bufferRecord, optionalBuffer, optionalString, optionals, pairs, strings, stringRecord } from "./replies.ts"

/** HSET: writes the fields; how many were new. Idempotent (after a retry the count may be lower). */
export const hset = (key: string, fields: Readonly<Record<string, Value>>): Command<number> => {
  const check = new Check("HSET")
  const args: Array<Argument> = [key]
  for (const [field, value] of Object.entries(fields)) args.push(field, value)
  check.nonEmpty("fields", args.length - 1)
  return write("HSET", args, [0], integer("HSET"), { invalid: check.invalid })
}

/** HSETNX: true when the field did not exist and was written. Not idempotent. */
export const hsetnx = (key: string, field: string, value: Value): Command<boolean> =>
  write("HSETNX", [key, field, value], [0], boolean("HSETNX"))

/** HGET: the value of a field, `None` when the field or the key does not exist. */
export const hget = (key: string, field: string): Command<Option.Option<string>> =>
  read("HGET", [key, field], [0], optionalString("HGET"))

/** HGET, read as bytes. */
export const hgetBuffer = (key: string, field: string): Command<Option.Option<Buffer>> =>
  read("HGET", [key, field], [0], optionalBuffer("HGET"), { binary: true })

const hmgetCommand = <A>(key: string, fields: ReadonlyArray<string>, decode: (r: unknown) => A, binary: boolean) => {
  const check = new Check("HMGET")
  check.nonEmpty("fields", fields.length)
  return read("HMGET", [key, ...fields], [0], decode, { binary, invalid: check.invalid })
}

/** HMGET: a value (or `None`) per field, in order. At least one field. */
export const hmget = (key: string, ...fields: ReadonlyArray<string>): Command<ReadonlyArray<Option.Option<string>>> =>
  hmgetCommand(key, fields, optionals("HMGET", string("HMGET")), false)

/** HMGET, read as bytes. */
export const hmgetBuffer = (
  key: string,
  ...fields: ReadonlyArray<string>
): Command<ReadonlyArray<Option.Option<Buffer>>> => hmgetCommand(key, fields, optionals("HMGET", buffer("HMGET")), true)

/** HGETALL: the hash as a record; `{}` when the key does not exist. */
export const hgetall = (key: string): Command<Record<string, string>> =>
  read("HGETALL", [key], [0], stringRecord("HGETALL"))

/** HGETALL, the values read as bytes (field names as UTF-8 strings). */
export const hgetallBuffer = (key: string): Command<Record<string, Buffer>> =>
  read("HGETALL", [key], [0], bufferRecord("HGETALL"), { binary: true })

/** HDEL: how many fields were removed. Idempotent. */
export const hdel = (key: string, ...fields: ReadonlyArray<string>): Command<number> => {
  const check = new Check("HDEL")
  check.nonEmpty("fields", fields.length)
  return write("HDEL", [key, ...fields], [0], integer("HDEL"), { invalid: check.invalid })
}

/** HEXISTS: whether the field exists. */
export const hexists = (key: string, field: string): Command<boolean> =>
  read("HEXISTS", [key, field], [0], boolean("HEXISTS"))

/** HINCRBY: the field's new value. Not idempotent. `increment` must be a safe integer. */
export const hincrby = (key: string, field: string, increment: number): Command<number> => {
  const check = new Check("HINCRBY")
  const args = [key, field, check.integer("increment", increment)]
  return write("HINCRBY", args, [0], integer("HINCRBY"), { invalid: check.invalid })
}

/** HINCRBYFLOAT: the field's new value. Not idempotent. `increment` must be finite. */
export const hincrbyfloat = (key: string, field: string, increment: number): Command<number> => {
  const check = new Check("HINCRBYFLOAT")
  const args = [key, field, check.finite("increment", increment)]
  return write("HINCRBYFLOAT", args, [0], float("HINCRBYFLOAT"), { invalid: check.invalid })
}

/** HKEYS: the field names. */
export const hkeys = (key: string): Command<ReadonlyArray<string>> => read("HKEYS", [key], [0], strings("HKEYS"))

/** HVALS: the values. */
export const hvals = (key: string): Command<ReadonlyArray<string>> => read("HVALS", [key], [0], strings("HVALS"))

/** HLEN: how many fields. */
export const hlen = (key: string): Command<number> => read("HLEN", [key], [0], integer("HLEN"))

/** HSTRLEN: the length of a field's value in bytes (0 when missing). */
export const hstrlen = (key: string, field: string): Command<number> =>
  read("HSTRLEN", [key, field], [0], integer("HSTRLEN"))

/**
 * A field and its value.
 *
 * @since 0.2.0
 * @category models
 */
export interface HashField {
  readonly field: string
  readonly value: string
}

/**
 * HRANDFIELD: a random field (`None` when the key does not exist); with `count`, up to `count` distinct fields (a
 * negative count allows repeats and returns exactly |count|); with `{ withValues: true }`, fields and values.
 */
export function hrandfield(key: string): Command<Option.Option<string>>
export function hrandfield(key: string, count: number, options?: { readonly withValues?: false }): Command<
  ReadonlyArray<string>
>
export function hrandfield(
  key: string,
  count: number,
  options: { readonly withValues: true }
): Command<ReadonlyArray<HashField>>
export function hrandfield(
  key: string,
  count?: number,
  options?: { readonly withValues?: boolean }
): Command<Option.Option<string> | ReadonlyArray<string> | ReadonlyArray<HashField>> {
  if (count === undefined) return read("HRANDFIELD", [key], [0], optional(string("HRANDFIELD")))
  const check = new Check("HRANDFIELD")
  const args: Array<Argument> = [key, check.integer("count", count)]
  if (options?.withValues !== true) {
    return read("HRANDFIELD", args, [0], strings("HRANDFIELD"), { invalid: check.invalid })
  }
  args.push("WITHVALUES")
  return read("HRANDFIELD", args, [0], (reply) =>
    reply === null ? [] : pairs("HRANDFIELD", reply).map(([field, value]) => ({
      field: string("HRANDFIELD")(field),
      value: string("HRANDFIELD")(value)
    })), { invalid: check.invalid })
}
