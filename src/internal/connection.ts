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
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import type { Cluster, Redis as IORedis } from "ioredis"
import type { ConnectionState } from "../Health.ts"
import type { ResolvedRedisConfig } from "../RedisConfig.ts"
import { ConnectionClosed, ConnectionTimeout, type RedisError } from "../RedisError.ts"
import { connectCycle, loseUnsafe, openAttempt } from "./connectionAttempt.ts"
import * as ReadyWaiters from "./readyWaiters.ts"
import { address } from "./topology/cluster.ts"
import { type Connector, connectorFor } from "./topology/connector.ts"
import type { IORedisOptions } from "./topology/options.ts"

export type { Client } from "./topology/connector.ts"

import type { Connection, ConnectionHooks, Live, LoopState, MutableLive } from "./connectionModel.ts"

export type { Connection, ConnectionHooks, Live, LoopState, MutableLive } from "./connectionModel.ts"

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
