/**
 * The `RedisService`: typed Redis operations over one shared, self-healing connection.
 *
 * Every command passes the circuit breaker, waits at most `acquireTimeout` for a ready connection, runs under
 * `commandTimeout`, is counted and timed, and fails with a tagged `RedisError`. Idempotent commands are retried once
 * on the next connection when the connection broke under them; non-idempotent ones never are, and say whether they
 * may have been applied (`sent`).
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import { RedisService, getKey, setKey } from "effect-redis-resilience"
 *
 * const program = Effect.gen(function*() {
 *   yield* setKey("greeting", "hello", { ttl: "1 minute" })
 *   return yield* getKey("greeting") // Option.some("hello")
 * })
 *
 * Effect.runPromise(program.pipe(Effect.provide(RedisService.layer({ url: "redis://127.0.0.1:6379" }))))
 * ```
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type * as Health from "./Health.ts"
import type { Command } from "./internal/command.ts"
import * as Core from "./internal/core.ts"
import * as HealthSnapshot from "./internal/healthSnapshot.ts"
import * as Operations from "./internal/operations.ts"
import type { ScanKeyOptions, ScanOptions } from "./internal/scan.ts"
import * as Scan from "./internal/scan.ts"
import * as Traits from "./internal/commands/traits.ts"
import * as Shortcut from "./internal/shortcuts.ts"
import type { Results, Successes } from "./internal/transaction.ts"
import * as Transaction from "./internal/transaction.ts"
import type { WatchTransaction } from "./internal/watch.ts"
import * as Watch from "./internal/watch.ts"
import * as RedisConfig from "./RedisConfig.ts"
import type { ConnectionTimeout, RedisError } from "./RedisError.ts"

export type { ScanKeyOptions, ScanOptions } from "./internal/scan.ts"
export type { Results, Successes } from "./internal/transaction.ts"
export type { WatchTransaction } from "./internal/watch.ts"

/**
 * Options of `set`.
 *
 * @since 0.1.0
 * @category models
 */
export interface SetOptions {
  /** Expire the key after this long (SET ... PX). */
  readonly ttl?: Duration.Input | undefined
  /** NX: only if the key does not exist; XX: only if it does. */
  readonly mode?: "NX" | "XX" | undefined
}

/**
 * Options of `command`.
 *
 * @since 0.1.0
 * @category models
 */
export interface CommandOptions {
  /**
   * Whether running the command twice has the same effect as running it once. Idempotent commands are retried once
   * on the next connection when the connection broke under them. Default `false`: the command is never resent.
   */
  readonly idempotent?: boolean | undefined
}

/**
 * Options of `run`.
 *
 * @since 0.2.0
 * @category models
 */
export interface RunOptions {
  /**
   * Apply a non-idempotent command (INCR, LPUSH, XADD, ...) at most once per key: it runs in a Lua wrapper that
   * records its reply with it, so after a lost connection it is retried once on the next connection and a retry of
   * an applied command returns the recorded reply. The record is kept `idempotencyTtl` (default 24 hours).
   */
  readonly idempotencyKey?: string | undefined
  readonly idempotencyTtl?: Duration.Input | undefined
}

/**
 * An argument of a raw command.
 *
 * @since 0.1.0
 * @category models
 */
export type CommandArgument = string | number | Buffer

/**
 * The service shape.
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisServiceShape extends Shortcut.Shortcuts {
  readonly get: (key: string) => Effect.Effect<Option.Option<string>, RedisError>
  /** Returns true when the value was written (false when NX/XX prevented it). */
  readonly set: (key: string, value: string, options?: SetOptions) => Effect.Effect<boolean, RedisError>
  readonly mget: (keys: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<Option.Option<string>>, RedisError>
  /** Returns the number of keys removed. Takes keys or arrays of keys (`del(keys)` for very many keys). */
  readonly del: (...keys: ReadonlyArray<string | ReadonlyArray<string>>) => Effect.Effect<number, RedisError>
  /** INCR, or INCRBY when `by` is given. Not idempotent: never resent after a connection failure. */
  readonly incr: (key: string, by?: number) => Effect.Effect<number, RedisError>
  /** Returns true when the timeout was set (false when the key does not exist). */
  readonly expire: (key: string, ttl: Duration.Input) => Effect.Effect<boolean, RedisError>
  /** Returns the number of subscribers that received the message. Not idempotent. */
  readonly publish: (channel: string, message: string) => Effect.Effect<number, RedisError>
  /** Any command, e.g. `command("HSET", ["h", "f", "v"])`. Not idempotent unless told so. */
  readonly command: <A = unknown>(
    name: string,
    args: ReadonlyArray<CommandArgument>,
    options?: CommandOptions
  ) => Effect.Effect<A, RedisError>
  /**
   * Runs one typed command (`Command.hgetall(key)`, ...) with everything the layer does: the breaker,
   * `acquireTimeout`, `commandTimeout`, metrics, a span, and one retry after a lost connection when the command is
   * idempotent.
   */
  readonly run: <A>(command: Command<A>, options?: RunOptions) => Effect.Effect<A, RedisError>
  /**
   * Sends the commands in one write and one round trip; a `Result` per command (one WRONGTYPE does not fail the
   * others). Fails as a whole only when nothing could be sent (circuit open, no connection, a Cluster batch across
   * slots). After a lost connection only the unanswered idempotent commands are retried, one by one; the others fail
   * with `sent` telling the truth. Never resent as a block.
   */
  readonly batch: <const Cs extends ReadonlyArray<Command<any>>>(commands: Cs) => Effect.Effect<Results<Cs>, RedisError>
  /**
   * MULTI ... EXEC: the commands run atomically; the typed replies in order. Never resent: a loss before it was
   * written fails with `sent: false` (safe to retry), after with `sent: true` (applied entirely or not at all).
   */
  readonly multi: <const Cs extends ReadonlyArray<Command<any>>>(
    commands: Cs
  ) => Effect.Effect<Successes<Cs>, RedisError>
  /**
   * An optimistic transaction: WATCH `keys` on a pinned connection, run `body` (its `run` reads through the pinned
   * connection), then MULTI/EXEC the commands it returns. A change to a watched key meanwhile fails with
   * `TransactionAborted` (nothing applied): retry it, e.g. `Effect.retry({ while: (e) => e._tag ===
   * "TransactionAborted", times: 5 })`.
   */
  readonly watch: <const Cs extends ReadonlyArray<Command<any>>, E, R>(
    keys: ReadonlyArray<string>,
    body: (tx: WatchTransaction) => Effect.Effect<Cs, E, R>
  ) => Effect.Effect<Successes<Cs>, RedisError | E, R>
  /** Every key (SCAN, one page per round trip), `keyPrefix` added to MATCH and stripped; every master on a Cluster. */
  readonly scan: (options?: ScanOptions) => Stream.Stream<string, RedisError>
  /** The fields and values of a hash (HSCAN). */
  readonly hscan: (
    key: string,
    options?: ScanKeyOptions
  ) => Stream.Stream<{ readonly field: string; readonly value: string }, RedisError>
  /** The members of a set (SSCAN). */
  readonly sscan: (key: string, options?: ScanKeyOptions) => Stream.Stream<string, RedisError>
  /** The members and scores of a sorted set (ZSCAN). */
  readonly zscan: (
    key: string,
    options?: ScanKeyOptions
  ) => Stream.Stream<{ readonly member: string; readonly score: number }, RedisError>
  /** Reads a key as bytes (no UTF-8 decoding: any value round-trips byte for byte). */
  readonly getBuffer: (key: string) => Effect.Effect<Option.Option<Buffer>, RedisError>
  readonly health: Effect.Effect<Health.RedisHealth>
  /** The current connection state, then every change. */
  readonly states: Stream.Stream<Health.ConnectionState>
  /** The current circuit status, then every change. */
  readonly circuit: Stream.Stream<Health.CircuitStatus>
  /** The resolved configuration (the password stays `Redacted`). */
  readonly config: RedisConfig.ResolvedRedisConfig
}

/**
 * The Redis service. Programs depend on this tag; `layer` and `layerConfig` provide it.
 *
 * @since 0.1.0
 * @category services
 */
export class RedisService extends Context.Service<RedisService, RedisServiceShape>()(
  "effect-redis-resilience/RedisService"
) {
  /**
   * Builds the service from options (see `RedisOptions` for every option and its default).
   *
   * **Gotchas**
   *
   * - The layer builds even when Redis is unreachable (unless `awaitReady: true`): the app starts, commands fail
   *   with typed errors until Redis is there, and the connection keeps trying in the background.
   * - Invalid options fail the layer with `InvalidRedisOptions` naming the field.
   */
  static readonly layer = (
    options?: RedisConfig.RedisOptions
  ): Layer.Layer<RedisService, RedisConfig.InvalidRedisOptions | ConnectionTimeout> =>
    Layer.effect(RedisService, make(options))

  /**
   * Builds the service from `Config`: by default `REDIS_URL` and the `REDIS_*` variables (see `RedisConfig.config`).
   */
  static readonly layerConfig = (
    options: Config.Wrap<RedisConfig.RedisOptions> = RedisConfig.config
  ): Layer.Layer<RedisService, RedisConfig.InvalidRedisOptions | ConnectionTimeout | Config.ConfigError> =>
    Layer.effect(RedisService, Effect.flatMap(Config.unwrap(options), make))
}

/**
 * Whether a command is safe to run twice (reads, SET without GET or NX, DEL, EXPIRE without NX or LT, HSET, SADD,
 * ...); INCR, LPUSH, PUBLISH, EVAL and anything unknown are not. It reads the same table the typed commands take their
 * flag from (`Command.<name>(...).idempotent`). `command` does not guess (it is never retried unless told), so pass
 * `{ idempotent: isIdempotent(name, args) }` to opt in by this table.
 *
 * @since 0.1.0
 * @category commands
 */
export const isIdempotent: (name: string, args?: ReadonlyArray<CommandArgument>) => boolean = Traits.isIdempotent

/**
 * Builds the service in the current scope: the connection, the heartbeat, the breaker and their fibers live until the
 * scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options?: RedisConfig.RedisOptions
) => Effect.Effect<RedisServiceShape, RedisConfig.InvalidRedisOptions | ConnectionTimeout, Scope.Scope> = Effect
  .fnUntraced(function*(options?: RedisConfig.RedisOptions) {
    const config = yield* RedisConfig.resolve(options)
    const path = yield* Core.makeCommandPath(config)
    const { breaker, connection, core, execute } = path
    const operations = Operations.make(config, execute)

    // Keys route to masters by hash slot (Cluster): one transaction's keys must share a slot, SCAN walks every master.
    const isCluster = connection.connector.slotted
    const batch = <const Cs extends ReadonlyArray<Command<any>>>(commands: Cs) =>
      Transaction.batch(commands, { execute, isCluster, keyPrefix: config.keyPrefix })
    const multi = <const Cs extends ReadonlyArray<Command<any>>>(commands: Cs) =>
      Transaction.multi(commands, { execute, isCluster, keyPrefix: config.keyPrefix })

    // The pinned connection of a `watch`: opened for the call, reporting to the breaker, closed with the call.
    const pinned = Effect.gen(function*() {
      yield* breaker.admit("WATCH")
      const own = yield* core.open("watch")
      return yield* own.acquire("WATCH")
    })
    const watch = <const Cs extends ReadonlyArray<Command<any>>, E, R>(
      keys: ReadonlyArray<string>,
      body: (tx: WatchTransaction) => Effect.Effect<Cs, E, R>
    ) =>
      Watch.watch(pinned, keys, body, {
        keyPrefix: config.keyPrefix,
        cluster: isCluster,
        commandTimeout: config.commandTimeout
      })

    const acquireClient = isCluster
      ? Effect.map(connection.acquire("SCAN"), (live) => live.client)
      : undefined

    return Core.attach(
      RedisService.of({
        ...Shortcut.make(operations.run),
        ...operations,
        batch,
        multi,
        watch,
        scan: (scanOptions?: ScanOptions) => Scan.scan(execute, config.keyPrefix, acquireClient, scanOptions),
        hscan: (key: string, scanOptions?: ScanKeyOptions) => Scan.hscan(execute, key, scanOptions),
        sscan: (key: string, scanOptions?: ScanKeyOptions) => Scan.sscan(execute, key, scanOptions),
        zscan: (key: string, scanOptions?: ScanKeyOptions) => Scan.zscan(execute, key, scanOptions),
        health: HealthSnapshot.snapshot(path),
        states: connection.states,
        circuit: breaker.changes,
        config
      }),
      core
    )
  })

/**
 * Reads a key. Requires `RedisService`.
 *
 * @since 0.1.0
 * @category accessors
 */
export const getKey = (key: string): Effect.Effect<Option.Option<string>, RedisError, RedisService> =>
  RedisService.use((redis) => redis.get(key))

/**
 * Writes a key. Requires `RedisService`.
 *
 * @since 0.1.0
 * @category accessors
 */
export const setKey = (
  key: string,
  value: string,
  options?: SetOptions
): Effect.Effect<boolean, RedisError, RedisService> => RedisService.use((redis) => redis.set(key, value, options))

/**
 * Reads several keys at once (MGET). Requires `RedisService`.
 *
 * @since 0.1.0
 * @category accessors
 */
export const getMultipleKeys = (
  keys: ReadonlyArray<string>
): Effect.Effect<ReadonlyArray<Option.Option<string>>, RedisError, RedisService> =>
  RedisService.use((redis) => redis.mget(keys))
