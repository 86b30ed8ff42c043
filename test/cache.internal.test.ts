/**
 * RedisCache's internal pieces on their own (no Redis): the L1 (freshness and the stale window under TestClock,
 * least-recently-used eviction), the single flight (one lookup per key, shared exits, hand-over after an interrupted
 * leader, `forget`, refresh claims), option resolution (defaults, the field reported) and the size limit in bytes.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Data, Deferred, Duration, Effect, Exit, Fiber, Result, Schema } from "effect"
import { TestClock } from "effect/testing"
import * as Codec from "../src/internal/cache/codec.ts"
import * as L1 from "../src/internal/cache/l1.ts"
import * as CacheOptions from "../src/internal/cache/options.ts"
import * as SingleFlight from "../src/internal/cache/singleFlight.ts"
import { valueCodec } from "../src/RedisCache.ts"

/** An L1 on the test clock, and the values it holds, least recently used first. */
const makeL1 = (options: Partial<L1.L1<string>["options"]> = {}) =>
  Effect.gen(function*() {
    const clock = yield* Clock.Clock
    return L1.make<string>({ capacity: 3, ttlMillis: 10_000, staleMillis: 0, ...options }, clock)
  })
const keys = (l1: L1.L1<string>) => [...l1.entries.keys()]
const freshValue = (l1: L1.L1<string>, key: string) => L1.fresh(l1, key)?.value
const staleValue = (l1: L1.L1<string>, key: string) => L1.stale(l1, key)?.value

describe("cache L1", () => {
  it.effect("an entry is fresh for the L1 ttl and not a millisecond more", () =>
    Effect.gen(function*() {
      const l1 = yield* makeL1()
      L1.set(l1, "a", "A")
      assert.strictEqual(freshValue(l1, "a"), "A")
      yield* TestClock.adjust(9_999)
      assert.strictEqual(freshValue(l1, "a"), "A")
      yield* TestClock.adjust(1)
      assert.strictEqual(freshValue(l1, "a"), undefined)
      assert.deepStrictEqual(keys(l1), ["a"]) // an expired entry is kept for `stale`
      assert.strictEqual(freshValue(l1, "absent"), undefined)
    }))

  it.effect("set replaces the value and restarts its ttl", () =>
    Effect.gen(function*() {
      const l1 = yield* makeL1()
      L1.set(l1, "a", "old")
      yield* TestClock.adjust(8_000)
      L1.set(l1, "a", "new")
      yield* TestClock.adjust(8_000)
      assert.strictEqual(freshValue(l1, "a"), "new")
      assert.strictEqual(l1.entries.size, 1)
    }))

  it.effect("beyond capacity the least recently used entry goes; a fresh hit counts as a use", () =>
    Effect.gen(function*() {
      const l1 = yield* makeL1({ capacity: 2 })
      L1.set(l1, "a", "A")
      L1.set(l1, "b", "B")
      L1.set(l1, "c", "C") // a is the oldest
      assert.deepStrictEqual(keys(l1), ["b", "c"])
      assert.strictEqual(freshValue(l1, "b"), "B") // b used: c is now the oldest
      L1.set(l1, "d", "D")
      assert.deepStrictEqual(keys(l1), ["b", "d"])
      L1.set(l1, "b", "B2") // re-set: most recently used, nothing dropped
      assert.deepStrictEqual(keys(l1), ["d", "b"])
    }))

  it.effect("stale serves an entry up to staleMillis past its expiry, then drops it; it does not count as a use", () =>
    Effect.gen(function*() {
      const l1 = yield* makeL1({ capacity: 2, staleMillis: 30_000 })
      L1.set(l1, "a", "A")
      L1.set(l1, "b", "B")
      assert.strictEqual(staleValue(l1, "a"), "A") // fresh entries are servable too
      yield* TestClock.adjust(39_999)
      assert.strictEqual(freshValue(l1, "a"), undefined)
      assert.strictEqual(staleValue(l1, "a"), "A")
      L1.set(l1, "c", "C") // the stale read did not move a: it is still the oldest
      assert.deepStrictEqual(keys(l1), ["b", "c"])
      yield* TestClock.adjust(1)
      assert.strictEqual(staleValue(l1, "b"), undefined)
      assert.deepStrictEqual(keys(l1), ["c"])
    }))

  it.effect("staleMillis Infinity serves at any age; remove and clear drop entries", () =>
    Effect.gen(function*() {
      const l1 = yield* makeL1({ staleMillis: Number.POSITIVE_INFINITY })
      L1.set(l1, "a", "A")
      L1.set(l1, "b", "B")
      yield* TestClock.adjust("3650 days")
      assert.strictEqual(staleValue(l1, "a"), "A")
      L1.remove(l1, "a")
      assert.strictEqual(staleValue(l1, "a"), undefined)
      assert.deepStrictEqual(keys(l1), ["b"])
      L1.clear(l1)
      assert.strictEqual(l1.entries.size, 0)
    }))
})

class Boom extends Data.TaggedError("Boom")<{ readonly n: number }> {}

/**
 * A lookup the test finishes by hand: each run is counted and waits for `gate`. `joined` counts the callers that
 * waited instead, `retries` the waiters that started over.
 */
const controlled = <E = never>(flights: SingleFlight.SingleFlight<string>, key: string) =>
  Effect.gen(function*() {
    const gate = yield* Deferred.make<string, E>()
    const counts = { runs: 0, joined: 0, retries: 0 }
    const seen: Array<SingleFlight.Flight<string>> = []
    const call: Effect.Effect<string, E> = SingleFlight.run(flights, key, {
      lookup: (flight) =>
        Effect.suspend(() => {
          counts.runs++
          seen.push(flight)
          return Deferred.await(gate)
        }),
      retry: () => {
        counts.retries++
        return call
      },
      onJoin: () => {
        counts.joined++
      }
    })
    return { gate, counts, seen, call }
  })

/** Lets forked fibers run up to their next suspension. */
const settle = Effect.gen(function*() {
  for (let i = 0; i < 5; i++) yield* Effect.yieldNow
})

describe("cache single flight", () => {
  it.effect("concurrent callers of a key share one lookup and its value; the key is free again after", () =>
    Effect.gen(function*() {
      const flights = SingleFlight.make<string>()
      const { call, counts, gate } = yield* controlled(flights, "k")
      const fibers = yield* Effect.forEach(Array.from({ length: 10 }), () => Effect.forkChild(call))
      yield* settle
      assert.strictEqual(counts.runs, 1)
      assert.strictEqual(counts.joined, 9)
      assert.isTrue(flights.lookups.has("k"))
      yield* Deferred.succeed(gate, "v")
      assert.deepStrictEqual(yield* Fiber.joinAll(fibers), Array.from({ length: 10 }, () => "v"))
      assert.strictEqual(flights.lookups.size, 0)
      // The same effect, run again: a new lookup (the decision is made when it runs, not when it is built).
      assert.strictEqual(yield* call, "v")
      assert.strictEqual(counts.runs, 2)
    }))

  it.effect("other keys do not wait for each other", () =>
    Effect.gen(function*() {
      const flights = SingleFlight.make<string>()
      const a = yield* controlled(flights, "a")
      const b = yield* controlled(flights, "b")
      const fa = yield* Effect.forkChild(a.call)
      const fb = yield* Effect.forkChild(b.call)
      yield* settle
      assert.deepStrictEqual([a.counts.runs, b.counts.runs, a.counts.joined + b.counts.joined], [1, 1, 0])
      yield* Deferred.succeed(b.gate, "B")
      assert.strictEqual(yield* Fiber.join(fb), "B")
      assert.isUndefined(fa.pollUnsafe())
      yield* Deferred.succeed(a.gate, "A")
      assert.strictEqual(yield* Fiber.join(fa), "A")
    }))

  it.effect("waiters share the leader's failure; the next caller looks up again", () =>
    Effect.gen(function*() {
      const flights = SingleFlight.make<string>()
      const { call, counts, gate } = yield* controlled<Boom>(flights, "k")
      const fibers = yield* Effect.forEach(Array.from({ length: 3 }), () => Effect.forkChild(Effect.flip(call)))
      yield* settle
      yield* Deferred.fail(gate, new Boom({ n: 1 }))
      const errors = yield* Fiber.joinAll(fibers)
      assert.deepStrictEqual(errors.map((error) => error.n), [1, 1, 1])
      assert.strictEqual(counts.runs, 1)
      assert.strictEqual(counts.retries, 0)
      assert.strictEqual(flights.lookups.size, 0)
    }))

  it.effect("an interrupted leader hands over: its waiters start over, one of them leads the next lookup", () =>
    Effect.gen(function*() {
      const flights = SingleFlight.make<string>()
      const { call, counts, gate } = yield* controlled(flights, "k")
      const leader = yield* Effect.forkChild(call)
      yield* settle
      const waiters = yield* Effect.forEach(Array.from({ length: 2 }), () => Effect.forkChild(call))
      yield* settle
      yield* Fiber.interrupt(leader)
      yield* settle
      assert.strictEqual(counts.retries, 2)
      assert.strictEqual(counts.runs, 2) // the first waiter to start over leads, the other joins it
      assert.strictEqual(counts.joined, 3)
      yield* Deferred.succeed(gate, "v")
      assert.deepStrictEqual(yield* Fiber.joinAll(waiters), ["v", "v"])
      assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(leader)))
    }))

  it.effect("forget detaches the lookup in flight: it answers its waiters, stores nothing; a new one starts", () =>
    Effect.gen(function*() {
      const flights = SingleFlight.make<string>()
      const first = yield* controlled(flights, "k")
      const leader = yield* Effect.forkChild(first.call)
      const waiter = yield* Effect.forkChild(first.call)
      yield* settle
      SingleFlight.forget(flights, "k")
      assert.isTrue(first.seen[0]!.invalidated)
      assert.isFalse(flights.lookups.has("k"))
      // A caller after the invalidation does not join the old lookup.
      const second = yield* controlled(flights, "k")
      const next = yield* Effect.forkChild(second.call)
      yield* settle
      assert.strictEqual(second.counts.runs, 1)
      assert.isFalse(second.seen[0]!.invalidated)
      yield* Deferred.succeed(first.gate, "old")
      assert.deepStrictEqual(yield* Fiber.joinAll([leader, waiter]), ["old", "old"])
      // The old lookup ending does not free the key from under the new one.
      assert.isTrue(flights.lookups.has("k"))
      yield* Deferred.succeed(second.gate, "new")
      assert.strictEqual(yield* Fiber.join(next), "new")
      assert.strictEqual(flights.lookups.size, 0)
      SingleFlight.forget(flights, "k") // nothing in flight: nothing happens
      assert.strictEqual(flights.lookups.size, 0)
    }))

  it("one refresh per key: a claim is refused while held; forget marks it, keeps it; end releases only its own", () => {
    const flights = SingleFlight.make<string>()
    const first = SingleFlight.startRefresh(flights, "k")
    assert.isDefined(first)
    assert.isUndefined(SingleFlight.startRefresh(flights, "k"))
    assert.isDefined(SingleFlight.startRefresh(flights, "other"))
    SingleFlight.forget(flights, "k")
    assert.isTrue(first!.invalidated)
    assert.isUndefined(SingleFlight.startRefresh(flights, "k")) // still running: still one at a time
    SingleFlight.endRefresh(flights, "k", first!)
    const second = SingleFlight.startRefresh(flights, "k")
    assert.isDefined(second)
    assert.isFalse(second!.invalidated)
    SingleFlight.endRefresh(flights, "k", first!) // a stale release does not free the new claim
    assert.isUndefined(SingleFlight.startRefresh(flights, "k"))
  })
})

describe("cache options", () => {
  const User = Schema.Struct({ id: Schema.String })
  const resolve = (options: Partial<Parameters<typeof CacheOptions.resolve>[0]>) =>
    CacheOptions.resolve({ prefix: "user", schema: User, ttl: "10 seconds", ...options })
  const failedField = (result: ReturnType<typeof resolve>) =>
    Result.isFailure(result) ? result.failure.field : "(valid)"

  it("defaults: jitter a tenth of ttl, 1 MiB, L1 ttl the cache's, no staleness, no channel", () => {
    const resolved = resolve({ l1: { capacity: 5 } })
    assert.isTrue(Result.isSuccess(resolved))
    if (Result.isFailure(resolved)) return
    assert.deepStrictEqual(resolved.success, {
      prefix: "user",
      ttlMillis: 10_000,
      jitterMillis: 1_000,
      maxValueBytes: 1024 * 1024,
      l1: { capacity: 5, ttlMillis: 10_000, staleMillis: 0 },
      refreshAheadMillis: undefined,
      redisTimeout: undefined,
      channel: undefined
    })
  })

  it("staleWhileDown, refreshAhead, redisTimeout and the invalidation channel resolve", () => {
    const subscriber = {} as never
    const resolved = resolve({
      l1: { capacity: 5, ttl: "1 second" },
      staleWhileDown: true,
      refreshAhead: "2 seconds",
      redisTimeout: "100 millis",
      invalidation: { subscriber }
    })
    if (Result.isFailure(resolved)) return assert.fail(resolved.failure.message)
    assert.deepStrictEqual(resolved.success.l1, { capacity: 5, ttlMillis: 1_000, staleMillis: Infinity })
    assert.strictEqual(resolved.success.refreshAheadMillis, 2_000)
    assert.strictEqual(Duration.toMillis(resolved.success.redisTimeout!), 100)
    assert.strictEqual(resolved.success.channel, "user:invalidate")
    const custom = resolve({
      l1: { capacity: 1 },
      staleWhileDown: "30 seconds",
      invalidation: { subscriber, channel: "c" }
    })
    if (Result.isFailure(custom)) return assert.fail(custom.failure.message)
    assert.strictEqual(custom.success.l1?.staleMillis, 30_000)
    assert.strictEqual(custom.success.channel, "c")
  })

  it("each invalid option is reported by its field, the first in order when several are", () => {
    const subscriber = {} as never
    assert.strictEqual(failedField(resolve({ ttl: 0 })), "ttl")
    assert.strictEqual(failedField(resolve({ ttl: Duration.infinity })), "ttl")
    assert.strictEqual(failedField(resolve({ jitter: -1 })), "jitter")
    assert.strictEqual(failedField(resolve({ maxValueBytes: 0 })), "maxValueBytes")
    assert.strictEqual(failedField(resolve({ l1: { capacity: 1.5 } })), "l1.capacity")
    assert.strictEqual(failedField(resolve({ l1: { capacity: 1, ttl: 0 } })), "l1.ttl")
    assert.strictEqual(failedField(resolve({ staleWhileDown: true })), "staleWhileDown")
    assert.strictEqual(failedField(resolve({ refreshAhead: "10 seconds" })), "refreshAhead")
    assert.strictEqual(failedField(resolve({ invalidation: { subscriber, channel: "a*" } })), "invalidation.channel")
    assert.strictEqual(failedField(resolve({ ttl: 0, maxValueBytes: 0 })), "ttl")
    assert.strictEqual(failedField(resolve({ staleWhileDown: false })), "(valid)")
  })
})

describe("cache codec", () => {
  it("the size limit is in UTF-8 bytes; short strings are not counted", () => {
    assert.strictEqual(Codec.exceeds("x".repeat(33), 100), undefined)
    assert.strictEqual(Codec.exceeds("x".repeat(100), 100), undefined)
    assert.strictEqual(Codec.exceeds("x".repeat(101), 100), 101)
    assert.strictEqual(Codec.exceeds("é".repeat(50), 100), undefined) // 100 bytes: at the limit
    assert.strictEqual(Codec.exceeds("é".repeat(51), 100), 102)
  })

  it("encodeForWrite: the text, too large (JSON quotes counted), or unencodable", () => {
    const strings = valueCodec(Schema.String)
    assert.deepStrictEqual(Codec.encodeForWrite(strings, "é".repeat(60), 100), {
      _tag: "TooLarge",
      bytes: 122,
      maxBytes: 100
    })
    assert.deepStrictEqual(Codec.encodeForWrite(strings, "hi", 100), { _tag: "Encoded", text: "\"hi\"" })
    assert.deepStrictEqual(Codec.encodeForWrite(strings, "é".repeat(600), undefined)._tag, "Encoded")
    const dates = valueCodec(Schema.Date)
    const invalid = Codec.encodeForWrite(dates, new Date(Number.NaN), 100)
    assert.strictEqual(invalid._tag, "Unencodable")
    if (invalid._tag === "Unencodable") {
      const error = Codec.cannotEncode("d", invalid.failure)
      assert.strictEqual(error._tag, "EncodeError")
      assert.strictEqual(error.key, "d")
      assert.match(error.message, /^Cannot encode the value: /)
    }
  })
})
