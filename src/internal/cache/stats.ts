/**
 * The cache's counters (`RedisCacheStats`): plain numbers bumped on the hot path, and read by the metric registry
 * only when metrics are snapshotted, so that counting an event costs one increment.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import type * as Scope from "effect/Scope"
import type { RedisCacheStats } from "../../RedisCache.ts"

/** The counters, mutable. */
export type Counters = { -readonly [K in keyof RedisCacheStats]: number }

const counterNames: ReadonlyArray<keyof RedisCacheStats> = [
  "hits",
  "l1Hits",
  "misses",
  "invalid",
  "fallbacks",
  "staleHits",
  "joined",
  "computes",
  "computeFailures",
  "writes",
  "writeFailures",
  "oversize",
  "refreshes",
  "invalidations"
]

/** Every counter at 0. */
export const makeCounters = (): Counters => Object.fromEntries(counterNames.map((name) => [name, 0])) as Counters

/** A copy of the counters, as `stats` returns them. */
export const snapshot = (counters: Counters): RedisCacheStats => ({ ...counters })

/**
 * Registers each counter as `metric{cache: prefix, event}` for as long as the scope is open: a snapshot of the
 * metrics reads the counters as they are then.
 */
export const register = Effect.fnUntraced(function*(
  counters: Counters,
  metric: Metric.Counter<number>,
  prefix: string
): Effect.fn.Return<void, never, Scope.Scope> {
  const metricContext = yield* Effect.context<never>()
  const registrations = counterNames.map((event) =>
    Metric.registerUnsafe(Metric.withAttributes(metric, { cache: prefix, event }), metricContext, {
      get: () => ({ count: counters[event], incremental: true }),
      update: () => {},
      modify: () => {}
    })
  )
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      for (const registration of registrations) registration.remove()
    })
  )
})
