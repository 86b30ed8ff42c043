/**
 * Blocking commands (BLPOP, BLMOVE, BZPOPMIN, XREADGROUP BLOCK, ...) on dedicated connections, so that a command that
 * waits for data never holds the shared connection. The connections come from a bounded pool and are opened with the
 * same options and policies as the shared one (TLS, ACL, connect timeout, reconnect schedule while opening, and the
 * same circuit breaker).
 *
 * **Gotchas**
 *
 * - A blocking pop is at-most-once: when the connection breaks after Redis popped the element, the reply is lost
 *   with it (the call fails with `sent: true`). For at-least-once, move the element instead (`blmove` into a
 *   processing list, then remove it when done) or use a stream consumer group (`RedisStream.consume`).
 * - Interrupting a call destroys its connection at once, so that an unwanted BLPOP can never pop an element later.
 *
 * **Example**
 *
 * ```ts
 * import { Effect, Layer, Option } from "effect"
 * import { RedisBlocking, RedisService } from "effect-redis-resilience"
 *
 * const worker = Effect.gen(function*() {
 *   const blocking = yield* RedisBlocking
 *   const job = yield* blocking.blpop(["jobs"], "5 seconds") // None after 5 s without a job
 *   if (Option.isSome(job)) yield* Effect.log(`${job.value.key}: ${job.value.value}`)
 * })
 *
 * const live = RedisBlocking.layer.pipe(Layer.provideMerge(RedisService.layer({ url: "redis://127.0.0.1:6379" })))
 * Effect.runPromise(Effect.provide(worker, live))
 * ```
 *
 * @since 0.2.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Pool from "effect/Pool"
import type * as Scope from "effect/Scope"
import * as Commands from "./internal/blockingCommands.ts"
import type { Command } from "./internal/command.ts"
import * as Dedicated from "./internal/dedicated.ts"
import { refuse } from "./internal/guard.ts"
import type { StreamRead } from "./internal/streamReply.ts"
import { crossSlot } from "./internal/transaction.ts"
import { connectorFor } from "./internal/topology/connector.ts"
import { InvalidRedisOptions } from "./RedisConfig.ts"
import { ConnectionClosed, ConnectionTimeout, type RedisError } from "./RedisError.ts"
import { RedisService, type RedisServiceShape } from "./RedisService.ts"

export type { StreamEntry, StreamRead } from "./internal/streamReply.ts"

/**
 * Options of `RedisBlocking.layerWith`.
 *
 * @since 0.2.0
 * @category models
 */
export interface RedisBlockingOptions {
  /**
   * At most this many dedicated connections (default 10): one per blocking call in flight. A call that finds them all
   * busy waits at most `acquireTimeout`, then fails with `ConnectionTimeout` (phase "acquire"), nothing sent.
   */
  readonly maxConnections?: number | undefined
  /** An idle connection is closed after this long (default 60 seconds). */
  readonly idleTimeToLive?: Duration.Input | undefined
}

/**
 * The end of a list.
 *
 * @since 0.2.0
 * @category models
 */
export type Side = "LEFT" | "RIGHT"

/**
 * A member of a sorted set popped from `key`.
 *
 * @since 0.2.0
 * @category models
 */
export interface PoppedMember {
  readonly key: string
  readonly member: string
  readonly score: number
}

/**
 * The service shape. Every timeout is a `Duration.Input`; zero blocks until answered. The deadline of a call is its
 * timeout plus `commandTimeout` (none for zero). Keys are given and returned without `keyPrefix`.
 *
 * @since 0.2.0
 * @category models
 */
export interface RedisBlockingShape {
  /** BLPOP: the first element of the first non-empty list, with its key; `None` when the timeout ran out. */
  readonly blpop: (
    keys: ReadonlyArray<string>,
    timeout: Duration.Input
  ) => Effect.Effect<Option.Option<{ readonly key: string; readonly value: string }>, RedisError>
  /** BRPOP: as `blpop`, from the tail. */
  readonly brpop: (
    keys: ReadonlyArray<string>,
    timeout: Duration.Input
  ) => Effect.Effect<Option.Option<{ readonly key: string; readonly value: string }>, RedisError>
  /**
   * BLMOVE: moves an element from `source` to `destination` and returns it. Prefer it to a pop for at-least-once:
   * the element stays in `destination` (a processing list) whatever happens to the reply.
   */
  readonly blmove: (
    source: string,
    destination: string,
    from: Side,
    to: Side,
    timeout: Duration.Input
  ) => Effect.Effect<Option.Option<string>, RedisError>
  /** BRPOPLPUSH (deprecated by Redis in favour of BLMOVE RIGHT LEFT). */
  readonly brpoplpush: (
    source: string,
    destination: string,
    timeout: Duration.Input
  ) => Effect.Effect<Option.Option<string>, RedisError>
  /** BLMPOP: up to `count` (default 1) elements from the first non-empty list. */
  readonly blmpop: (
    keys: ReadonlyArray<string>,
    from: Side,
    timeout: Duration.Input,
    options?: { readonly count?: number | undefined }
  ) => Effect.Effect<Option.Option<{ readonly key: string; readonly values: ReadonlyArray<string> }>, RedisError>
  /** BZPOPMIN: the member with the lowest score of the first non-empty sorted set. */
  readonly bzpopmin: (
    keys: ReadonlyArray<string>,
    timeout: Duration.Input
  ) => Effect.Effect<Option.Option<PoppedMember>, RedisError>
  /** BZPOPMAX: the member with the highest score. */
  readonly bzpopmax: (
    keys: ReadonlyArray<string>,
    timeout: Duration.Input
  ) => Effect.Effect<Option.Option<PoppedMember>, RedisError>
  /** BZMPOP: up to `count` (default 1) members with the lowest (MIN) or highest (MAX) scores. */
  readonly bzmpop: (
    keys: ReadonlyArray<string>,
    which: "MIN" | "MAX",
    timeout: Duration.Input,
    options?: { readonly count?: number | undefined }
  ) => Effect.Effect<
    Option.Option<{ readonly key: string; readonly members: ReadonlyArray<{ member: string; score: number }> }>,
    RedisError
  >
  /** XREAD BLOCK: entries after each stream's id (`$` for new ones only); `None` when the timeout ran out. */
  readonly xread: (
    streams: ReadonlyArray<{ readonly stream: string; readonly id: string }>,
    timeout: Duration.Input,
    options?: { readonly count?: number | undefined }
  ) => Effect.Effect<Option.Option<ReadonlyArray<StreamRead>>, RedisError>
  /**
   * XREADGROUP BLOCK: entries for a consumer of a group (`>` for never-delivered ones, an id for the consumer's own
   * pending ones, which never blocks). For a consumer loop with acknowledgements, claims and dead letters, see
   * `RedisStream.consume`.
   */
  readonly xreadgroup: (
    group: string,
    consumer: string,
    streams: ReadonlyArray<{ readonly stream: string; readonly id: string }>,
    timeout: Duration.Input,
    options?: { readonly count?: number | undefined; readonly noAck?: boolean | undefined }
  ) => Effect.Effect<Option.Option<ReadonlyArray<StreamRead>>, RedisError>
  /**
   * Runs any command on a dedicated connection, with a deadline of `commandTimeout` plus `blockFor` (none for zero).
   * Commands that would change the connection's state for its next user (MULTI, SELECT, SUBSCRIBE, ...) are refused.
   */
  readonly run: <A>(command: Command<A>, blockFor: Duration.Input) => Effect.Effect<A, RedisError>
  /** The pool's connections now: idle, in use, callers waiting, bounds. */
  readonly stats: Effect.Effect<Pool.Stats>
}

/**
 * Blocking commands on a bounded pool of dedicated connections.
 *
 * @since 0.2.0
 * @category services
 */
export class RedisBlocking extends Context.Service<RedisBlocking, RedisBlockingShape>()(
  "effect-redis-resilience/RedisBlocking"
) {
  /** At most 10 dedicated connections, closed after 60 s idle, on the `RedisService` in the context. */
  static readonly layer: Layer.Layer<RedisBlocking, never, RedisService> = Layer.effect(
    RedisBlocking,
    RedisService.use((redis) => make(redis))
  )

  /** Like `layer`, with the pool's bounds. An invalid bound fails the layer with `InvalidRedisOptions`. */
  static readonly layerWith = (
    options: RedisBlockingOptions
  ): Layer.Layer<RedisBlocking, InvalidRedisOptions, RedisService> =>
    Layer.effect(
      RedisBlocking,
      RedisService.use((redis) => Effect.flatMap(validateOptions(options), (valid) => make(redis, valid)))
    )
}

const validateOptions = (options: RedisBlockingOptions): Effect.Effect<RedisBlockingOptions, InvalidRedisOptions> => {
  const max = options.maxConnections
  if (max !== undefined && !(Number.isSafeInteger(max) && max > 0)) {
    return Effect.fail(
      new InvalidRedisOptions({ field: "maxConnections", message: "maxConnections must be a positive integer" })
    )
  }
  const ttl = options.idleTimeToLive === undefined ? undefined : Duration.fromInput(options.idleTimeToLive)
  if (ttl !== undefined && (Option.isNone(ttl) || Duration.isNegative(ttl.value))) {
    return Effect.fail(
      new InvalidRedisOptions({ field: "idleTimeToLive", message: "idleTimeToLive must be a duration of zero or more" })
    )
  }
  return Effect.succeed(options)
}

/**
 * Builds the service in the current scope: closing it destroys every dedicated connection (commands in flight fail at
 * once) and shuts the pool down.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(redis: RedisServiceShape, options: RedisBlockingOptions = {}) {
  const config = redis.config
  const max = options.maxConnections ?? 10
  const opened = new Set<Dedicated.Dedicated>()
  const pool = yield* Pool.makeWithTTL({
    acquire: Effect.acquireRelease(
      Effect.tap(Dedicated.open(redis, "blocking"), (connection) => Effect.sync(() => opened.add(connection))),
      (connection) => Effect.andThen(Effect.sync(() => opened.delete(connection)), connection.close)
    ),
    min: 0,
    max,
    concurrency: 1,
    timeToLive: options.idleTimeToLive ?? Duration.seconds(60),
    timeToLiveStrategy: "usage"
  })
  // Runs before the pool's own shutdown, which waits for the connections lent out: destroying them first fails what
  // is in flight on them at once, so that closing the layer never waits for a BLPOP 0.
  yield* Effect.addFinalizer(() => Effect.forEach(opened, (connection) => connection.close, { discard: true }))

  // Either every connection is in use, or a new one could not be opened in time (Redis unreachable).
  const notReady = (command: string) =>
    Effect.flatMap(Pool.stats(pool), (stats) =>
      Effect.fail(
        new ConnectionTimeout({
          message: `No dedicated connection was ready within ${
            Duration.format(config.acquireTimeout)
          } (${stats.used} of at most ${max} in use); ${command} was not sent`,
          phase: "acquire",
          timeout: config.acquireTimeout,
          command
        })
      ))

  // A connection lost while idle in the pool (a restart, a reset) is dropped and another taken: its next caller
  // should not fail for it. Bounded: connections lost one after the other mean Redis is failing now.
  const borrow = (command: string): Effect.Effect<Dedicated.Dedicated, RedisError, Scope.Scope> =>
    Effect.gen(function*() {
      for (let tries = 0; tries < 3; tries++) {
        const connection = yield* Pool.get(pool)
        if (connection.usable()) return connection
        yield* Pool.invalidate(pool, connection)
      }
      return yield* Effect.fail(
        new ConnectionClosed({ message: `Dedicated connections keep being lost; ${command} was not sent`, sent: false })
      )
    })

  // One call on one borrowed connection. A connection that was lost, timed out or interrupted is not returned.
  const runOn = <A>(command: Command<A>, block: Duration.Duration): Effect.Effect<A, RedisError> =>
    Effect.scoped(Effect.gen(function*() {
      yield* Dedicated.admit(redis, command.name)
      const connection = yield* borrow(command.name).pipe(
        Effect.timeoutOrElse({ duration: config.acquireTimeout, orElse: () => notReady(command.name) })
      )
      yield* Effect.addFinalizer(() => connection.usable() ? Effect.void : Pool.invalidate(pool, connection))
      // Traced and counted by the connection (client `<name>:blocking`), as every dedicated connection's commands.
      return yield* connection.send(command, block)
    }))

  // Keys route by hash slot (Cluster): one blocking command's keys must share a slot.
  const isCluster = connectorFor(config).slotted
  const execute = <A>(command: Command<A>, block: Duration.Duration): Effect.Effect<A, RedisError> => {
    if (command.invalid !== undefined) return Effect.fail(command.invalid)
    const refused = refuse(command.name, command.args)
    // Blocking commands are what this service is for; the rest of the shared connection's refusals hold here too.
    if (refused !== undefined && !refused.useInstead.startsWith("RedisBlocking")) return Effect.fail(refused)
    const spans = isCluster ? crossSlot([command], config.keyPrefix) : undefined
    return spans !== undefined ? Effect.fail(spans) : runOn(command, block)
  }

  const prefix = config.keyPrefix
  // A block of 0 ("until answered") runs as a loop of bounded blocks (see Dedicated.untilAnswered).
  const slice = Dedicated.blockSlice(config.heartbeat)
  const blocking = <A>(name: string, timeout: Duration.Input, build: (block: Duration.Duration) => Command<A>) =>
    Effect.flatMap(Dedicated.blockTime(name, timeout), (block) =>
      Duration.isZero(block)
        ? Dedicated.untilAnswered(slice, (bounded) => execute(build(bounded), bounded))
        : execute(build(block), block))

  return RedisBlocking.of({
    blpop: (keys, timeout) => blocking("BLPOP", timeout, (block) => Commands.pop("BLPOP", keys, block, prefix)),
    brpop: (keys, timeout) => blocking("BRPOP", timeout, (block) => Commands.pop("BRPOP", keys, block, prefix)),
    blmove: (source, destination, from, to, timeout) =>
      blocking("BLMOVE", timeout, (block) => Commands.blmove(source, destination, from, to, block)),
    brpoplpush: (source, destination, timeout) =>
      blocking("BRPOPLPUSH", timeout, (block) => Commands.brpoplpush(source, destination, block)),
    blmpop: (keys, from, timeout, popOptions) =>
      blocking("BLMPOP", timeout, (block) => Commands.blmpop(keys, from, block, prefix, popOptions)),
    bzpopmin: (keys, timeout) =>
      blocking("BZPOPMIN", timeout, (block) => Commands.zpop("BZPOPMIN", keys, block, prefix)),
    bzpopmax: (keys, timeout) =>
      blocking("BZPOPMAX", timeout, (block) => Commands.zpop("BZPOPMAX", keys, block, prefix)),
    bzmpop: (keys, which, timeout, popOptions) =>
      blocking("BZMPOP", timeout, (block) => Commands.bzmpop(keys, which, block, prefix, popOptions)),
    xread: (streams, timeout, readOptions) =>
      blocking("XREAD", timeout, (block) => Commands.read("XREAD", [], streams, block, prefix, readOptions)),
    xreadgroup: (group, consumer, streams, timeout, readOptions) =>
      blocking(
        "XREADGROUP",
        timeout,
        (block) => Commands.read("XREADGROUP", ["GROUP", group, consumer], streams, block, prefix, readOptions)
      ),
    run: (command, blockFor) =>
      Effect.flatMap(Dedicated.blockTime(command.name, blockFor, "blockFor"), (block) => execute(command, block)),
    stats: Pool.stats(pool)
  })
})
