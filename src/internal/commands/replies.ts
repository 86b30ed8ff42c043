/**
 * The reply decoders of the command catalog, beyond the core ones of `command.ts`. They accept every shape ioredis 6
 * hands over for a reply: RESP2 flat lists, RESP3 maps flattened by ioredis (`[field, value, ...]`), RESP3 arrays of
 * pairs (`[[member, score], ...]`, which ioredis does not flatten for `call`), plain objects (`replyMapping:
 * "resp3"`), doubles as strings or numbers, strings or `Buffer`s. Each throws a `DecodeError` naming the command when
 * the reply does not fit.
 *
 * @internal
 */
import type * as Option from "effect/Option"
import * as O from "effect/Option"
import { array, buffer, decodeFailure, float, integer, optional, string } from "../command.ts"

const isPlainObject = (reply: unknown): reply is Record<string, unknown> =>
  typeof reply === "object" && reply !== null && !Array.isArray(reply) && !Buffer.isBuffer(reply)

/** The pairs of a map-like reply: a flat list, a list of pairs or an object. @internal */
export const pairs = (command: string, reply: unknown): ReadonlyArray<readonly [unknown, unknown]> => {
  if (isPlainObject(reply)) return Object.entries(reply)
  if (!Array.isArray(reply)) throw decodeFailure(command, "an array of pairs", reply)
  if (reply.length > 0 && Array.isArray(reply[0])) {
    return reply.map((pair: unknown) => {
      if (!Array.isArray(pair) || pair.length < 2) throw decodeFailure(command, "a pair", pair)
      return [pair[0], pair[1]] as const
    })
  }
  if (reply.length % 2 !== 0) throw decodeFailure(command, "an even number of items", reply)
  const out: Array<readonly [unknown, unknown]> = []
  for (let i = 0; i < reply.length; i += 2) out.push([reply[i], reply[i + 1]])
  return out
}

// A field named "__proto__" must be an own property, not the object's prototype.
const put = <V>(out: Record<string, V>, field: string, value: V): void => {
  if (field === "__proto__") Object.defineProperty(out, field, { value, enumerable: true, writable: true })
  else out[field] = value
}

/** A hash as a record of strings. @internal */
export const stringRecord = (command: string) => (reply: unknown): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const [field, value] of pairs(command, reply)) put(out, string(command)(field), string(command)(value))
  return out
}

/** A hash as a record of bytes (field names read as UTF-8). @internal */
export const bufferRecord = (command: string) => (reply: unknown): Record<string, Buffer> => {
  const out: Record<string, Buffer> = {}
  for (const [field, value] of pairs(command, reply)) put(out, string(command)(field), buffer(command)(value))
  return out
}

/** A list of strings; nil (a missing key, for some commands) is the empty list. @internal */
export const strings = (command: string) => (reply: unknown): ReadonlyArray<string> =>
  reply === null || reply === undefined ? [] : array(command, string(command))(reply)

/** A list of bytes; nil is the empty list. @internal */
export const buffers = (command: string) => (reply: unknown): ReadonlyArray<Buffer> =>
  reply === null || reply === undefined ? [] : array(command, buffer(command))(reply)

/** A list of integers; nil is the empty list. @internal */
export const integers = (command: string) => (reply: unknown): ReadonlyArray<number> =>
  reply === null || reply === undefined ? [] : array(command, integer(command))(reply)

/** A list of values that may be missing. @internal */
export const optionals = <A>(command: string, decode: (reply: unknown) => A) =>
(reply: unknown): ReadonlyArray<Option.Option<A>> => array(command, optional(decode))(reply)

/** A string that may be missing. @internal */
export const optionalString = (command: string) => optional(string(command))

/** Bytes that may be missing. @internal */
export const optionalBuffer = (command: string) => optional(buffer(command))

/** An integer that may be missing. @internal */
export const optionalInteger = (command: string) => optional(integer(command))

/** A number (a double) that may be missing. @internal */
export const optionalFloat = (command: string) => optional(float(command))

/**
 * A member and its score.
 *
 * @since 0.2.0
 * @category models
 */
export interface ScoredMember {
  readonly member: string
  readonly score: number
}

/** Members with scores (WITHSCORES, ZPOPMIN, ...); nil is the empty list. @internal */
export const scored = (command: string) => (reply: unknown): ReadonlyArray<ScoredMember> =>
  reply === null || reply === undefined
    ? []
    : pairs(command, reply).map(([member, score]) => ({
      member: string(command)(member),
      score: float(command)(score)
    }))

/** At most one member with its score (ZPOPMIN without a count: `[member, score]`, or empty). @internal */
export const optionalScored = (command: string) => (reply: unknown): Option.Option<ScoredMember> => {
  const all = scored(command)(reply)
  return all.length === 0 ? O.none() : O.some(all[0]!)
}

/** A string reply that says nothing (OK, QUEUED): ignored, errors come as reply errors. @internal */
export const ignore = (_reply: unknown): void => undefined

/** An integer reply where -1 means "none" (BITPOS, ...). @internal */
export const position = (command: string) => (reply: unknown): Option.Option<number> => {
  const n = integer(command)(reply)
  return n < 0 ? O.none() : O.some(n)
}

/** INFO's text as a record: `field:value` lines, section headers and blank lines skipped. @internal */
export const info = (reply: unknown): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const line of string("INFO")(reply).split(/\r?\n/)) {
    if (line === "" || line.startsWith("#")) continue
    const colon = line.indexOf(":")
    if (colon > 0) put(out, line.slice(0, colon), line.slice(colon + 1))
  }
  return out
}

/**
 * A stream entry: its id and its fields.
 *
 * @since 0.2.0
 * @category models
 */
export interface StreamEntry {
  readonly id: string
  readonly fields: Readonly<Record<string, string>>
}

/** One entry (`[id, [field, value, ...]]`). @internal */
export const entry = (command: string) => (reply: unknown): StreamEntry => {
  if (!Array.isArray(reply) || reply.length < 2) throw decodeFailure(command, "an entry [id, fields]", reply)
  return { id: string(command)(reply[0]), fields: stringRecord(command)(reply[1] ?? []) }
}

/** Entries; an entry deleted meanwhile (nil, in XCLAIM/XAUTOCLAIM replies) is skipped. @internal */
export const entries = (command: string) => (reply: unknown): ReadonlyArray<StreamEntry> => {
  if (reply === null || reply === undefined) return []
  if (!Array.isArray(reply)) throw decodeFailure(command, "an array of entries", reply)
  return reply.filter((item: unknown) => item !== null).map(entry(command))
}
