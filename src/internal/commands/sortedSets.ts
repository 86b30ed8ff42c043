/**
 * Sorted-set commands. Scores are numbers (NaN refused at construction, infinities sent as `+inf`/`-inf`);
 * WITHSCORES replies are `{ member, score }` pairs whatever shape ioredis hands over. Range bounds are numbers or
 * Redis' own spellings (`"(1"`, `"-inf"`, `"[a"`).
 *
 * @internal
 */
import type * as Option from "effect/Option"
import { type Argument, type Command, float, integer } from "../command.ts"
import { Check, read, type Value, write } from "./arguments.ts"
import {
  buffers,
  optionalFloat,
  optionalInteger,
  optionals,
  optionalScored,
  scored,
  type ScoredMember,
  strings
} from "./replies.ts"

/**
 * A range bound: a rank, a score (`1.5`, `Infinity`), or Redis' spelling (`"(1"` exclusive, `"-inf"`, `"[a"`,
 * `"-"`, `"+"` for lexicographic ranges).
 *
 * @since 0.2.0
 * @category models
 */
export type Bound = number | string

/**
 * Options of `zadd`.
 *
 * @since 0.2.0
 * @category models
 */
export interface ZAddOptions {
  /** NX: only add new members; XX: only update existing ones. */
  readonly mode?: "NX" | "XX" | undefined
  /** GT: only update when the new score is greater; LT: when it is lower (not with NX). */
  readonly compare?: "GT" | "LT" | undefined
  /** CH: count changed members too, not only added ones. */
  readonly ch?: boolean | undefined
}

const zaddFlags = (check: Check, options: ZAddOptions | undefined): Array<Argument> => {
  const flags: Array<Argument> = []
  if (options?.mode !== undefined) flags.push(options.mode)
  if (options?.compare !== undefined) {
    if (options.mode === "NX") check.refuse("compare", "cannot be combined with mode NX")
    flags.push(options.compare)
  }
  if (options?.ch === true) flags.push("CH")
  return flags
}

/**
 * ZADD: adds or updates members; how many were added (with `ch`, changed). Idempotent: the same scores set twice
 * (after a retry the count may be lower). For ZADD ... INCR see `zaddIncr`.
 */
export const zadd = (
  key: string,
  members: ReadonlyArray<{ readonly score: number; readonly member: Value }>,
  options?: ZAddOptions
): Command<number> => {
  const check = new Check("ZADD")
  const args: Array<Argument> = [key, ...zaddFlags(check, options)]
  for (const { member, score } of members) args.push(check.score("score", score), member)
  check.nonEmpty("members", members.length)
  return write("ZADD", args, [0], integer("ZADD"), { invalid: check.invalid })
}

/**
 * ZADD ... INCR: adds `increment` to the member's score; the new score, `None` when `mode`/`compare` prevented it.
 * Not idempotent.
 */
export const zaddIncr = (
  key: string,
  increment: number,
  member: Value,
  options?: Omit<ZAddOptions, "ch">
): Command<Option.Option<number>> => {
  const check = new Check("ZADD")
  const args = [key, ...zaddFlags(check, options), "INCR", check.score("increment", increment), member]
  return write("ZADD", args, [0], optionalFloat("ZADD"), { invalid: check.invalid })
}

/**
 * Options of `zrange`.
 *
 * @since 0.2.0
 * @category models
 */
export interface ZRangeOptions {
  /** Bounds are scores (BYSCORE) or lexicographic (BYLEX); default ranks. */
  readonly by?: "SCORE" | "LEX" | undefined
  /** Highest first (REV; the bounds are then given high to low). */
  readonly rev?: boolean | undefined
  /** LIMIT offset count (only with `by`; a negative count: all from `offset`). */
  readonly limit?: { readonly offset: number; readonly count: number } | undefined
}

const bound = (check: Check, argument: string, by: ZRangeOptions["by"], value: Bound): Argument =>
  typeof value === "string"
    ? value
    : by === undefined
    ? check.integer(argument, value)
    : by === "SCORE"
    ? check.score(argument, value)
    : String(value)

const limitArgs = (check: Check, limit: ZRangeOptions["limit"]): Array<Argument> =>
  limit === undefined
    ? []
    : ["LIMIT", check.count("limit.offset", limit.offset), check.integer("limit.count", limit.count)]

const zrangeArgs = (
  check: Check,
  key: string,
  start: Bound,
  stop: Bound,
  options: ZRangeOptions & { readonly withScores?: boolean | undefined } | undefined
): Array<Argument> => {
  const by = options?.by
  const args: Array<Argument> = [key, bound(check, "start", by, start), bound(check, "stop", by, stop)]
  if (by !== undefined) args.push(by === "SCORE" ? "BYSCORE" : "BYLEX")
  if (options?.rev === true) args.push("REV")
  if (options?.limit !== undefined && by === undefined) check.refuse("limit", "needs by: SCORE or LEX")
  args.push(...limitArgs(check, options?.limit))
  if (options?.withScores === true) {
    if (by === "LEX") check.refuse("withScores", "cannot be combined with by: LEX")
    args.push("WITHSCORES")
  }
  return args
}

/** ZRANGE: the members between two bounds (ranks by default); with `{ withScores: true }`, `{ member, score }`s. */
export function zrange(
  key: string,
  start: Bound,
  stop: Bound,
  options?: ZRangeOptions & { readonly withScores?: false | undefined }
): Command<ReadonlyArray<string>>
export function zrange(
  key: string,
  start: Bound,
  stop: Bound,
  options: ZRangeOptions & { readonly withScores: true }
): Command<ReadonlyArray<ScoredMember>>
export function zrange(
  key: string,
  start: Bound,
  stop: Bound,
  options?: ZRangeOptions & { readonly withScores?: boolean | undefined }
): Command<ReadonlyArray<string> | ReadonlyArray<ScoredMember>> {
  const check = new Check("ZRANGE")
  const args = zrangeArgs(check, key, start, stop, options)
  const decode = options?.withScores === true ? scored("ZRANGE") : strings("ZRANGE")
  return read<ReadonlyArray<string> | ReadonlyArray<ScoredMember>>("ZRANGE", args, [0], decode, {
    invalid: check.invalid
  })
}

/** ZRANGE, the members read as bytes (no scores). */
export const zrangeBuffer = (
  key: string,
  start: Bound,
  stop: Bound,
  options?: ZRangeOptions
): Command<ReadonlyArray<Buffer>> => {
  const check = new Check("ZRANGE")
  const args = zrangeArgs(check, key, start, stop, options)
  return read("ZRANGE", args, [0], buffers("ZRANGE"), { binary: true, invalid: check.invalid })
}

/**
 * Options of `zrangebyscore`.
 *
 * @since 0.2.0
 * @category models
 */
export interface ZRangeByScoreOptions {
  readonly limit?: { readonly offset: number; readonly count: number } | undefined
}

/** ZRANGEBYSCORE: the members with scores between `min` and `max` (deprecated by Redis for ZRANGE ... BYSCORE). */
export function zrangebyscore(
  key: string,
  min: Bound,
  max: Bound,
  options?: ZRangeByScoreOptions & { readonly withScores?: false | undefined }
): Command<ReadonlyArray<string>>
export function zrangebyscore(
  key: string,
  min: Bound,
  max: Bound,
  options: ZRangeByScoreOptions & { readonly withScores: true }
): Command<ReadonlyArray<ScoredMember>>
export function zrangebyscore(
  key: string,
  min: Bound,
  max: Bound,
  options?: ZRangeByScoreOptions & { readonly withScores?: boolean | undefined }
): Command<ReadonlyArray<string> | ReadonlyArray<ScoredMember>> {
  const check = new Check("ZRANGEBYSCORE")
  const args: Array<Argument> = [key, bound(check, "min", "SCORE", min), bound(check, "max", "SCORE", max)]
  if (options?.withScores === true) args.push("WITHSCORES")
  args.push(...limitArgs(check, options?.limit))
  const decode = options?.withScores === true ? scored("ZRANGEBYSCORE") : strings("ZRANGEBYSCORE")
  return read<ReadonlyArray<string> | ReadonlyArray<ScoredMember>>("ZRANGEBYSCORE", args, [0], decode, {
    invalid: check.invalid
  })
}

/** ZINCRBY: adds `increment` to the member's score; the new score. Not idempotent. */
export const zincrby = (key: string, increment: number, member: Value): Command<number> => {
  const check = new Check("ZINCRBY")
  const args = [key, check.score("increment", increment), member]
  return write("ZINCRBY", args, [0], float("ZINCRBY"), { invalid: check.invalid })
}

/** ZRANK: the member's rank, lowest score first (`None` when absent). */
export const zrank = (key: string, member: Value): Command<Option.Option<number>> =>
  read("ZRANK", [key, member], [0], optionalInteger("ZRANK"))

/** ZREVRANK: the member's rank, highest score first (`None` when absent). */
export const zrevrank = (key: string, member: Value): Command<Option.Option<number>> =>
  read("ZREVRANK", [key, member], [0], optionalInteger("ZREVRANK"))

/** ZSCORE: the member's score (`None` when absent). */
export const zscore = (key: string, member: Value): Command<Option.Option<number>> =>
  read("ZSCORE", [key, member], [0], optionalFloat("ZSCORE"))

/** ZMSCORE: per member, its score (`None` when absent). */
export const zmscore = (
  key: string,
  ...members: ReadonlyArray<Value>
): Command<ReadonlyArray<Option.Option<number>>> => {
  const check = new Check("ZMSCORE")
  check.nonEmpty("members", members.length)
  return read("ZMSCORE", [key, ...members], [0], optionals("ZMSCORE", float("ZMSCORE")), { invalid: check.invalid })
}

/** ZCARD: how many members. */
export const zcard = (key: string): Command<number> => read("ZCARD", [key], [0], integer("ZCARD"))

/** ZCOUNT: how many members have a score between `min` and `max`. */
export const zcount = (key: string, min: Bound, max: Bound): Command<number> => {
  const check = new Check("ZCOUNT")
  const args = [key, bound(check, "min", "SCORE", min), bound(check, "max", "SCORE", max)]
  return read("ZCOUNT", args, [0], integer("ZCOUNT"), { invalid: check.invalid })
}

/** ZREM: how many members were removed. Idempotent. */
export const zrem = (key: string, ...members: ReadonlyArray<Value>): Command<number> => {
  const check = new Check("ZREM")
  check.nonEmpty("members", members.length)
  return write("ZREM", [key, ...members], [0], integer("ZREM"), { invalid: check.invalid })
}

/** ZREMRANGEBYRANK: removes the members between two ranks; how many. Not idempotent (a retry removes the next). */
export const zremrangebyrank = (key: string, start: number, stop: number): Command<number> => {
  const check = new Check("ZREMRANGEBYRANK")
  const args = [key, check.integer("start", start), check.integer("stop", stop)]
  return write("ZREMRANGEBYRANK", args, [0], integer("ZREMRANGEBYRANK"), { invalid: check.invalid })
}

/** ZREMRANGEBYSCORE: removes the members with scores between `min` and `max`; how many. Idempotent. */
export const zremrangebyscore = (key: string, min: Bound, max: Bound): Command<number> => {
  const check = new Check("ZREMRANGEBYSCORE")
  const args = [key, bound(check, "min", "SCORE", min), bound(check, "max", "SCORE", max)]
  return write("ZREMRANGEBYSCORE", args, [0], integer("ZREMRANGEBYSCORE"), { invalid: check.invalid })
}

/** ZREMRANGEBYLEX: removes the members between two lexicographic bounds (`"[a"`, `"(b"`, `"-"`, `"+"`). Idempotent. */
export const zremrangebylex = (key: string, min: string, max: string): Command<number> =>
  write("ZREMRANGEBYLEX", [key, min, max], [0], integer("ZREMRANGEBYLEX"))

const popCommand = (name: "ZPOPMIN" | "ZPOPMAX", key: string, count: number | undefined) => {
  if (count === undefined) return write(name, [key], [0], optionalScored(name))
  const check = new Check(name)
  return write(name, [key, check.count("count", count)], [0], scored(name), { invalid: check.invalid })
}

/** ZPOPMIN: removes and returns the lowest-scored member; with `count`, up to `count` of them. Not idempotent. */
export function zpopmin(key: string): Command<Option.Option<ScoredMember>>
export function zpopmin(key: string, count: number): Command<ReadonlyArray<ScoredMember>>
export function zpopmin(
  key: string,
  count?: number
): Command<Option.Option<ScoredMember> | ReadonlyArray<ScoredMember>> {
  return popCommand("ZPOPMIN", key, count)
}

/** ZPOPMAX: removes and returns the highest-scored member; with `count`, up to `count` of them. Not idempotent. */
export function zpopmax(key: string): Command<Option.Option<ScoredMember>>
export function zpopmax(key: string, count: number): Command<ReadonlyArray<ScoredMember>>
export function zpopmax(
  key: string,
  count?: number
): Command<Option.Option<ScoredMember> | ReadonlyArray<ScoredMember>> {
  return popCommand("ZPOPMAX", key, count)
}

export type { ScoredMember } from "./replies.ts"
