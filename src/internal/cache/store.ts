/**
 * The cache's side of Redis: a read bounded by `redisTimeout` that always answers with what it found (a `Lookup`,
 * never an error), a write with the TTL plus jitter, and the write-back after a compute, which never fails either and
 * counts what did not happen.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type { ValueCodec } from "../../RedisCache.ts"
import { commandTimedOut, isTransient, type RedisError } from "../../RedisError.ts"
import { isAvailable } from "./availability.ts"
import * as Codec from "./codec.ts"
import { type CacheState, redisKey } from "./state.ts"

/** What a read of Redis found. `pttl` is the remaining TTL in millis, `-1` when it was not asked for. */
export type Lookup<A> =
  | { readonly _tag: "Hit"; readonly value: A; readonly pttl: number }
  | { readonly _tag: "Miss" }
  | { readonly _tag: "Invalid"; readonly reason: string }
  | { readonly _tag: "Unavailable"; readonly error: RedisError | undefined }

// One round trip for the value and its remaining TTL (refreshAhead only). GET of a missing key is false: a nil reply.
const GET_WITH_TTL = "return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}"

/** Reads `key`, with its remaining TTL when `refreshAhead` is on. */
export const read = <A>(state: CacheState<A>, key: string): Effect.Effect<Lookup<A>> => {
  const name = redisKey(state, key)
  if (state.options.refreshAheadMillis === undefined) {
    return Effect.match(bounded(state, state.redis.get(name), "GET"), {
      onFailure: classifyFailure,
      onSuccess: (value) => decodeStored(state.codec, Option.getOrNull(value), -1)
    })
  }
  const withTtl = state.redis.command<[string | null, number]>("EVAL", [GET_WITH_TTL, 1, name], { idempotent: true })
  return Effect.match(bounded(state, withTtl, "EVAL"), {
    onFailure: classifyFailure,
    onSuccess: ([value, pttl]) => decodeStored(state.codec, value, Number(pttl))
  })
}

/** A failed read: Redis unavailable, unless Redis answered that the stored value is unusable. */
export const classifyFailure = (error: RedisError): Lookup<never> =>
  error._tag === "ReplyError" && !isTransient(error)
    ? { _tag: "Invalid", reason: error.message } // e.g. WRONGTYPE: someone stored another type under the key
    : { _tag: "Unavailable", error }

/** A stored value (`null`: none) as a hit, a miss, or invalid when it does not decode. */
export const decodeStored = <A>(codec: ValueCodec<A>, stored: string | null, pttl: number): Lookup<A> => {
  if (stored === null) return { _tag: "Miss" }
  const decoded = codec.decode(stored)
  return Exit.isSuccess(decoded)
    ? { _tag: "Hit", value: decoded.value, pttl }
    : { _tag: "Invalid", reason: Codec.schemaMessage(decoded) }
}

/** Writes encoded text under `key` with the cache's TTL plus jitter; counted in `writes`. */
export const write = <A>(state: CacheState<A>, key: string, text: string): Effect.Effect<void, RedisError> =>
  Effect.flatMap(state.jitter, (jitter) =>
    Effect.map(state.redis.set(redisKey(state, key), text, { ttl: state.options.ttlMillis + jitter }), () => {
      state.counters.writes++
    }))

/**
 * Write-back after a compute: never fails, never blocks longer than `redisTimeout`, and is skipped while Redis is
 * unavailable; a value that does not encode or is too large is logged and counted (`oversize`), a failed write too.
 */
export const writeBack = <A>(state: CacheState<A>, key: string, value: A): Effect.Effect<void> => {
  const { annotations, counters, options } = state
  const encoded = Codec.encodeForWrite(state.codec, value, options.maxValueBytes)
  switch (encoded._tag) {
    case "Unencodable": {
      counters.oversize++
      return Effect.logWarning(`RedisCache ${options.prefix}: a computed value does not encode; not cached`)
        .pipe(Effect.annotateLogs({ ...annotations, error: Codec.schemaMessage(encoded.failure) }))
    }
    case "TooLarge": {
      counters.oversize++
      return Effect.logWarning(Codec.tooLargeMessage(encoded.bytes, encoded.maxBytes)).pipe(
        Effect.annotateLogs(annotations)
      )
    }
    case "Encoded": {
      if (!isAvailable(state.availability)) return Effect.void
      return bounded(state, write(state, key, encoded.text), "SET").pipe(
        Effect.catch((error) => {
          counters.writeFailures++
          return Effect.logDebug(`RedisCache ${options.prefix}: a write-back failed: ${error.message}`)
        })
      )
    }
  }
}

// The cache's own bound on a Redis call, so that a slow Redis costs `get` at most `redisTimeout` before it computes.
const bounded = <A, X>(
  state: CacheState<A>,
  effect: Effect.Effect<X, RedisError>,
  command: string
): Effect.Effect<X, RedisError> => {
  const timeout = state.options.redisTimeout
  return timeout === undefined ? effect : Effect.timeoutOrElse(effect, {
    duration: timeout,
    orElse: () =>
      Effect.fail(
        commandTimedOut(command, timeout)
      )
  })
}
