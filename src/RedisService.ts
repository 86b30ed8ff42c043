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
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import * as CircuitBreaker from "./CircuitBreaker.ts"
import * as Connection from "./Connection.ts"
import * as Heartbeat from "./Heartbeat.ts"
import type { Command } from "./internal/command.ts"
import { buffer, integer, optional, sendOn } from "./internal/command.ts"
import { refuse } from "./internal/guard.ts"
import { withIdempotencyKey } from "./internal/idempotency.ts"
import * as Scan from "./internal/scan.ts"
import type { ScanKeyOptions, ScanOptions } from "./internal/scan.ts"
import * as Transaction from "./internal/transaction.ts"
import type { Results, Successes } from "./internal/transaction.ts"
import * as Watch from "./internal/watch.ts"
import type { WatchTransaction } from "./internal/watch.ts"
import * as Metrics from "./Metrics.ts"
import * as RedisConfig from "./RedisConfig.ts"
import * as Watchdog from "./Watchdog.ts"
import {
  classify,
  CommandTimeout,
  ConnectionTimeout,
  isConnectionLost,
  isRedisError,
  isTransient,
  isWrongRole,
  type RedisError
} from "./RedisError.ts"

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
export interface RedisServiceShape {
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
  readonly health: Effect.Effect<Metrics.RedisHealth>
  /** The current connection state, then every change. */
  readonly states: Stream.Stream<Connection.ConnectionState>
  /** The current circuit status, then every change. */
  readonly circuit: Stream.Stream<CircuitBreaker.CircuitStatus>
  /** The resolved configuration (the password stays `Redacted`). */
  readonly config: RedisConfig.ResolvedRedisConfig
  /**
   * For companions that open connections of their own to the same Redis (`RedisSubscriber`, the reserved connections
   * of `RedisPersistence`): report their failures and recoveries to this layer's circuit breaker, so that one breaker
   * speaks for the server.
   */
  readonly breakerSignals: { readonly failure: Effect.Effect<void>; readonly success: Effect.Effect<void> }
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

const IDEMPOTENT_COMMANDS: ReadonlySet<string> = new Set([
  "GET",
  "MGET",
  "EXISTS",
  "TTL",
  "PTTL",
  "TYPE",
  "STRLEN",
  "GETRANGE",
  "HGET",
  "HMGET",
  "HGETALL",
  "HKEYS",
  "HVALS",
  "HLEN",
  "HEXISTS",
  "LRANGE",
  "LLEN",
  "LINDEX",
  "SMEMBERS",
  "SISMEMBER",
  "SCARD",
  "ZRANGE",
  "ZSCORE",
  "ZCARD",
  "ZRANK",
  "SCAN",
  "HSCAN",
  "SSCAN",
  "ZSCAN",
  "KEYS",
  "DBSIZE",
  "PING",
  "ECHO",
  "INFO",
  "XRANGE",
  "XREVRANGE",
  "XLEN",
  "SET",
  "MSET",
  "DEL",
  "UNLINK",
  "EXPIRE",
  "PEXPIRE",
  "EXPIREAT",
  "PEXPIREAT",
  "PERSIST",
  "HSET",
  "HDEL",
  "SADD",
  "SREM",
  "ZADD",
  "ZREM"
])

/**
 * Whether a command is safe to run twice (reads, SET without GET or NX, DEL, EXPIRE, HSET, SADD, ...); INCR, LPUSH,
 * PUBLISH, EVAL and anything unknown are not. The typed operations follow this; `command` does not guess (it is
 * never retried unless told), so pass `{ idempotent: isIdempotent(name, args) }` to opt in by this list.
 *
 * @since 0.1.0
 * @category commands
 */
export const isIdempotent = (name: string, args: ReadonlyArray<CommandArgument> = []): boolean => {
  const upper = name.toUpperCase()
  if (!IDEMPOTENT_COMMANDS.has(upper)) return false
  const hasFlag = (...flags: ReadonlyArray<string>) =>
    args.some((arg) => typeof arg === "string" && flags.includes(arg.toUpperCase()))
  // SET ... GET returns the old value, SET ... NX reports false on a retry of a write that was applied.
  if (upper === "SET") return !hasFlag("GET", "NX")
  // ZADD ... INCR increments the score.
  if (upper === "ZADD") return !hasFlag("INCR")
  return true
}

const isWritten = (reply: unknown): boolean => reply !== null
const integerReply = { DEL: integer("DEL"), INCR: integer("INCR"), INCRBY: integer("INCRBY") }
const optionalBuffer = optional(buffer("GET"))
const isOne = (reply: number): boolean => reply === 1

// Redis takes whole milliseconds; a sub-millisecond TTL rounds up rather than to 0 (which Redis rejects).
const ttlMillis = (ttl: Duration.Input): number => Math.ceil(Duration.toMillis(Duration.fromInputUnsafe(ttl)))

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

    const breaker = yield* CircuitBreaker.make(config.breaker, {
      onTransition: (state) => Metrics.recordCircuitState(CircuitBreaker.status(state))
    })
    const connection = yield* Connection.make(config, {
      onAttemptFailed: (error) =>
        Effect.andThen(
          breaker.onFailure,
          Metric.update(Metric.withAttributes(Metrics.connectFailures, { error: error._tag }), 1)
        ),
      onReady: () => Effect.andThen(breaker.onConnectionReady, Metric.update(Metrics.connectionsOpened, 1)),
      onLost: () => Effect.andThen(breaker.onFailure, Metric.update(Metrics.reconnects, 1)),
      onState: (state) => Metrics.recordConnectionState(Connection.status(state)),
      // Cluster: a node's lost connection counts once towards the breaker, however many commands it failed.
      onNodeLost: () => breaker.onFailure
    })
    const heartbeat = config.heartbeat === undefined
      ? undefined
      : yield* Heartbeat.make(connection, config.heartbeat, {
        onSuccess: (rtt) =>
          Effect.andThen(breaker.onSuccess, Metric.update(Metrics.heartbeatRtt, Duration.toSeconds(rtt))),
        onFailure: () => Effect.andThen(breaker.onFailure, Metric.update(Metrics.heartbeatFailures, 1)),
        // Cluster: a master that stops answering while the others answer is reconnected on its own.
        onNodeFailure: () => Metric.update(Metrics.heartbeatFailures, 1),
        onNodeMisses: connection.recoverNode
      })

    // The breaker's probe: a PING of its own on the next ready connection, never a user's command.
    const probeTimeout = config.heartbeat?.timeout ?? config.commandTimeout
    // A failed probe also replaces the connection: with the heartbeat off, nothing else would notice a silent socket.
    // On a Cluster the probe succeeds when any master answers (see `Heartbeat.probe`); when none does and the Cluster
    // is still up, the slot map is refreshed instead.
    yield* breaker.run(Effect.flatMap(
      connection.acquire("PING"),
      (live) =>
        Heartbeat.probe(live, probeTimeout).pipe(
          Effect.tapError((error) => isTransient(error) ? connection.lost(live, error) : Effect.void)
        )
    ))

    if (config.awaitReady) {
      yield* connection.states.pipe(
        Stream.filter((state) => state._tag === "Ready"),
        Stream.runHead,
        Effect.timeoutOrElse({
          duration: config.connectTimeout,
          orElse: () =>
            Effect.fail(
              new ConnectionTimeout({
                message: `awaitReady: Redis was not ready within ${Duration.format(config.connectTimeout)}`,
                phase: "connect",
                timeout: config.connectTimeout
              })
            )
        })
      )
    }

    const stats = yield* Metrics.makeCommandStats(config.connectionName ?? "default")
    const watchdog = yield* Watchdog.make(config.commandTimeout)
    const execute = makeExecutor(config, connection, breaker, stats, watchdog)

    const get = (key: string) => execute("GET", true, (client) => client.get(key), Option.fromNullishOr)

    const set = (key: string, value: string, setOptions?: SetOptions) =>
      Effect.suspend(() => {
        const args: Array<string | number> = [key, value]
        if (setOptions?.ttl !== undefined) args.push("PX", ttlMillis(setOptions.ttl))
        if (setOptions?.mode !== undefined) args.push(setOptions.mode)
        return execute(
          "SET",
          setOptions?.mode !== "NX",
          // The plain form takes ioredis' cheaper `set` path; options need the argument list.
          args.length === 2 ? (client) => client.set(key, value) : (client) => client.call("SET", args),
          isWritten
        )
      })

    const mget = (keys: ReadonlyArray<string>) =>
      keys.length === 0
        ? Effect.succeed([])
        : execute(
          "MGET",
          true,
          (client) => client.mget(keys as Array<string>),
          (values) => values.map(Option.fromNullishOr)
        )

    const del = (...keys: ReadonlyArray<string | ReadonlyArray<string>>) => {
      // Arrays are accepted (and flattened without spreading) so that a million keys do not overflow the stack.
      const all = keys.length === 1 && typeof keys[0] !== "string" ? keys[0]! : keys.flat()
      return all.length === 0
        ? Effect.succeed(0)
        : execute("DEL", true, (client) => client.call("DEL", all as Array<string>), integerReply.DEL)
    }

    // Never a wrong number: a reply beyond 2^53 fails with DecodeError.
    const incr = (key: string, by?: number) =>
      by === undefined
        ? execute("INCR", false, (client) => client.incr(key), integerReply.INCR)
        : execute("INCRBY", false, (client) => client.incrby(key, by), integerReply.INCRBY)

    const getBuffer = (key: string) =>
      execute("GET", true, (client) => client.getBuffer(key), optionalBuffer)

    const expire = (key: string, ttl: Duration.Input) =>
      Effect.suspend(() => {
        const millis = ttlMillis(ttl)
        return execute("PEXPIRE", true, (client) => client.pexpire(key, millis), isOne)
      })

    const publish = (channel: string, message: string) =>
      execute("PUBLISH", false, (client) => client.publish(channel, message))

    const command = <A = unknown>(
      name: string,
      args: ReadonlyArray<CommandArgument>,
      commandOptions?: CommandOptions
    ): Effect.Effect<A, RedisError> => {
      const refused = refuse(name, args)
      return refused !== undefined ? Effect.fail(refused) : execute(
        name.toUpperCase(),
        commandOptions?.idempotent ?? false,
        (client) => client.call(name, args as Array<CommandArgument>) as Promise<A>
      )
    }

    const runOne = <A>(command: Command<A>): Effect.Effect<A, RedisError> => {
      const refused = Transaction.rejection(command)
      return refused !== undefined
        ? Effect.fail(refused)
        : execute(command.name, command.idempotent, (client) => sendOn(client, command), command.decode)
    }
    const run = <A>(command: Command<A>, runOptions?: RunOptions): Effect.Effect<A, RedisError> =>
      runOptions?.idempotencyKey === undefined ? runOne(command) : runOne(withIdempotencyKey(
        command,
        runOptions.idempotencyKey,
        config.keyPrefix,
        runOptions.idempotencyTtl === undefined ? undefined : Duration.fromInputUnsafe(runOptions.idempotencyTtl)
      ))

    const isCluster = config.topology._tag === "Cluster"
    const batch = <const Cs extends ReadonlyArray<Command<any>>>(commands: Cs) =>
      Transaction.batch(commands, { execute, run: runOne, isCluster, keyPrefix: config.keyPrefix })
    const multi = <const Cs extends ReadonlyArray<Command<any>>>(commands: Cs) =>
      Transaction.multi(commands, { execute, isCluster, keyPrefix: config.keyPrefix })

    // The pinned connection of a `watch`: opened for the call, reporting to the breaker, closed with the call.
    const pinned = Effect.gen(function*() {
      yield* breaker.admit("WATCH")
      const own = yield* Connection.make(config, { onAttemptFailed: () => breaker.onFailure }, {
        clientOptions: {
          connectionName: config.connectionName === undefined ? "watch" : `${config.connectionName}:watch`
        }
      })
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
    const scan = (scanOptions?: ScanOptions) => Scan.scan(execute, config.keyPrefix, acquireClient, scanOptions)
    const hscan = (key: string, scanOptions?: ScanKeyOptions) => Scan.hscan(execute, key, scanOptions)
    const sscan = (key: string, scanOptions?: ScanKeyOptions) => Scan.sscan(execute, key, scanOptions)
    const zscan = (key: string, scanOptions?: ScanKeyOptions) => Scan.zscan(execute, key, scanOptions)

    const topology = config.topology._tag === "Standalone"
      ? "standalone"
      : config.topology._tag === "Sentinel"
      ? "sentinel"
      : "cluster"
    const health = Effect.gen(function*() {
      const live = connection.current()
      const state = yield* connection.state
      const breakerState = yield* breaker.state
      return {
        connection: Connection.status(state),
        circuit: CircuitBreaker.status(breakerState),
        reconnects: yield* connection.reconnects,
        connectionsOpened: yield* connection.connectionsOpened,
        heartbeatRtt: heartbeat === undefined ? Option.none() : yield* heartbeat.rtt,
        consecutiveHeartbeatFailures: heartbeat === undefined ? 0 : yield* heartbeat.consecutiveFailures,
        nodeRecoveries: yield* connection.nodeRecoveries,
        topology,
        nodes: live === undefined ? [] : Connection.nodes(live.client)
      } satisfies Metrics.RedisHealth
    })

    return RedisService.of({
      get,
      set,
      mget,
      del,
      incr,
      expire,
      publish,
      command,
      run,
      batch,
      multi,
      watch,
      scan,
      hscan,
      sscan,
      zscan,
      getBuffer,
      health,
      states: connection.states,
      circuit: breaker.changes,
      config,
      breakerSignals: { failure: breaker.onFailure, success: breaker.onSuccess }
    })
  })

type Run<A> = (client: Connection.Client) => Promise<A>
// Turns the reply into the operation's result inside the command's own callback (no `Effect.map` step).
// The connection is given too, for replies that carry per-command failures (a batch's) to classify.
type Reply<A> = (reply: unknown, live: Connection.Live) => A
const asIs = <A>(reply: unknown): A => reply as A

/**
 * The command path shared by every operation.
 *
 * The healthy case (circuit closed, connection ready) is one `Effect.callback` around the ioredis promise: the breaker
 * check, the metrics and the error mapping are plain function calls, so that the layer costs next to nothing over a
 * bare `Effect.tryPromise`. Everything else (waiting for a connection, failing fast, retrying) takes the slow path.
 */
const makeExecutor = (
  config: RedisConfig.ResolvedRedisConfig,
  connection: Connection.Connection,
  breaker: CircuitBreaker.CircuitBreaker,
  stats: Metrics.CommandStats,
  watchdog: Watchdog.Watchdog
) => {
  const commandTimeout = config.commandTimeout
  // Durations on the watchdog's monotonic milliseconds (performance.now() with the default clock; TestClock drives
  // it too). One reading per command dates both its deadline and its duration.
  const now = watchdog.now
  const elapsed = (start: number) => (now() - start) / 1000

  // What a failed command tells the rest of the layer: a broken connection is replaced (the loss counts once towards
  // the breaker, through the connection, however many commands were in flight); other transient failures count each.
  // READONLY means "wrong node" only where the master can move (Sentinel, Cluster); on one server it is a plain reply.
  const wrongRole = config.topology._tag === "Standalone" ? () => false : isWrongRole
  // On a Cluster a lost connection is one node's: the slot map is refreshed and the Cluster client stays (it counts
  // towards the breaker once per refresh, through `onNodeLost`).
  const report = (live: Connection.Live | undefined, error: RedisError): Effect.Effect<void> =>
    isConnectionLost(error) || wrongRole(error)
      ? live === undefined ? Effect.void : connection.lost(live, error)
      : isTransient(error)
      ? breaker.onFailure
      : Effect.void

  const timedOut = (name: string) =>
    new CommandTimeout({
      message: `${name} got no reply within ${Duration.format(commandTimeout)}; it was sent and may have been applied`,
      command: name,
      timeout: commandTimeout,
      sent: true
    })

  // `idempotent` allows a retry after a lost connection; `canRetry` is false on the retry itself (one retry at most).
  // No interrupt handler: a command interrupted by its caller (its own timeout, say) keeps its deadline, and is counted
  // by what happened on the wire (`ok` when the reply comes, `CommandTimeout` when it does not); its resume is then a
  // no-op, so nothing reaches the breaker or the connection. An interrupt handler would cost every command a finalizer
  // on the fiber's stack (~10% of the layer's own cost without I/O).
  const send = <A>(
    name: string,
    idempotent: boolean,
    canRetry: boolean,
    run: Run<unknown>,
    reply: Reply<A>,
    live: Connection.Live,
    start: number,
    sentAt: number,
    resume: (effect: Effect.Effect<A, RedisError>) => void
  ): void => {
    // `start` times the whole call (a wait for a connection included); the deadline counts from the send.
    const deadline = watchdog.watch(() => {
      const error = timedOut(name)
      stats.record(name, error._tag, elapsed(start))
      resume(Effect.andThen(report(live, error), Effect.fail(error)))
    }, sentAt)
    // ioredis rejects with the same "Connection is closed." whether or not it wrote the command: a client that has
    // already ended writes nothing.
    const sent = live.client.status !== "end"
    let promise: Promise<unknown>
    try {
      promise = run(live.client)
    } catch (cause) {
      promise = Promise.reject(cause)
    }
    promise.then(
      (value) => {
        if (deadline.settled) return
        Watchdog.settle(deadline)
        stats.record(name, "ok", elapsed(start))
        let result: A
        try {
          result = reply(value, live)
        } catch (defect) {
          // A decoder rejects a reply that does not fit with a DecodeError; anything else thrown is a bug.
          return resume(isRedisError(defect) ? Effect.fail(defect) : Effect.die(defect))
        }
        const state = breaker.current()
        resume(
          state._tag === "Closed" && state.failures === 0
            ? Effect.succeed(result)
            : Effect.as(breaker.onSuccess, result)
        )
      },
      (cause: unknown) => {
        if (deadline.settled) return
        Watchdog.settle(deadline)
        const error = classify(cause, { command: name, sent, socketError: live.socketError, commandTimeout })
        stats.record(name, error._tag, elapsed(start))
        const reported = report(live, error)
        // An idempotent command whose connection broke under it runs once more, on the next connection; so does any
        // command that reached a replica (READONLY: it was not applied).
        resume(
          canRetry && ((idempotent && isConnectionLost(error)) || wrongRole(error))
            ? Effect.andThen(reported, attempt(name, idempotent, false, run, reply))
            : Effect.andThen(reported, Effect.fail(error))
        )
      }
    )
  }

  const rejected = <A>(
    name: string,
    idempotent: boolean,
    canRetry: boolean,
    run: Run<unknown>,
    reply: Reply<A>,
    start: number
  ): Effect.Effect<A, RedisError> =>
    breaker.admit(name).pipe(
      Effect.tapError((error) => Effect.sync(() => stats.record(name, error._tag, elapsed(start)))),
      Effect.andThen(attempt(name, idempotent, canRetry, run, reply))
    )

  const waitThenSend = <A>(
    name: string,
    idempotent: boolean,
    canRetry: boolean,
    run: Run<unknown>,
    reply: Reply<A>,
    start: number
  ) =>
    connection.acquire(name).pipe(
      Effect.tapError((error) =>
        Effect.andThen(Effect.sync(() => stats.record(name, error._tag, elapsed(start))), report(undefined, error))
      ),
      Effect.flatMap((live) =>
        Effect.callback<A, RedisError>((resume) =>
          send(name, idempotent, canRetry, run, reply, live, start, now(), resume)
        )
      )
    )

  // The body of one attempt, run inside an `Effect.callback`.
  const register = <A>(
    name: string,
    idempotent: boolean,
    canRetry: boolean,
    run: Run<unknown>,
    reply: Reply<A>,
    resume: (effect: Effect.Effect<A, RedisError>) => void
  ): void => {
    const start = now()
    if (breaker.current()._tag !== "Closed") return resume(rejected(name, idempotent, canRetry, run, reply, start))
    const live = connection.current()
    if (live === undefined) return resume(waitThenSend(name, idempotent, canRetry, run, reply, start))
    return send(name, idempotent, canRetry, run, reply, live, start, start, resume)
  }

  const attempt = <A>(
    name: string,
    idempotent: boolean,
    canRetry: boolean,
    run: Run<unknown>,
    reply: Reply<A>
  ): Effect.Effect<A, RedisError> =>
    Effect.callback<A, RedisError>((resume) => register(name, idempotent, canRetry, run, reply, resume))

  const spanOptions = new Map<string, { readonly name: string; readonly options: Tracer.SpanOptions }>()
  const spanFor = (name: string) => {
    let span = spanOptions.get(name)
    if (span === undefined) {
      span = {
        name: `redis.${name}`,
        options: {
          kind: "client",
          attributes: { "db.system": "redis", "db.operation": name },
          captureStackTrace: false
        }
      }
      spanOptions.set(name, span)
    }
    return span
  }

  // Whether a fiber's context has a tracer of its own; remembered for the last context seen (callers of one program
  // share it), so that most commands skip the lookup.
  let lastContext: Context.Context<never> | undefined
  let lastTraced = false
  const traced = (fiber: Fiber.Fiber<unknown, unknown>): boolean => {
    if (fiber.context !== lastContext) {
      lastContext = fiber.context
      lastTraced = fiber.getRef(Tracer.Tracer) !== Tracer.nativeTracer
    }
    return lastTraced
  }

  // Spans are created when the program installed a tracer (OTLP, ...): with Effect's default in-memory tracer nobody
  // reads them, and a span costs more than the rest of the command path together. The check runs inside the command's
  // own callback (the running fiber is the current one there), which saves an `Effect.withFiber` step per command.
  function execute<A>(name: string, idempotent: boolean, run: Run<A>): Effect.Effect<A, RedisError>
  function execute<R, A>(
    name: string,
    idempotent: boolean,
    run: Run<R>,
    reply: (reply: R, live: Connection.Live) => A
  ): Effect.Effect<A, RedisError>
  function execute<A>(name: string, idempotent: boolean, run: Run<unknown>, reply: Reply<A> = asIs) {
    return Effect.callback<A, RedisError>((resume) => {
      const fiber = Fiber.getCurrent()
      if (fiber !== undefined && traced(fiber)) {
        const span = spanFor(name)
        return resume(Effect.withSpan(attempt(name, idempotent, true, run, reply), span.name, span.options))
      }
      return register(name, idempotent, true, run, reply, resume)
    })
  }
  return execute
}

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
