/**
 * RedisPersistence against a real redis-server, behind a chaos proxy: effect's own RateLimiter, CircuitBreaker store,
 * PersistedQueue and Persistence run through `RedisPersistence.layer`, before and after a real connection reset;
 * `send`, `eval` (NOSCRIPT reload), `subscribe` and `reserve` (blocking commands, close, pinning). Each test is bounded
 * to a few seconds.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Duration, Effect, Exit, Fiber, Layer, Queue, Schedule, Schema, Scope } from "effect"
import { CircuitBreaker, PersistedQueue, Persistence, RateLimiter, Redis } from "effect/persistence"
import * as Persistable from "effect/persistence/Persistable"
import type { RedisOptions } from "../src/index.ts"
import { isRedisError } from "../src/RedisError.ts"
import * as RedisPersistence from "../src/RedisPersistence.ts"
import { RedisService } from "../src/RedisService.ts"
import * as ChaosProxy from "../src/testing/ChaosProxy.ts"
import * as RedisTestServer from "../src/testing/RedisTestServer.ts"
import { fastOptions, sleepReal, waitUntil } from "./helpers.ts"

/** A server, a chaos proxy in front of it, and `RedisService` + effect's `Redis` built on the proxy. */
const setup = (options: RedisOptions = {}) =>
  Effect.gen(function*() {
    const server = yield* RedisTestServer.make()
    const proxy = yield* ChaosProxy.make({ target: server })
    const context = yield* Layer.build(
      RedisPersistence.layer.pipe(
        Layer.provideMerge(RedisService.layer({ ...fastOptions, ...options, url: proxy.url }))
      )
    )
    const redis = Context.get(context, RedisService)
    const effectRedis = Context.get(context, Redis.Redis)
    yield* waitUntil(redis.health, (h) => h.connection === "ready")
    /** Builds a layer on top of effect's `Redis` in the current scope. */
    const build = <A, E>(layer: Layer.Layer<A, E, Redis.Redis>) =>
      Layer.build(Layer.provide(layer, Layer.succeedContext(context)))
    /** Resets every connection through the proxy and waits until the command connection is ready again. */
    const reset = Effect.gen(function*() {
      const before = (yield* redis.health).connectionsOpened
      yield* proxy.resetAll
      yield* waitUntil(redis.health, (h) => h.connectionsOpened > before && h.connection === "ready")
    })
    return { server, proxy, redis, effectRedis, build, reset }
  })

/** Connections blocked in a command (BLPOP ...) on the server. */
const blockedClients = (server: RedisTestServer.RedisTestServer) =>
  Effect.map(server.command("INFO", "clients"), (info) => Number(/blocked_clients:(\d+)/.exec(String(info))?.[1]))

/** The tag of this library's error inside effect's `RedisError` (or of whatever failed). */
const causeTag = (error: unknown): string | undefined => {
  let current: unknown = error
  for (let depth = 0; depth < 4 && current !== undefined && current !== null; depth++) {
    if (current instanceof Redis.RedisError) return RedisPersistence.causeOf(current)?._tag
    if (isRedisError(current)) return current._tag
    current = (current as { cause?: unknown }).cause
  }
  return undefined
}

describe("RedisPersistence (real redis-server)", () => {
  it.live("send and eval run on the resilient path; a flushed script cache is reloaded after NOSCRIPT", () =>
    Effect.gen(function*() {
      const { effectRedis, redis, server } = yield* setup()
      yield* effectRedis.send("SET", "k", "v")
      assert.strictEqual(yield* effectRedis.send<string>("GET", "k"), "v")
      const echo = Redis.script((key: string, value: string) => [key, value], {
        lua: "redis.call('SET', KEYS[1], ARGV[1]); return {redis.call('GET', KEYS[1]), 7}",
        numberOfKeys: 1
      }).withReturnType<[string, number]>()
      assert.deepStrictEqual(yield* effectRedis.eval(echo)("s", "one"), ["one", 7])
      yield* server.command("SCRIPT", "FLUSH")
      assert.deepStrictEqual(yield* effectRedis.eval(echo)("s", "two"), ["two", 7])
      // A reply error keeps its tag and code inside effect's RedisError.
      yield* effectRedis.send("RPUSH", "list", "x")
      const error = yield* Effect.flip(effectRedis.send("GET", "list"))
      const cause = RedisPersistence.causeOf(error)
      assert.strictEqual(cause?._tag, "ReplyError")
      if (cause?._tag === "ReplyError") assert.strictEqual(cause.code, "WRONGTYPE")
      // The breaker applies: with the server gone, calls fail fast with CircuitOpen.
      yield* server.stop
      yield* waitUntil(redis.health, (h) => h.circuit === "open", 5_000)
      const started = Date.now()
      const open = yield* Effect.flip(effectRedis.send("GET", "k"))
      assert.isTrue(Date.now() - started < 500, `took ${Date.now() - started} ms`)
      assert.strictEqual(RedisPersistence.causeOf(open)?._tag, "CircuitOpen")
    }))

  it.live("RateLimiter.layerStoreRedis: fixed window and token bucket; the counts survive a connection reset", () =>
    Effect.gen(function*() {
      const { build, proxy, reset } = yield* setup({ heartbeat: false })
      const limiter = Context.get(
        yield* build(RateLimiter.layer.pipe(Layer.provide(RateLimiter.layerStoreRedis({ prefix: "rl:" })))),
        RateLimiter.RateLimiter
      )
      const fixed = limiter.consume({ key: "api", limit: 3, window: "1 minute" })
      assert.strictEqual((yield* fixed).remaining, 2)
      assert.strictEqual((yield* fixed).remaining, 1)
      yield* reset
      assert.strictEqual((yield* fixed).remaining, 0)
      const exceeded = yield* Effect.flip(fixed)
      assert.strictEqual(exceeded.reason._tag, "RateLimitExceeded")
      const bucket = limiter.consume({ algorithm: "token-bucket", key: "tb", limit: 2, window: "1 minute" })
      yield* bucket
      yield* bucket
      yield* reset
      assert.strictEqual((yield* Effect.flip(bucket)).reason._tag, "RateLimitExceeded")
      // A consume in flight when the connection is reset fails (an EVALSHA may have been applied: never resent).
      yield* proxy.latency(300)
      const inFlight = yield* Effect.forkChild(
        Effect.flip(limiter.consume({ key: "other", limit: 5, window: "1 minute" }))
      )
      yield* sleepReal(100)
      yield* proxy.resetAll
      yield* proxy.restore
      const error = yield* Fiber.join(inFlight)
      assert.strictEqual(error.reason._tag, "RateLimitStoreError")
      assert.include(["ConnectionReset", "ConnectionClosed"], causeTag(error.reason))
      // It was not resent: at most one of the five tokens went (if the server had run it before the reset).
      const after = yield* limiter.consume({ key: "other", limit: 5, window: "1 minute" })
      assert.isTrue(after.remaining >= 3, `remaining ${after.remaining}`)
    }))

  it.live("CircuitBreaker.layerStoreRedis: a circuit opened by one process is open for another, across a reset", () =>
    Effect.gen(function*() {
      const { build, reset } = yield* setup()
      const store = CircuitBreaker.layerStoreRedis({ prefix: "cb:" })
      const options = { tripPolicy: CircuitBreaker.consecutive(2), openDuration: "10 seconds" } as const
      const breaker = Effect.map(
        build(CircuitBreaker.layer(options).pipe(Layer.provide(store))),
        (context) => Context.get(context, CircuitBreaker.CircuitBreaker)
      )
      const first = yield* breaker
      const second = yield* breaker
      let calls = 0
      const payment = Effect.suspend(() => {
        calls++
        return Effect.fail("declined" as const)
      })
      yield* Effect.flip(first.execute(payment, { key: "payments" }))
      yield* Effect.flip(first.execute(payment, { key: "payments" }))
      assert.strictEqual(calls, 2)
      const state = yield* second.state("payments")
      assert.strictEqual(state._tag, "Open")
      yield* reset
      const rejected = yield* Effect.flip(second.execute(payment, { key: "payments" }))
      assert.strictEqual(calls, 2)
      assert.isTrue(rejected instanceof CircuitBreaker.CircuitBreakerError)
      if (rejected instanceof CircuitBreaker.CircuitBreakerError) {
        assert.strictEqual(rejected.reason._tag, "CircuitOpen")
      }
      assert.strictEqual((yield* first.state("other"))._tag, "Closed")
    }))

  it.live("PersistedQueue.layerStoreRedis: offer, take and acknowledge, across a connection reset", () =>
    Effect.gen(function*() {
      const { build, reset, server } = yield* setup()
      const factory = Context.get(
        yield* build(
          PersistedQueue.layer.pipe(
            Layer.provide(PersistedQueue.layerStoreRedis({ prefix: "q:", pollInterval: "50 millis" }))
          )
        ),
        PersistedQueue.PersistedQueueFactory
      )
      const Job = Schema.Struct({ n: Schema.Number })
      const queue = yield* factory.make({ name: "jobs", schema: Job, retrySchedule: Schedule.spaced("10 millis") })
      yield* queue.offer({ n: 1 })
      yield* queue.offer({ n: 2 }, { id: "two" })
      yield* queue.offer({ n: 2 }, { id: "two" }) // de-duplicated
      const taken: Array<number> = []
      const take = queue.take((job) => Effect.sync(() => taken.push(job.n))).pipe(Effect.timeout("3 seconds"))
      yield* take
      yield* reset
      yield* queue.offer({ n: 3 })
      yield* take
      yield* take
      assert.deepStrictEqual(taken, [1, 2, 3])
      assert.strictEqual(Number(yield* server.command("LLEN", "q:jobs")), 0)
      // A failing handler: the element is retried.
      yield* queue.offer({ n: 4 })
      const failed = yield* Effect.flip(
        queue.take(() => Effect.fail("nope" as const)).pipe(Effect.timeout("3 seconds"))
      )
      assert.strictEqual(failed, "nope")
      const retried = yield* queue.take((job, { attempts }) => Effect.succeed({ n: job.n, attempts })).pipe(
        Effect.timeout("3 seconds")
      )
      assert.deepStrictEqual(retried, { n: 4, attempts: 2 })
    }))

  it.live("Persistence.layerBackingRedis: get, set, getMany, setMany (a script), remove, clear, across a reset", () =>
    Effect.gen(function*() {
      const { build, reset, server } = yield* setup()
      const persistence = Context.get(yield* build(Persistence.layerRedis), Persistence.Persistence)
      class Price extends Persistable.Class<{ payload: { sku: string } }>()("Price", {
        primaryKey: (payload) => payload.sku,
        success: Schema.Number,
        error: Schema.String
      }) {}
      const store = yield* persistence.make({ storeId: "prices", timeToLive: () => "1 minute" })
      yield* store.set(new Price({ sku: "a" }), Exit.succeed(10))
      yield* store.set(new Price({ sku: "b" }), Exit.fail("unknown sku"))
      assert.deepStrictEqual(yield* store.get(new Price({ sku: "a" })), Exit.succeed(10))
      yield* reset
      assert.deepStrictEqual(yield* store.get(new Price({ sku: "b" })), Exit.fail("unknown sku"))
      yield* store.setMany([[new Price({ sku: "c" }), Exit.succeed(30)], [new Price({ sku: "d" }), Exit.succeed(40)]])
      const many = yield* store.getMany([new Price({ sku: "c" }), new Price({ sku: "d" }), new Price({ sku: "x" })])
      assert.deepStrictEqual(many, [Exit.succeed(30), Exit.succeed(40), undefined])
      const pttl = Number(yield* server.command("PTTL", "prices:c"))
      assert.isTrue(pttl > 50_000 && pttl <= 60_000, `PTTL ${pttl}`)
      yield* store.remove(new Price({ sku: "a" }))
      assert.isUndefined(yield* store.get(new Price({ sku: "a" })))
      yield* store.clear
      assert.deepStrictEqual(yield* server.command("KEYS", "prices:*"), [])
    }))

  it.live("subscribe: messages arrive once subscribe returns, and again after the connection is reset", () =>
    Effect.gen(function*() {
      const { effectRedis, proxy, server } = yield* setup()
      const queue = yield* effectRedis.subscribe("news")
      yield* server.command("PUBLISH", "news", "first")
      assert.deepStrictEqual(yield* Queue.take(queue).pipe(Effect.timeout("2 seconds")), {
        channel: "news",
        message: "first"
      })
      yield* proxy.resetAll
      yield* waitUntil(
        Effect.map(server.command("PUBSUB", "NUMSUB", "news"), (r) => Number((r as Array<unknown>)[1])),
        (n) => n === 1
      )
      // NUMSUB can count the subscription before the old socket is gone: publish until the new one delivers.
      yield* waitUntil(
        Effect.andThen(server.command("PUBLISH", "news", "second"), Queue.size(queue)),
        (size) => size > 0,
        3_000
      )
      assert.strictEqual((yield* Queue.take(queue)).message, "second")
    }))

  it.live("subscribe returns once Redis acknowledged the SUBSCRIBE: a message published at once is received", () =>
    Effect.gen(function*() {
      // Heartbeat off: its 100 ms PING timeout would drop the slowed connection below.
      const { effectRedis, proxy, server } = yield* setup({ heartbeat: false })
      // The subscriber connection is open (a first subscription), then slow: 150 ms each way through the proxy.
      yield* effectRedis.subscribe("warm")
      yield* proxy.latency(150)
      const queue = yield* effectRedis.subscribe("late")
      // Published on a direct connection, which is faster than the subscriber's: it only reaches the subscriber if
      // its SUBSCRIBE was processed before `subscribe` returned.
      yield* server.command("PUBLISH", "late", "at once")
      assert.deepStrictEqual(yield* Queue.take(queue).pipe(Effect.timeout("2 seconds")), {
        channel: "late",
        message: "at once"
      })
    }))

  it.live("reserve: a blocking command holds its own connection; the shared one keeps serving", () =>
    Effect.gen(function*() {
      const { effectRedis, redis } = yield* setup()
      const popped = yield* Effect.forkChild(Effect.scoped(Effect.gen(function*() {
        const connection = yield* effectRedis.reserve
        return yield* connection.send<[string, string] | null>("BLPOP", "jobs", "0")
      })))
      yield* sleepReal(100)
      // The shared connection is not blocked: 100 commands meanwhile.
      for (let i = 0; i < 100; i++) yield* redis.set(`k${i}`, "v")
      assert.isUndefined(popped.pollUnsafe())
      yield* redis.command("RPUSH", ["jobs", "job-1"])
      assert.deepStrictEqual(yield* Fiber.join(popped), ["jobs", "job-1"])
      // A block longer than commandTimeout (1 s) is not a timeout: BLPOP with 1.5 s answers nil after 1.5 s.
      const started = Date.now()
      const nothing = yield* Effect.scoped(
        Effect.flatMap(effectRedis.reserve, (connection) => connection.send("BLPOP", "empty", "1.5"))
      )
      assert.isNull(nothing)
      const elapsed = Date.now() - started
      assert.isTrue(elapsed >= 1_400 && elapsed < 2_400, `took ${elapsed} ms`)
      // A non-blocking command on a reserved connection answers; a frozen one times out after commandTimeout.
      yield* Effect.scoped(Effect.gen(function*() {
        const connection = yield* effectRedis.reserve
        assert.strictEqual(yield* connection.send("PING"), "PONG")
      }))
    }))

  it.live("reserve: closing fails an in-flight command; a reset fails it and later sends on that connection", () =>
    Effect.gen(function*() {
      const { effectRedis, proxy, redis, server } = yield* setup()
      // Interrupting the holder releases the reservation: the connection, with BLPOP in flight, is closed (the pool
      // may open a fresh one in its place).
      const holder = yield* Effect.forkChild(Effect.scoped(
        Effect.flatMap(effectRedis.reserve, (connection) => connection.send("BLPOP", "never", "0"))
      ))
      yield* waitUntil(blockedClients(server), (n) => n === 1)
      yield* Fiber.interrupt(holder)
      yield* waitUntil(blockedClients(server), (n) => n === 0, 2_000)
      // A reset under BLPOP: it fails with a typed error, and that connection refuses further commands.
      const exit = yield* Effect.scoped(Effect.gen(function*() {
        const connection = yield* effectRedis.reserve
        const pending = yield* Effect.forkChild(Effect.flip(connection.send("BLPOP", "never", "0")))
        yield* sleepReal(100)
        yield* proxy.resetAll
        const error = yield* Fiber.join(pending)
        assert.strictEqual(causeTag(error), "ConnectionReset")
        yield* waitUntil(redis.health, (h) => h.connection === "ready")
        return yield* Effect.exit(connection.send("PING"))
      }))
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit)) {
        const reason = exit.cause.reasons[0]
        assert.strictEqual(reason?._tag === "Fail" ? causeTag(reason.error) : undefined, "ConnectionClosed")
      }
      // A fresh reservation works.
      const pong = yield* Effect.scoped(Effect.flatMap(effectRedis.reserve, (connection) => connection.send("PING")))
      assert.strictEqual(pong, "PONG")
      // Closing the layer fails a command in flight on a reserved connection at once.
      const layerScope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        RedisPersistence.layer.pipe(Layer.provide(Layer.succeed(RedisService, redis))),
        layerScope
      )
      const own = Context.get(context, Redis.Redis)
      const pending = yield* Effect.forkChild(Effect.exit(Effect.scoped(
        Effect.flatMap(own.reserve, (connection) => connection.send("BLPOP", "never", "0"))
      )))
      yield* waitUntil(blockedClients(server), (n) => n === 1)
      const closing = Date.now()
      yield* Scope.close(layerScope, Exit.void)
      const closed = yield* Fiber.join(pending)
      assert.isTrue(Exit.isFailure(closed))
      assert.isTrue(Date.now() - closing < 500, `closing took ${Date.now() - closing} ms`)
      yield* waitUntil(blockedClients(server), (n) => n === 0, 2_000)
    }))

  it.live("reserve fails fast with CircuitOpen while the breaker is open", () =>
    Effect.gen(function*() {
      const { effectRedis, redis, server } = yield* setup()
      yield* server.stop
      yield* waitUntil(redis.health, (h) => h.circuit === "open", 5_000)
      const started = Date.now()
      const error = yield* Effect.flip(Effect.scoped(effectRedis.reserve))
      assert.isTrue(Date.now() - started < 500, `took ${Date.now() - started} ms`)
      assert.strictEqual(RedisPersistence.causeOf(error)?._tag, "CircuitOpen")
    }))

  it("blockingTime reads the block of each blocking command", () => {
    const millis = (d: Duration.Duration | undefined) => d === undefined ? undefined : Duration.toMillis(d)
    assert.strictEqual(millis(RedisPersistence.blockingTime("BLPOP", ["a", "b", "2.5"])), 2_500)
    assert.strictEqual(millis(RedisPersistence.blockingTime("blmpop", ["1", "1", "a", "LEFT"])), 1_000)
    const xread = ["COUNT", "1", "BLOCK", "300", "STREAMS", "s", "$"]
    assert.strictEqual(millis(RedisPersistence.blockingTime("XREAD", xread)), 300)
    assert.strictEqual(millis(RedisPersistence.blockingTime("XREAD", ["STREAMS", "s", "$"])), undefined)
    assert.strictEqual(millis(RedisPersistence.blockingTime("WAIT", ["1", "0"])), 0)
    assert.strictEqual(millis(RedisPersistence.blockingTime("GET", ["k"])), undefined)
  })
})
