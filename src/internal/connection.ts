/**
 * Ownership of the ioredis client: one connection at a time, opened and replaced by Effect, never by ioredis.
 *
 * ioredis is configured so that it only moves bytes: it never reconnects, queues, resends or resubscribes by itself.
 * Every failure signal (socket close, ECONNRESET on a command, heartbeat misses) goes to `invalidate`; the first
 * signal for a connection wins, later ones for the same connection are ignored, and the reconnect loop waits
 * `debounce` before its first attempt so that the burst one failure produces collapses into one reconnect cycle.
 * Attempts are spaced by the reconnect `Schedule`, one at a time.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import { Cluster, Redis as IORedis, type RedisOptions } from "ioredis"
import * as ReconnectSchedule from "./schedule.ts"
import type { ConnectionState, NodeHealth } from "../Health.ts"
import type { ResolvedRedisConfig } from "../RedisConfig.ts"
import * as ReadyWaiters from "./readyWaiters.ts"
import {
  classify,
  ConnectionClosed,
  ConnectionTimeout,
  databaseRefused,
  type RedisError,
  scrubCause
} from "../RedisError.ts"

/**
 * The ioredis client behind a connection: a `Redis` (standalone, or the current master found through Sentinel) or a
 * `Cluster` (its own connection per node, slot map and redirections).
 *
 * @since 0.1.0
 * @category models
 */
export type Client = IORedis | Cluster

/**
 * One ready connection. It stays the same object for its whole life, so that a failure can be reported against the
 * connection it happened on (`invalidate` ignores signals for a connection that was already replaced).
 *
 * @since 0.1.0
 * @category models
 */
export interface Live {
  readonly client: Client
  readonly generation: number
  /**
   * The last error the socket reported (scrubbed: see `RedisError.scrubCause`); used to classify commands that fail
   * with a bare "Connection is closed.".
   */
  readonly socketError: unknown
}

interface MutableLive extends Live {
  socketError: unknown
  readonly lost: Deferred.Deferred<RedisError>
}

/**
 * A connection owned by a scope.
 *
 * @since 0.1.0
 * @category models
 */
export interface Connection {
  /** The ready connection, if there is one now. Synchronous: this is the hot path. */
  readonly current: () => Live | undefined
  /**
   * The ready connection, waiting at most `acquireTimeout` for one (then `ConnectionTimeout` with phase "acquire").
   * Waiters share one timer, so the bound holds with 100,000 of them.
   */
  readonly acquire: (command?: string) => Effect.Effect<Live, ConnectionTimeout | ConnectionClosed>
  /**
   * Waits for a ready connection at most `connectTimeout` (what `awaitReady: true` does while the layer is built);
   * fails with `ConnectionTimeout` (phase "connect") whose message and `cause` give the last attempt's error.
   */
  readonly awaitReady: Effect.Effect<void, ConnectionTimeout>
  /**
   * Why no connection is ready: the error of the last failed attempt, or what lost the last connection. `undefined`
   * while a connection is ready (and before the first attempt ended).
   */
  readonly lastError: Effect.Effect<RedisError | undefined>
  /**
   * Reports that `live` is broken. The first report for a connection starts one reconnect cycle and returns true;
   * later ones (and reports about a connection already replaced) are no-ops and return false.
   */
  readonly invalidate: (live: Live, reason: RedisError) => Effect.Effect<boolean>
  /**
   * Reports that a command lost its connection (or reached a node that is no longer a master). On one server and
   * behind Sentinel this is `invalidate`. On a Cluster that is still up it was one node's connection: the slot map is
   * refreshed (ioredis reconnects what it needs) and the Cluster client stays.
   */
  readonly lost: (live: Live, reason: RedisError) => Effect.Effect<void>
  /**
   * Cluster only: one master stopped answering. Its connection is dropped (commands in flight on it fail at once and
   * ioredis opens a new one when the node is needed again) and the slot map is refreshed, so that a failover is
   * picked up; the other nodes' connections stay.
   */
  readonly recoverNode: (live: Live, node: IORedis, reason: RedisError) => Effect.Effect<void>
  /** Node recoveries (`recoverNode` and slot-map refreshes by `lost`) since the start. */
  readonly nodeRecoveries: Effect.Effect<number>
  readonly state: Effect.Effect<ConnectionState>
  /** The current state, then every change. */
  readonly states: Stream.Stream<ConnectionState>
  /** Reconnect cycles started (connections lost) since the start. */
  readonly reconnects: Effect.Effect<number>
  /** Connections that became ready since the start. */
  readonly connectionsOpened: Effect.Effect<number>
  /** Connection attempts made since the start (successful or not). */
  readonly attempts: Effect.Effect<number>
}

/**
 * What the connection tells the rest of the layer.
 *
 * @since 0.1.0
 * @category models
 */
export interface ConnectionHooks {
  /** A client was created for a connection attempt (before it connects): the place to attach event listeners. */
  readonly onClient?: ((client: Client) => void) | undefined
  /** A connection attempt failed (feeds the circuit breaker). */
  readonly onAttemptFailed?: ((error: RedisError) => Effect.Effect<void>) | undefined
  /** A new connection is ready. */
  readonly onReady?: ((live: Live) => Effect.Effect<void>) | undefined
  /** A ready connection was lost. */
  readonly onLost?: ((reason: RedisError) => Effect.Effect<void>) | undefined
  /** The state changed. */
  readonly onState?: ((state: ConnectionState) => Effect.Effect<void>) | undefined
  /** Cluster: commands lost one node's connection (the Cluster client stays); once per slot-map refresh. */
  readonly onNodeLost?: ((reason: RedisError) => Effect.Effect<void>) | undefined
}

/**
 * ioredis options, less `replyMapping`: replies keep ioredis' default (RESP2-compatible) shapes.
 *
 * @since 0.1.0
 * @category models
 */
export type IORedisOptions = Omit<RedisOptions, "replyMapping">

/**
 * The ioredis options this library runs with: ioredis never reconnects, queues, resends or resubscribes by itself.
 * For a Cluster these are the options of each node connection (see `makeClient`).
 *
 * **Gotchas**
 *
 * There is no `db`: ioredis would send its SELECT during the handshake and, when the server refuses it, report the
 * refusal as an `error` event and use the connection anyway, in database 0. `make` sends the SELECT itself, as part
 * of the connection attempt, and fails the attempt when it is refused (see `select`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const clientOptions = (config: ResolvedRedisConfig): IORedisOptions => ({
  host: config.host,
  port: config.port,
  ...(config.username === undefined ? {} : { username: config.username }),
  ...(config.password === undefined ? {} : { password: Redacted.value(config.password) }),
  ...(config.tls === false ? {} : { tls: config.tls === true ? {} : config.tls }),
  ...(config.keyPrefix === "" ? {} : { keyPrefix: config.keyPrefix }),
  ...(config.connectionName === undefined ? {} : { connectionName: config.connectionName }),
  lazyConnect: true,
  retryStrategy: () => null,
  reconnectOnError: null,
  enableOfflineQueue: false,
  autoResendUnfulfilledCommands: false,
  autoResubscribe: false,
  maxRetriesPerRequest: 0,
  // A connection the layer drops is closed at once: ioredis would otherwise wait up to 2 s for a frozen server to close
  // its side before destroying the socket, and fail the commands it holds only then.
  disconnectTimeout: 0,
  enableAutoPipelining: config.autoPipelining,
  connectTimeout: Duration.toMillis(config.connectTimeout)
  // No ioredis commandTimeout: a timer per command is costly; the layer's Watchdog enforces it instead.
})

// ioredis options of a Cluster itself (not of its node connections).
const clusterOptionNames: ReadonlySet<string> = new Set([
  "natMap",
  "dnsLookup",
  "scaleReads",
  "slotsRefreshInterval",
  "useSRVRecords",
  "resolveSrv"
])

/**
 * Creates the ioredis client for one connection attempt, by topology.
 *
 * - Standalone: a `Redis` with `clientOptions`.
 * - Sentinel: a `Redis` in sentinel mode: every attempt asks the sentinels for the current master (ioredis checks its
 *   role); `failoverDetector` closes the connection when the sentinels announce a new master, and the next attempt
 *   finds it. `sentinelRetryStrategy` is off: our schedule spaces the attempts.
 * - Cluster: a `Cluster` with `clusterRetryStrategy` off and no resending of commands whose node connection closed
 *   or that got CLUSTERDOWN; a command for a node whose connection is still opening waits for it, at most half the
 *   command timeout (`boundNodeOpening`). ioredis keeps control of what only it can do: the
 *   slot map, MOVED/ASK redirections (never reported as failures), TRYAGAIN (retried after 100 ms, up to 16
 *   redirections: the command was not applied) and the per-node connections, which it opens lazily with an offline
 *   queue of their own (it forces that) and never reconnects (a lost node is found again through the slot map).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeClient = (config: ResolvedRedisConfig, overrides: Partial<IORedisOptions> = {}): Client => {
  // `RedisOptions.ioredis` (already checked for the options the layer owns): Cluster-level ones go to the Cluster,
  // the rest to every connection.
  const passed = Object.entries(config.ioredis)
  const clusterLevel = Object.fromEntries(passed.filter(([name]) => clusterOptionNames.has(name)))
  const connectionLevel = Object.fromEntries(passed.filter(([name]) => !clusterOptionNames.has(name)))
  const options: IORedisOptions = { ...clientOptions(config), ...connectionLevel, ...overrides }
  const topology = config.topology
  switch (topology._tag) {
    case "Standalone":
      return new IORedis<"legacy">(options)
    case "Sentinel":
      return new IORedis<"legacy">({
        ...options,
        sentinels: topology.sentinels.map((node) => ({ host: node.host, port: node.port })),
        name: topology.name,
        role: "master",
        sentinelRetryStrategy: () => null,
        failoverDetector: true
      })
    case "Cluster": {
      // Node connections: the same options, less what the Cluster decides per node (address, queue, retries).
      const {
        db: _db,
        enableAutoPipelining,
        enableOfflineQueue: _queue,
        host: _host,
        keyPrefix,
        lazyConnect: _lazy,
        port: _port,
        retryStrategy: _retry,
        ...nodeOptions
      } = options
      return new Cluster<"legacy">(topology.nodes.map((node) => ({ host: node.host, port: node.port })), {
        lazyConnect: true,
        // Node connections open lazily (and again after a node was recovered): with the queue off, ioredis rejects a
        // command for a node still opening, and only its 100 ms resend (off below) would hide that. With it on, such a
        // command waits for its node, which gets half the command timeout to open (`boundNodeOpening`: else ioredis
        // would send it whenever the node opens). The layer only uses a Cluster that is ready; one that closes (every
        // node gone) fails what it holds.
        enableOfflineQueue: true,
        enableReadyCheck: true,
        clusterRetryStrategy: () => null,
        // ioredis would resend a command whose node connection closed (after 100 ms), which could apply a write
        // twice, and would hide CLUSTERDOWN by retrying it until the command times out: both are ours to decide.
        retryDelayOnFailover: 0,
        retryDelayOnClusterDown: 0,
        maxRedirections: 16,
        // CLUSTER SLOTS is a command: a frozen node is given up on after commandTimeout, and the next node is asked.
        slotsRefreshTimeout: Duration.toMillis(config.commandTimeout),
        // A Cluster pipelines per node itself; its node connections must not do it again.
        ...(enableAutoPipelining === true ? { enableAutoPipelining } : {}),
        ...(keyPrefix === undefined ? {} : { keyPrefix }),
        ...clusterLevel,
        redisOptions: nodeOptions
      })
    }
  }
}

/**
 * The nodes a client talks to, with their role and status (for `RedisHealth`).
 *
 * @since 0.1.0
 * @category models
 */
export const nodes = (client: Client): ReadonlyArray<NodeHealth> => {
  const describe = (node: IORedis, role: "master" | "replica"): NodeHealth => {
    const stream = node.stream as { remoteAddress?: string; remotePort?: number } | undefined
    const host = stream?.remoteAddress ?? node.options.host ?? "?"
    const port = stream?.remotePort ?? node.options.port ?? 0
    return { address: `${host.includes(":") ? `[${host}]` : host}:${port}`, role, status: node.status }
  }
  if (!(client instanceof Cluster)) return [describe(client, "master")]
  const primaries = new Set(client.nodes("master"))
  return client.nodes("all").map((node) => describe(node, primaries.has(node) ? "master" : "replica"))
}

/**
 * Drops a Cluster node connection that does not become ready within `millis` of starting to open. ioredis holds the
 * commands for a node whose connection is still opening (its node connections always queue) and sends them whenever it
 * opens: against a frozen node (TCP accepted, handshake unanswered) that could be long after the layer reported them
 * timed out. Dropped, the node fails what it holds (`ConnectionClosed`), before the callers' own deadlines, and ioredis
 * opens a new connection when the node is next needed. (A plain timer, as ioredis' own `connectTimeout` is: it only
 * bounds an ioredis-internal state.)
 *
 * @since 0.1.0
 * @category constructors
 */
export const boundNodeOpening = (node: IORedis, millis: number): void => {
  let timer: ReturnType<typeof setTimeout> | undefined
  const clear = () => {
    if (timer !== undefined) clearTimeout(timer)
    timer = undefined
  }
  node.on("connecting", () => {
    clear()
    timer = setTimeout(() => {
      timer = undefined
      if (node.status !== "ready" && node.status !== "end") node.disconnect()
    }, millis)
    timer.unref()
  })
  node.on("ready", clear)
  node.on("end", clear)
}

/**
 * Selects the `db` option's database on a connection that just opened, as the last step of the attempt. A refusal
 * (the index is beyond the server's `databases`, or the ACL user may not run SELECT) rejects with the `ReplyError` of
 * `databaseRefused`, so that the attempt fails and no command runs in database 0 instead; any other failure rejects
 * with its classification. Database 0 (and a Cluster, which has no other) needs no SELECT.
 *
 * @since 0.2.0
 * @category constructors
 */
export const select = (live: Live, db: number): Promise<void> =>
  db === 0 || live.client instanceof Cluster ? Promise.resolve() : live.client.select(db).then(
    () => undefined,
    (error: unknown) => {
      const classified = classify(error, { command: "SELECT", sent: true, socketError: live.socketError })
      throw classified._tag === "ReplyError" ? databaseRefused(db, error) : classified
    }
  )

/**
 * How often a reconnect cycle behind Sentinel asks the sentinels which master they name.
 *
 * @since 0.1.0
 * @category constants
 */
export const sentinelPoll: Duration.Duration = Duration.millis(200)

/**
 * Asks sentinels which master they name (`SENTINEL get-master-addr-by-name`), over one connection at a time.
 *
 * @since 0.1.0
 * @category models
 */
export interface SentinelWatch {
  /** `host:port` of the master, or `undefined` when no sentinel answered this time (the next one is asked next). */
  readonly ask: Effect.Effect<string | undefined>
}

/**
 * A `SentinelWatch` owned by the current scope: it keeps one connection to a sentinel, moves to the next sentinel when
 * one fails or takes longer than `timeout` (`index` keeps which one, across watches), and closes its connection with
 * the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const watchSentinels = (
  sentinels: ReadonlyArray<{ readonly host: string; readonly port: number }>,
  name: string,
  timeout: Duration.Duration,
  index: { value: number } = { value: 0 }
): Effect.Effect<SentinelWatch, never, Scope.Scope> =>
  Effect.gen(function*() {
    let client: IORedis | undefined
    const drop = () => {
      client?.disconnect()
      client = undefined
      index.value = (index.value + 1) % sentinels.length
    }
    yield* Effect.addFinalizer(() => Effect.sync(() => client?.disconnect()))
    const ask = Effect.suspend(() => {
      if (client === undefined) {
        const sentinel = sentinels[index.value % sentinels.length]!
        client = new IORedis<"legacy">({
          host: sentinel.host,
          port: sentinel.port,
          lazyConnect: true,
          retryStrategy: () => null,
          enableOfflineQueue: true,
          maxRetriesPerRequest: 0,
          disconnectTimeout: 0,
          connectTimeout: Duration.toMillis(timeout)
        })
        client.on("error", () => {})
      }
      const asked = client
      return Effect.tryPromise(() => asked.call("SENTINEL", "get-master-addr-by-name", name)).pipe(
        Effect.timeout(timeout),
        Effect.map((reply) =>
          Array.isArray(reply) && reply.length >= 2 ? `${String(reply[0])}:${String(reply[1])}` : undefined
        ),
        Effect.catchCause(() =>
          Effect.sync(() => {
            if (client === asked) drop()
            return undefined
          })
        )
      )
    })
    return { ask }
  })

/**
 * A node's configured address, `host:port`: how the Cluster's slot map names it.
 *
 * @since 0.1.0
 * @category models
 */
export const address = (node: IORedis): string => `${node.options.host ?? "?"}:${node.options.port ?? 0}`

/**
 * The masters a client talks to: the one `Redis`, or every master node of a `Cluster`.
 *
 * @since 0.1.0
 * @category models
 */
export const masters = (client: Client): ReadonlyArray<IORedis> =>
  client instanceof Cluster ? client.nodes("master") : [client]

/**
 * Opens the connection in the background and keeps it open until the scope closes.
 *
 * **Details**
 *
 * The returned `Connection` is usable at once: while no connection is ready, `acquire` waits (at most
 * `acquireTimeout`). Closing the scope interrupts the reconnect loop, closes the socket and fails every waiting
 * `acquire` with `ConnectionClosed`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(
  config: ResolvedRedisConfig,
  hooks: ConnectionHooks = {},
  options: { readonly clientOptions?: Partial<IORedisOptions> | undefined } = {}
) {
  const stateRef = yield* SubscriptionRef.make<ConnectionState>({ _tag: "Connecting", attempt: 0 })
  // Cluster node connections get half the command timeout to open, at least 100 ms (see `boundNodeOpening`).
  const nodeOpeningMillis = Math.max(
    100,
    Math.min(Duration.toMillis(config.connectTimeout), Duration.toMillis(config.commandTimeout) / 2)
  )
  let current: MutableLive | undefined
  let generation = 0
  let reconnects = 0
  let connectionsOpened = 0
  let attempts = 0
  let closed = false

  const lastErrorUnsafe = (): RedisError | undefined => {
    const state = SubscriptionRef.getUnsafe(stateRef)
    return state._tag === "Reconnecting" ? state.lastError : undefined
  }

  // Callers waiting for a connection share one timer (see internal/readyWaiters.ts).
  const waiters = yield* ReadyWaiters.make<Live, ConnectionTimeout | ConnectionClosed>(
    config.acquireTimeout,
    (command) => {
      const cause = lastErrorUnsafe()
      return new ConnectionTimeout({
        message: `No Redis connection became ready within ${Duration.format(config.acquireTimeout)}${
          command === undefined ? "" : `; ${command} was not sent`
        }${cause === undefined ? "" : ` (last connection error: ${cause.message})`}`,
        phase: "acquire",
        timeout: config.acquireTimeout,
        command,
        cause
      })
    }
  )

  const setState = (state: ConnectionState): Effect.Effect<void> =>
    hooks.onState === undefined
      ? SubscriptionRef.set(stateRef, state)
      : Effect.andThen(SubscriptionRef.set(stateRef, state), hooks.onState(state))

  // Marks a connection lost, synchronously, so that `current` never hands out a broken client.
  const loseUnsafe = (live: MutableLive, reason: RedisError): boolean => {
    if (!Deferred.doneUnsafe(live.lost, Exit.succeed(reason))) return false
    if (current === live) current = undefined
    // Close the socket now: whatever is still in flight on it fails at once instead of waiting on a dead server.
    live.client.disconnect()
    return true
  }

  // Why an established connection closed: its last socket error, else a plain close. (ETIMEDOUT here is a socket that
  // stopped answering, not a connect timeout.)
  const closedReason = (live: MutableLive): RedisError =>
    classify(live.socketError ?? new Error("Connection is closed."), { sent: false, established: true })

  // One connection attempt. The socket is torn down when the attempt fails or is interrupted.
  const open: Effect.Effect<MutableLive, RedisError> = Effect.suspend(() => {
    attempts++
    const client = makeClient(config, options.clientOptions)
    const live: MutableLive = {
      client,
      generation: generation + 1,
      socketError: undefined,
      lost: Deferred.makeUnsafe<RedisError>()
    }
    // ioredis throws `error` events nobody listens to: this listener is what keeps ECONNRESET from crashing the app.
    // Kept scrubbed: what ioredis emits may carry the failed command's arguments (the handshake's password).
    client.on("error", (error: unknown) => {
      live.socketError = scrubCause(error)
    })
    client.on("close", () => loseUnsafe(live, closedReason(live)))
    // A Cluster ends when it gave up on every node (its own retry strategy is off).
    client.on("end", () => loseUnsafe(live, closedReason(live)))
    if (client instanceof Cluster) {
      client.on("+node", (node: IORedis) => boundNodeOpening(node, nodeOpeningMillis))
    }
    hooks.onClient?.(client)
    return Effect.callback<MutableLive, RedisError>((resume) => {
      client.connect().then(
        () =>
          select(live, config.db).then(
            () => resume(Effect.succeed(live)),
            (error: unknown) => {
              client.disconnect()
              resume(Effect.fail(error as RedisError))
            }
          ),
        (error: unknown) => {
          client.disconnect()
          const cause = live.socketError ?? error
          resume(Effect.fail(classify(cause, { sent: false, connectTimeout: config.connectTimeout })))
        }
      )
    }).pipe(
      // ioredis' connectTimeout covers the TCP connect only; a server that accepts and never answers the handshake
      // (frozen, blackholed) is caught here.
      Effect.timeoutOrElse({
        duration: config.connectTimeout,
        orElse: () =>
          Effect.fail(
            new ConnectionTimeout({
              message: `Redis did not complete the connection handshake within ${
                Duration.format(config.connectTimeout)
              }`,
              phase: "connect",
              timeout: config.connectTimeout
            })
          )
      }),
      Effect.onExit((exit) =>
        Exit.isSuccess(exit) ? Effect.void : Effect.sync(() => {
          client.disconnect()
        })
      )
    )
  })

  // One reconnect cycle: attempts spaced by a fresh copy of the reconnect schedule until one is ready.
  // Sentinel: while a reconnect cycle runs, the sentinels are asked every `sentinelPoll` which master they name. When
  // that changes (a failover completed), the attempt in progress (typically stuck in the handshake of the frozen old
  // master, for up to connectTimeout) or the backoff wait is cut short and the next attempt goes to the new master.
  // The sentinel asked last is asked first by the next cycle's watch.
  const sentinelIndex = { value: 0 }
  const sentinelWatch = config.topology._tag === "Sentinel"
    ? watchSentinels(config.topology.sentinels, config.topology.name, config.commandTimeout, sentinelIndex)
    : undefined
  // Runs alongside each attempt and each backoff wait; the first answer of a cycle is its baseline (asked at once, so
  // that the attempt is not held up by it).
  const switched = (watch: SentinelWatch, named: { value: string | undefined }) =>
    Effect.gen(function*() {
      while (true) {
        if (named.value !== undefined) yield* Effect.sleep(sentinelPoll)
        const now = yield* watch.ask
        if (now === undefined) {
          if (named.value === undefined) yield* Effect.sleep(sentinelPoll)
          continue
        }
        if (named.value === undefined) named.value = now
        else if (now !== named.value) {
          named.value = now
          return now
        }
      }
    })

  // One reconnect cycle: attempts spaced by a fresh copy of the reconnect schedule until one is ready.
  const connectCycle = (initial: boolean): Effect.Effect<MutableLive> =>
    Effect.scoped(Effect.gen(function*() {
      const step = yield* Schedule.toStep(ReconnectSchedule.make(config.reconnect))
      const watch = initial || sentinelWatch === undefined ? undefined : yield* sentinelWatch
      const named: { value: string | undefined } = { value: undefined }
      let failed = 0
      let lastError: RedisError | undefined
      while (true) {
        // While an attempt runs the state stays what it was ("attempt n failed, next in d"), except for the very
        // first connection, which is Connecting.
        if (initial && failed === 0) yield* setState({ _tag: "Connecting", attempt: 1 })
        const exit = watch === undefined
          ? yield* Effect.exit(open)
          : yield* Effect.raceFirst(Effect.exit(open), Effect.as(switched(watch, named), "switched" as const))
        // The sentinels named a new master during the attempt: go to it at once.
        if (exit === "switched") continue
        if (Exit.isSuccess(exit)) return exit.value
        const error = exit.cause.reasons.find((reason) => reason._tag === "Fail")?.error
        lastError = error
        failed++
        if (error !== undefined && hooks.onAttemptFailed !== undefined) yield* hooks.onAttemptFailed(error)
        const now = yield* Clock.currentTimeMillis
        const [, delay] = yield* Effect.orDie(step(now, undefined))
        yield* setState({ _tag: "Reconnecting", attempt: failed, nextDelay: delay, lastError })
        if (watch === undefined) yield* Effect.sleep(delay)
        else yield* Effect.raceFirst(Effect.sleep(delay), Effect.asVoid(switched(watch, named)))
      }
    }))

  const loop: Effect.Effect<never> = Effect.gen(function*() {
    let initial = true
    while (true) {
      const live = yield* connectCycle(initial)
      initial = false
      generation = live.generation
      connectionsOpened++
      current = live
      waiters.succeed(live)
      yield* setState({ _tag: "Ready", generation: live.generation })
      if (hooks.onReady !== undefined) yield* hooks.onReady(live)
      const reason = yield* Deferred.await(live.lost)
      live.client.disconnect()
      reconnects++
      if (hooks.onLost !== undefined) yield* hooks.onLost(reason)
      yield* setState({ _tag: "Reconnecting", attempt: 0, nextDelay: config.reconnect.debounce, lastError: reason })
      // The debounce window: the socket error, the close and the failing commands of one failure all land here.
      yield* Effect.sleep(config.reconnect.debounce)
    }
  })

  // Added before the loop is forked, so that it runs after the loop was interrupted: nothing reconnects meanwhile.
  yield* Effect.addFinalizer(() =>
    Effect.gen(function*() {
      closed = true
      const live = current
      current = undefined
      if (live !== undefined) {
        const closing = new ConnectionClosed({ message: "The layer was closed", sent: false })
        Deferred.doneUnsafe(live.lost, Exit.succeed(closing))
        live.client.disconnect()
      }
      waiters.fail(new ConnectionClosed({ message: "The Redis layer was closed", sent: false }))
      yield* setState({ _tag: "Closed" })
    })
  )
  yield* Effect.forkScoped(loop)

  const acquire = (command?: string): Effect.Effect<Live, ConnectionTimeout | ConnectionClosed> =>
    Effect.suspend(() => {
      if (current !== undefined) return Effect.succeed(current)
      if (closed) {
        return Effect.fail(new ConnectionClosed({ message: "The Redis layer was closed", sent: false, command }))
      }
      return waiters.wait(command)
    })

  const awaitReady: Effect.Effect<void, ConnectionTimeout> = SubscriptionRef.changes(stateRef).pipe(
    Stream.filter((state) => state._tag === "Ready"),
    Stream.runHead,
    Effect.asVoid,
    Effect.timeoutOrElse({
      duration: config.connectTimeout,
      orElse: () =>
        Effect.suspend(() => {
          const cause = lastErrorUnsafe()
          return Effect.fail(
            new ConnectionTimeout({
              message: `awaitReady: Redis was not ready within ${Duration.format(config.connectTimeout)}${
                cause === undefined ? "" : ` (last connection error: ${cause.message})`
              }`,
              phase: "connect",
              timeout: config.connectTimeout,
              cause
            })
          )
        })
    })
  )

  const invalidate = (live: Live, reason: RedisError): Effect.Effect<boolean> =>
    Effect.sync(() => loseUnsafe(live as MutableLive, reason))

  let nodeRecoveries = 0
  let refreshing = false
  const clusterUp = (live: Live): live is Live & { readonly client: Cluster } =>
    current === live && live.client instanceof Cluster && live.client.status === "ready"
  // A Cluster that is still up: ask it for the slot map again (ioredis tries the nodes in turn, and opens connections
  // to the nodes that appeared). One refresh at a time; the failures that arrive meanwhile belong to the same episode.
  // Returns whether this call started a refresh.
  const refreshSlots = (client: Cluster): boolean => {
    if (refreshing) return false
    refreshing = true
    nodeRecoveries++
    client.refreshSlotsCache(() => {
      refreshing = false
    })
    return true
  }
  const nodeLost = (reason: RedisError) => hooks.onNodeLost === undefined ? Effect.void : hooks.onNodeLost(reason)

  const lost = (live: Live, reason: RedisError): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (!clusterUp(live)) {
        loseUnsafe(live as MutableLive, reason)
        return Effect.void
      }
      return refreshSlots(live.client) ? nodeLost(reason) : Effect.void
    })

  const recoverNode = (live: Live, node: IORedis, reason: RedisError): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (!clusterUp(live)) return Effect.void
      node.disconnect()
      refreshSlots(live.client)
      // Not reported to `onNodeLost`: the breaker speaks for the whole cluster, and one silent master must not open
      // it for the others (the commands that node fails report themselves, through `lost`).
      return Effect.logWarning(`Redis Cluster node ${address(node)} stopped answering; reconnecting it`, reason)
    })

  return {
    current: () => current,
    acquire,
    awaitReady,
    lastError: Effect.sync(lastErrorUnsafe),
    invalidate,
    lost,
    recoverNode,
    nodeRecoveries: Effect.sync(() => nodeRecoveries),
    state: SubscriptionRef.get(stateRef),
    states: SubscriptionRef.changes(stateRef),
    reconnects: Effect.sync(() => reconnects),
    connectionsOpened: Effect.sync(() => connectionsOpened),
    attempts: Effect.sync(() => attempts)
  } satisfies Connection as Connection
})
