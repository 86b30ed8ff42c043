/**
 * `get`, the cache-aside path: a fresh L1 copy if there is one, else one lookup per key in the process (single
 * flight) that reads Redis and settles what it found. A hit is returned (and refreshed in the background when it is
 * about to expire, with `refreshAhead`); a miss or an invalid value is computed and written back; Redis unavailable,
 * or failing, means computing at once (or serving a stale L1 copy with `staleWhileDown`). Redis errors never reach
 * the caller: only `compute`'s do.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import { isAvailable } from "./availability.ts"
import * as L1 from "./l1.ts"
import * as SingleFlight from "./singleFlight.ts"
import { type CacheState, remember } from "./state.ts"
import * as Store from "./store.ts"

/** The cached value of `key`, else `compute`'s (written back). Fails only with `compute`'s error. */
export const get = <A, E, R>(
  state: CacheState<A>,
  key: string,
  compute: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.suspend(() => {
    if (state.l1 !== undefined) {
      const entry = L1.fresh(state.l1, key)
      if (entry !== undefined) {
        state.counters.l1Hits++
        return Effect.succeed(entry.value)
      }
    }
    return SingleFlight.run(state.flights, key, {
      lookup: (flight) => load(state, key, flight, compute),
      // The leader was interrupted: start over as a new caller (the L1 may hold the value by now).
      retry: () => get(state, key, compute),
      onJoin: () => {
        state.counters.joined++
      }
    })
  })

// The leader's lookup. While Redis is known to be unavailable it is not asked at all.
const load = <A, E, R>(
  state: CacheState<A>,
  key: string,
  flight: SingleFlight.Flight<A>,
  compute: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  isAvailable(state.availability)
    ? Effect.flatMap(Store.read(state, key), (found) => settle(state, key, flight, compute, found))
    : withoutRedis(state, key, flight, compute)

const settle = <A, E, R>(
  state: CacheState<A>,
  key: string,
  flight: SingleFlight.Flight<A>,
  compute: Effect.Effect<A, E, R>,
  found: Store.Lookup<A>
): Effect.Effect<A, E, R> => {
  const { counters, options } = state
  switch (found._tag) {
    case "Hit": {
      counters.hits++
      if (!flight.invalidated) remember(state, key, found.value)
      const refreshAhead = options.refreshAheadMillis
      if (refreshAhead !== undefined && found.pttl >= 0 && found.pttl < refreshAhead) {
        return Effect.as(refreshInBackground(state, key, compute), found.value)
      }
      return Effect.succeed(found.value)
    }
    case "Miss": {
      counters.misses++
      return computeAndStore(state, key, flight, compute)
    }
    case "Invalid": {
      counters.invalid++
      return Effect.andThen(
        Effect.logWarning(`RedisCache ${options.prefix}: a value stored is invalid; recomputing`).pipe(
          Effect.annotateLogs({ ...state.annotations, reason: found.reason })
        ),
        computeAndStore(state, key, flight, compute)
      )
    }
    case "Unavailable":
      return withoutRedis(state, key, flight, compute)
  }
}

// Counts every run of `compute`, and its failures.
const runCompute = <A, E, R>(state: CacheState<A>, compute: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.suspend(() => {
    state.counters.computes++
    return Effect.tapError(compute, () =>
      Effect.sync(() => {
        state.counters.computeFailures++
      }))
  })

// A lookup invalidated meanwhile still returns its value, but stores it nowhere.
const computeAndStore = <A, E, R>(
  state: CacheState<A>,
  key: string,
  flight: SingleFlight.Flight<A>,
  compute: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.flatMap(runCompute(state, compute), (value) => {
    if (flight.invalidated) return Effect.succeed(value)
    remember(state, key, value)
    return Effect.as(Store.writeBack(state, key, value), value)
  })

// Redis unavailable: a stale L1 copy when allowed, else compute (kept in the L1, not written to Redis).
const withoutRedis = <A, E, R>(
  state: CacheState<A>,
  key: string,
  flight: SingleFlight.Flight<A>,
  compute: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> => {
  state.counters.fallbacks++
  const staleEntry = state.l1 !== undefined && state.l1.options.staleMillis > 0 ? L1.stale(state.l1, key) : undefined
  if (staleEntry !== undefined) {
    state.counters.staleHits++
    return Effect.succeed(staleEntry.value)
  }
  return Effect.map(runCompute(state, compute), (value) => {
    if (!flight.invalidated) remember(state, key, value)
    return value
  })
}

// At most one refresh per key at a time, forked in the cache's scope: the caller does not wait for it, and its
// failure is only logged (the value it would have replaced is still in Redis).
const refreshInBackground = <A, E, R>(
  state: CacheState<A>,
  key: string,
  compute: Effect.Effect<A, E, R>
): Effect.Effect<void, never, R> => {
  const refresh = SingleFlight.startRefresh(state.flights, key)
  if (refresh === undefined) return Effect.void
  state.counters.refreshes++
  const run = runCompute(state, compute).pipe(
    Effect.flatMap((value) => {
      if (refresh.invalidated) return Effect.void
      remember(state, key, value)
      return Store.writeBack(state, key, value)
    }),
    Effect.catchCause((cause) =>
      Effect.logDebug(`RedisCache ${state.options.prefix}: a background refresh failed`, cause).pipe(
        Effect.annotateLogs(state.annotations)
      )
    ),
    Effect.ensuring(Effect.sync(() => SingleFlight.endRefresh(state.flights, key, refresh)))
  )
  return Effect.asVoid(Effect.forkIn(run, state.scope))
}
