/**
 * SCAN and its kin as Streams: one page per round trip, each page an idempotent command (a page lost to a reset is
 * asked again with the same cursor), `keyPrefix` added to MATCH and stripped from the keys; on a Cluster the walk
 * covers every master.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type { Client } from "./connection.ts"
import { address, masterNodes as masters } from "./topology/cluster.ts"
import { ConnectionClosed, type RedisError } from "../RedisError.ts"
import { type Argument, decodeFailure, float, string } from "./command.ts"
import * as Validate from "./validate.ts"

/**
 * Options of `scan`.
 *
 * @since 0.2.0
 * @category models
 */
export interface ScanOptions {
  /** A glob pattern (without `keyPrefix`: the layer adds it). Default: every key. */
  readonly match?: string | undefined
  /** A hint of how many keys Redis looks at per page (COUNT). */
  readonly count?: number | undefined
  /** Only keys of this type (TYPE), e.g. "hash". */
  readonly type?: string | undefined
}

/**
 * Options of `hscan`, `sscan`, `zscan`.
 *
 * @since 0.2.0
 * @category models
 */
export interface ScanKeyOptions {
  readonly match?: string | undefined
  readonly count?: number | undefined
}

/** The executor of the service: runs one command on the shared connection with every policy. */
export type Execute = <R, A>(
  name: string,
  idempotent: boolean,
  run: (client: Client) => Promise<R>,
  reply: (reply: R) => A
) => Effect.Effect<A, RedisError>

// A prefix is literal text in a glob: escape what SCAN would read as a pattern.
const escapeGlob = (s: string): string => s.replace(/[*?[\]\\]/g, (c) => `\\${c}`)

const page = (command: string, reply: unknown): readonly [string, ReadonlyArray<unknown>] => {
  if (!Array.isArray(reply) || reply.length !== 2 || !Array.isArray(reply[1])) {
    throw decodeFailure(command, "a cursor and a page", reply)
  }
  return [string(command)(reply[0]), reply[1] as ReadonlyArray<unknown>]
}

const pageArgs = (match: string | undefined, count: number | undefined): Array<Argument> => [
  ...(match === undefined ? [] : ["MATCH", match]),
  ...(count === undefined ? [] : ["COUNT", count])
]

// COUNT must be a positive integer: refused before the first page is asked for.
const checkCount = <A>(
  command: string,
  count: number | undefined,
  stream: () => Stream.Stream<A, RedisError>
): Stream.Stream<A, RedisError> => {
  if (count === undefined) return stream()
  const checked = Validate.integer(command, "count", count, { min: 1 })
  return typeof checked === "number" ? stream() : Stream.fail(checked)
}

const walk = <A>(
  execute: Execute,
  command: string,
  send: (client: Client, cursor: string) => Promise<unknown>,
  items: (raw: ReadonlyArray<unknown>) => ReadonlyArray<A>
): Stream.Stream<A, RedisError> =>
  Stream.paginate("0", (cursor: string) =>
    execute(command, true, (client) => send(client, cursor), (reply) => {
      const [next, raw] = page(command, reply)
      return [items(raw), next === "0" ? Option.none<string>() : Option.some(next)] as const
    }))

/**
 * Every key matching the options, on every master (SCAN).
 *
 * @internal
 */
export const scan = (
  execute: Execute,
  keyPrefix: string,
  cluster: Effect.Effect<Client, RedisError> | undefined,
  options: ScanOptions = {}
): Stream.Stream<string, RedisError> => {
  const match = keyPrefix === "" ? options.match : escapeGlob(keyPrefix) + (options.match ?? "*")
  const args = [...pageArgs(match, options.count), ...(options.type === undefined ? [] : ["TYPE", options.type])]
  const strip = (raw: ReadonlyArray<unknown>) =>
    raw.map((key) => {
      const s = string("SCAN")(key)
      return keyPrefix !== "" && s.startsWith(keyPrefix) ? s.slice(keyPrefix.length) : s
    })
  // One server (or Sentinel's master): one walk. A Cluster: one walk per master known when the stream starts.
  return checkCount("SCAN", options.count, () =>
    cluster === undefined
      ? walk(execute, "SCAN", (c, cursor) => c.call("SCAN", cursor, ...args), strip)
      : Stream.unwrap(Effect.map(cluster, (client) =>
        Stream.flatMap(
          Stream.fromIterable(masters(client).map(address)),
          (node) => walk(execute, "SCAN", (c, cursor) => onNode(c, node).call("SCAN", cursor, ...args), strip),
          { concurrency: 1 }
        ))))
}

// The node a Cluster walk is on; a node gone from the Cluster ends that walk with a typed error (not sent).
const onNode = (client: Client, at: string): ReturnType<typeof masters>[number] => {
  const node = masters(client).find((n) => address(n) === at)
  if (node === undefined) {
    throw new ConnectionClosed({ message: "A Cluster master left during SCAN; start the scan again", sent: false })
  }
  return node
}

/**
 * The fields and values of a hash (HSCAN).
 *
 * @internal
 */
export const hscan = (execute: Execute, key: string, options: ScanKeyOptions = {}) =>
  checkCount("HSCAN", options.count, () =>
    walk(
    execute,
    "HSCAN",
    (client, cursor) => client.call("HSCAN", key, cursor, ...pageArgs(options.match, options.count)),
    (raw) => pairs(raw, (field, value) => ({ field: string("HSCAN")(field), value: string("HSCAN")(value) }))
  ))

/**
 * The members of a set (SSCAN).
 *
 * @internal
 */
export const sscan = (execute: Execute, key: string, options: ScanKeyOptions = {}) =>
  checkCount("SSCAN", options.count, () =>
    walk(
    execute,
    "SSCAN",
    (client, cursor) => client.call("SSCAN", key, cursor, ...pageArgs(options.match, options.count)),
    (raw) => raw.map(string("SSCAN"))
  ))

/**
 * The members and scores of a sorted set (ZSCAN).
 *
 * @internal
 */
export const zscan = (execute: Execute, key: string, options: ScanKeyOptions = {}) =>
  checkCount("ZSCAN", options.count, () =>
    walk(
    execute,
    "ZSCAN",
    (client, cursor) => client.call("ZSCAN", key, cursor, ...pageArgs(options.match, options.count)),
    (raw) => pairs(raw, (member, score) => ({ member: string("ZSCAN")(member), score: float("ZSCAN")(score) }))
  ))

const pairs = <A>(raw: ReadonlyArray<unknown>, f: (a: unknown, b: unknown) => A): ReadonlyArray<A> => {
  const out: Array<A> = []
  for (let i = 0; i + 1 < raw.length; i += 2) out.push(f(raw[i], raw[i + 1]))
  return out
}
