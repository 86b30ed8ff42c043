/**
 * The blocking commands of `RedisBlocking` as `Command` values: arguments (the block already validated and converted),
 * key positions, argument checks and reply decoders. Keys in replies lose `keyPrefix`.
 *
 * @internal
 */
import type * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import type { PoppedMember, Side } from "../RedisBlocking.ts"
import { InvalidArgument } from "../RedisError.ts"
import { type Command, decodeFailure, float, make, optional, string } from "./command.ts"
import { toMillisArgument, toSecondsArgument } from "./dedicated.ts"
import { streams as streamsReply, type StreamRead, stripPrefix } from "./streamReply.ts"

/** @internal */
export interface CountOption {
  readonly count?: number | undefined
}

/** BLPOP / BRPOP. @internal */
export const pop = (
  name: "BLPOP" | "BRPOP",
  keys: ReadonlyArray<string>,
  block: Duration.Duration,
  prefix: string
): Command<Option.Option<{ readonly key: string; readonly value: string }>> =>
  make({
    name,
    args: [...keys, toSecondsArgument(block)],
    keys: keys.map((_, i) => i),
    invalid: noKeys(name, keys),
    decode: optional((reply) => {
      const [key, value] = pair(name, reply)
      return { key: stripPrefix(prefix, string(name)(key)), value: string(name)(value) }
    })
  })

/** BZPOPMIN / BZPOPMAX. @internal */
export const zpop = (
  name: "BZPOPMIN" | "BZPOPMAX",
  keys: ReadonlyArray<string>,
  block: Duration.Duration,
  prefix: string
): Command<Option.Option<PoppedMember>> =>
  make({
    name,
    args: [...keys, toSecondsArgument(block)],
    keys: keys.map((_, i) => i),
    invalid: noKeys(name, keys),
    decode: optional((reply): PoppedMember => {
      if (!Array.isArray(reply) || reply.length < 3) throw decodeFailure(name, "[key, member, score]", reply)
      return {
        key: stripPrefix(prefix, string(name)(reply[0])),
        member: string(name)(reply[1]),
        score: float(name)(reply[2])
      }
    })
  })

/** BLMOVE. @internal */
export const blmove = (
  source: string,
  destination: string,
  from: Side,
  to: Side,
  block: Duration.Duration
): Command<Option.Option<string>> =>
  make({
    name: "BLMOVE",
    args: [source, destination, from, to, toSecondsArgument(block)],
    keys: [0, 1],
    invalid: invalidSide("BLMOVE", from) ?? invalidSide("BLMOVE", to),
    decode: optional(string("BLMOVE"))
  })

/** BRPOPLPUSH. @internal */
export const brpoplpush = (
  source: string,
  destination: string,
  block: Duration.Duration
): Command<Option.Option<string>> =>
  make({
    name: "BRPOPLPUSH",
    args: [source, destination, toSecondsArgument(block)],
    keys: [0, 1],
    decode: optional(string("BRPOPLPUSH"))
  })

/** BLMPOP. @internal */
export const blmpop = (
  keys: ReadonlyArray<string>,
  from: Side,
  block: Duration.Duration,
  prefix: string,
  options?: CountOption
): Command<Option.Option<{ readonly key: string; readonly values: ReadonlyArray<string> }>> =>
  make({
    name: "BLMPOP",
    args: [toSecondsArgument(block), keys.length, ...keys, from, ...countArgs(options)],
    keys: keys.map((_, i) => i + 2),
    invalid: noKeys("BLMPOP", keys) ?? invalidSide("BLMPOP", from) ?? invalidCount("BLMPOP", options),
    decode: optional((reply) => {
      const [key, values] = pair("BLMPOP", reply)
      if (!Array.isArray(values)) throw decodeFailure("BLMPOP", "an array of elements", values)
      return { key: stripPrefix(prefix, string("BLMPOP")(key)), values: values.map(string("BLMPOP")) }
    })
  })

/** BZMPOP. @internal */
export const bzmpop = (
  keys: ReadonlyArray<string>,
  which: "MIN" | "MAX",
  block: Duration.Duration,
  prefix: string,
  options?: CountOption
): Command<
  Option.Option<{ readonly key: string; readonly members: ReadonlyArray<{ member: string; score: number }> }>
> =>
  make({
    name: "BZMPOP",
    args: [toSecondsArgument(block), keys.length, ...keys, which, ...countArgs(options)],
    keys: keys.map((_, i) => i + 2),
    invalid: noKeys("BZMPOP", keys) ?? invalidCount("BZMPOP", options),
    decode: optional((reply) => {
      const [key, members] = pair("BZMPOP", reply)
      if (!Array.isArray(members)) throw decodeFailure("BZMPOP", "an array of members", members)
      return {
        key: stripPrefix(prefix, string("BZMPOP")(key)),
        members: members.map((item: unknown) => {
          const [member, score] = pair("BZMPOP", item)
          return { member: string("BZMPOP")(member), score: float("BZMPOP")(score) }
        })
      }
    })
  })

/** XREAD / XREADGROUP with BLOCK (`head`: GROUP group consumer). @internal */
export const read = (
  name: "XREAD" | "XREADGROUP",
  head: ReadonlyArray<string>,
  streams: ReadonlyArray<{ readonly stream: string; readonly id: string }>,
  block: Duration.Duration,
  prefix: string,
  options?: CountOption & { readonly noAck?: boolean | undefined }
): Command<Option.Option<ReadonlyArray<StreamRead>>> => {
  const before = [...head, ...countArgs(options), ...(options?.noAck === true ? ["NOACK"] : [])]
  const decode = streamsReply(name, prefix)
  return make({
    name,
    args: [
      ...before,
      "BLOCK",
      toMillisArgument(block),
      "STREAMS",
      ...streams.map((s) => s.stream),
      ...streams.map((s) => s.id)
    ],
    keys: streams.map((_, i) => before.length + 3 + i),
    readOnly: name === "XREAD",
    invalid: streams.length === 0
      ? new InvalidArgument({ message: `${name}: at least one stream is needed`, command: name, argument: "streams" })
      : invalidCount(name, options),
    decode: (reply) => Option.fromNullishOr(decode(reply))
  })
}

const countArgs = (options: CountOption | undefined): ReadonlyArray<string> =>
  options?.count === undefined ? [] : ["COUNT", String(options.count)]

const invalidCount = (command: string, options: CountOption | undefined): InvalidArgument | undefined =>
  options?.count === undefined || (Number.isSafeInteger(options.count) && options.count > 0)
    ? undefined
    : new InvalidArgument({ message: `${command}: count must be a positive integer`, command, argument: "count" })

const noKeys = (command: string, keys: ReadonlyArray<string>): InvalidArgument | undefined =>
  keys.length > 0
    ? undefined
    : new InvalidArgument({ message: `${command}: at least one key is needed`, command, argument: "keys" })

// The types say LEFT | RIGHT; JavaScript callers may not have them.
const invalidSide = (command: string, side: string): InvalidArgument | undefined =>
  side === "LEFT" || side === "RIGHT"
    ? undefined
    : new InvalidArgument({ message: `${command}: a side is LEFT or RIGHT`, command, argument: "side" })

const pair = (command: string, reply: unknown): readonly [unknown, unknown] => {
  if (!Array.isArray(reply) || reply.length < 2) throw decodeFailure(command, "a pair", reply)
  return [reply[0], reply[1]]
}
