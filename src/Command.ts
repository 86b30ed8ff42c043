/**
 * Redis commands as typed values. `Command.<lowercase Redis name>(...)` builds a `Command<A>` that says how its
 * arguments are sent, how its reply becomes an `A`, whether it is idempotent (retried once after a lost connection),
 * whether it only reads, and where its keys are. Run one with `RedisService.run`, several with `batch` or `multi`.
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import { Command, RedisService } from "effect-redis-resilience"
 *
 * const program = Effect.gen(function*() {
 *   const redis = yield* RedisService
 *   yield* redis.run(Command.hset("user:42", { name: "Ada", lang: "en" }))
 *   const user = yield* redis.run(Command.hgetall("user:42")) // { name: "Ada", lang: "en" }
 *   const top = yield* redis.run(Command.zrange("scores", 0, 2, { rev: true, withScores: true }))
 *   return { user, top } // top: ReadonlyArray<{ member: string; score: number }>
 * })
 * ```
 *
 * **Gotchas**
 *
 * - Replies are normalised: a hash is a record, WITHSCORES gives `{ member, score }`s, a stream entry is
 *   `{ id, fields }`, a missing value is `Option.none()`. Integers beyond 2^53 fail with `DecodeError` rather than
 *   lose precision; the counters have bigint forms (`incrBigint`, `incrbyBigint`, `decrBigint`, `decrbyBigint`).
 * - Values are sent as given, strings as UTF-8 and `Buffer`s byte for byte; the `...Buffer` forms read bytes back.
 * - Arguments are checked when the command is built (a TTL of 0, a negative count, a NaN score): running such a
 *   command fails with `InvalidArgument` naming the argument, and nothing is sent.
 * - Idempotent writes (SET without NX, DEL, HSET, SADD, ZADD, EXPIRE, ...) are retried once after a lost connection;
 *   their count replies may then be lower than what was applied. The others (INCR, LPUSH, XADD, PUBLISH, pops,
 *   SET NX, ...) are never resent and fail with `sent` telling whether they may have been applied.
 *
 * @since 0.2.0
 */
export {
  type Argument,
  type Command,
  isCommand,
  keysOf,
  make,
  type MakeOptions,
  map,
  type Success
} from "./internal/command.ts"

export type { Keys, Value } from "./internal/commands/arguments.ts"
export * from "./internal/commands/bitmaps.ts"
export * from "./internal/commands/geo.ts"
export * from "./internal/commands/hashes.ts"
export * from "./internal/commands/hyperloglog.ts"
export * from "./internal/commands/keys.ts"
export * from "./internal/commands/lists.ts"
export * from "./internal/commands/pubsub.ts"
export * from "./internal/commands/schema.ts"
export * from "./internal/commands/server.ts"
export * from "./internal/commands/sets.ts"
export * from "./internal/commands/sortedSets.ts"
export * from "./internal/commands/streamGroups.ts"
export * from "./internal/commands/streams.ts"
export * from "./internal/commands/strings.ts"
