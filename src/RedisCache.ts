/**
 * Cache-aside over Redis for values described by a Schema, with single-flight per key and fail-open reads, and the
 * typed read/write helpers `getAs` / `setAs` it is built on.
 *
 * `get(key, compute)` reads Redis; on a miss it runs `compute` once per key in the process however many callers wait,
 * writes the value back with the TTL plus a little jitter, and returns it. Redis trouble never reaches the caller:
 * while Redis is unavailable (circuit open, connection down, timeouts) `get` computes at once, or serves a stale
 * in-process copy when asked to. A stored value that does not decode is a miss and is overwritten.
 *
 * **Example**
 *
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { RedisCache, RedisService } from "effect-redis-resilience"
 *
 * const User = Schema.Struct({ id: Schema.String, name: Schema.String })
 *
 * const program = Effect.gen(function*() {
 *   const users = yield* RedisCache.make({ prefix: "user", schema: User, ttl: "5 minutes" })
 *   // Reads Redis; on a miss (or while Redis is down) runs the lookup, once per key however many callers wait.
 *   return yield* users.get("42", Effect.succeed({ id: "42", name: "Ada" }))
 * })
 *
 * Effect.runPromise(program.pipe(Effect.scoped, Effect.provide(RedisService.layer({ url: "redis://127.0.0.1:6379" }))))
 * ```
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Availability from "./internal/cache/availability.ts"
import * as Codec from "./internal/cache/codec.ts"
import * as Invalidation from "./internal/cache/invalidation.ts"
import * as L1 from "./internal/cache/l1.ts"
import * as Lookup from "./internal/cache/lookup.ts"
import * as CacheOptions from "./internal/cache/options.ts"
import * as SingleFlight from "./internal/cache/singleFlight.ts"
import { type CacheState, redisKey } from "./internal/cache/state.ts"
import * as Stats from "./internal/cache/stats.ts"
import type { EncodeError, RedisError } from "./RedisError.ts"
import { RedisService, type SetOptions } from "./RedisService.ts"
import type { RedisSubscriber } from "./RedisSubscriber.ts"

// ---------------------------------------------------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------------------------------------------------

/**
 * A value's encoded form is larger than the configured `maxValueBytes`: it was not sent to Redis.
 *
 * `RedisCache.get` never fails with it (the computed value is returned, just not cached); `RedisCache.set` and
 * `setAs` do.
 *
 * @since 0.1.0
 * @category errors
 */
export class ValueTooLarge extends Data.TaggedError("ValueTooLarge")<{
  readonly message: string
  /** The key: for code (`error.key`), never rendered (keys may hold ids or tokens). */
  readonly key: string
  /** The size of the encoded value, in UTF-8 bytes. */
  readonly bytes: number
  readonly maxBytes: number
}> {
  constructor(
    props: { readonly message: string; readonly key: string; readonly bytes: number; readonly maxBytes: number }
  ) {
    const { key, ...rendered } = props
    super(rendered as typeof props)
    // Out of every rendering (JSON.stringify, util.inspect, effect's loggers show enumerable own properties only).
    Object.defineProperty(this, "key", { enumerable: false, value: key })
  }
}

/**
 * The options given to `RedisCache.make` are invalid (a programming error: `make` dies with it).
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidCacheOptions extends Data.TaggedError("InvalidCacheOptions")<{
  readonly message: string
  readonly field: string
}> {}

// ---------------------------------------------------------------------------------------------------------------------
// typed values
// ---------------------------------------------------------------------------------------------------------------------

/**
 * How a typed value is stored.
 *
 * - `"json"` (the default): the Schema's JSON encoding (`Schema.toCodecJson`), as JSON text. `Date`, `Option`, ...
 *   round-trip.
 * - `"string"`: the Schema's encoded string as it is, for Schemas that encode to a string (`Schema.NumberFromString`,
 *   a branded string, ...).
 *
 * @since 0.1.0
 * @category models
 */
export type Format<I> = "json" | (I extends string ? "string" : never)

/**
 * Options of `getAs`.
 *
 * @since 0.1.0
 * @category models
 */
export interface GetAsOptions<I> {
  /** Default `"json"`. */
  readonly format?: Format<I> | undefined
}

/**
 * Options of `setAs`: those of `RedisService.set`, the format and a size limit.
 *
 * @since 0.1.0
 * @category models
 */
export interface SetAsOptions<I> extends SetOptions {
  /** Default `"json"`. */
  readonly format?: Format<I> | undefined
  /** Refuse (with `ValueTooLarge`, before anything is sent) an encoded value larger than this. Default: no limit. */
  readonly maxValueBytes?: number | undefined
}

/**
 * A Schema turned into synchronous string encoding and decoding.
 *
 * @since 0.1.0
 * @category models
 */
export interface ValueCodec<A> {
  readonly encode: (value: A) => Exit.Exit<string, Schema.SchemaError>
  readonly decode: (text: string) => Exit.Exit<A, Schema.SchemaError>
}

/**
 * The codec `getAs`, `setAs` and `RedisCache` use for a Schema and a format.
 *
 * @since 0.1.0
 * @category constructors
 */
export const valueCodec = <A, I>(schema: Schema.Codec<A, I>, format: Format<I> = "json"): ValueCodec<A> => {
  const codec = (format === "string" ? schema : Schema.fromJsonString(Schema.toCodecJson(schema))) as Schema.Codec<
    A,
    string
  >
  return { encode: Schema.encodeExit(codec), decode: Schema.decodeUnknownExit(codec) }
}

/**
 * Reads a key and decodes it with a Schema (JSON by default). `None` when the key does not exist; `DecodeError`
 * (carrying the key) when the stored value does not match. Requires `RedisService`.
 *
 * **Example**
 *
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { getAs, setAs } from "effect-redis-resilience"
 *
 * const Settings = Schema.Struct({ theme: Schema.String, updatedAt: Schema.Date })
 *
 * const program = Effect.gen(function*() {
 *   yield* setAs("settings:42", Settings, { theme: "dark", updatedAt: new Date() }, { ttl: "1 hour" })
 *   return yield* getAs("settings:42", Settings) // Option<{ theme: string; updatedAt: Date }>
 * })
 * ```
 *
 * @since 0.1.0
 * @category typed values
 */
export const getAs = <A, I>(
  key: string,
  schema: Schema.Codec<A, I>,
  options?: GetAsOptions<I>
): Effect.Effect<Option.Option<A>, RedisError, RedisService> => {
  const codec = valueCodec(schema, options?.format)
  return RedisService.use((redis) =>
    Effect.flatMap(redis.get(key), (stored) => {
      if (Option.isNone(stored)) return Effect.succeedNone
      const decoded = codec.decode(stored.value)
      return Exit.isSuccess(decoded)
        ? Effect.succeedSome(decoded.value)
        : Effect.fail(Codec.doesNotMatch(key, decoded))
    })
  )
}

/**
 * Encodes a value with a Schema (JSON by default) and writes it; the result is that of `RedisService.set` (true when
 * written). A value that does not encode fails with `EncodeError`, one larger than `maxValueBytes` with
 * `ValueTooLarge`: in both cases nothing is sent. Requires `RedisService`.
 *
 * @since 0.1.0
 * @category typed values
 */
export const setAs = <A, I>(
  key: string,
  schema: Schema.Codec<A, I>,
  value: A,
  options?: SetAsOptions<I>
): Effect.Effect<boolean, RedisError | ValueTooLarge, RedisService> => {
  const codec = valueCodec(schema, options?.format)
  return RedisService.use((redis) =>
    Effect.suspend(() =>
      Effect.flatMap(encodeOrFail(codec, key, value, options?.maxValueBytes), (text) => redis.set(key, text, options))
    )
  )
}

// setAs and RedisCache.set refuse alike: nothing is sent for a value that does not encode or is too large.
const encodeOrFail = <A>(
  codec: ValueCodec<A>,
  key: string,
  value: A,
  maxBytes: number | undefined
): Exit.Exit<string, EncodeError | ValueTooLarge> => {
  const encoded = Codec.encodeForWrite(codec, value, maxBytes)
  switch (encoded._tag) {
    case "Encoded":
      return Exit.succeed(encoded.text)
    case "Unencodable":
      return Exit.fail(Codec.cannotEncode(key, encoded.failure))
    case "TooLarge":
      return Exit.fail(
        new ValueTooLarge({
          message: Codec.tooLargeMessage(encoded.bytes, encoded.maxBytes),
          key,
          bytes: encoded.bytes,
          maxBytes: encoded.maxBytes
        })
      )
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// the cache
// ---------------------------------------------------------------------------------------------------------------------

/**
 * Options of `RedisCache.make`.
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisCacheOptions<A, I> {
  /** Keys are stored at `${prefix}:${key}` (after the layer's own `keyPrefix`, if any). */
  readonly prefix: string
  readonly schema: Schema.Codec<A, I>
  /** How the Schema's value is stored; default `"json"` (see `Format`). */
  readonly format?: Format<I> | undefined
  /** How long a written value lives in Redis. */
  readonly ttl: Duration.Input
  /**
   * Up to this much is added at random to each write's TTL, so that keys written together do not expire together.
   * Default: a tenth of `ttl`. `0` turns it off.
   */
  readonly jitter?: Duration.Input | undefined
  /**
   * Encoded values larger than this (UTF-8 bytes) are not written: `get` returns the computed value without caching
   * it (counted as `oversize`, logged at warning), `set` fails with `ValueTooLarge`. Default 1 MiB.
   */
  readonly maxValueBytes?: number | undefined
  /**
   * A bounded in-process copy in front of Redis (least recently used entries are dropped beyond `capacity`). A fresh
   * L1 entry is returned without asking Redis; `ttl` (default: the cache's `ttl`) bounds how stale it can be when
   * another process changes the value and no `invalidation` tells this one.
   */
  readonly l1?: { readonly capacity: number; readonly ttl?: Duration.Input | undefined } | undefined
  /**
   * While Redis is unavailable, serve an L1 entry even after its L1 `ttl` instead of computing: `true` at any age, a
   * duration for at most that long past its expiry. Needs `l1`. Default `false`.
   */
  readonly staleWhileDown?: boolean | Duration.Input | undefined
  /**
   * When a Redis hit has less than this left of its TTL, the caller gets it at once and the value is recomputed and
   * written in the background (one refresh per key at a time). Must be shorter than `ttl`. Default: off.
   */
  readonly refreshAhead?: Duration.Input | undefined
  /**
   * Broadcast invalidations over pub/sub: `invalidate` and `set` publish the key on `channel` (default
   * `${prefix}:invalidate`), and every cache listening drops its L1 copy. When the subscriber reports a gap (messages
   * may have been lost while it was down), the whole L1 is dropped. Only useful with `l1`.
   */
  readonly invalidation?: {
    readonly subscriber: RedisSubscriber["Service"]
    readonly channel?: string | undefined
  } | undefined
  /**
   * How long `get` waits for Redis (the read, and the write-back on a miss) before it computes, or returns without
   * caching. Default: no bound of its own, the layer's `commandTimeout` applies.
   */
  readonly redisTimeout?: Duration.Input | undefined
}

/**
 * What a cache did since it was made. Also exported as the metric `redis_cache_events_total{cache, event}`.
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisCacheStats {
  /** Values served from Redis. */
  readonly hits: number
  /** Values served from the in-process L1 (fresh). */
  readonly l1Hits: number
  /** Keys absent from Redis: computed. */
  readonly misses: number
  /** Stored values that did not decode (or were of the wrong Redis type): computed and overwritten. */
  readonly invalid: number
  /** Calls that found Redis unavailable (or failing) and went without it. */
  readonly fallbacks: number
  /** Stale L1 values served while Redis was unavailable (`staleWhileDown`). */
  readonly staleHits: number
  /** Callers that waited for another caller's lookup of the same key instead of starting their own. */
  readonly joined: number
  /** Runs of `compute` (misses, fallbacks and refreshes). */
  readonly computes: number
  /** Runs of `compute` that failed (nothing was written). */
  readonly computeFailures: number
  /** Values written to Redis. */
  readonly writes: number
  /** Write-backs that failed or timed out (the value was still returned). */
  readonly writeFailures: number
  /** Computed values not written because they were larger than `maxValueBytes` or did not encode. */
  readonly oversize: number
  /** Background refreshes started (`refreshAhead`). */
  readonly refreshes: number
  /** Keys invalidated here or by a broadcast. */
  readonly invalidations: number
}

/**
 * A cache of `A` values in Redis.
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisCache<A> {
  /**
   * The cached value, else `compute`'s (written back). Never fails with a Redis error: only with `compute`'s.
   *
   * Callers of the same key share one lookup: while it runs, others wait for it and get its result, its failure
   * included (the next caller after a failure computes again). If the caller running the lookup is interrupted,
   * a waiting caller takes over.
   */
  readonly get: <E, R>(key: string, compute: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** Writes a value (and refreshes the L1), and broadcasts the key when `invalidation` is on. */
  readonly set: (key: string, value: A) => Effect.Effect<void, RedisError | ValueTooLarge>
  /**
   * Drops the key from the L1 and Redis and, when `invalidation` is on, tells the other caches. A lookup of the key
   * in flight is not written back. The L1 copy is dropped even when Redis then fails.
   */
  readonly invalidate: (key: string) => Effect.Effect<void, RedisError>
  /** The Redis key of a cache key: `${prefix}:${key}`. */
  readonly keyOf: (key: string) => string
  readonly stats: Effect.Effect<RedisCacheStats>
}
/**
 * Cache events, by `cache` (the prefix) and `event` (a field of `RedisCacheStats`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const cacheEvents = Metric.counter("redis_cache_events_total", {
  description: "RedisCache events (hits, misses, fallbacks, ...), by cache prefix and event",
  incremental: true
})

/**
 * Makes a cache in the current scope (the scope owns its invalidation listener and background refreshes).
 *
 * **Gotchas**
 *
 * - Fail-open is per call: while the connection is down or the circuit is open, `get` does not touch Redis at all;
 *   while it looks healthy, a read waits at most `redisTimeout` (else the layer's `commandTimeout`) before computing.
 * - Computed values are not written while Redis is unavailable, so the next calls compute again unless `l1` is on.
 * - `invalidate` racing a lookup that already sent its write-back cannot stop that write; in-flight lookups that have
 *   not written yet never do.
 * - Invalid options (a non-positive `ttl`, `staleWhileDown` without `l1`, ...) are a defect: `make` dies with
 *   `InvalidCacheOptions`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: <A, I>(
  options: RedisCacheOptions<A, I>
) => Effect.Effect<RedisCache<A>, never, RedisService | Scope.Scope> = Effect.fnUntraced(function*<A, I>(
  options: RedisCacheOptions<A, I>
) {
  const redis = yield* RedisService
  const clock = yield* Clock.Clock
  const resolved = CacheOptions.resolve(options)
  if (Result.isFailure(resolved)) {
    const { field, message } = resolved.failure
    return yield* Effect.die(new InvalidCacheOptions({ message: `RedisCache: ${field} ${message}`, field }))
  }
  const resolvedOptions = resolved.success
  const { jitterMillis, maxValueBytes, prefix } = resolvedOptions

  const counters = Stats.makeCounters()
  yield* Stats.register(counters, cacheEvents, prefix)
  const state: CacheState<A> = {
    redis,
    options: resolvedOptions,
    codec: valueCodec(options.schema, options.format),
    counters,
    l1: resolvedOptions.l1 === undefined ? undefined : L1.make(resolvedOptions.l1, clock),
    flights: SingleFlight.make(),
    availability: yield* Availability.track(redis),
    jitter: jitterMillis < 1 ? Effect.succeed(0) : Random.nextIntBetween(0, jitterMillis),
    scope: yield* Effect.scope,
    annotations: { cache: prefix }
  }
  const keyOf = (key: string) => redisKey(state, key)

  if (options.invalidation !== undefined && resolvedOptions.channel !== undefined) {
    yield* Invalidation.listen(state, options.invalidation.subscriber, resolvedOptions.channel)
  }

  return {
    get: (key, compute) => Lookup.get(state, key, compute),
    set: (key, value) =>
      Effect.suspend(() =>
        Effect.flatMap(
          encodeOrFail(state.codec, keyOf(key), value, maxValueBytes),
          (text) => Invalidation.replace(state, key, value, text)
        )
      ),
    invalidate: (key) => Invalidation.invalidate(state, key),
    keyOf,
    stats: Effect.sync(() => Stats.snapshot(counters))
  } satisfies RedisCache<A>
})
