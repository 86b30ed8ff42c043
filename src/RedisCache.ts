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
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Channels from "./RedisChannel.ts"
import { CommandTimeout, DecodeError, isTransient, type RedisError } from "./RedisError.ts"
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
  readonly key: string
  /** The size of the encoded value, in UTF-8 bytes. */
  readonly bytes: number
  readonly maxBytes: number
}> {}

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

const schemaMessage = (exit: Exit.Failure<unknown, Schema.SchemaError>): string => {
  const error = Cause.squash(exit.cause)
  return error instanceof Error ? error.message : String(error)
}

/** UTF-8 size of a string, without counting when it cannot exceed `max` (a UTF-16 unit is at most 3 bytes). */
const exceeds = (text: string, max: number): number | undefined => {
  if (text.length * 3 <= max) return undefined
  const bytes = Buffer.byteLength(text, "utf8")
  return bytes > max ? bytes : undefined
}

const tooLarge = (key: string, bytes: number, maxBytes: number) =>
  new ValueTooLarge({
    message: `The value for ${key} is ${bytes} bytes encoded, more than the limit of ${maxBytes}; it was not written`,
    key,
    bytes,
    maxBytes
  })

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
        : Effect.fail(
          new DecodeError({
            message: `The value stored at ${key} does not match its schema: ${schemaMessage(decoded)}`,
            key,
            cause: Cause.squash(decoded.cause)
          })
        )
    })
  )
}

/**
 * Encodes a value with a Schema (JSON by default) and writes it; the result is that of `RedisService.set` (true when
 * written). A value that does not encode fails with `DecodeError`, one larger than `maxValueBytes` with
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
    Effect.suspend((): Effect.Effect<boolean, RedisError | ValueTooLarge> => {
      const encoded = codec.encode(value)
      if (Exit.isFailure(encoded)) {
        return Effect.fail(
          new DecodeError({
            message: `Cannot encode the value for ${key}: ${schemaMessage(encoded)}`,
            key,
            cause: Cause.squash(encoded.cause)
          })
        )
      }
      const max = options?.maxValueBytes
      const bytes = max === undefined ? undefined : exceeds(encoded.value, max)
      if (bytes !== undefined) return Effect.fail(tooLarge(key, bytes, max!))
      return redis.set(key, encoded.value, options)
    })
  )
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

type Counters = { -readonly [K in keyof RedisCacheStats]: number }

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

interface Flight<A> {
  /** Created by the first caller that waits. `undefined` as a result: the leader was interrupted, look up again. */
  waiters: Deferred.Deferred<Exit.Exit<A, unknown> | undefined> | undefined
  /** Set by `invalidate`: the result is still returned to those waiting, but not written anywhere. */
  invalidated: boolean
}

interface L1Entry<A> {
  readonly value: A
  readonly freshUntil: number
  readonly staleUntil: number
}

type Lookup<A> =
  | { readonly _tag: "Hit"; readonly value: A; readonly pttl: number }
  | { readonly _tag: "Miss" }
  | { readonly _tag: "Invalid"; readonly reason: string }
  | { readonly _tag: "Unavailable"; readonly error: RedisError | undefined }

// One round trip for the value and its remaining TTL (refreshAhead only). GET of a missing key is false: a nil reply.
const GET_WITH_TTL = "return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}"

const DEFAULT_MAX_VALUE_BYTES = 1024 * 1024

const toMillis = (input: Duration.Input): number => Duration.toMillis(Duration.fromInputUnsafe(input))

const invalidOptions = (field: string, message: string) =>
  Effect.die(new InvalidCacheOptions({ message: `RedisCache: ${field} ${message}`, field }))

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
  const scope = yield* Effect.scope
  const now = () => clock.currentTimeMillisUnsafe()

  // Options, checked once.
  const ttlMillis = Math.ceil(toMillis(options.ttl))
  if (!(ttlMillis > 0) || !Number.isFinite(ttlMillis)) {
    return yield* invalidOptions("ttl", "must be a finite duration > 0")
  }
  const jitterMillis = options.jitter === undefined ? Math.floor(ttlMillis / 10) : toMillis(options.jitter)
  if (!(jitterMillis >= 0) || !Number.isFinite(jitterMillis)) {
    return yield* invalidOptions("jitter", "must be a finite duration >= 0")
  }
  const maxValueBytes = options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES
  if (!(maxValueBytes > 0)) return yield* invalidOptions("maxValueBytes", "must be > 0")
  const l1Capacity = options.l1?.capacity
  if (l1Capacity !== undefined && !(Number.isInteger(l1Capacity) && l1Capacity > 0)) {
    return yield* invalidOptions("l1.capacity", "must be an integer > 0")
  }
  const l1TtlMillis = options.l1?.ttl === undefined ? ttlMillis : toMillis(options.l1.ttl)
  if (!(l1TtlMillis > 0)) return yield* invalidOptions("l1.ttl", "must be a duration > 0")
  const stale = options.staleWhileDown ?? false
  const staleMillis = stale === false ? 0 : stale === true ? Number.POSITIVE_INFINITY : toMillis(stale)
  if (stale !== false && options.l1 === undefined) return yield* invalidOptions("staleWhileDown", "needs l1")
  const refreshAheadMillis = options.refreshAhead === undefined ? undefined : toMillis(options.refreshAhead)
  if (refreshAheadMillis !== undefined && !(refreshAheadMillis > 0 && refreshAheadMillis < ttlMillis)) {
    return yield* invalidOptions("refreshAhead", "must be > 0 and shorter than ttl")
  }
  const redisTimeout = options.redisTimeout === undefined ? undefined : Duration.fromInputUnsafe(options.redisTimeout)
  const channel = options.invalidation === undefined
    ? undefined
    : options.invalidation.channel ?? `${options.prefix}:invalidate`
  if (channel !== undefined) {
    const invalid = Channels.validateChannelName(channel)
    if (invalid !== undefined) return yield* invalidOptions("invalidation.channel", invalid.message)
  }

  const prefix = options.prefix
  const keyOf = (key: string) => `${prefix}:${key}`
  const codec = valueCodec(options.schema, options.format)
  const annotations = { cache: prefix }

  // Counters: plain numbers on the hot path, read by the metric registry on snapshot.
  const counters = Object.fromEntries(counterNames.map((name) => [name, 0])) as Counters
  const metricContext = yield* Effect.context<never>()
  const registrations = counterNames.map((event) =>
    Metric.registerUnsafe(Metric.withAttributes(cacheEvents, { cache: prefix, event }), metricContext, {
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

  // Whether Redis is worth asking: not while the connection is being re-established or the circuit is not closed.
  // The first connection ("Connecting") is worth waiting for, as commands wait `acquireTimeout` for it.
  const health = yield* redis.health
  let connectionUsable = health.connection === "ready" || health.connection === "connecting"
  let circuitClosed = health.circuit === "closed"
  yield* redis.states.pipe(
    Stream.runForEach((state) =>
      Effect.sync(() => {
        connectionUsable = state._tag === "Ready" || state._tag === "Connecting"
      })
    ),
    Effect.forkScoped
  )
  yield* redis.circuit.pipe(
    Stream.runForEach((status) =>
      Effect.sync(() => {
        circuitClosed = status === "closed"
      })
    ),
    Effect.forkScoped
  )
  const available = () => connectionUsable && circuitClosed

  // The L1: a Map in least-recently-used order (a hit moves the entry to the end).
  const l1 = l1Capacity === undefined ? undefined : new Map<string, L1Entry<A>>()
  const l1Set = (key: string, value: A) => {
    if (l1 === undefined) return
    const at = now()
    l1.delete(key)
    l1.set(key, { value, freshUntil: at + l1TtlMillis, staleUntil: at + l1TtlMillis + staleMillis })
    if (l1.size > l1Capacity!) l1.delete(l1.keys().next().value!)
  }
  const l1Fresh = (key: string): L1Entry<A> | undefined => {
    const entry = l1!.get(key)
    if (entry === undefined || entry.freshUntil <= now()) return undefined
    l1!.delete(key)
    l1!.set(key, entry)
    return entry
  }
  const l1Stale = (key: string): L1Entry<A> | undefined => {
    const entry = l1?.get(key)
    if (entry === undefined) return undefined
    if (entry.staleUntil <= now()) {
      l1!.delete(key)
      return undefined
    }
    return entry
  }

  const flights = new Map<string, Flight<A>>()
  const refreshing = new Map<string, { invalidated: boolean }>()

  // Forget what this process holds for a key: its L1 copy, and the write-back of any lookup or refresh in flight.
  const dropLocal = (key: string) => {
    l1?.delete(key)
    const flight = flights.get(key)
    if (flight !== undefined) {
      flight.invalidated = true
      flights.delete(key)
    }
    const refresh = refreshing.get(key)
    if (refresh !== undefined) refresh.invalidated = true
  }
  const invalidateLocal = (key: string) => {
    counters.invalidations++
    dropLocal(key)
  }

  const bounded = <X>(effect: Effect.Effect<X, RedisError>, command: string): Effect.Effect<X, RedisError> =>
    redisTimeout === undefined ? effect : Effect.timeoutOrElse(effect, {
      duration: redisTimeout,
      orElse: () =>
        Effect.fail(
          new CommandTimeout({
            message: `RedisCache ${prefix}: ${command} got no reply within ${Duration.format(redisTimeout)}`,
            command,
            timeout: redisTimeout,
            sent: true
          })
        )
    })

  const classifyFailure = (error: RedisError): Lookup<A> =>
    error._tag === "ReplyError" && !isTransient(error)
      ? { _tag: "Invalid", reason: error.message } // e.g. WRONGTYPE: someone stored another type under the key
      : { _tag: "Unavailable", error }

  const decodeStored = (stored: string | null, pttl: number): Lookup<A> => {
    if (stored === null) return { _tag: "Miss" }
    const decoded = codec.decode(stored)
    return Exit.isSuccess(decoded)
      ? { _tag: "Hit", value: decoded.value, pttl }
      : { _tag: "Invalid", reason: schemaMessage(decoded) }
  }

  // With refreshAhead, one round trip gives the value and its remaining TTL.
  const getWithTtl = (key: string) =>
    bounded(
      redis.command<[string | null, number]>("EVAL", [GET_WITH_TTL, 1, keyOf(key)], { idempotent: true }),
      "EVAL"
    )

  const randomJitter = jitterMillis < 1 ? Effect.succeed(0) : Random.nextIntBetween(0, jitterMillis)

  const write = (key: string, text: string): Effect.Effect<void, RedisError> =>
    Effect.flatMap(randomJitter, (jitter) =>
      Effect.map(redis.set(keyOf(key), text, { ttl: ttlMillis + jitter }), () => {
        counters.writes++
      }))

  // Write-back after a compute: never fails, never blocks longer than redisTimeout; what did not happen is counted.
  const writeBack = (key: string, value: A): Effect.Effect<void> => {
    const encoded = codec.encode(value)
    if (Exit.isFailure(encoded)) {
      counters.oversize++
      return Effect.logWarning(`RedisCache ${prefix}: a computed value for ${key} does not encode; not cached`).pipe(
        Effect.annotateLogs({ ...annotations, key, error: schemaMessage(encoded) })
      )
    }
    const bytes = exceeds(encoded.value, maxValueBytes)
    if (bytes !== undefined) {
      counters.oversize++
      return Effect.logWarning(tooLarge(keyOf(key), bytes, maxValueBytes).message).pipe(
        Effect.annotateLogs(annotations)
      )
    }
    if (!available()) return Effect.void
    return bounded(write(key, encoded.value), "SET").pipe(
      Effect.catch((error) => {
        counters.writeFailures++
        return Effect.logDebug(`RedisCache ${prefix}: write-back of ${key} failed: ${error.message}`)
      })
    )
  }

  const runCompute = <E, R>(compute: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.suspend(() => {
      counters.computes++
      return Effect.tapError(compute, () =>
        Effect.sync(() => {
          counters.computeFailures++
        }))
    })

  const computeAndStore = <E, R>(key: string, flight: Flight<A>, compute: Effect.Effect<A, E, R>) =>
    Effect.flatMap(runCompute(compute), (value) => {
      if (flight.invalidated) return Effect.succeed(value)
      l1Set(key, value)
      return Effect.as(writeBack(key, value), value)
    })

  const withoutRedis = <E, R>(key: string, flight: Flight<A>, compute: Effect.Effect<A, E, R>) => {
    counters.fallbacks++
    const staleEntry = staleMillis > 0 ? l1Stale(key) : undefined
    if (staleEntry !== undefined) {
      counters.staleHits++
      return Effect.succeed(staleEntry.value)
    }
    return Effect.map(runCompute(compute), (value) => {
      if (!flight.invalidated) l1Set(key, value)
      return value
    })
  }

  const refreshInBackground = <E, R>(key: string, compute: Effect.Effect<A, E, R>): Effect.Effect<void, never, R> => {
    if (refreshing.has(key)) return Effect.void
    const state = { invalidated: false }
    refreshing.set(key, state)
    counters.refreshes++
    const refresh = runCompute(compute).pipe(
      Effect.flatMap((value) => {
        if (state.invalidated) return Effect.void
        l1Set(key, value)
        return writeBack(key, value)
      }),
      Effect.catchCause((cause) =>
        Effect.logDebug(`RedisCache ${prefix}: background refresh of ${key} failed`, cause).pipe(
          Effect.annotateLogs(annotations)
        )
      ),
      Effect.ensuring(Effect.sync(() => {
        if (refreshing.get(key) === state) refreshing.delete(key)
      }))
    )
    return Effect.asVoid(Effect.forkIn(refresh, scope))
  }

  const settle = <E, R>(
    key: string,
    flight: Flight<A>,
    compute: Effect.Effect<A, E, R>,
    lookup: Lookup<A>
  ): Effect.Effect<A, E, R> => {
    switch (lookup._tag) {
      case "Hit": {
        counters.hits++
        if (!flight.invalidated) l1Set(key, lookup.value)
        if (refreshAheadMillis !== undefined && lookup.pttl >= 0 && lookup.pttl < refreshAheadMillis) {
          return Effect.as(refreshInBackground(key, compute), lookup.value)
        }
        return Effect.succeed(lookup.value)
      }
      case "Miss": {
        counters.misses++
        return computeAndStore(key, flight, compute)
      }
      case "Invalid": {
        counters.invalid++
        return Effect.andThen(
          Effect.logWarning(`RedisCache ${prefix}: the value stored for ${key} is invalid; recomputing`).pipe(
            Effect.annotateLogs({ ...annotations, key, reason: lookup.reason })
          ),
          computeAndStore(key, flight, compute)
        )
      }
      case "Unavailable":
        return withoutRedis(key, flight, compute)
    }
  }

  const load = <E, R>(key: string, flight: Flight<A>, compute: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => {
    if (!available()) return withoutRedis(key, flight, compute)
    const onFailure = (error: RedisError) => settle(key, flight, compute, classifyFailure(error))
    return refreshAheadMillis === undefined
      ? Effect.matchEffect(bounded(redis.get(keyOf(key)), "GET"), {
        onFailure,
        onSuccess: (stored) => settle(key, flight, compute, decodeStored(Option.getOrNull(stored), -1))
      })
      : Effect.matchEffect(getWithTtl(key), {
        onFailure,
        onSuccess: ([stored, pttl]) => settle(key, flight, compute, decodeStored(stored, Number(pttl)))
      })
  }

  const get = <E, R>(key: string, compute: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.suspend(() => {
      if (l1 !== undefined) {
        const entry = l1Fresh(key)
        if (entry !== undefined) {
          counters.l1Hits++
          return Effect.succeed(entry.value)
        }
      }
      const current = flights.get(key)
      if (current !== undefined) {
        counters.joined++
        if (current.waiters === undefined) current.waiters = Deferred.makeUnsafe()
        return Effect.flatMap(
          Deferred.await(current.waiters),
          (exit): Effect.Effect<A, E, R> => exit === undefined ? get(key, compute) : exit as Exit.Exit<A, E>
        )
      }
      const flight: Flight<A> = { waiters: undefined, invalidated: false }
      flights.set(key, flight)
      return Effect.onExit(load(key, flight, compute), (exit) =>
        Effect.sync(() => {
          if (flights.get(key) === flight) flights.delete(key)
          if (flight.waiters === undefined) return
          const interrupted = Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)
          Deferred.doneUnsafe(flight.waiters, Exit.succeed(interrupted ? undefined : exit))
        }))
    })

  const set = (key: string, value: A): Effect.Effect<void, RedisError | ValueTooLarge> =>
    Effect.suspend((): Effect.Effect<void, RedisError | ValueTooLarge> => {
      const encoded = codec.encode(value)
      if (Exit.isFailure(encoded)) {
        return Effect.fail(
          new DecodeError({
            message: `Cannot encode the value for ${keyOf(key)}: ${schemaMessage(encoded)}`,
            key: keyOf(key),
            cause: Cause.squash(encoded.cause)
          })
        )
      }
      const bytes = exceeds(encoded.value, maxValueBytes)
      if (bytes !== undefined) return Effect.fail(tooLarge(keyOf(key), bytes, maxValueBytes))
      dropLocal(key)
      return write(key, encoded.value).pipe(
        Effect.tap(() => Effect.sync(() => l1Set(key, value))),
        Effect.andThen(channel === undefined ? Effect.void : Effect.asVoid(redis.publish(channel, key)))
      )
    })

  const invalidate = (key: string): Effect.Effect<void, RedisError> =>
    Effect.suspend(() => {
      invalidateLocal(key)
      const del = Effect.asVoid(redis.del(keyOf(key)))
      return channel === undefined ? del : Effect.andThen(del, Effect.asVoid(redis.publish(channel, key)))
    })

  // Broadcast invalidations from other processes (and our own, which is harmless). A gap means some may be lost.
  if (options.invalidation !== undefined && channel !== undefined) {
    yield* options.invalidation.subscriber.events(channel).pipe(
      Stream.runForEach((event) =>
        Effect.sync(() => {
          if (event._tag === "Message") invalidateLocal(event.message)
          else if (event._tag === "Gap") l1?.clear()
        })
      ),
      Effect.tapCause((cause) =>
        Effect.andThen(
          Effect.sync(() => l1?.clear()),
          Effect.logWarning(`RedisCache ${prefix}: the invalidation subscription failed; retrying`, cause)
        )
      ),
      Effect.retry(Schedule.spaced("1 second")),
      Effect.ignore,
      Effect.forkScoped
    )
  }

  return {
    get,
    set,
    invalidate,
    keyOf,
    stats: Effect.sync(() => ({ ...counters }))
  } satisfies RedisCache<A>
})
