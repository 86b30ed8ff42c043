/**
 * Decoders for stream replies (XREAD, XREADGROUP, XAUTOCLAIM, XPENDING), shared by `RedisBlocking` and `RedisStream`.
 * Each throws a `DecodeError` naming the command when the reply does not have the expected shape.
 *
 * @internal
 */
import { decodeFailure, string } from "./command.ts"

/**
 * One stream entry. `fields` is `undefined` for an entry that was deleted while it was pending (XREADGROUP reading a
 * consumer's history returns its id alone).
 *
 * @since 0.2.0
 * @category models
 */
export interface StreamEntry {
  readonly id: string
  readonly fields: Readonly<Record<string, string>> | undefined
}

/**
 * The entries read from one stream.
 *
 * @since 0.2.0
 * @category models
 */
export interface StreamRead {
  readonly stream: string
  readonly entries: ReadonlyArray<StreamEntry>
}

const fieldsOf = (command: string, reply: unknown): Record<string, string> | undefined => {
  if (reply === null || reply === undefined) return undefined
  if (!Array.isArray(reply)) throw decodeFailure(command, "an array of fields and values", reply)
  const fields: Record<string, string> = {}
  for (let i = 0; i + 1 < reply.length; i += 2) fields[string(command)(reply[i])] = string(command)(reply[i + 1])
  return fields
}

/** @internal */
export const entries = (command: string) => (reply: unknown): ReadonlyArray<StreamEntry> => {
  if (!Array.isArray(reply)) throw decodeFailure(command, "an array of entries", reply)
  return reply.map((entry: unknown) => {
    if (!Array.isArray(entry) || entry.length < 1) throw decodeFailure(command, "an entry [id, fields]", entry)
    return { id: string(command)(entry[0]), fields: fieldsOf(command, entry[1]) }
  })
}

/**
 * XREAD / XREADGROUP: `[[stream, entries], ...]`, or nil when the block ran out. Stream names lose `keyPrefix`.
 *
 * @internal
 */
export const streams = (command: string, keyPrefix: string) => (reply: unknown): ReadonlyArray<StreamRead> | null => {
  if (reply === null || reply === undefined) return null
  if (!Array.isArray(reply)) throw decodeFailure(command, "an array of streams", reply)
  // RESP2 nests each stream as [name, entries]; RESP3 (ioredis 6's default) answers a map, which `call` hands over
  // flat: [name, entries, name, entries, ...].
  const pairs: Array<readonly [unknown, unknown]> = []
  if (reply.length > 0 && !Array.isArray(reply[0])) {
    for (let i = 0; i + 1 < reply.length; i += 2) pairs.push([reply[i], reply[i + 1]])
  } else {
    for (const item of reply) {
      if (!Array.isArray(item) || item.length < 2) throw decodeFailure(command, "a stream [name, entries]", item)
      pairs.push([item[0], item[1]])
    }
  }
  return pairs.map(([name, items]) => ({
    stream: stripPrefix(keyPrefix, string(command)(name)),
    entries: entries(command)(items)
  }))
}

/**
 * XAUTOCLAIM: the next cursor, the claimed entries, and the ids of pending entries that no longer exist (Redis 7
 * removed them from the pending list).
 *
 * @internal
 */
export const autoclaim = (reply: unknown): {
  readonly cursor: string
  readonly entries: ReadonlyArray<StreamEntry>
  readonly deleted: ReadonlyArray<string>
} => {
  if (!Array.isArray(reply) || reply.length < 2) throw decodeFailure("XAUTOCLAIM", "[cursor, entries, deleted]", reply)
  const deleted = Array.isArray(reply[2]) ? reply[2].map(string("XAUTOCLAIM")) : []
  return {
    cursor: string("XAUTOCLAIM")(reply[0]),
    // Entries deleted meanwhile may come back as nil (Redis 6.2): they have no id to process.
    entries: entries("XAUTOCLAIM")(
      Array.isArray(reply[1]) ? reply[1].filter((entry: unknown) => entry !== null) : reply[1]
    ),
    deleted
  }
}

/**
 * XPENDING's extended form: per entry, its id, its consumer, its idle time and how many times it was delivered.
 *
 * @internal
 */
export const pending = (reply: unknown): ReadonlyMap<string, number> => {
  if (!Array.isArray(reply)) throw decodeFailure("XPENDING", "an array of pending entries", reply)
  const deliveries = new Map<string, number>()
  for (const item of reply) {
    if (!Array.isArray(item) || item.length < 4) throw decodeFailure("XPENDING", "[id, consumer, idle, count]", item)
    deliveries.set(string("XPENDING")(item[0]), Number(item[3]))
  }
  return deliveries
}

/**
 * A key as the caller named it: `keyPrefix` removed from a key Redis returns (ioredis adds it to keys it sends, but not
 * to the keys in replies).
 *
 * @internal
 */
export const stripPrefix = (keyPrefix: string, key: string): string =>
  keyPrefix !== "" && key.startsWith(keyPrefix) ? key.slice(keyPrefix.length) : key
