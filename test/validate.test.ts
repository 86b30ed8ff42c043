/**
 * The validation of durations and counts that cross the RedisService API (src/internal/validate.ts): what is refused,
 * with which message, and what is sent for what is accepted.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration } from "effect"
import * as fc from "fast-check"
import { InvalidArgument } from "../src/RedisError.ts"
import * as Validate from "../src/internal/validate.ts"

const refused = (result: number | InvalidArgument, includes: string) => {
  assert.instanceOf(result, InvalidArgument)
  if (result instanceof InvalidArgument) {
    assert.strictEqual(result._tag, "InvalidArgument")
    assert.include(result.message, includes)
  }
}

describe("validate.ttlMillis", () => {
  it("refuses zero, negative, NaN, infinite and undecodable TTLs, naming the command and the argument", () => {
    refused(Validate.ttlMillis("PEXPIRE", "ttl", 0), "PEXPIRE: ttl must be positive")
    refused(Validate.ttlMillis("PEXPIRE", "ttl", "0 seconds"), "got 0")
    refused(Validate.ttlMillis("PEXPIRE", "ttl", -1), "got -1ms")
    refused(Validate.ttlMillis("SET", "ttl", "-5 seconds"), "got -5s")
    refused(Validate.ttlMillis("SET", "ttl", NaN), "got NaN")
    refused(Validate.ttlMillis("SET", "ttl", [NaN, 0]), "got NaN")
    refused(Validate.ttlMillis("SET", "ttl", Infinity), "must be finite")
    refused(Validate.ttlMillis("SET", "ttl", Duration.infinity), "must be finite")
    refused(Validate.ttlMillis("SET", "ttl", "soon" as Duration.Input), "must be a Duration.Input")
    refused(Validate.ttlMillis("SET", "ttl", 2 ** 60), "must be at most")
    const error = Validate.ttlMillis("PEXPIRE", "ttl", 0)
    if (error instanceof InvalidArgument) {
      assert.strictEqual(error.command, "PEXPIRE")
      assert.strictEqual(error.argument, "ttl")
    }
  })

  it("accepts positive finite TTLs in whole milliseconds, rounded up so that a positive TTL stays positive", () => {
    assert.strictEqual(Validate.ttlMillis("SET", "ttl", "10 seconds"), 10_000)
    assert.strictEqual(Validate.ttlMillis("SET", "ttl", 1500), 1500)
    assert.strictEqual(Validate.ttlMillis("SET", "ttl", 1.2), 2)
    assert.strictEqual(Validate.ttlMillis("SET", "ttl", Duration.micros(5n)), 1)
    assert.strictEqual(Validate.ttlMillis("SET", "ttl", [1, 5]), 1001)
    assert.strictEqual(Validate.ttlMillis("SET", "ttl", Number.MAX_SAFE_INTEGER), Number.MAX_SAFE_INTEGER)
  })

  it("property: a number of millis is sent as its ceiling (a positive safe integer), or refused", () => {
    fc.assert(fc.property(fc.double(), (millis) => {
      const result = Validate.ttlMillis("SET", "ttl", millis)
      // Durations count whole nanoseconds: below one, a TTL is zero.
      if (result instanceof InvalidArgument) return !(millis >= 1e-6 && Math.ceil(millis) <= Number.MAX_SAFE_INTEGER)
      return millis > 0 && Number.isSafeInteger(result) && result === Math.ceil(millis)
    }))
  })
})

describe("validate.integer", () => {
  it("INCRBY's increment: any safe integer, nothing else", () => {
    assert.strictEqual(Validate.integer("INCRBY", "by", 5), 5)
    assert.strictEqual(Validate.integer("INCRBY", "by", -5), -5)
    assert.strictEqual(Validate.integer("INCRBY", "by", 0), 0)
    refused(Validate.integer("INCRBY", "by", 1.5), "INCRBY: by must be a safe integer (|n| < 2^53), got 1.5")
    refused(Validate.integer("INCRBY", "by", NaN), "got NaN")
    refused(Validate.integer("INCRBY", "by", Infinity), "got Infinity")
    refused(Validate.integer("INCRBY", "by", 2 ** 53), "got 9007199254740992")
    refused(Validate.integer("INCRBY", "by", "1" as unknown as number), "got \"1\"")
  })

  it("counts with bounds", () => {
    assert.strictEqual(Validate.integer("SCAN", "count", 1, { min: 1 }), 1)
    refused(Validate.integer("SCAN", "count", 0, { min: 1 }), "SCAN: count must be an integer >= 1, got 0")
    refused(Validate.integer("X", "n", 11, { min: 0, max: 10 }), "must be an integer in [0, 10], got 11")
  })
})

describe("validate.blockingSeconds", () => {
  it("0 blocks until answered; positive durations in seconds, never rounded down to 0", () => {
    assert.strictEqual(Validate.blockingSeconds("BLPOP", "timeout", 0), 0)
    assert.strictEqual(Validate.blockingSeconds("BLPOP", "timeout", "1500 millis"), 1.5)
    assert.strictEqual(Validate.blockingSeconds("BLPOP", "timeout", Duration.micros(1n)), 0.001)
    refused(Validate.blockingSeconds("BLPOP", "timeout", -1), "must be >= 0")
    refused(Validate.blockingSeconds("BLPOP", "timeout", NaN), "got NaN")
    refused(Validate.blockingSeconds("BLPOP", "timeout", Infinity), "pass 0 to block until answered")
  })
})
