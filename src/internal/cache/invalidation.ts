/**
 * What changes a key everywhere: `replace` (the write of `set`) and `invalidate` drop this process's copy and what
 * is in flight for the key, update Redis, and broadcast the key on the invalidation channel when there is one; `listen`
 * applies the broadcasts of every cache on that channel (ours included, which is harmless) to this one's L1.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { RedisError } from "../../RedisError.ts"
import type { RedisSubscriber } from "../../RedisSubscriber.ts"
import * as L1 from "./l1.ts"
import { type CacheState, forgetLocally, redisKey, remember } from "./state.ts"
import * as Store from "./store.ts"

/**
 * Writes `value` (already encoded as `text`) and keeps it in the L1, after dropping any lookup in flight so that an
 * older value computed meanwhile cannot overwrite it; then broadcasts the key.
 */
export const replace = <A>(
  state: CacheState<A>,
  key: string,
  value: A,
  text: string
): Effect.Effect<void, RedisError> =>
  Effect.suspend(() => {
    forgetLocally(state, key)
    return Store.write(state, key, text).pipe(
      Effect.tap(() => Effect.sync(() => remember(state, key, value))),
      Effect.andThen(broadcast(state, key))
    )
  })

/** Drops the key here (even if Redis then fails), deletes it from Redis, then broadcasts it. */
export const invalidate = <A>(state: CacheState<A>, key: string): Effect.Effect<void, RedisError> =>
  Effect.suspend(() => {
    invalidateLocally(state, key)
    return Effect.andThen(Effect.asVoid(state.redis.del(redisKey(state, key))), broadcast(state, key))
  })

/**
 * Follows the invalidation channel until the scope closes. A `Gap` (messages may have been lost while the subscriber
 * was down) or a failed subscription drops the whole L1, since any entry may be out of date; the subscription is then
 * retried every second.
 */
export const listen = <A>(
  state: CacheState<A>,
  subscriber: RedisSubscriber["Service"],
  channel: string
): Effect.Effect<void, never, Scope.Scope> =>
  subscriber.events(channel).pipe(
    Stream.runForEach((event) =>
      Effect.sync(() => {
        if (event._tag === "Message") invalidateLocally(state, event.message)
        else if (event._tag === "Gap") clearL1(state)
      })
    ),
    Effect.tapCause((cause) =>
      Effect.andThen(
        Effect.sync(() => clearL1(state)),
        Effect.logWarning(`RedisCache ${state.options.prefix}: the invalidation subscription failed; retrying`, cause)
      )
    ),
    Effect.retry(Schedule.spaced("1 second")),
    Effect.ignore,
    Effect.forkScoped,
    Effect.asVoid
  )

const invalidateLocally = <A>(state: CacheState<A>, key: string): void => {
  state.counters.invalidations++
  forgetLocally(state, key)
}

const clearL1 = <A>(state: CacheState<A>): void => {
  if (state.l1 !== undefined) L1.clear(state.l1)
}

const broadcast = <A>(state: CacheState<A>, key: string): Effect.Effect<void, RedisError> =>
  state.options.channel === undefined ? Effect.void : Effect.asVoid(state.redis.publish(state.options.channel, key))
