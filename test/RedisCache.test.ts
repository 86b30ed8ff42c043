/**
 * RedisCache and the typed helpers against a real redis-server: single-flight, hits, fail-open with the server
 * stopped or frozen, invalidation (local and broadcast), corrupted data, failing computes, oversize values, the L1
 * (under TestClock) and refresh-ahead. Each test is bounded to a few seconds.
 */
import { assert, describe, it } from "@effect/vitest"
import { Data, Effect, Exit, Fiber, Option, Schema } from "effect"
import { TestClock } from "effect/testing"
import type { RedisOptions } from "../src/index.ts"
import * as RedisCache from "../src/RedisCache.ts"
import * as RedisService from "../src/RedisService.ts"
import * as RedisSubscriber from "../src/RedisSubscriber.ts"
import * as RedisTestServer from "../src/testing/RedisTestServer.ts"
import { failureTag, fastOptions, sleepReal, waitUntil } from "./helpers.ts"

const User = Schema.Struct({ id: Schema.String, name: Schema.String, since: Schema.Date })
type User = typeof User.Type
const ada: User = { id: "42", name: "Ada", since: new Date("2020-01-02T03:04:05.000Z") }

class Boom extends Data.TaggedError("Boom")<{ readonly attempt: number }> {}

/** A server, a RedisService on it, and a function that builds caches on that service. */
const setup = (options: RedisOptions = {}) =>
  Effect.gen(function*() {
    const server = yield* RedisTestServer.make()
    const redis = yield* RedisService.make({ ...fastOptions, ...options, url: server.url })
    yield* waitUntil(redis.health, (h) => h.connection === "ready")
    const cache = <A, I>(cacheOptions: RedisCache.RedisCacheOptions<A, I>) =>
      RedisCache.make(cacheOptions).pipe(Effect.provideService(RedisService.RedisService, redis))
    const provide = <A, E>(effect: Effect.Effect<A, E, RedisService.RedisService>) =>
      Effect.provideService(effect, RedisService.RedisService, redis)
    return { server, redis, cache, provide }
  })

/** A compute that counts its runs and takes `millis` (real time). */
const counted = <A>(value: (run: number) => A, millis = 0) => {
  let runs = 0
  const effect = Effect.suspend(() => {
    runs++
    const run = runs
    return millis === 0 ? Effect.succeed(value(run)) : Effect.as(sleepReal(millis), value(run))
  })
  return { effect, runs: () => runs }
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i)

describe("RedisCache (real redis-server)", () => {
  it.live("100 concurrent misses of one key run one compute; the value is written with the TTL plus jitter", () =>
    Effect.gen(function*() {
      const { cache, server } = yield* setup()
      const users = yield* cache({ prefix: "user", schema: User, ttl: "10 seconds", jitter: "1 second" })
      const compute = counted(() => ada, 50)
      const results = yield* Effect.forEach(range(100), () => users.get("42", compute.effect), {
        concurrency: "unbounded"
      })
      assert.strictEqual(compute.runs(), 1)
      assert.strictEqual(results.length, 100)
      for (const result of results) assert.deepStrictEqual(result, ada)
      assert.deepStrictEqual(JSON.parse(String(yield* server.command("GET", "user:42"))), {
        id: "42",
        name: "Ada",
        since: "2020-01-02T03:04:05.000Z"
      })
      const pttl = Number(yield* server.command("PTTL", "user:42"))
      assert.isTrue(pttl > 9_500 && pttl <= 11_000, `PTTL ${pttl}`)
      const stats = yield* users.stats
      assert.strictEqual(stats.misses, 1)
      assert.strictEqual(stats.joined, 99)
      assert.strictEqual(stats.computes, 1)
      assert.strictEqual(stats.writes, 1)
    }))

  it.live("concurrent misses over 10 keys run one compute per key; jitter spreads the TTLs", () =>
    Effect.gen(function*() {
      const { cache, server } = yield* setup()
      const users = yield* cache({ prefix: "user", schema: User, ttl: "10 seconds", jitter: "2 seconds" })
      const runs = new Map<string, number>()
      yield* Effect.forEach(range(200), (i) => {
        const id = String(i % 10)
        const compute = Effect.suspend(() => {
          runs.set(id, (runs.get(id) ?? 0) + 1)
          return Effect.as(sleepReal(30), { ...ada, id })
        })
        return Effect.map(users.get(id, compute), (user) => assert.strictEqual(user.id, id))
      }, { concurrency: "unbounded", discard: true })
      assert.deepStrictEqual([...runs.values()], range(10).map(() => 1))
      const ttls = yield* Effect.forEach(range(10), (i) => server.command("PTTL", `user:${i}`))
      const distinct = new Set(ttls.map((ttl) => Math.round(Number(ttl) / 20)))
      assert.isTrue(distinct.size >= 5, `TTLs ${ttls.join(", ")}`)
    }))

  it.live("hits decode the stored value and never compute", () =>
    Effect.gen(function*() {
      const { cache, provide } = yield* setup()
      const users = yield* cache({ prefix: "user", schema: User, ttl: "1 minute" })
      const compute = counted(() => ada)
      assert.deepStrictEqual(yield* users.get("42", compute.effect), ada)
      for (let i = 0; i < 50; i++) assert.deepStrictEqual(yield* users.get("42", compute.effect), ada)
      yield* Effect.forEach(range(100), () => users.get("42", compute.effect), { concurrency: 20, discard: true })
      assert.strictEqual(compute.runs(), 1)
      // A value written by someone else (another process) is a hit too.
      yield* provide(RedisCache.setAs("user:7", User, { ...ada, id: "7" }, { ttl: "1 minute" }))
      assert.strictEqual((yield* users.get("7", compute.effect)).id, "7")
      assert.strictEqual(compute.runs(), 1)
      const stats = yield* users.stats
      assert.strictEqual(stats.misses, 1)
      assert.strictEqual(stats.hits + stats.joined, 151)
      assert.isTrue(stats.hits >= 52, `hits ${stats.hits}`)
    }))

  it.live("Redis stopped: every get returns the computed value at once, with no error; caching resumes after", () =>
    Effect.gen(function*() {
      const { cache, redis, server } = yield* setup()
      const users = yield* cache({ prefix: "user", schema: User, ttl: "1 minute" })
      const compute = counted((run) => ({ ...ada, name: `computed ${run}` }))
      yield* users.get("42", compute.effect)
      yield* server.stop
      // Right after the stop: the first call may still meet the dying connection, and is bounded by acquireTimeout.
      const first = Date.now()
      const exit = yield* Effect.exit(users.get("42", compute.effect))
      assert.isTrue(Exit.isSuccess(exit))
      assert.isTrue(Date.now() - first < 1_000, `first call after the stop took ${Date.now() - first} ms`)
      // Once the loss is known, Redis is not even asked: 200 calls complete in milliseconds.
      yield* waitUntil(redis.health, (h) => h.connection !== "ready")
      const started = Date.now()
      const values = yield* Effect.forEach(range(200), () => users.get("42", compute.effect), {
        concurrency: "unbounded"
      })
      const elapsed = Date.now() - started
      assert.isTrue(elapsed < 1_000, `200 calls took ${elapsed} ms`)
      assert.isTrue(values.every((user) => user.name.startsWith("computed")))
      // With the circuit open too.
      yield* waitUntil(redis.health, (h) => h.circuit === "open", 5_000)
      const openStarted = Date.now()
      for (let i = 0; i < 50; i++) yield* users.get(`k${i}`, compute.effect)
      assert.isTrue(Date.now() - openStarted < 1_000, `50 calls took ${Date.now() - openStarted} ms`)
      const stats = yield* users.stats
      assert.isTrue(stats.fallbacks >= 251, `fallbacks ${stats.fallbacks}`)
      assert.strictEqual(stats.writes, 1)
      // Back: values are cached again.
      yield* server.start
      yield* waitUntil(redis.health, (h) => h.connection === "ready" && h.circuit === "closed", 5_000)
      const runs = compute.runs()
      yield* users.get("42", compute.effect)
      yield* users.get("42", compute.effect)
      assert.strictEqual(compute.runs(), runs + 1)
      assert.isNotNull(yield* server.command("GET", "user:42"))
    }))

  it.live("a frozen server: get computes after redisTimeout instead of waiting for the command timeout", () =>
    Effect.gen(function*() {
      const { cache, server } = yield* setup({ heartbeat: false, commandTimeout: "2 seconds" })
      const users = yield* cache({ prefix: "user", schema: User, ttl: "1 minute", redisTimeout: "100 millis" })
      const compute = counted(() => ada)
      yield* users.get("42", compute.effect)
      yield* server.pause
      const started = Date.now()
      const user = yield* users.get("42", compute.effect)
      const elapsed = Date.now() - started
      yield* server.resume
      assert.deepStrictEqual(user, ada)
      assert.strictEqual(compute.runs(), 2)
      assert.isTrue(elapsed >= 90 && elapsed < 600, `took ${elapsed} ms`)
    }))

  it.live("invalidate removes the key: the next get computes again; with Redis down it fails with a RedisError", () =>
    Effect.gen(function*() {
      const { cache, redis, server } = yield* setup()
      const users = yield* cache({ prefix: "user", schema: User, ttl: "1 minute", l1: { capacity: 10 } })
      const compute = counted((run) => ({ ...ada, name: `v${run}` }))
      assert.strictEqual((yield* users.get("42", compute.effect)).name, "v1")
      assert.strictEqual((yield* users.get("42", compute.effect)).name, "v1")
      yield* users.invalidate("42")
      assert.strictEqual(Number(yield* server.command("EXISTS", "user:42")), 0)
      assert.strictEqual((yield* users.get("42", compute.effect)).name, "v2")
      assert.strictEqual(compute.runs(), 2)
      // A lookup in flight when the key is invalidated is not written back.
      const slow = counted(() => ({ ...ada, name: "stale" }), 200)
      const inFlight = yield* Effect.forkChild(users.get("9", slow.effect))
      yield* sleepReal(50)
      yield* users.invalidate("9")
      assert.strictEqual((yield* Fiber.join(inFlight)).name, "stale")
      assert.strictEqual(Number(yield* server.command("EXISTS", "user:9")), 0)
      // Redis down: the L1 copy is dropped anyway, and the caller learns that Redis was not updated.
      yield* server.stop
      yield* waitUntil(redis.health, (h) => h.connection !== "ready")
      const error = yield* Effect.flip(users.invalidate("42"))
      assert.include(["ConnectionTimeout", "CircuitOpen", "ConnectionRefused"], error._tag)
      assert.strictEqual((yield* users.get("42", compute.effect)).name, "v3")
    }))

  it.live("a broadcast invalidation drops other instances' L1 copies; a subscriber gap drops the whole L1", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      // Two instances: each its own connections, subscriber and cache, as two processes would have.
      const instance = Effect.fnUntraced(function*() {
        const redis = yield* RedisService.make({ ...fastOptions, url: server.url })
        const subscriber = yield* RedisSubscriber.make(redis)
        const cache = yield* RedisCache.make({
          prefix: "user",
          schema: User,
          ttl: "1 minute",
          l1: { capacity: 100 },
          invalidation: { subscriber }
        }).pipe(Effect.provideService(RedisService.RedisService, redis))
        return { redis, cache }
      })
      const a = yield* instance()
      const b = yield* instance()
      yield* waitUntil(
        Effect.map(server.command("PUBSUB", "NUMSUB", "user:invalidate"), (r) => Number((r as Array<unknown>)[1])),
        (n) => n === 2
      )
      const compute = counted((run) => ({ ...ada, name: `v${run}` }))
      assert.strictEqual((yield* a.cache.get("42", compute.effect)).name, "v1")
      assert.strictEqual((yield* b.cache.get("42", compute.effect)).name, "v1") // from Redis, now in b's L1
      // Another writer changes the value behind both: b keeps serving its L1 copy...
      yield* server.command("DEL", "user:42")
      assert.strictEqual((yield* b.cache.get("42", compute.effect)).name, "v1")
      // ...until a invalidates it.
      yield* a.cache.invalidate("42")
      yield* waitUntil(Effect.map(b.cache.stats, (s) => s.invalidations), (n) => n >= 1)
      assert.strictEqual((yield* b.cache.get("42", compute.effect)).name, "v2")
      assert.strictEqual((yield* b.cache.get("42", compute.effect)).name, "v2")
      // `set` broadcasts too.
      yield* a.cache.set("42", { ...ada, name: "set by a" })
      yield* waitUntil(Effect.map(b.cache.stats, (s) => s.invalidations), (n) => n >= 2)
      assert.strictEqual((yield* b.cache.get("42", compute.effect)).name, "set by a")
      // The subscriber connections are killed: invalidations may be lost meanwhile, so the L1s start over.
      yield* server.command("SET", "user:42", JSON.stringify({ ...ada, name: "changed unseen", since: ada.since }))
      const l1Before = (yield* b.cache.stats).l1Hits
      assert.strictEqual((yield* b.cache.get("42", compute.effect)).name, "set by a")
      assert.strictEqual((yield* b.cache.stats).l1Hits, l1Before + 1)
      yield* server.killClients("pubsub")
      yield* waitUntil(
        Effect.map(b.cache.get("42", compute.effect), (user) => user.name),
        (name) => name === "changed unseen",
        3_000
      )
    }))

  it.live("a stored value that does not decode (bad JSON, wrong shape, wrong type) is a miss and is overwritten", () =>
    Effect.gen(function*() {
      const { cache, server } = yield* setup()
      const users = yield* cache({ prefix: "user", schema: User, ttl: "1 minute" })
      const compute = counted(() => ada)
      yield* server.command("SET", "user:1", "{not json")
      yield* server.command("SET", "user:2", JSON.stringify({ id: 2, name: null }))
      yield* server.command("HSET", "user:3", "id", "3")
      for (const id of ["1", "2", "3"]) {
        assert.deepStrictEqual(yield* users.get(id, compute.effect), ada)
        const stored = JSON.parse(String(yield* server.command("GET", `user:${id}`)))
        assert.strictEqual(stored.name, "Ada")
      }
      assert.strictEqual(compute.runs(), 3)
      // Overwritten: hits from now on.
      for (const id of ["1", "2", "3"]) yield* users.get(id, compute.effect)
      assert.strictEqual(compute.runs(), 3)
      const stats = yield* users.stats
      assert.strictEqual(stats.invalid, 3)
      assert.strictEqual(stats.hits, 3)
    }))

  it.live("a compute that fails leaves nothing in Redis; its waiters share the failure; the next caller computes", () =>
    Effect.gen(function*() {
      const { cache, server } = yield* setup()
      const users = yield* cache({ prefix: "user", schema: User, ttl: "1 minute", l1: { capacity: 10 } })
      let attempts = 0
      const failing = Effect.suspend(() => {
        attempts++
        return Effect.andThen(sleepReal(30), Effect.fail(new Boom({ attempt: attempts })))
      })
      const exits = yield* Effect.forEach(range(20), () => Effect.exit(users.get("42", failing)), {
        concurrency: "unbounded"
      })
      assert.strictEqual(attempts, 1)
      assert.deepStrictEqual(new Set(exits.map(failureTag)), new Set(["Boom"]))
      assert.strictEqual(Number(yield* server.command("EXISTS", "user:42")), 0)
      const error = yield* Effect.flip(users.get("42", failing))
      assert.strictEqual(error.attempt, 2)
      assert.deepStrictEqual(yield* users.get("42", Effect.succeed(ada)), ada)
      assert.isNotNull(yield* server.command("GET", "user:42"))
      assert.strictEqual((yield* users.stats).computeFailures, 2)
    }))

  it.live("an interrupted lookup hands over to a waiting caller", () =>
    Effect.gen(function*() {
      const { cache } = yield* setup()
      const users = yield* cache({ prefix: "user", schema: User, ttl: "1 minute" })
      const compute = counted(() => ada, 100)
      const leader = yield* Effect.forkChild(users.get("42", compute.effect))
      yield* sleepReal(20)
      const waiter = yield* Effect.forkChild(users.get("42", compute.effect))
      yield* sleepReal(20)
      yield* Fiber.interrupt(leader)
      assert.deepStrictEqual(yield* Fiber.join(waiter), ada)
      assert.strictEqual(compute.runs(), 2)
    }))

  it.live("oversize values are returned but not cached; set and setAs reject them with ValueTooLarge", () =>
    Effect.gen(function*() {
      const { cache, provide, server } = yield* setup()
      const notes = yield* cache({ prefix: "note", schema: Schema.String, ttl: "1 minute", maxValueBytes: 100 })
      const big = "x".repeat(200)
      const compute = counted(() => big)
      assert.strictEqual(yield* notes.get("a", compute.effect), big)
      assert.strictEqual(yield* notes.get("a", compute.effect), big)
      assert.strictEqual(compute.runs(), 2)
      assert.strictEqual(Number(yield* server.command("EXISTS", "note:a")), 0)
      assert.strictEqual((yield* notes.stats).oversize, 2)
      // 60 characters, 120 bytes: the limit is in bytes.
      const accents = "é".repeat(60)
      const error = yield* Effect.flip(notes.set("b", accents))
      assert.strictEqual(error._tag, "ValueTooLarge")
      if (error._tag === "ValueTooLarge") {
        assert.strictEqual(error.bytes, 122) // JSON quotes included
        assert.strictEqual(error.maxBytes, 100)
      }
      assert.strictEqual(Number(yield* server.command("EXISTS", "note:b")), 0)
      yield* notes.set("c", "small")
      assert.strictEqual(yield* notes.get("c", compute.effect), "small")
      const tooLarge = yield* Effect.flip(provide(RedisCache.setAs("raw", Schema.String, big, { maxValueBytes: 100 })))
      assert.strictEqual(tooLarge._tag, "ValueTooLarge")
      assert.strictEqual(Number(yield* server.command("EXISTS", "raw")), 0)
    }))

  it.live("refreshAhead: a hit near expiry is returned at once and recomputed in the background", () =>
    Effect.gen(function*() {
      const { cache, server } = yield* setup()
      const users = yield* cache({
        prefix: "user",
        schema: User,
        ttl: "1 second",
        jitter: 0,
        refreshAhead: "700 millis"
      })
      const compute = counted((run) => ({ ...ada, name: `v${run}` }), 300)
      assert.strictEqual((yield* users.get("42", compute.effect)).name, "v1")
      assert.strictEqual((yield* users.get("42", compute.effect)).name, "v1") // 1 s left: no refresh
      assert.strictEqual(compute.runs(), 1)
      yield* sleepReal(400)
      const started = Date.now()
      assert.strictEqual((yield* users.get("42", compute.effect)).name, "v1") // < 700 ms left: refresh, not waited for
      assert.isTrue(Date.now() - started < 250, `took ${Date.now() - started} ms`) // the compute takes 300 ms
      yield* users.get("42", compute.effect) // a refresh is already running: not a second one
      yield* waitUntil(
        Effect.map(server.command("GET", "user:42"), (v) => JSON.parse(String(v)).name),
        (name) => name === "v2"
      )
      assert.strictEqual(compute.runs(), 2)
      assert.strictEqual((yield* users.stats).refreshes, 1)
      const pttl = Number(yield* server.command("PTTL", "user:42"))
      assert.isTrue(pttl > 800, `PTTL ${pttl}`)
      assert.strictEqual((yield* users.get("42", compute.effect)).name, "v2")
    }))

  it.live("getAs / setAs: JSON by default, the string format, None when absent, DecodeError for bad data", () =>
    Effect.gen(function*() {
      const { provide, server } = yield* setup()
      assert.isTrue(yield* provide(RedisCache.setAs("u", User, ada, { ttl: "1 minute" })))
      assert.deepStrictEqual(yield* provide(RedisCache.getAs("u", User)), Option.some(ada))
      assert.deepStrictEqual(yield* provide(RedisCache.getAs("absent", User)), Option.none())
      assert.isFalse(yield* provide(RedisCache.setAs("u", User, ada, { mode: "NX" })))
      // The string format stores what the Schema encodes to, as it is.
      yield* provide(RedisCache.setAs("n", Schema.NumberFromString, 42, { format: "string" }))
      assert.strictEqual(yield* server.command("GET", "n"), "42")
      assert.deepStrictEqual(
        yield* provide(RedisCache.getAs("n", Schema.NumberFromString, { format: "string" })),
        Option.some(42)
      )
      yield* server.command("SET", "bad", JSON.stringify({ id: "1" }))
      const error = yield* Effect.flip(provide(RedisCache.getAs("bad", User)))
      assert.strictEqual(error._tag, "DecodeError")
      if (error._tag === "DecodeError") assert.strictEqual(error.key, "bad")
      const invalidDate = yield* Effect.flip(
        provide(RedisCache.setAs("d", User, { ...ada, since: new Date(Number.NaN) }))
      )
      assert.strictEqual(invalidDate._tag, "EncodeError")
      assert.strictEqual(Number(yield* server.command("EXISTS", "d")), 0)
    }))

  it.effect("L1 (TestClock): fresh copies skip Redis, expired ones are read again, stale ones serve while down", () =>
    Effect.gen(function*() {
      const { cache, redis, server } = yield* setup({ heartbeat: false })
      const users = yield* cache({
        prefix: "user",
        schema: User,
        ttl: "1 minute",
        l1: { capacity: 2, ttl: "10 seconds" },
        staleWhileDown: "30 seconds"
      })
      const compute = counted((run) => ({ ...ada, name: `v${run}` }))
      yield* users.get("42", compute.effect)
      yield* TestClock.adjust("9 seconds")
      yield* users.get("42", compute.effect)
      let stats = yield* users.stats
      assert.strictEqual(stats.l1Hits, 1)
      assert.strictEqual(stats.hits, 0)
      yield* TestClock.adjust("2 seconds") // 11 s: the L1 copy expired, Redis is asked
      yield* users.get("42", compute.effect)
      stats = yield* users.stats
      assert.strictEqual(stats.hits, 1)
      // Capacity 2: the least recently used key goes.
      yield* users.get("a", compute.effect)
      yield* users.get("b", compute.effect)
      yield* users.get("42", compute.effect)
      assert.strictEqual((yield* users.stats).hits, 2)
      // Redis down: an L1 copy is served up to 30 s past its expiry, then the value is computed.
      yield* server.stop
      yield* waitUntil(redis.health, (h) => h.connection !== "ready")
      yield* TestClock.adjust("35 seconds") // 25 s past the L1 expiry of the copy read at 11 s
      const runs = compute.runs()
      assert.strictEqual((yield* users.get("42", compute.effect)).name, "v1")
      assert.strictEqual(compute.runs(), runs)
      assert.strictEqual((yield* users.stats).staleHits, 1)
      yield* TestClock.adjust("10 seconds") // 35 s past: too stale
      assert.strictEqual((yield* users.get("42", compute.effect)).name, `v${runs + 1}`)
    }))

  it.effect("invalid options are a defect naming the field", () =>
    Effect.gen(function*() {
      const { cache } = yield* setup({ heartbeat: false })
      for (
        const [options, field] of [
          [{ ttl: 0 }, "ttl"],
          [{ ttl: "1 minute", staleWhileDown: true }, "staleWhileDown"],
          [{ ttl: "1 minute", refreshAhead: "2 minutes" }, "refreshAhead"],
          [{ ttl: "1 minute", l1: { capacity: 0 } }, "l1.capacity"]
        ] as const
      ) {
        const exit = yield* Effect.exit(cache({ prefix: "p", schema: Schema.String, ...options }))
        assert.strictEqual(failureTag(exit), "defect")
        assert.include(String(Exit.isFailure(exit) ? exit.cause : ""), field)
      }
    }))
})
