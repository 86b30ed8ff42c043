/**
 * Stream commands without BLOCK (XREAD BLOCK and consumer loops run on `RedisBlocking` / `RedisStream`): appending
 * with trimming, ranges, length, deletion, trimming. An entry reads back as `{ id, fields }`. Consumer groups are in
 * `streamGroups.ts`.
 *
 * @internal
 */
import type * as Option from "effect/Option"
import { type Argument, type Command, integer, optional, string } from "../command.ts"
import { Check, read, type Value, write } from "./arguments.ts"
import { entries, type StreamEntry } from "./replies.ts"

export type { StreamEntry } from "./replies.ts"

/**
 * How to trim a stream: exactly one of `maxlen` and `minid`.
 *
 * @since 0.2.0
 * @category models
 */
export interface StreamTrim {
  /** MAXLEN: keep at most this many entries. */
  readonly maxlen?: number | undefined
  /** MINID: drop the entries with a lower id. */
  readonly minid?: string | undefined
  /** `~`: trim whole macro nodes only (cheaper; may keep a few more entries). */
  readonly approximate?: boolean | undefined
  /** LIMIT: evict at most this many entries per call (only with `approximate`). */
  readonly limit?: number | undefined
}

const trimArgs = (check: Check, trim: StreamTrim): Array<Argument> => {
  const args: Array<Argument> = []
  const operator = trim.approximate === true ? "~" : "="
  if ((trim.maxlen === undefined) === (trim.minid === undefined)) {
    check.refuse("trim", "needs exactly one of maxlen and minid")
  }
  if (trim.maxlen !== undefined) args.push("MAXLEN", operator, check.count("trim.maxlen", trim.maxlen))
  if (trim.minid !== undefined) args.push("MINID", operator, trim.minid)
  if (trim.limit !== undefined) {
    if (trim.approximate !== true) check.refuse("trim.limit", "needs approximate: true")
    args.push("LIMIT", check.count("trim.limit", trim.limit))
  }
  return args
}

/**
 * Options of `xadd`.
 *
 * @since 0.2.0
 * @category models
 */
export interface XAddOptions {
  /** NOMKSTREAM: do not create the stream; the reply is then `None` when it does not exist. */
  readonly nomkstream?: boolean | undefined
  /** Trim the stream in the same call. */
  readonly trim?: StreamTrim | undefined
}

/**
 * XADD: appends an entry; its id. `id` is `"*"` (the server picks one) or an explicit id. Never retried after a
 * lost connection: with `"*"` a retry appends a second entry, with an explicit id it fails although the first was
 * applied.
 */
export function xadd(
  key: string,
  id: string,
  fields: Readonly<Record<string, Value>>,
  options?: XAddOptions & { readonly nomkstream?: false | undefined }
): Command<string>
export function xadd(
  key: string,
  id: string,
  fields: Readonly<Record<string, Value>>,
  options: XAddOptions & { readonly nomkstream: true }
): Command<Option.Option<string>>
export function xadd(
  key: string,
  id: string,
  fields: Readonly<Record<string, Value>>,
  options?: XAddOptions
): Command<string | Option.Option<string>> {
  const check = new Check("XADD")
  const args: Array<Argument> = [key]
  if (options?.nomkstream === true) args.push("NOMKSTREAM")
  if (options?.trim !== undefined) args.push(...trimArgs(check, options.trim))
  args.push(id)
  for (const [field, value] of Object.entries(fields)) args.push(field, value)
  check.nonEmpty("fields", Object.keys(fields).length)
  const decode = options?.nomkstream === true ? optional(string("XADD")) : string("XADD")
  return write<string | Option.Option<string>>("XADD", args, [0], decode, { invalid: check.invalid })
}

const range = (name: "XRANGE" | "XREVRANGE", key: string, from: string, to: string, count: number | undefined) => {
  const check = new Check(name)
  const args: Array<Argument> = [key, from, to]
  if (count !== undefined) args.push("COUNT", check.count("count", count))
  return read(name, args, [0], entries(name), { invalid: check.invalid })
}

/** XRANGE: the entries from `start` to `end` (default all: `-` to `+`; `(` for exclusive), at most `count`. */
export const xrange = (key: string, start = "-", end = "+", count?: number): Command<ReadonlyArray<StreamEntry>> =>
  range("XRANGE", key, start, end, count)

/** XREVRANGE: XRANGE newest first (`end` first: default `+` then `-`). */
export const xrevrange = (key: string, end = "+", start = "-", count?: number): Command<ReadonlyArray<StreamEntry>> =>
  range("XREVRANGE", key, end, start, count)

/** XLEN: how many entries (0 when the stream does not exist). */
export const xlen = (key: string): Command<number> => read("XLEN", [key], [0], integer("XLEN"))

/** XDEL: deletes entries by id; how many were deleted. Idempotent. */
export const xdel = (key: string, ...ids: ReadonlyArray<string>): Command<number> => {
  const check = new Check("XDEL")
  check.nonEmpty("ids", ids.length)
  return write("XDEL", [key, ...ids], [0], integer("XDEL"), { invalid: check.invalid })
}

/** XTRIM: trims the stream; how many entries were evicted. Idempotent (trimming again evicts nothing more). */
export const xtrim = (key: string, trim: StreamTrim): Command<number> => {
  const check = new Check("XTRIM")
  const args = [key, ...trimArgs(check, trim)]
  return write("XTRIM", args, [0], integer("XTRIM"), { invalid: check.invalid })
}

/** XACK: acknowledges entries of a consumer group; how many were pending. Idempotent. */
export const xack = (key: string, group: string, ...ids: ReadonlyArray<string>): Command<number> => {
  const check = new Check("XACK")
  check.nonEmpty("ids", ids.length)
  return write("XACK", [key, group, ...ids], [0], integer("XACK"), { invalid: check.invalid })
}
