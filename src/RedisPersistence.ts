/**
 * Provides effect's `Redis` service (`effect/persistence/Redis`) from this library's connection, so that effect's
 * `RateLimiter`, `CircuitBreaker` store, `PersistedQueue` and `Persistence` run on the resilient command path: the
 * circuit breaker, `acquireTimeout`, `commandTimeout`, reconnects and typed errors apply to them too.
 *
 * It is built with effect's own `Redis.make`: `send` goes through `RedisService.command`, `eval` loads scripts once
 * and runs them with EVALSHA (reloading them after NOSCRIPT, e.g. after a server restart), `subscribe` goes through a
 * `RedisSubscriber`, and `reserve` hands out dedicated connections opened with the same options and policies.
 *
 * **Example**
 *
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { RateLimiter } from "effect/persistence"
 * import { RedisPersistence, RedisService } from "effect-redis-resilience"
 *
 * const RateLimiterLive = RateLimiter.layer.pipe(
 *   Layer.provide(RateLimiter.layerStoreRedis()),
 *   Layer.provide(RedisPersistence.layer),
 *   Layer.provide(RedisService.layer({ url: "redis://127.0.0.1:6379" }))
 * )
 *
 * const program = Effect.gen(function*() {
 *   const limiter = yield* RateLimiter.RateLimiter
 *   return yield* limiter.consume({ key: "api:42", limit: 10, window: "1 minute" })
 * }).pipe(Effect.provide(RateLimiterLive))
 * ```
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redis from "effect/persistence/Redis"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Channels from "./RedisChannel.ts"
import * as Command from "./internal/command.ts"
import * as Dedicated from "./internal/dedicated.ts"
import { ConnectionClosed, isRedisError, type RedisError } from "./RedisError.ts"
import { isIdempotent, RedisService } from "./RedisService.ts"
import * as RedisSubscriber from "./RedisSubscriber.ts"

/**
 * Options of `layerWith` / `make`.
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisPersistenceOptions {
  /** The pool of dedicated connections behind `reserve` (effect's defaults: at most 10, none kept idle, 60 s idle). */
  readonly pool?: Redis.PoolOptions | undefined
  /**
   * The subscriber behind `subscribe`. Default: the `RedisSubscriber` in the context when there is one, else one of
   * its own (its connection opens on the first subscription).
   */
  readonly subscriber?: RedisSubscriber.RedisSubscriber["Service"] | undefined
}

/**
 * Wraps one of this library's errors in effect's `RedisError`; the original, tagged, is its `cause`.
 *
 * @since 0.1.0
 * @category errors
 */
export const toEffectError = (error: RedisError | Channels.InvalidChannelName): Redis.RedisError =>
  new Redis.RedisError({ cause: error })

/**
 * Whether `send` may retry a command once after a lost connection: what `RedisService.isIdempotent` says, plus
 * `SCRIPT LOAD` (what `eval` sends). EVALSHA never is: effect's scripts (rate limits, queues) are not idempotent.
 *
 * @since 0.1.0
 * @category commands
 */
export const isIdempotentCommand = (command: string, args: ReadonlyArray<string>): boolean =>
  isIdempotent(command, args) || (command.toUpperCase() === "SCRIPT" && args[0]?.toUpperCase() === "LOAD")

const lastArgument = (args: ReadonlyArray<string>) => args[args.length - 1]

/**
 * How long a blocking command may block, from its arguments: `undefined` for a command that does not block, `0` for
 * one that blocks until it is answered (`BLPOP key 0`, `XREAD BLOCK 0`, `WAIT n 0`).
 *
 * @since 0.1.0
 * @category commands
 */
export const blockingTime = (command: string, args: ReadonlyArray<string>): Duration.Duration | undefined => {
  const seconds = (value: string | undefined) => Duration.millis(Math.max(0, Number(value ?? 0) * 1000) || 0)
  const millis = (value: string | undefined) => Duration.millis(Math.max(0, Number(value ?? 0)) || 0)
  switch (command.toUpperCase()) {
    case "BLPOP":
    case "BRPOP":
    case "BRPOPLPUSH":
    case "BLMOVE":
    case "BZPOPMIN":
    case "BZPOPMAX":
      return seconds(lastArgument(args))
    case "BLMPOP":
    case "BZMPOP":
      return seconds(args[0])
    case "XREAD":
    case "XREADGROUP": {
      const index = args.findIndex((arg) => arg.toUpperCase() === "BLOCK")
      return index === -1 ? undefined : millis(args[index + 1])
    }
    case "WAIT":
      return millis(args[1])
    case "WAITAOF":
      return millis(args[2])
    default:
      return undefined
  }
}

/**
 * Builds effect's `Redis` service on the `RedisService` in the context, in the current scope.
 *
 * **Details**
 *
 * - `send` runs through `RedisService.command`: it fails fast with `CircuitOpen` while the breaker is open, waits at
 *   most `acquireTimeout` for a connection and `commandTimeout` for a reply, and is retried once after a lost
 *   connection only when idempotent (see `isIdempotentCommand`). Errors are effect's `RedisError` whose `cause` is
 *   this library's tagged error.
 * - `subscribe` returns once Redis has acknowledged the channel's SUBSCRIBE (or after `acquireTimeout` if the
 *   subscriber cannot connect; it subscribes as soon as it can). Subscriptions survive reconnects; what was
 *   published meanwhile is lost.
 * - `reserve` opens a dedicated connection with the same options, connect timeout and reconnect schedule (it waits at
 *   most `acquireTimeout` for it, and fails fast with `CircuitOpen` while the breaker is open). Commands on it run
 *   under `commandTimeout`, plus the blocking time of a blocking command (none for a block of 0). A reserved
 *   connection is pinned: once it was lost, its commands fail with `ConnectionClosed` instead of running on a new
 *   connection where MULTI, WATCH or SELECT would silently be gone; reserve again. No heartbeat runs on it, since a
 *   blocking command would hold the PING. Its failed connection attempts and timeouts count towards the layer's
 *   breaker, and an interrupted command destroys it. It is the dedicated connection `RedisBlocking` pools.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(options: RedisPersistenceOptions = {}) {
  const redis = yield* RedisService
  const layerScope = yield* Effect.scope
  const config = redis.config
  const fromContext = yield* Effect.serviceOption(RedisSubscriber.RedisSubscriber)
  const subscriber = options.subscriber ??
    (Option.isSome(fromContext) ? fromContext.value : yield* RedisSubscriber.make(redis))

  const send = <A = unknown>(command: string, ...args: ReadonlyArray<string>): Effect.Effect<A, Redis.RedisError> =>
    Effect.mapError(redis.command<A>(command, args, { idempotent: isIdempotentCommand(command, args) }), toEffectError)

  // Waits (bounded by acquireTimeout) until Redis has acknowledged the channel's SUBSCRIBE on a ready connection, so
  // that a message published after `subscribe` returns is received; or until the listener ended (refused, closed).
  const awaitSubscribed = (channel: string, listener: Fiber.Fiber<unknown, unknown>) =>
    Effect.raceFirst(subscriber.awaitSubscribed(channel), Effect.asVoid(Fiber.await(listener))).pipe(
      Effect.timeoutOrElse({ duration: config.acquireTimeout, orElse: () => Effect.void })
    )

  const subscribe = Effect.fnUntraced(function*(channel: string, onMessage: (message: Redis.RedisMessage) => void) {
    const invalid = Channels.validateChannelName(channel)
    if (invalid !== undefined) return yield* Effect.fail(toEffectError(invalid))
    const listener = yield* subscriber.subscribe(channel).pipe(
      Stream.runForEach((message) => Effect.sync(() => onMessage({ channel, message }))),
      // The subscription only ends when the subscriber is closed: say so rather than go quiet.
      Effect.andThen(Effect.fail(new ConnectionClosed({ message: "The Redis subscriber was closed", sent: false }))),
      Effect.mapError(toEffectError),
      Effect.forkScoped
    )
    yield* awaitSubscribed(channel, listener)
    return Fiber.join(listener)
  })

  // One dedicated connection (internal/dedicated.ts), in a scope of its own: closed by `close`, or with the layer.
  const connect = Effect.uninterruptibleMask((restore) =>
    Effect.gen(function*() {
      const scope = yield* Scope.fork(layerScope, "sequential")
      const connection = yield* restore(Scope.provide(Dedicated.open(redis, "reserved"), scope)).pipe(
        Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause))),
        Effect.mapError(toEffectError)
      )
      const sendReserved = <A = unknown>(command: string, ...args: ReadonlyArray<string>) =>
        Effect.mapError(
          connection.send(Command.make<A>({ name: command, args }), blockingTime(command, args)),
          toEffectError
        )
      return { send: sendReserved, close: Effect.andThen(connection.close, Scope.close(scope, Exit.void)) }
    })
  )

  return yield* Redis.make({ send, subscribe, connect, pool: options.pool })
})

/**
 * effect's `Redis` service on the `RedisService` in the context (see `make` for what each operation does).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Redis.Redis, never, RedisService> = Layer.effect(Redis.Redis, make())

/**
 * Like `layer`, with options (the pool behind `reserve`, the subscriber).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWith = (options: RedisPersistenceOptions): Layer.Layer<Redis.Redis, never, RedisService> =>
  Layer.effect(Redis.Redis, make(options))

/**
 * The cause of an effect `RedisError` when it is one of this library's errors (to `catchTag` on it).
 *
 * @since 0.1.0
 * @category errors
 */
export const causeOf = (error: Redis.RedisError): RedisError | Channels.InvalidChannelName | undefined =>
  isRedisError(error.cause) || error.cause instanceof Channels.InvalidChannelName ? error.cause : undefined
