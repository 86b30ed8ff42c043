/**
 * The options of `RedisCache.make`, checked once and resolved to milliseconds with every default applied: what the
 * rest of the cache reads. Pure: an invalid option comes back as a `Result` failure naming the field, and `make`
 * turns it into its defect (`InvalidCacheOptions`).
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Result from "effect/Result"
import type { RedisCacheOptions } from "../../RedisCache.ts"
import { validateChannelName } from "../../RedisChannel.ts"

/** The options, checked and resolved. */
export interface ResolvedOptions {
  readonly prefix: string
  readonly ttlMillis: number
  /** Up to this much is added at random to each write's TTL; 0 turns it off. */
  readonly jitterMillis: number
  readonly maxValueBytes: number
  /** `undefined`: no L1. */
  readonly l1: L1Options | undefined
  readonly refreshAheadMillis: number | undefined
  /** `undefined`: no bound of the cache's own, the layer's `commandTimeout` applies. */
  readonly redisTimeout: Duration.Duration | undefined
  /** The invalidation channel; `undefined` when invalidations are not broadcast. */
  readonly channel: string | undefined
}

/** The L1's options, resolved. */
export interface L1Options {
  readonly capacity: number
  /** How long an entry is fresh. */
  readonly ttlMillis: number
  /** How long past `ttlMillis` an entry may still be served while Redis is down: 0 never, `Infinity` at any age. */
  readonly staleMillis: number
}

/** An option that does not hold, and why. */
export interface InvalidOption {
  readonly field: string
  readonly message: string
}

/** Encoded values above 1 MiB are not cached by default. */
export const DEFAULT_MAX_VALUE_BYTES = 1024 * 1024

const toMillis = (input: Duration.Input): number => Duration.toMillis(Duration.fromInputUnsafe(input))

const invalid = (field: string, message: string) => Result.fail<InvalidOption>({ field, message })

/**
 * Checks and resolves the options, in a fixed order (the first invalid field is the one reported). A duration input
 * that is not a duration at all throws, as `Duration.fromInputUnsafe` does.
 */
export const resolve = <A, I>(options: RedisCacheOptions<A, I>): Result.Result<ResolvedOptions, InvalidOption> => {
  const ttlMillis = Math.ceil(toMillis(options.ttl))
  if (!(ttlMillis > 0) || !Number.isFinite(ttlMillis)) return invalid("ttl", "must be a finite duration > 0")
  const jitterMillis = options.jitter === undefined ? Math.floor(ttlMillis / 10) : toMillis(options.jitter)
  if (!(jitterMillis >= 0) || !Number.isFinite(jitterMillis)) {
    return invalid("jitter", "must be a finite duration >= 0")
  }
  const maxValueBytes = options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES
  if (!(maxValueBytes > 0)) return invalid("maxValueBytes", "must be > 0")
  const capacity = options.l1?.capacity
  if (capacity !== undefined && !(Number.isInteger(capacity) && capacity > 0)) {
    return invalid("l1.capacity", "must be an integer > 0")
  }
  const l1TtlMillis = options.l1?.ttl === undefined ? ttlMillis : toMillis(options.l1.ttl)
  if (!(l1TtlMillis > 0)) return invalid("l1.ttl", "must be a duration > 0")
  const stale = options.staleWhileDown ?? false
  const staleMillis = stale === false ? 0 : stale === true ? Number.POSITIVE_INFINITY : toMillis(stale)
  if (stale !== false && options.l1 === undefined) return invalid("staleWhileDown", "needs l1")
  const refreshAheadMillis = options.refreshAhead === undefined ? undefined : toMillis(options.refreshAhead)
  if (refreshAheadMillis !== undefined && !(refreshAheadMillis > 0 && refreshAheadMillis < ttlMillis)) {
    return invalid("refreshAhead", "must be > 0 and shorter than ttl")
  }
  const redisTimeout = options.redisTimeout === undefined ? undefined : Duration.fromInputUnsafe(options.redisTimeout)
  const channel = options.invalidation === undefined
    ? undefined
    : options.invalidation.channel ?? `${options.prefix}:invalidate`
  if (channel !== undefined) {
    const invalidChannel = validateChannelName(channel)
    if (invalidChannel !== undefined) return invalid("invalidation.channel", invalidChannel.message)
  }
  return Result.succeed({
    prefix: options.prefix,
    ttlMillis,
    jitterMillis,
    maxValueBytes,
    l1: capacity === undefined ? undefined : { capacity, ttlMillis: l1TtlMillis, staleMillis },
    refreshAheadMillis,
    redisTimeout,
    channel
  })
}
