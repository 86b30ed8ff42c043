/**
 * Everything one cache holds, in one record: what it was made with (the Redis service, its resolved options, the
 * codec), what it knows (the L1, the lookups in flight, whether Redis is worth asking) and what it counted. The
 * cache's operations (`lookup.ts`, `store.ts`, `invalidation.ts`) are functions of it.
 *
 * @internal
 */
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { ValueCodec } from "../../RedisCache.ts"
import type { RedisServiceShape } from "../../RedisService.ts"
import type { Availability } from "./availability.ts"
import * as L1 from "./l1.ts"
import type { ResolvedOptions } from "./options.ts"
import * as SingleFlight from "./singleFlight.ts"
import type { Counters } from "./stats.ts"

/** One cache's state. */
export interface CacheState<A> {
  readonly redis: RedisServiceShape
  readonly options: ResolvedOptions
  readonly codec: ValueCodec<A>
  readonly counters: Counters
  /** `undefined` when the cache has no L1. */
  readonly l1: L1.L1<A> | undefined
  readonly flights: SingleFlight.SingleFlight<A>
  readonly availability: Availability
  /** The extra TTL of one write: random up to `jitterMillis`, so that keys written together do not expire together. */
  readonly jitter: Effect.Effect<number>
  /** The cache's scope: it owns the background refreshes. */
  readonly scope: Scope.Scope
  /** Log annotations naming the cache. */
  readonly annotations: { readonly cache: string }
}

/** The Redis key of a cache key: `${prefix}:${key}`. */
export const redisKey = <A>(state: CacheState<A>, key: string): string => `${state.options.prefix}:${key}`

/** Keeps `value` in the L1, if there is one. */
export const remember = <A>(state: CacheState<A>, key: string, value: A): void => {
  if (state.l1 !== undefined) L1.set(state.l1, key, value)
}

/** Forgets what this process holds for `key`: its L1 copy, and the write-back of any lookup or refresh in flight. */
export const forgetLocally = <A>(state: CacheState<A>, key: string): void => {
  if (state.l1 !== undefined) L1.remove(state.l1, key)
  SingleFlight.forget(state.flights, key)
}
