/**
 * The heartbeat: a supervised fiber that PINGs the ready connection every `interval` with a `timeout`, so that a
 * frozen server or a half-open socket (nothing comes back, nothing errors) is noticed. After `misses` consecutive
 * failures it invalidates the connection, which starts a reconnect cycle. Round-trip times go to a metric. On a
 * Cluster it PINGs every master, and can watch them one by one (`onNodeMisses`): one failing master is then
 * recovered on its own while the others keep serving.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import { sendBounded } from "./wire.ts"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type { Redis as IORedis } from "ioredis"
import type { Connection, Live } from "./connection.ts"
import { address } from "./topology/cluster.ts"
import type { Connector } from "./topology/connector.ts"
import { ConnectionClosed, type RedisError } from "../RedisError.ts"
import { monotonicMillis } from "./watchdog.ts"

/**
 * The heartbeat settings, decoded.
 *
 * @since 0.1.0
 * @category models
 */
export interface HeartbeatPolicy {
  readonly interval: Duration.Duration
  readonly timeout: Duration.Duration
  readonly misses: number
}

/**
 * What the heartbeat reports about itself.
 *
 * @since 0.1.0
 * @category models
 */
export interface Heartbeat {
  /** The round-trip time of the last successful PING. */
  readonly rtt: Effect.Effect<Option.Option<Duration.Duration>>
  /** Failed PINGs in a row on the current connection. */
  readonly consecutiveFailures: Effect.Effect<number>
}

/**
 * What the heartbeat tells the rest of the layer.
 *
 * @since 0.1.0
 * @category models
 */
export interface HeartbeatHooks {
  readonly onSuccess?: ((rtt: Duration.Duration) => Effect.Effect<void>) | undefined
  readonly onFailure?: ((error: RedisError) => Effect.Effect<void>) | undefined
  /**
   * Cluster only. When given, each master is watched on its own: while some masters answer, the ones that do not
   * are handed to this hook after `misses` failed PINGs in a row (and every `misses` PINGs after that), instead of
   * the whole connection being replaced; their failed PINGs are not reported to `onFailure`. When every master
   * fails, the heartbeat acts as on one server.
   */
  readonly onNodeMisses?: ((live: Live, node: IORedis, error: RedisError) => Effect.Effect<void>) | undefined
  /** Cluster, with `onNodeMisses`: a master did not answer a PING (while others did). */
  readonly onNodeFailure?: ((error: RedisError) => Effect.Effect<void>) | undefined
}

/**
 * One PING on a connection, bounded by `timeout` (measured with Effect's `Clock`, so `TestClock` drives it).
 *
 * @since 0.1.0
 * @category constructors
 */
export const ping = (connector: Connector, live: Live, timeout: Duration.Duration): Effect.Effect<void, RedisError> =>
  bounded(
    // Every master: the one server, or each master of a Cluster (one frozen master is a miss).
    () => Promise.all(connector.masters(live.client).map((node) => node.ping())),
    live,
    timeout
  )

/**
 * The circuit breaker's probe: a PING of every master, each bounded by `timeout`, that succeeds when at least one
 * answers. On one server that is `ping`; on a Cluster it means "the cluster is reachable": one master that stays
 * silent (and has no replica to take over) must not keep the circuit open for the others, whose commands succeed.
 * The failing masters are the heartbeat's business (`onNodeMisses`). Fails with the first master's error when none
 * answers.
 *
 * @since 0.1.0
 * @category constructors
 */
export const probe = (connector: Connector, live: Live, timeout: Duration.Duration): Effect.Effect<void, RedisError> =>
  Effect.flatMap(pingMasters(connector, live, timeout), ({ all, failed }) =>
    all > failed.length ? Effect.void : Effect.fail(
      failed[0]?.[1] ??
        new ConnectionClosed({ message: "The cluster has no master connection", command: "PING", sent: false })
    ))

/**
 * Every master of a connection PINGed at once, each bounded by `timeout`: how many there were, and which failed how.
 *
 * @since 0.1.0
 * @category constructors
 */
export const pingMasters = (
  connector: Connector,
  live: Live,
  timeout: Duration.Duration
): Effect.Effect<{ readonly all: number; readonly failed: ReadonlyArray<readonly [IORedis, RedisError]> }> =>
  Effect.gen(function*() {
    const nodes = connector.masters(live.client)
    const results = yield* Effect.forEach(nodes, (node) => Effect.result(pingNode(live, node, timeout)), {
      concurrency: "unbounded"
    })
    const failed: Array<readonly [IORedis, RedisError]> = []
    results.forEach((result, i) => {
      if (result._tag === "Failure") failed.push([nodes[i]!, result.failure])
    })
    return { all: nodes.length, failed }
  })

/**
 * One PING to one node of a connection, bounded by `timeout`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const pingNode = (live: Live, node: IORedis, timeout: Duration.Duration): Effect.Effect<void, RedisError> =>
  bounded(() => node.ping(), live, timeout)

const bounded = (
  run: () => Promise<unknown>,
  live: Live,
  timeout: Duration.Duration
): Effect.Effect<void, RedisError> => Effect.asVoid(sendBounded(live, "PING", run, timeout))

/**
 * Starts the heartbeat in the current scope. It only PINGs while a connection is ready; the failure count restarts
 * with every new connection. If the fiber dies for any reason it is restarted.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(
  connection: Connection,
  policy: HeartbeatPolicy,
  hooks: HeartbeatHooks = {}
): Effect.fn.Return<Heartbeat, never, Scope.Scope> {
  let rtt: Option.Option<Duration.Duration> = Option.none()
  let failures = 0
  let generation = -1
  // Cluster with `onNodeMisses`: failed PINGs in a row per master (by address), while other masters answer.
  const nodeFailures = new Map<string, number>()

  // With one master (one server, Sentinel) this is the plain PING below: every master failed or none did.
  const perNode = hooks.onNodeMisses !== undefined
  const connector = connection.connector

  const beat = Effect.gen(function*() {
    const live = connection.current()
    if (live === undefined) return
    if (live.generation !== generation) {
      generation = live.generation
      failures = 0
      nodeFailures.clear()
    }
    const start = yield* Clock.currentTimeNanos
    let failure: RedisError | undefined
    if (perNode) {
      const { all, failed } = yield* pingMasters(connector, live, policy.timeout)
      if (failed.length > 0 && failed.length < all) {
        // Some masters answer: the others are dealt with one by one, the connection stays.
        failures = 0
        const failing = new Set(failed.map(([node]) => address(node)))
        for (const key of nodeFailures.keys()) if (!failing.has(key)) nodeFailures.delete(key)
        for (const [node, error] of failed) {
          const key = address(node)
          const count = (nodeFailures.get(key) ?? 0) + 1
          nodeFailures.set(key, count)
          if (hooks.onNodeFailure !== undefined) yield* hooks.onNodeFailure(error)
          if (count % policy.misses === 0) yield* hooks.onNodeMisses!(live, node, error)
        }
        return
      }
      // Every master failed (counted as one failure of the whole connection below) or none did.
      if (failed.length === 0) nodeFailures.clear()
      failure = failed[0]?.[1]
    } else {
      const result = yield* Effect.result(ping(connector, live, policy.timeout))
      if (result._tag === "Failure") failure = result.failure
    }
    if (failure === undefined) {
      const end = yield* Clock.currentTimeNanos
      const elapsed = Duration.nanos(end - start)
      rtt = Option.some(elapsed)
      failures = 0
      if (hooks.onSuccess !== undefined) yield* hooks.onSuccess(elapsed)
      return
    }
    failures++
    if (hooks.onFailure !== undefined) yield* hooks.onFailure(failure)
    if (failures >= policy.misses) {
      yield* connection.invalidate(live, failure)
    }
  })

  // Supervised: whatever happens inside a beat (even a defect), the next beat runs. Beats are on a fixed grid from the
  // start (start + k x interval), not `interval` after the previous reply, so that a frozen server is detected within
  // interval x misses + timeout, also before the first beat completed. A beat that overran its slot skips the slots
  // it missed (it cannot: timeout <= interval, but a stalled process can).
  const intervalMillis = Duration.toMillis(policy.interval)
  const supervisedBeat = beat.pipe(
    Effect.catchCause((cause) => Effect.logWarning("Redis heartbeat failed unexpectedly", cause))
  )
  // On the monotonic clock: a step of the wall clock (NTP, a resumed VM) does not move the grid.
  const now = monotonicMillis(yield* Clock.Clock)
  const supervised = Effect.gen(function*() {
    const start = now()
    let slot = 1
    while (true) {
      const time = now()
      slot = Math.max(slot, Math.ceil((time - start) / intervalMillis))
      yield* Effect.sleep(Duration.millis(Math.min(intervalMillis, start + slot * intervalMillis - time)))
      yield* supervisedBeat
      slot++
    }
  })
  yield* Effect.forkScoped(supervised)

  return {
    rtt: Effect.sync(() => rtt),
    // On a Cluster watched per node, the longest run of failed PINGs of one master counts too.
    consecutiveFailures: Effect.sync(() => Math.max(failures, ...nodeFailures.values()))
  }
})
