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
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as CircuitBreaker from "./internal/breaker.ts"
import * as Connection from "./internal/connection.ts"
import * as Core from "./internal/core.ts"
import * as Heartbeat from "./internal/heartbeat.ts"
import type { Command } from "./internal/command.ts"
import { buffer, integer, optional, sendOn } from "./internal/command.ts"
import * as Executor from "./internal/executor.ts"
import * as Shortcut from "./internal/shortcuts.ts"
import * as Validate from "./internal/validate.ts"
import * as NodeBreakers from "./internal/topology/clusterBreakers.ts"
import { refuse } from "./internal/guard.ts"
import { withIdempotencyKey } from "./internal/idempotency.ts"
import * as Scan from "./internal/scan.ts"
import type { ScanKeyOptions, ScanOptions } from "./internal/scan.ts"
import * as Transaction from "./internal/transaction.ts"
import type { Results, Successes } from "./internal/transaction.ts"
import * as Watch from "./internal/watch.ts"
import type { WatchTransaction } from "./internal/watch.ts"
import * as Health from "./Health.ts"
import * as Metrics from "./internal/metrics.ts"
import * as RedisConfig from "./RedisConfig.ts"
import * as Watchdog from "./internal/watchdog.ts"
import { ConnectionTimeout, isTransient, type RedisError } from "./RedisError.ts"

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
// Cluster: each master's own circuit, where it has one.
const withCircuits = (
  all: ReadonlyArray<Health.NodeHealth>,
  circuits: ReadonlyMap<string, Health.CircuitStatus> | undefined
): ReadonlyArray<Health.NodeHealth> =>
  circuits === undefined || circuits.size === 0 ? all : [
    ...all.map((node) => {
      const circuit = circuits.get(node.address)
      return circuit === undefined ? node : { ...node, circuit }
    }),
    // A master whose connection was dropped (a frozen one the heartbeat recovers) is still reported with its circuit.
    ...[...circuits].filter(([address]) => !all.some((node) => node.address === address)).map(([address, circuit]) => ({
      address,
      role: "master" as const,
      status: "disconnected",
      circuit
    }))
  ]



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
          Metric.update(Metric.withAttributes(Health.connectFailures, { error: error._tag }), 1)
        ),
      onReady: () => Effect.andThen(breaker.onConnectionReady, Metric.update(Health.connectionsOpened, 1)),
      onLost: () => Effect.andThen(breaker.onFailure, Metric.update(Health.reconnects, 1)),
      onState: (state) => Metrics.recordConnectionState(Health.connectionStatus(state)),
      // Cluster: a node's lost connection counts towards that master's own breaker (see NodeBreakers), not the layer's:
      // one failing master must not open the circuit for the others.
    })
    const heartbeat = config.heartbeat === undefined
      ? undefined
      : yield* Heartbeat.make(connection, config.heartbeat, {
        onSuccess: (rtt) =>
          Effect.andThen(breaker.onSuccess, Metric.update(Health.heartbeatRtt, Duration.toSeconds(rtt))),
        onFailure: () => Effect.andThen(breaker.onFailure, Metric.update(Health.heartbeatFailures, 1)),
        // Cluster: a master that stops answering while the others answer is reconnected on its own.
        onNodeFailure: () => Metric.update(Health.heartbeatFailures, 1),
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
        Heartbeat.probe(connection.connector, live, probeTimeout).pipe(
          Effect.tapError((error) => isTransient(error) ? connection.lost(live, error) : Effect.void)
        )
    ))

    // Its ConnectionTimeout says why the last attempt failed (a refused SELECT, a TLS certificate, ...).
    if (config.awaitReady) yield* connection.awaitReady

    const stats = yield* Metrics.makeCommandStats(config.connectionName ?? "default")
    const watchdog = yield* Watchdog.make(config.commandTimeout)
    // Cluster: a breaker per master, so that one failing master does not fail the commands routed to the others.
    const nodes = connection.connector.slotted
      ? yield* NodeBreakers.make({
        policy: config.breaker,
        keyPrefix: config.keyPrefix,
        probeTimeout,
        lossWindow: config.reconnect.debounce,
        current: connection.current
      })
      : undefined
    const execute = Executor.make(config, connection, breaker, stats, watchdog, nodes)

    const get = (key: string) => execute("GET", true, (client) => client.get(key), Option.fromNullishOr, key)

    const set = (key: string, value: string, setOptions?: SetOptions) =>
      Effect.suspend(() => {
        const args: Array<string | number> = [key, value]
        if (setOptions?.ttl !== undefined) {
          // A TTL of zero, negative or not a number is refused before anything is sent (Redis would reject it).
          const millis = Validate.ttlMillis("SET", "ttl", setOptions.ttl)
          if (typeof millis !== "number") return Effect.fail(millis)
          args.push("PX", millis)
        }
        if (setOptions?.mode !== undefined) args.push(setOptions.mode)
        return execute(
          "SET",
          setOptions?.mode !== "NX",
          // The plain form takes ioredis' cheaper `set` path; options need the argument list.
          args.length === 2 ? (client) => client.set(key, value) : (client) => client.call("SET", args),
          isWritten,
          key
        )
      })

    const mget = (keys: ReadonlyArray<string>) =>
      keys.length === 0
        ? Effect.succeed([])
        : execute(
          "MGET",
          true,
          (client) => client.mget(keys as Array<string>),
          (values) => values.map(Option.fromNullishOr),
          keys[0]
        )

    const del = (...keys: ReadonlyArray<string | ReadonlyArray<string>>) => {
      // Arrays are accepted (and flattened without spreading) so that a million keys do not overflow the stack.
      const all = keys.length === 1 && typeof keys[0] !== "string" ? keys[0]! : keys.flat()
      return all.length === 0
        ? Effect.succeed(0)
        : execute("DEL", true, (client) => client.call("DEL", all as Array<string>), integerReply.DEL, all[0])
    }

    // Never a wrong number: a reply beyond 2^53 fails with DecodeError.
    const incr = (key: string, by?: number) =>
      by === undefined
        ? execute("INCR", false, (client) => client.incr(key), integerReply.INCR, key)
        : Effect.suspend(() => {
          const n = Validate.integer("INCRBY", "by", by)
          return typeof n !== "number"
            ? Effect.fail(n)
            : execute("INCRBY", false, (client) => client.incrby(key, n), integerReply.INCRBY, key)
        })

    const getBuffer = (key: string) =>
      execute("GET", true, (client) => client.getBuffer(key), optionalBuffer, key)

    const expire = (key: string, ttl: Duration.Input) =>
      Effect.suspend(() => {
        // PEXPIRE 0 (or a negative one) would delete the key: refused, like SET's TTL.
        const millis = Validate.ttlMillis("PEXPIRE", "ttl", ttl)
        return typeof millis !== "number"
          ? Effect.fail(millis)
          : execute("PEXPIRE", true, (client) => client.pexpire(key, millis), isOne, key)
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
        : execute(command.name, command.idempotent, (client) => sendOn(client, command), command.decode, Transaction.firstKey(command))
    }
    const run = <A>(command: Command<A>, runOptions?: RunOptions): Effect.Effect<A, RedisError> => {
      if (runOptions?.idempotencyKey === undefined) return runOne(command)
      const ttl = runOptions.idempotencyTtl === undefined
        ? undefined
        : Validate.ttlMillis("RUN", "idempotencyTtl", runOptions.idempotencyTtl)
      return typeof ttl === "object"
        ? Effect.fail(ttl)
        : runOne(withIdempotencyKey(
          command,
          runOptions.idempotencyKey,
          config.keyPrefix,
          ttl === undefined ? undefined : Duration.millis(ttl)
        ))
    }

    // Keys route to masters by hash slot (Cluster): one transaction's keys must share a slot, SCAN walks every master.
    const isCluster = connection.connector.slotted
    const batch = <const Cs extends ReadonlyArray<Command<any>>>(commands: Cs) =>
      Transaction.batch(commands, { execute, isCluster, keyPrefix: config.keyPrefix })
    const multi = <const Cs extends ReadonlyArray<Command<any>>>(commands: Cs) =>
      Transaction.multi(commands, { execute, isCluster, keyPrefix: config.keyPrefix })

    // The pinned connection of a `watch`: opened for the call, reporting to the breaker, closed with the call.
    const core = Core.make(config, { failure: breaker.onFailure, success: breaker.onSuccess })
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
    const scan = (scanOptions?: ScanOptions) => Scan.scan(execute, config.keyPrefix, acquireClient, scanOptions)
    const hscan = (key: string, scanOptions?: ScanKeyOptions) => Scan.hscan(execute, key, scanOptions)
    const sscan = (key: string, scanOptions?: ScanKeyOptions) => Scan.sscan(execute, key, scanOptions)
    const zscan = (key: string, scanOptions?: ScanKeyOptions) => Scan.zscan(execute, key, scanOptions)

    const topology = connection.connector.name
    const health = Effect.gen(function*() {
      const live = connection.current()
      const state = yield* connection.state
      const breakerState = yield* breaker.state
      return {
        connection: Health.connectionStatus(state),
        circuit: CircuitBreaker.status(breakerState),
        reconnects: yield* connection.reconnects,
        connectionsOpened: yield* connection.connectionsOpened,
        heartbeatRtt: heartbeat === undefined ? Option.none() : yield* heartbeat.rtt,
        consecutiveHeartbeatFailures: heartbeat === undefined ? 0 : yield* heartbeat.consecutiveFailures,
        nodeRecoveries: yield* connection.nodeRecoveries,
        lastError: yield* connection.lastError,
        topology,
        nodes: live === undefined ? [] : withCircuits(connection.connector.nodes(live.client), nodes?.statuses())
      } satisfies Health.RedisHealth
    })

    return Core.attach(RedisService.of({
      ...Shortcut.make(run),
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
      config
    }), core)
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
