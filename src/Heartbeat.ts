/**
 * The heartbeat: a supervised fiber that PINGs the ready connection every `interval` with a `timeout`, so that a
 * frozen server or a half-open socket (nothing comes back, nothing errors) is noticed. After `misses` consecutive
 * failures it invalidates the connection, which starts a reconnect cycle. Round-trip times go to a metric.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { type Connection, type Live, masters } from "./Connection.ts"
import { classify, CommandTimeout, type RedisError } from "./RedisError.ts"

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
}

/**
 * One PING on a connection, bounded by `timeout` (measured with Effect's `Clock`, so `TestClock` drives it).
 *
 * @since 0.1.0
 * @category constructors
 */
export const ping = (live: Live, timeout: Duration.Duration): Effect.Effect<void, RedisError> =>
  Effect.tryPromise({
    // Every master: the one server, or each master of a Cluster (one frozen master is a miss).
    try: () => Promise.all(masters(live.client).map((node) => node.ping())),
    catch: (cause) => classify(cause, { command: "PING", sent: true, socketError: live.socketError })
  }).pipe(
    Effect.timeoutOrElse({
      duration: timeout,
      orElse: () =>
        Effect.fail(
          new CommandTimeout({
            message: `Heartbeat PING got no reply within ${Duration.format(timeout)}`,
            command: "PING",
            timeout,
            sent: true
          })
        )
    }),
    Effect.asVoid
  )

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

  const beat = Effect.gen(function*() {
    const live = connection.current()
    if (live === undefined) return
    if (live.generation !== generation) {
      generation = live.generation
      failures = 0
    }
    const start = yield* Clock.currentTimeNanos
    const result = yield* Effect.result(ping(live, policy.timeout))
    if (result._tag === "Success") {
      const end = yield* Clock.currentTimeNanos
      const elapsed = Duration.nanos(end - start)
      rtt = Option.some(elapsed)
      failures = 0
      if (hooks.onSuccess !== undefined) yield* hooks.onSuccess(elapsed)
      return
    }
    failures++
    if (hooks.onFailure !== undefined) yield* hooks.onFailure(result.failure)
    if (failures >= policy.misses) {
      yield* connection.invalidate(live, result.failure)
    }
  })

  // Supervised: whatever happens inside a beat (even a defect), the next beat runs. Beats are at a fixed rate, not
  // `interval` after the previous reply, so that a frozen server is detected within interval x misses + timeout.
  const supervised = Effect.sleep(policy.interval).pipe(
    Effect.andThen(Effect.repeat(
      beat.pipe(Effect.catchCause((cause) => Effect.logWarning("Redis heartbeat failed unexpectedly", cause))),
      Schedule.fixed(policy.interval)
    ))
  )
  yield* Effect.forkScoped(supervised)

  return {
    rtt: Effect.sync(() => rtt),
    consecutiveFailures: Effect.sync(() => failures)
  }
})
