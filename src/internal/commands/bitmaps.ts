/**
 * Bitmap commands: single bits, counts and searches over a string's bits.
 *
 * @internal
 */
import type * as Option from "effect/Option"
import { type Argument, type Command, integer } from "../command.ts"
import { Check, read, write } from "./arguments.ts"
import { position } from "./replies.ts"

/**
 * A range of a bitmap: `start` and `end` are byte offsets, or bit offsets with `unit: "BIT"` (Redis 7), inclusive,
 * negative from the end.
 *
 * @since 0.2.0
 * @category models
 */
export interface BitRange {
  readonly start: number
  readonly end?: number | undefined
  readonly unit?: "BYTE" | "BIT" | undefined
}

const rangeArgs = (check: Check, range: BitRange | undefined): Array<Argument> => {
  if (range === undefined) return []
  const args: Array<Argument> = [check.integer("start", range.start)]
  if (range.end !== undefined) args.push(check.integer("end", range.end))
  if (range.unit !== undefined) {
    if (range.end === undefined) check.refuse("unit", "needs end")
    args.push(range.unit)
  }
  return args
}

/** SETBIT: sets the bit at `offset`; the bit's previous value. Not idempotent (a retry answers the new value). */
export const setbit = (key: string, offset: number, value: 0 | 1): Command<0 | 1> => {
  const check = new Check("SETBIT")
  const args = [key, check.count("offset", offset), value]
  return write("SETBIT", args, [0], (reply) => integer("SETBIT")(reply) as 0 | 1, { invalid: check.invalid })
}

/** GETBIT: the bit at `offset` (0 beyond the end or for a missing key). */
export const getbit = (key: string, offset: number): Command<0 | 1> => {
  const check = new Check("GETBIT")
  const args = [key, check.count("offset", offset)]
  return read("GETBIT", args, [0], (reply) => integer("GETBIT")(reply) as 0 | 1, { invalid: check.invalid })
}

/** BITCOUNT: how many bits are set (in `range`, by default all). */
export const bitcount = (key: string, range?: BitRange): Command<number> => {
  const check = new Check("BITCOUNT")
  const args = [key, ...rangeArgs(check, range)]
  return read("BITCOUNT", args, [0], integer("BITCOUNT"), { invalid: check.invalid })
}

/**
 * BITPOS: the position of the first bit equal to `bit` (in `range`); `None` when there is none. Searching for 0
 * without an `end` past a value of all ones gives the first bit after it, as Redis does.
 */
export const bitpos = (key: string, bit: 0 | 1, range?: BitRange): Command<Option.Option<number>> => {
  const check = new Check("BITPOS")
  const args = [key, bit, ...rangeArgs(check, range)]
  return read("BITPOS", args, [0], position("BITPOS"), { invalid: check.invalid })
}
