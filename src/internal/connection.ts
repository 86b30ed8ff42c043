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
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import type { Cluster, Redis as IORedis } from "ioredis"
import type { ConnectionState } from "../Health.ts"
import type { ResolvedRedisConfig } from "../RedisConfig.ts"
import { classify, ConnectionClosed, ConnectionTimeout, type RedisError, scrubCause } from "../RedisError.ts"
import * as ReadyWaiters from "./readyWaiters.ts"
import * as ReconnectSchedule from "./schedule.ts"
import { address } from "./topology/cluster.ts"
import { type Client, type Connector, connectorFor, type CycleWatch } from "./topology/connector.ts"
import type { IORedisOptions } from "./topology/options.ts"

export type { Client } from "./topology/connector.ts"

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
  /** What the topology answers (masters, node-level losses, slots, ...). */
  readonly connector: Connector
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
 * Everything the connection's loop changes, in one record (read synchronously on the hot path: `current`).
 */
interface LoopState {
  /** The ready connection, if there is one now. */
  current: MutableLive | undefined
  generation: number
  reconnects: number
  connectionsOpened: number
  attempts: number
  closed: boolean
  /** Cluster: node recoveries so far, and whether a slot-map refresh is running. */
  nodeRecoveries: number
  refreshing: boolean
}

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
  const connector = connectorFor(config)
  const stateRef = yield* SubscriptionRef.make<ConnectionState>({ _tag: "Connecting", attempt: 0 })
  const loop: LoopState = {
    current: undefined,
    generation: 0,
    reconnects: 0,
    connectionsOpened: 0,
    attempts: 0,
    closed: false,
    nodeRecoveries: 0,
    refreshing: false
  }
  const lastErrorUnsafe = (): RedisError | undefined => lastErrorOf(SubscriptionRef.getUnsafe(stateRef))

  // Callers waiting for a connection share one timer (see internal/readyWaiters.ts).
  const waiters = yield* ReadyWaiters.make<Live, ConnectionTimeout | ConnectionClosed>(
    config.acquireTimeout,
    (command) => acquireTimedOut(config.acquireTimeout, command, lastErrorUnsafe())
  )

  const setState = (state: ConnectionState): Effect.Effect<void> =>
    hooks.onState === undefined
      ? SubscriptionRef.set(stateRef, state)
      : Effect.andThen(SubscriptionRef.set(stateRef, state), hooks.onState(state))

  const open = openAttempt(config, connector, loop, hooks, options.clientOptions)
  const cycle = (initial: boolean) => connectCycle(config, connector, open, setState, hooks, initial)

  const run: Effect.Effect<never> = Effect.gen(function*() {
    let initial = true
    while (true) {
      const live = yield* cycle(initial)
      initial = false
      loop.generation = live.generation
      loop.connectionsOpened++
      loop.current = live
      waiters.succeed(live)
      yield* setState({ _tag: "Ready", generation: live.generation })
      if (hooks.onReady !== undefined) yield* hooks.onReady(live)
      const reason = yield* Deferred.await(live.lost)
      live.client.disconnect()
      loop.reconnects++
      if (hooks.onLost !== undefined) yield* hooks.onLost(reason)
      yield* setState({ _tag: "Reconnecting", attempt: 0, nextDelay: config.reconnect.debounce, lastError: reason })
      // The debounce window: the socket error, the close and the failing commands of one failure all land here.
      yield* Effect.sleep(config.reconnect.debounce)
    }
  })

  // Added before the loop is forked, so that it runs after the loop was interrupted: nothing reconnects meanwhile.
  yield* Effect.addFinalizer(() =>
    Effect.gen(function*() {
      loop.closed = true
      const live = loop.current
      loop.current = undefined
      if (live !== undefined) {
        const closing = new ConnectionClosed({ message: "The layer was closed", sent: false })
        Deferred.doneUnsafe(live.lost, Exit.succeed(closing))
        live.client.disconnect()
      }
      waiters.fail(new ConnectionClosed({ message: "The Redis layer was closed", sent: false }))
      yield* setState({ _tag: "Closed" })
    })
  )
  yield* Effect.forkScoped(run)

  const acquire = (command?: string): Effect.Effect<Live, ConnectionTimeout | ConnectionClosed> =>
    Effect.suspend(() => {
      if (loop.current !== undefined) return Effect.succeed(loop.current)
      if (loop.closed) {
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
      orElse: () => Effect.suspend(() => Effect.fail(notReady(config.connectTimeout, lastErrorUnsafe())))
    })
  )

  const { lost, recoverNode } = nodeLosses(connector, loop, hooks)

  return {
    current: () => loop.current,
    acquire,
    awaitReady,
    lastError: Effect.sync(lastErrorUnsafe),
    invalidate: (live, reason) => Effect.sync(() => loseUnsafe(loop, live as MutableLive, reason)),
    lost,
    recoverNode,
    nodeRecoveries: Effect.sync(() => loop.nodeRecoveries),
    state: SubscriptionRef.get(stateRef),
    states: SubscriptionRef.changes(stateRef),
    reconnects: Effect.sync(() => loop.reconnects),
    connectionsOpened: Effect.sync(() => loop.connectionsOpened),
    attempts: Effect.sync(() => loop.attempts),
    connector
  } satisfies Connection as Connection
})

const lastErrorOf = (state: ConnectionState): RedisError | undefined =>
  state._tag === "Reconnecting" ? state.lastError : undefined

const acquireTimedOut = (timeout: Duration.Duration, command: string | undefined, cause: RedisError | undefined) =>
  new ConnectionTimeout({
    message: `No Redis connection became ready within ${Duration.format(timeout)}${
      command === undefined ? "" : `; ${command} was not sent`
    }${cause === undefined ? "" : ` (last connection error: ${cause.message})`}`,
    phase: "acquire",
    timeout,
    command,
    cause
  })

const notReady = (timeout: Duration.Duration, cause: RedisError | undefined) =>
  new ConnectionTimeout({
    message: `awaitReady: Redis was not ready within ${Duration.format(timeout)}${
      cause === undefined ? "" : ` (last connection error: ${cause.message})`
    }`,
    phase: "connect",
    timeout,
    cause
  })

// Marks a connection lost, synchronously, so that `current` never hands out a broken client. The first report wins.
const loseUnsafe = (loop: LoopState, live: MutableLive, reason: RedisError): boolean => {
  if (!Deferred.doneUnsafe(live.lost, Exit.succeed(reason))) return false
  if (loop.current === live) loop.current = undefined
  // Close the socket now: whatever is still in flight on it fails at once instead of waiting on a dead server.
  live.client.disconnect()
  return true
}

// Why an established connection closed: its last socket error, else a plain close. (ETIMEDOUT here is a socket that
// stopped answering, not a connect timeout.)
const closedReason = (live: MutableLive): RedisError =>
  classify(live.socketError ?? new Error("Connection is closed."), { sent: false, established: true })

/**
 * One connection attempt: a new client, its listeners, connect, then SELECT. The socket is torn down when the attempt
 * fails or is interrupted. ioredis' connectTimeout covers the TCP connect only; a server that accepts and never
 * answers the handshake (frozen, blackholed) is caught by the attempt's own `connectTimeout`.
 */
const openAttempt = (
  config: ResolvedRedisConfig,
  connector: Connector,
  loop: LoopState,
  hooks: ConnectionHooks,
  overrides: Partial<IORedisOptions> | undefined
): Effect.Effect<MutableLive, RedisError> =>
  Effect.suspend(() => {
    loop.attempts++
    const client = connector.makeClient(overrides)
    const live: MutableLive = {
      client,
      generation: loop.generation + 1,
      socketError: undefined,
      lost: Deferred.makeUnsafe<RedisError>()
    }
    // ioredis throws `error` events nobody listens to: this listener is what keeps ECONNRESET from crashing the app.
    // Kept scrubbed: what ioredis emits may carry the failed command's arguments (the handshake's password).
    client.on("error", (error: unknown) => {
      live.socketError = scrubCause(error)
    })
    client.on("close", () => loseUnsafe(loop, live, closedReason(live)))
    // A Cluster ends when it gave up on every node (its own retry strategy is off).
    client.on("end", () => loseUnsafe(loop, live, closedReason(live)))
    connector.prepare(client)
    hooks.onClient?.(client)
    return Effect.callback<MutableLive, RedisError>((resume) => {
      client.connect().then(
        () =>
          connector.select(client, () => live.socketError).then(
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

/**
 * One reconnect cycle: attempts spaced by a fresh copy of the reconnect schedule until one is ready. While an attempt
 * runs the state stays what it was ("attempt n failed, next in d"), except for the very first connection, which is
 * Connecting. Where the topology has something to watch (Sentinel: the master the sentinels name), a change cuts the
 * attempt in progress or the backoff wait short and the next attempt starts at once; the very first cycle watches
 * nothing.
 */
const connectCycle = (
  config: ResolvedRedisConfig,
  connector: Connector,
  open: Effect.Effect<MutableLive, RedisError>,
  setState: (state: ConnectionState) => Effect.Effect<void>,
  hooks: ConnectionHooks,
  initial: boolean
): Effect.Effect<MutableLive> =>
  Effect.scoped(Effect.gen(function*() {
    const step = yield* Schedule.toStep(ReconnectSchedule.make(config.reconnect))
    const watch: CycleWatch | undefined = initial || connector.watchCycle === undefined
      ? undefined
      : yield* connector.watchCycle
    let failed = 0
    while (true) {
      if (initial && failed === 0) yield* setState({ _tag: "Connecting", attempt: 1 })
      const exit = watch === undefined
        ? yield* Effect.exit(open)
        : yield* Effect.raceFirst(Effect.exit(open), Effect.as(watch.changed, "switched" as const))
      if (exit === "switched") continue
      if (Exit.isSuccess(exit)) return exit.value
      const lastError = exit.cause.reasons.find((reason) => reason._tag === "Fail")?.error
      failed++
      if (lastError !== undefined && hooks.onAttemptFailed !== undefined) yield* hooks.onAttemptFailed(lastError)
      const now = yield* Clock.currentTimeMillis
      const [, delay] = yield* Effect.orDie(step(now, undefined))
      yield* setState({ _tag: "Reconnecting", attempt: failed, nextDelay: delay, lastError })
      if (watch === undefined) yield* Effect.sleep(delay)
      else yield* Effect.raceFirst(Effect.sleep(delay), Effect.asVoid(watch.changed))
    }
  }))

/**
 * What a lost command connection means. On one server and behind Sentinel, the connection is lost (`invalidate`). On
 * a Cluster that is still up it was one node's: the slot map is refreshed (ioredis reconnects what it needs), one
 * refresh at a time (the failures that arrive meanwhile belong to the same episode), and the Cluster client stays.
 */
const nodeLosses = (connector: Connector, loop: LoopState, hooks: ConnectionHooks) => {
  const clusterUp = (live: Live): Cluster | undefined => {
    const cluster = loop.current === live ? connector.cluster(live.client) : undefined
    return cluster?.status === "ready" ? cluster : undefined
  }
  // Returns whether this call started a refresh.
  const refreshSlots = (client: Cluster): boolean => {
    if (loop.refreshing) return false
    loop.refreshing = true
    loop.nodeRecoveries++
    client.refreshSlotsCache(() => {
      loop.refreshing = false
    })
    return true
  }
  const nodeLost = (reason: RedisError) => hooks.onNodeLost === undefined ? Effect.void : hooks.onNodeLost(reason)

  const lost = (live: Live, reason: RedisError): Effect.Effect<void> =>
    Effect.suspend(() => {
      const cluster = clusterUp(live)
      if (cluster === undefined) {
        loseUnsafe(loop, live as MutableLive, reason)
        return Effect.void
      }
      return refreshSlots(cluster) ? nodeLost(reason) : Effect.void
    })

  const recoverNode = (live: Live, node: IORedis, reason: RedisError): Effect.Effect<void> =>
    Effect.suspend(() => {
      const cluster = clusterUp(live)
      if (cluster === undefined) return Effect.void
      node.disconnect()
      refreshSlots(cluster)
      // Not reported to `onNodeLost`: the breaker speaks for the whole cluster, and one silent master must not open
      // it for the others (the commands that node fails report themselves, through `lost`).
      return Effect.logWarning(`Redis Cluster node ${address(node)} stopped answering; reconnecting it`, reason)
    })

  return { lost, recoverNode }
}
