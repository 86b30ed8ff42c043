/**
 * The reconnect backoff: exponential from `base` by `factor`, jittered, capped at `cap`, built from effect's
 * `Schedule` combinators only. The connection's reconnect loop steps a fresh copy of it for every reconnect cycle,
 * which is how the backoff restarts from `base` once a connection has become ready.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"

/**
 * The backoff policy (the `reconnect` options without `debounce`, decoded).
 *
 * @since 0.1.0
 * @category models
 */
export interface ReconnectPolicy {
  readonly base: Duration.Duration
  readonly factor: number
  readonly cap: Duration.Duration
  readonly jitter: boolean
}

/**
 * The delays between failed connection attempts of one reconnect cycle.
 *
 * **Details**
 *
 * The n-th delay is `base * factor^(n-1)`, scaled by a random factor in [0.8, 1.2] when `jitter` is on
 * (`Schedule.jittered`), and never more than `cap`: the cap is applied after the jitter, so a capped delay is exactly
 * `cap`. The schedule never ends: the connection keeps trying until its scope closes; the circuit breaker is what
 * protects callers meanwhile.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (policy: ReconnectPolicy): Schedule.Schedule<Duration.Duration> => {
  const exponential = Schedule.exponential(policy.base, policy.factor)
  return Schedule.min([policy.jitter ? Schedule.jittered(exponential) : exponential, Schedule.spaced(policy.cap)])
}

/**
 * The first `count` delays of a schedule, read without sleeping (for docs, tests and dashboards).
 *
 * @since 0.1.0
 * @category destructors
 */
export const delays = Effect.fnUntraced(function*<Out, In>(
  schedule: Schedule.Schedule<Out, In>,
  count: number,
  input: In
) {
  const step = yield* Schedule.toStep(schedule)
  const out: Array<Duration.Duration> = []
  for (let i = 0; i < count; i++) {
    const [, delay] = yield* step(0, input)
    out.push(delay)
  }
  return out
})
