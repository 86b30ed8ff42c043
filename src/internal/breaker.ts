/**
 * The circuit breaker that keeps callers from waiting on a Redis that is not there.
 *
 * It is two things: a pure transition function `(state, event, now) => state` that knows nothing of fibers or
 * timers, and a `Ref`-based runner that feeds it command outcomes and connection signals, fails calls at once while
 * open, and probes Redis with a PING of its own (never with a user's command) to close again.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import type { CircuitStatus } from "../Health.ts"
import { CircuitOpen } from "../RedisError.ts"

/**
 * The breaker settings, decoded.
 *
 * @since 0.1.0
 * @category models
 */
export interface BreakerPolicy {
  /** Consecutive transient failures (or failed reconnect attempts) that open the circuit. */
  readonly failureThreshold: number
  /** How long the circuit stays open the first time. */
  readonly openDuration: Duration.Duration
  /** The open duration doubles on every failed probe, up to this. */
  readonly maxOpenDuration: Duration.Duration
}

/**
 * The breaker's state. `trips` counts how many times in a row the circuit opened without closing in between; it
 * decides how long the next open period lasts.
 *
 * @since 0.1.0
 * @category models
 */
export type BreakerState =
  | { readonly _tag: "Closed"; readonly failures: number }
  | { readonly _tag: "Open"; readonly since: number; readonly until: number; readonly trips: number }
  | { readonly _tag: "HalfOpen"; readonly trips: number }

/**
 * What the breaker is told.
 *
 * - `Success` / `Failure`: the outcome of a user command or a connection signal (a failed reconnect attempt, a
 *   missed heartbeat). Only transient failures are reported; reply errors never are.
 * - `Tick`: time passes; an open circuit whose period is over becomes half-open.
 * - `ConnectionReady`: a new connection became ready (the server answered its handshake); an open circuit need not
 *   wait out its period and goes half-open at once, so recovery is not delayed by a long open period.
 * - `ProbeSucceeded` / `ProbeFailed`: the outcome of the breaker's own PING while half-open.
 *
 * @since 0.1.0
 * @category models
 */
export type BreakerEvent =
  | { readonly _tag: "Success" }
  | { readonly _tag: "Failure" }
  | { readonly _tag: "Tick" }
  | { readonly _tag: "ConnectionReady" }
  | { readonly _tag: "ProbeSucceeded" }
  | { readonly _tag: "ProbeFailed" }

/**
 * The state of a breaker that has seen nothing yet.
 *
 * @since 0.1.0
 * @category constructors
 */
export const initial: BreakerState = { _tag: "Closed", failures: 0 }

/**
 * How long the circuit stays open on its `trips`-th consecutive opening: `openDuration * 2^(trips - 1)`, at most
 * `maxOpenDuration`.
 *
 * @since 0.1.0
 * @category transitions
 */
export const openDurationFor = (policy: BreakerPolicy, trips: number): Duration.Duration => {
  const base = Duration.toMillis(policy.openDuration)
  const max = Duration.toMillis(policy.maxOpenDuration)
  return Duration.millis(Math.min(base * Math.pow(2, Math.max(0, trips - 1)), max))
}

const open = (policy: BreakerPolicy, trips: number, now: number): BreakerState => ({
  _tag: "Open",
  since: now,
  until: now + Duration.toMillis(openDurationFor(policy, trips)),
  trips
})

/**
 * The pure transition function. Returns the same object when nothing changes, so that callers can skip work.
 *
 * **Details**
 *
 * - Closed: a `Failure` counts; reaching `failureThreshold` opens the circuit. A `Success` (a command or a heartbeat
 *   answered) or `ConnectionReady` resets the count.
 * - Open: outcomes of commands admitted before the circuit opened are ignored; a `Tick` at or after `until`, or
 *   `ConnectionReady`, moves to HalfOpen.
 * - HalfOpen: only the probe decides: `ProbeSucceeded` closes, `ProbeFailed` opens again for twice as long (up to
 *   `maxOpenDuration`). Late outcomes of user commands are ignored.
 *
 * @since 0.1.0
 * @category transitions
 */
export const transition = (
  policy: BreakerPolicy,
  state: BreakerState,
  event: BreakerEvent,
  now: number
): BreakerState => {
  switch (state._tag) {
    case "Closed": {
      switch (event._tag) {
        case "Success":
        case "ConnectionReady":
          return state.failures === 0 ? state : initial
        case "Failure":
          return state.failures + 1 >= policy.failureThreshold
            ? open(policy, 1, now)
            : { _tag: "Closed", failures: state.failures + 1 }
        default:
          return state
      }
    }
    case "Open":
      return (event._tag === "Tick" && now >= state.until) || event._tag === "ConnectionReady"
        ? { _tag: "HalfOpen", trips: state.trips }
        : state
    case "HalfOpen": {
      switch (event._tag) {
        case "ProbeSucceeded":
          return initial
        case "ProbeFailed":
          return open(policy, state.trips + 1, now)
        default:
          return state
      }
    }
  }
}

/**
 * Whether a call is admitted now, and if not, when to try again.
 *
 * @since 0.1.0
 * @category transitions
 */
export const retryAfter = (state: BreakerState, now: number): Duration.Duration | undefined => {
  switch (state._tag) {
    case "Closed":
      return undefined
    case "Open":
      return Duration.millis(Math.max(0, state.until - now))
    case "HalfOpen":
      return Duration.zero
  }
}

/**
 * @since 0.1.0
 * @category models
 */
export const status = (state: BreakerState): CircuitStatus =>
  state._tag === "Closed" ? "closed" : state._tag === "Open" ? "open" : "half-open"

/**
 * A running breaker.
 *
 * @since 0.1.0
 * @category models
 */
export interface CircuitBreaker {
  /** Fails with `CircuitOpen` unless the circuit is closed. Cheap: one `Ref` read while closed. */
  readonly admit: (command?: string) => Effect.Effect<void, CircuitOpen>
  readonly onSuccess: Effect.Effect<void>
  readonly onFailure: Effect.Effect<void>
  /** Tells the breaker that a new connection is ready, so that an open circuit probes at once. */
  readonly onConnectionReady: Effect.Effect<void>
  readonly state: Effect.Effect<BreakerState>
  /** The state now, synchronously (for the command hot path). */
  readonly current: () => BreakerState
  /** The current status, then every change of it (closed, open, half-open). */
  readonly changes: Stream.Stream<CircuitStatus>
  /**
   * Runs the breaker's clock in the current scope: when an open period is over it goes half-open and runs `probe`
   * (a PING on the side); success closes the circuit, failure opens it again for longer.
   */
  readonly run: <E>(probe: Effect.Effect<unknown, E>) => Effect.Effect<void, never, Scope.Scope>
}

/**
 * Creates a breaker. Call `run` with a probe to let it recover by itself; without `run` it stays open once opened.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(
  policy: BreakerPolicy,
  options?: { readonly onTransition?: ((state: BreakerState) => Effect.Effect<void>) | undefined }
) {
  const ref = yield* Ref.make<BreakerState>(initial)
  const statusRef = yield* SubscriptionRef.make<CircuitStatus>("closed")
  const changes = SubscriptionRef.changes(statusRef)
  const onTransition = options?.onTransition

  // Publishes the state as it is when the update runs (not `next`): two feeds racing cannot leave a stale status.
  const publish = (previous: BreakerState, next: BreakerState): Effect.Effect<void> =>
    previous._tag === next._tag ? Effect.void : SubscriptionRef.modify(statusRef, (published) => {
      const now = Ref.getUnsafe(ref)
      const changed = status(now) !== published
      return [changed && onTransition !== undefined ? onTransition(now) : Effect.void, status(now)]
    }).pipe(Effect.flatten)

  // Waits until the status is no longer `current` (the stream starts with the current status: nothing is missed).
  const leave = (current: CircuitStatus) =>
    Stream.runHead(Stream.filter(changes, (now) => now !== current))

  const feed = (event: BreakerEvent): Effect.Effect<void> =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.flatten(Ref.modify(ref, (previous) => {
        const next = transition(policy, previous, event, now)
        return [next === previous ? Effect.void : publish(previous, next), next]
      })))

  const success: BreakerEvent = { _tag: "Success" }
  const failure: BreakerEvent = { _tag: "Failure" }

  // The hot path: a closed circuit with no failures needs no clock read and no write.
  const onSuccess = Effect.suspend(() => {
    const state = Ref.getUnsafe(ref)
    return state._tag === "Closed" && state.failures === 0 ? Effect.void : feed(success)
  })

  const admit = (command?: string): Effect.Effect<void, CircuitOpen> =>
    Effect.suspend(() => {
      const state = Ref.getUnsafe(ref)
      if (state._tag === "Closed") return Effect.void
      return Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const after = retryAfter(state, now) ?? Duration.zero
        return Effect.fail(
          new CircuitOpen({
            message: `The circuit breaker is ${status(state)}: Redis is failing, the call was not attempted. ` +
              `Retry after ${Duration.format(after)}`,
            retryAfter: after,
            command
          })
        )
      })
    })

  // One step of the breaker's clock.
  const step = <E>(probe: Effect.Effect<unknown, E>): Effect.Effect<void> =>
    Effect.gen(function*() {
      const state = Ref.getUnsafe(ref)
      switch (state._tag) {
        case "Open": {
          const now = yield* Clock.currentTimeMillis
          // Wake up at the end of the period, or earlier if a transition (e.g. ConnectionReady) happens first.
          if (now < state.until) {
            yield* Effect.raceFirst(Effect.sleep(Duration.millis(state.until - now)), leave("open"))
          }
          return yield* feed({ _tag: "Tick" })
        }
        case "HalfOpen": {
          const ok = yield* probe.pipe(Effect.as(true), Effect.catchCause(() => Effect.succeed(false)))
          return yield* feed({ _tag: ok ? "ProbeSucceeded" : "ProbeFailed" })
        }
        case "Closed": {
          yield* leave("closed")
          return
        }
      }
    })

  const run = <E>(probe: Effect.Effect<unknown, E>): Effect.Effect<void, never, Scope.Scope> =>
    Effect.forkScoped(Effect.forever(step(probe))).pipe(Effect.asVoid)

  return {
    admit,
    onSuccess,
    onFailure: feed(failure),
    onConnectionReady: feed({ _tag: "ConnectionReady" }),
    state: Ref.get(ref),
    current: () => Ref.getUnsafe(ref),
    changes,
    run
  } satisfies CircuitBreaker as CircuitBreaker
})
