/**
 * Validation of the durations and counts that cross the `RedisService` API, before anything is sent. Redis accepts
 * values that do something else than the caller meant (`PEXPIRE k 0` deletes the key; `Duration.fromInput(NaN)` is
 * zero), or rejects them only after a round trip; here they fail at once with `InvalidArgument` naming the command and
 * the argument. Pure: each function returns the value to send, or the error.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import { InvalidArgument } from "../RedisError.ts"

const describe = (input: unknown): string => {
  if (typeof input === "string") return JSON.stringify(input.length > 40 ? `${input.slice(0, 40)}...` : input)
  if (typeof input === "number" || typeof input === "bigint" || typeof input === "boolean") return String(input)
  if (Duration.isDuration(input)) return Duration.format(input)
  if (Array.isArray(input)) return `[${input.map(describe).join(", ")}]`
  return input === null ? "null" : typeof input
}

const invalid = (command: string, argument: string, message: string): InvalidArgument =>
  new InvalidArgument({ message: `${command}: ${argument} ${message}`, command, argument })

// Duration.fromInput reads NaN (alone or in a [seconds, nanos] pair) as zero: say NaN rather than "got 0".
const hasNaN = (input: unknown): boolean =>
  (typeof input === "number" && Number.isNaN(input)) ||
  (Array.isArray(input) && input.some((part) => typeof part === "number" && Number.isNaN(part)))

/**
 * A time to live in whole milliseconds (rounded up, so that a positive TTL stays positive), for `SET ... PX` and
 * `PEXPIRE`. Refused: anything that is not a `Duration.Input`, NaN, zero, negative, infinite, or beyond 2^53 - 1 ms.
 *
 * @internal
 */
export const ttlMillis = (command: string, argument: string, ttl: Duration.Input): number | InvalidArgument => {
  if (hasNaN(ttl)) return invalid(command, argument, "must be a positive duration, got NaN")
  const decoded = Duration.fromInput(ttl)
  if (Option.isNone(decoded)) {
    return invalid(command, argument, `must be a Duration.Input such as "10 seconds" or 10000 (millis), got ${
      describe(ttl)
    }`)
  }
  const duration = decoded.value
  if (!Duration.isFinite(duration)) return invalid(command, argument, `must be finite, got ${describe(ttl)}`)
  if (Duration.isNegative(duration) || Duration.isZero(duration)) {
    return invalid(
      command,
      argument,
      `must be positive (Redis would delete the key at once), got ${Duration.format(duration)}`
    )
  }
  const millis = Math.ceil(Duration.toMillis(duration))
  if (!Number.isSafeInteger(millis)) {
    return invalid(command, argument, `must be at most ${Number.MAX_SAFE_INTEGER} ms, got ${Duration.format(duration)}`)
  }
  return millis
}

/**
 * A count or increment: a safe integer (|n| < 2^53) in `[min, max]` (default: every safe integer).
 *
 * @internal
 */
export const integer = (
  command: string,
  argument: string,
  value: number,
  options?: { readonly min?: number | undefined; readonly max?: number | undefined }
): number | InvalidArgument => {
  const min = options?.min ?? Number.MIN_SAFE_INTEGER
  const max = options?.max ?? Number.MAX_SAFE_INTEGER
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min || value > max) {
    const range = min === Number.MIN_SAFE_INTEGER && max === Number.MAX_SAFE_INTEGER
      ? "a safe integer (|n| < 2^53)"
      : max === Number.MAX_SAFE_INTEGER
      ? `an integer >= ${min}`
      : `an integer in [${min}, ${max}]`
    return invalid(command, argument, `must be ${range}, got ${describe(value)}`)
  }
  return value
}

/**
 * The timeout of a blocking command in seconds (BLPOP and its kin take a decimal number of seconds): zero blocks
 * until answered; refused: NaN, negative, infinite (pass 0 to block without limit), or not a `Duration.Input`.
 *
 * @internal
 */
export const blockingSeconds = (
  command: string,
  argument: string,
  timeout: Duration.Input
): number | InvalidArgument => {
  if (hasNaN(timeout)) return invalid(command, argument, "must be a duration >= 0, got NaN")
  const decoded = Duration.fromInput(timeout)
  if (Option.isNone(decoded)) {
    return invalid(command, argument, `must be a Duration.Input such as "5 seconds", got ${describe(timeout)}`)
  }
  const duration = decoded.value
  if (!Duration.isFinite(duration)) {
    return invalid(command, argument, "must be finite; pass 0 to block until answered")
  }
  if (Duration.isNegative(duration)) {
    return invalid(command, argument, `must be >= 0, got ${Duration.format(duration)}`)
  }
  // Rounded up to Redis' millisecond precision: a positive timeout below 1 ms must not become 0 (block forever).
  return Math.ceil(Duration.toMillis(duration)) / 1000
}
