/**
 * Stream consumer-group commands: XGROUP, XPENDING, XCLAIM, XAUTOCLAIM, and the XINFO reads. Claims are never
 * retried after a lost connection (a retry counts another delivery, or finds the entries no longer idle and answers
 * nothing for a claim that was made). XINFO replies become typed records.
 *
 * @internal
 */
import type * as Duration from "effect/Duration"
import type * as Option from "effect/Option"
import * as O from "effect/Option"
import { type Argument, boolean, type Command, decodeFailure, integer, string } from "../command.ts"
import { Check, read, write } from "./arguments.ts"
import { entries, entry, ignore, pairs, type StreamEntry, strings } from "./replies.ts"

/**
 * Options of `xgroupCreate`.
 *
 * @since 0.2.0
 * @category models
 */
export interface XGroupCreateOptions {
  /** MKSTREAM: create the stream when it does not exist. */
  readonly mkstream?: boolean | undefined
  /** ENTRIESREAD: how many entries the group has read (for its lag). */
  readonly entriesRead?: number | undefined
}

/**
 * XGROUP CREATE: creates a consumer group reading from `id` (`"$"`: new entries only, `"0"`: all). Not idempotent
 * (a retry fails with BUSYGROUP although the group was created).
 */
export const xgroupCreate = (key: string, group: string, id = "$", options?: XGroupCreateOptions): Command<void> => {
  const check = new Check("XGROUP CREATE")
  const args: Array<Argument> = ["CREATE", key, group, id]
  if (options?.mkstream === true) args.push("MKSTREAM")
  if (options?.entriesRead !== undefined) args.push("ENTRIESREAD", check.count("entriesRead", options.entriesRead))
  return write("XGROUP", args, [1], ignore, { invalid: check.invalid })
}

/** XGROUP DESTROY: true when the group existed. Idempotent (a retry answers false). */
export const xgroupDestroy = (key: string, group: string): Command<boolean> =>
  write("XGROUP", ["DESTROY", key, group], [1], boolean("XGROUP"))

/** XGROUP CREATECONSUMER: true when the consumer was created. Idempotent (a retry answers false). */
export const xgroupCreateConsumer = (key: string, group: string, consumer: string): Command<boolean> =>
  write("XGROUP", ["CREATECONSUMER", key, group, consumer], [1], boolean("XGROUP"))

/** XGROUP DELCONSUMER: deletes a consumer; how many pending entries it had. Idempotent (a retry answers 0). */
export const xgroupDelConsumer = (key: string, group: string, consumer: string): Command<number> =>
  write("XGROUP", ["DELCONSUMER", key, group, consumer], [1], integer("XGROUP"))

/** XGROUP SETID: sets the group's last delivered id. Idempotent. */
export const xgroupSetId = (
  key: string,
  group: string,
  id: string,
  options?: { readonly entriesRead?: number | undefined }
): Command<void> => {
  const check = new Check("XGROUP SETID")
  const args: Array<Argument> = ["SETID", key, group, id]
  if (options?.entriesRead !== undefined) args.push("ENTRIESREAD", check.count("entriesRead", options.entriesRead))
  return write("XGROUP", args, [1], ignore, { invalid: check.invalid })
}

/**
 * XPENDING's summary: how many entries are pending, the lowest and highest pending ids, and per consumer how many.
 *
 * @since 0.2.0
 * @category models
 */
export interface PendingSummary {
  readonly count: number
  readonly first: Option.Option<string>
  readonly last: Option.Option<string>
  readonly consumers: ReadonlyArray<{ readonly name: string; readonly count: number }>
}

/**
 * One pending entry: its id, the consumer holding it, how long since it was last delivered (milliseconds) and how
 * many times it was delivered.
 *
 * @since 0.2.0
 * @category models
 */
export interface PendingEntry {
  readonly id: string
  readonly consumer: string
  readonly idle: number
  readonly deliveries: number
}

/**
 * The range of XPENDING's extended form.
 *
 * @since 0.2.0
 * @category models
 */
export interface PendingRange {
  /** Default `-`. */
  readonly start?: string | undefined
  /** Default `+`. */
  readonly end?: string | undefined
  readonly count: number
  /** Only this consumer's entries. */
  readonly consumer?: string | undefined
  /** Only entries idle at least this long (IDLE). */
  readonly idle?: Duration.Input | undefined
}

const summary = (reply: unknown): PendingSummary => {
  if (!Array.isArray(reply) || reply.length < 4) {
    throw decodeFailure("XPENDING", "[count, first, last, consumers]", reply)
  }
  const optionalId = (id: unknown) => (id === null || id === undefined ? O.none() : O.some(string("XPENDING")(id)))
  return {
    count: integer("XPENDING")(reply[0]),
    first: optionalId(reply[1]),
    last: optionalId(reply[2]),
    consumers: reply[3] === null ? [] : pairs("XPENDING", reply[3]).map(([name, count]) => ({
      name: string("XPENDING")(name),
      count: integer("XPENDING")(count)
    }))
  }
}

const pendingEntries = (reply: unknown): ReadonlyArray<PendingEntry> => {
  if (!Array.isArray(reply)) throw decodeFailure("XPENDING", "an array of pending entries", reply)
  return reply.map((item: unknown) => {
    if (!Array.isArray(item) || item.length < 4) throw decodeFailure("XPENDING", "[id, consumer, idle, count]", item)
    return {
      id: string("XPENDING")(item[0]),
      consumer: string("XPENDING")(item[1]),
      idle: integer("XPENDING")(item[2]),
      deliveries: integer("XPENDING")(item[3])
    }
  })
}

/** XPENDING: the group's pending summary; with a range, the pending entries in it. */
export function xpending(key: string, group: string): Command<PendingSummary>
export function xpending(key: string, group: string, range: PendingRange): Command<ReadonlyArray<PendingEntry>>
export function xpending(
  key: string,
  group: string,
  range?: PendingRange
): Command<PendingSummary | ReadonlyArray<PendingEntry>> {
  if (range === undefined) return read("XPENDING", [key, group], [0], summary)
  const check = new Check("XPENDING")
  const args: Array<Argument> = [key, group]
  if (range.idle !== undefined) args.push("IDLE", check.idle("idle", range.idle))
  args.push(range.start ?? "-", range.end ?? "+", check.count("count", range.count))
  if (range.consumer !== undefined) args.push(range.consumer)
  return read<ReadonlyArray<PendingEntry>>("XPENDING", args, [0], pendingEntries, { invalid: check.invalid })
}

/**
 * Options of `xclaim`.
 *
 * @since 0.2.0
 * @category models
 */
export interface XClaimOptions {
  /** IDLE: set the entries' idle time. */
  readonly idle?: Duration.Input | undefined
  /** TIME: set their last delivery time (a `Date` or unix milliseconds). */
  readonly time?: Date | number | undefined
  /** RETRYCOUNT: set their delivery count. */
  readonly retryCount?: number | undefined
  /** FORCE: create pending entries for ids that are not pending (they must exist). */
  readonly force?: boolean | undefined
}

const claimArgs = (
  check: Check,
  key: string,
  group: string,
  consumer: string,
  minIdle: Duration.Input,
  ids: ReadonlyArray<string>,
  options: XClaimOptions | undefined
): Array<Argument> => {
  check.nonEmpty("ids", ids.length)
  const args: Array<Argument> = [key, group, consumer, check.idle("minIdle", minIdle), ...ids]
  if (options?.idle !== undefined) args.push("IDLE", check.idle("idle", options.idle))
  if (options?.time !== undefined) args.push("TIME", check.epochMillis("time", options.time))
  if (options?.retryCount !== undefined) args.push("RETRYCOUNT", check.count("retryCount", options.retryCount))
  if (options?.force === true) args.push("FORCE")
  return args
}

/** XCLAIM: takes over pending entries idle at least `minIdle`; the claimed entries. Not idempotent. */
export const xclaim = (
  key: string,
  group: string,
  consumer: string,
  minIdle: Duration.Input,
  ids: ReadonlyArray<string>,
  options?: XClaimOptions
): Command<ReadonlyArray<StreamEntry>> => {
  const check = new Check("XCLAIM")
  const args = claimArgs(check, key, group, consumer, minIdle, ids, options)
  return write("XCLAIM", args, [0], entries("XCLAIM"), { invalid: check.invalid })
}

/** XCLAIM ... JUSTID: as `xclaim`, returning the claimed ids only (the delivery count is not incremented). */
export const xclaimJustId = (
  key: string,
  group: string,
  consumer: string,
  minIdle: Duration.Input,
  ids: ReadonlyArray<string>,
  options?: XClaimOptions
): Command<ReadonlyArray<string>> => {
  const check = new Check("XCLAIM")
  const args = [...claimArgs(check, key, group, consumer, minIdle, ids, options), "JUSTID"]
  return write("XCLAIM", args, [0], strings("XCLAIM"), { invalid: check.invalid })
}

/**
 * XAUTOCLAIM's reply: the cursor to continue from (`"0-0"` when the scan is complete), the claimed entries, and
 * the ids of pending entries that no longer exist (removed from the pending list; Redis 7).
 *
 * @since 0.2.0
 * @category models
 */
export interface AutoClaim {
  readonly next: string
  readonly entries: ReadonlyArray<StreamEntry>
  readonly deleted: ReadonlyArray<string>
}

const autoClaim = (reply: unknown): AutoClaim => {
  if (!Array.isArray(reply) || reply.length < 2) throw decodeFailure("XAUTOCLAIM", "[cursor, entries, deleted]", reply)
  return {
    next: string("XAUTOCLAIM")(reply[0]),
    entries: entries("XAUTOCLAIM")(reply[1]),
    deleted: strings("XAUTOCLAIM")(reply[2] ?? [])
  }
}

/** XAUTOCLAIM: claims up to `count` (default 100) entries idle at least `minIdle`, from `start`. Not idempotent. */
export const xautoclaim = (
  key: string,
  group: string,
  consumer: string,
  minIdle: Duration.Input,
  start = "0-0",
  options?: { readonly count?: number | undefined }
): Command<AutoClaim> => {
  const check = new Check("XAUTOCLAIM")
  const args: Array<Argument> = [key, group, consumer, check.idle("minIdle", minIdle), start]
  if (options?.count !== undefined) args.push("COUNT", check.positive("count", options.count))
  return write("XAUTOCLAIM", args, [0], autoClaim, { invalid: check.invalid })
}

/**
 * XINFO STREAM (summary form). The fields Redis 7 added are `None` on older servers.
 *
 * @since 0.2.0
 * @category models
 */
export interface StreamInfo {
  readonly length: number
  readonly radixTreeKeys: number
  readonly radixTreeNodes: number
  readonly lastGeneratedId: string
  readonly groups: number
  readonly firstEntry: Option.Option<StreamEntry>
  readonly lastEntry: Option.Option<StreamEntry>
  readonly maxDeletedEntryId: Option.Option<string>
  readonly entriesAdded: Option.Option<number>
  readonly recordedFirstEntryId: Option.Option<string>
}

/**
 * A consumer group, as XINFO GROUPS reports it (`entriesRead` and `lag` are `None` before Redis 7 and when Redis
 * cannot tell).
 *
 * @since 0.2.0
 * @category models
 */
export interface StreamGroupInfo {
  readonly name: string
  readonly consumers: number
  readonly pending: number
  readonly lastDeliveredId: string
  readonly entriesRead: Option.Option<number>
  readonly lag: Option.Option<number>
}

/**
 * A consumer, as XINFO CONSUMERS reports it: pending entries, milliseconds since its last attempt (`idle`) and since
 * its last successful read (`inactive`, Redis 7.2+).
 *
 * @since 0.2.0
 * @category models
 */
export interface StreamConsumerInfo {
  readonly name: string
  readonly pending: number
  readonly idle: number
  readonly inactive: Option.Option<number>
}

// XINFO replies are maps (flat lists in RESP2 and through ioredis' legacy mapping).
const fieldsOf = (command: string, reply: unknown) => {
  const fields = new Map<string, unknown>()
  for (const [name, value] of pairs(command, reply)) fields.set(string(command)(name), value)
  const present = (name: string) => fields.get(name) !== undefined && fields.get(name) !== null
  const required = <A>(name: string, decode: (command: string) => (reply: unknown) => A): A => {
    if (!fields.has(name)) throw decodeFailure(command, `the field ${name}`, undefined)
    return decode(command)(fields.get(name))
  }
  const maybe = <A>(name: string, decode: (command: string) => (reply: unknown) => A): Option.Option<A> =>
    present(name) ? O.some(decode(command)(fields.get(name))) : O.none()
  return { required, maybe }
}

const streamInfo = (reply: unknown): StreamInfo => {
  const { maybe, required } = fieldsOf("XINFO", reply)
  return {
    length: required("length", integer),
    radixTreeKeys: required("radix-tree-keys", integer),
    radixTreeNodes: required("radix-tree-nodes", integer),
    lastGeneratedId: required("last-generated-id", string),
    groups: required("groups", integer),
    firstEntry: maybe("first-entry", entry),
    lastEntry: maybe("last-entry", entry),
    maxDeletedEntryId: maybe("max-deleted-entry-id", string),
    entriesAdded: maybe("entries-added", integer),
    recordedFirstEntryId: maybe("recorded-first-entry-id", string)
  }
}

/** XINFO STREAM: the stream's length, ids, first and last entries. A `ReplyError` when the key does not exist. */
export const xinfoStream = (key: string): Command<StreamInfo> => read("XINFO", ["STREAM", key], [1], streamInfo)

const list = <A>(decode: (reply: unknown) => A) => (reply: unknown): ReadonlyArray<A> => {
  if (!Array.isArray(reply)) throw decodeFailure("XINFO", "an array", reply)
  return reply.map(decode)
}

/** XINFO GROUPS: the stream's consumer groups. */
export const xinfoGroups = (key: string): Command<ReadonlyArray<StreamGroupInfo>> =>
  read("XINFO", ["GROUPS", key], [1], list((reply) => {
    const { maybe, required } = fieldsOf("XINFO", reply)
    return {
      name: required("name", string),
      consumers: required("consumers", integer),
      pending: required("pending", integer),
      lastDeliveredId: required("last-delivered-id", string),
      entriesRead: maybe("entries-read", integer),
      lag: maybe("lag", integer)
    }
  }))

/** XINFO CONSUMERS: the group's consumers. */
export const xinfoConsumers = (key: string, group: string): Command<ReadonlyArray<StreamConsumerInfo>> =>
  read("XINFO", ["CONSUMERS", key, group], [1], list((reply) => {
    const { maybe, required } = fieldsOf("XINFO", reply)
    return {
      name: required("name", string),
      pending: required("pending", integer),
      idle: required("idle", integer),
      inactive: maybe("inactive", integer)
    }
  }))
