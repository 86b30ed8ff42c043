/**
 * RedisService timing under TestClock (real redis-server, virtual time), and what it reports: command metrics in the
 * registry (Prometheus format) and spans when a tracer is installed.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Fiber, Layer, Metric, Option, Tracer } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { TestClock } from "effect/testing"
import * as RedisService from "../src/RedisService.ts"
import * as RedisTestServer from "../src/testing/RedisTestServer.ts"
import * as Watchdog from "../src/internal/watchdog.ts"
import { sleepReal, waitUntil } from "./helpers.ts"

describe("RedisService (TestClock)", () => {
  it.effect("commandTimeout runs on Effect's Clock: a frozen server gives CommandTimeout at the deadline", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const redis = yield* RedisService.make({ url: server.url, heartbeat: false, commandTimeout: "2 seconds" })
      yield* waitUntil(redis.health, (h) => h.connection === "ready")
      yield* redis.set("k", "v")
      yield* server.pause
      const pending = yield* Effect.forkChild(Effect.flip(redis.incr("counter")))
      yield* Effect.yieldNow
      yield* sleepReal(20)
      yield* TestClock.adjust("1999 millis")
      yield* sleepReal(20)
      assert.isUndefined(pending.pollUnsafe(), "still waiting before the deadline")
      const tick = Duration.toMillis(Watchdog.tickFor(Duration.seconds(2)))
      yield* TestClock.adjust(tick + 1)
      const error = yield* Fiber.join(pending)
      assert.strictEqual(error._tag, "CommandTimeout")
      if (error._tag === "CommandTimeout") {
        assert.isTrue(error.sent)
        assert.strictEqual(error.command, "INCR")
      }
      yield* server.resume
    }))

  it.effect("a command that waited for a connection gets its whole commandTimeout from when it is sent", () =>
    Effect.gen(function*() {
      // DEBUG SLEEP stands for a command that gets no reply (blocking commands are refused on the shared connection).
      const server = yield* RedisTestServer.make({ args: ["--enable-debug-command", "yes"] })
      yield* server.stop
      const redis = yield* RedisService.make({
        url: server.url,
        heartbeat: false,
        acquireTimeout: "5 seconds",
        commandTimeout: "2 seconds",
        reconnect: { base: "1 second", jitter: false, debounce: "0 millis" }
      })
      // The first attempt fails at t = 0 (refused); the command waits for a connection.
      yield* waitUntil(redis.health, (h) => h.connection === "reconnecting")
      const pending = yield* Effect.forkChild(Effect.flip(redis.command("DEBUG", ["SLEEP", "3"])))
      yield* server.start
      // t = 1 s: the next attempt connects and DEBUG SLEEP is sent (no reply for 3 real seconds).
      yield* TestClock.adjust("1 second")
      yield* waitUntil(redis.health, (h) => h.connection === "ready")
      yield* sleepReal(50)
      // Counted from the call (t = 0), the deadline would have passed at 2 s.
      yield* TestClock.adjust("1500 millis")
      yield* sleepReal(20)
      assert.isUndefined(pending.pollUnsafe(), "a command sent at 1 s is still within its 2 s at 2.5 s")
      const tick = Duration.toMillis(Watchdog.tickFor(Duration.seconds(2)))
      yield* TestClock.adjust(500 + tick + 1)
      const error = yield* Fiber.join(pending)
      assert.strictEqual(error._tag, "CommandTimeout")
    }))

  it.effect("acquireTimeout runs on Effect's Clock: with Redis down a call fails after exactly acquireTimeout", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      yield* server.stop
      const redis = yield* RedisService.make({ url: server.url, heartbeat: false, acquireTimeout: "1 second" })
      const pending = yield* Effect.forkChild(Effect.flip(redis.get("k")))
      yield* Effect.yieldNow
      yield* TestClock.adjust("999 millis")
      assert.isUndefined(pending.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      const error = yield* Fiber.join(pending)
      assert.strictEqual(error._tag, "ConnectionTimeout")
    }))
})

describe("RedisService layers and start-up", () => {
  it.effect("invalid options fail the layer with InvalidRedisOptions naming the field", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Layer.build(RedisService.RedisService.layer({ port: 70_000 })))
      assert.strictEqual(error._tag, "InvalidRedisOptions")
      if (error._tag === "InvalidRedisOptions") assert.strictEqual(error.field, "port")
      const topology = yield* Effect.flip(Layer.build(RedisService.RedisService.layer({
        topology: { _tag: "Cluster", nodes: [] }
      })))
      assert.strictEqual(topology._tag, "InvalidRedisOptions")
      if (topology._tag === "InvalidRedisOptions") assert.match(topology.field, /^topology/)
    }))

  it.effect("awaitReady: start-up fails with ConnectionTimeout after connectTimeout when Redis stays down", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      yield* server.stop
      const building = yield* Effect.forkChild(
        Effect.flip(Layer.build(RedisService.RedisService.layer({
          url: server.url,
          awaitReady: true,
          connectTimeout: "3 seconds"
        })))
      )
      yield* Effect.yieldNow
      yield* TestClock.adjust("2999 millis")
      yield* sleepReal(20)
      assert.isUndefined(building.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      const error = yield* Fiber.join(building)
      assert.strictEqual(error._tag, "ConnectionTimeout")
    }))

  it.live("awaitReady with Redis up: the service is ready when the layer is built", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const redis = yield* RedisService.make({ url: server.url, awaitReady: true })
      assert.strictEqual((yield* redis.health).connection, "ready")
    }))

  it.live("layerConfig reads REDIS_URL through Config; the accessors use the service", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const value = yield* Effect.gen(function*() {
        yield* RedisService.setKey("from-env", "yes")
        return yield* RedisService.getMultipleKeys(["from-env", "missing"])
      }).pipe(
        Effect.provide(RedisService.RedisService.layerConfig()),
        Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env: { REDIS_URL: server.url } }))
      )
      assert.deepStrictEqual(value, [Option.some("yes"), Option.none()])
      assert.deepStrictEqual(yield* Effect.map(server.command("GET", "from-env"), String), "yes")
    }))
})

describe("RedisService reporting", () => {
  it.live("counts and times commands in the metric registry, readable in Prometheus format", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      yield* Effect.gen(function*() {
        const redis = yield* RedisService.make({ url: server.url })
        for (let i = 0; i < 7; i++) yield* redis.get("k")
        yield* redis.command("LPUSH", ["l", "x"])
        yield* Effect.ignore(redis.get("l"))
        const text = yield* PrometheusMetrics.format()
        assert.match(text, /redis_commands_total\{[^}]*command="GET"[^}]*outcome="ok"[^}]*\} 7/)
        assert.match(text, /redis_commands_total\{[^}]*command="GET"[^}]*outcome="ReplyError"[^}]*\} 1/)
        assert.match(text, /redis_command_duration_seconds_count\{[^}]*command="GET"[^}]*\} 8/)
        assert.match(text, /redis_connections_opened_total 1/)
      }).pipe(Effect.scoped, Effect.provideService(Metric.MetricRegistry, new Map()))
    }))

  it.live("creates a span per command when a tracer is installed", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const names: Array<string> = []
      const recording = Tracer.make({
        span: (options) => {
          names.push(options.name)
          return Tracer.nativeTracer.span(options)
        }
      })
      const redis = yield* RedisService.make({ url: server.url })
      yield* redis.get("a")
      assert.deepStrictEqual(names, [], "no span with the default tracer")
      yield* Effect.withTracer(Effect.andThen(redis.set("a", "1"), redis.get("a")), recording)
      assert.deepStrictEqual(names, ["redis.SET", "redis.GET"])
    }))
})

describe("isIdempotent", () => {
  it("reads and plain writes are; increments, GET/NX sets and unknown commands are not", () => {
    for (const name of ["GET", "mget", "DEL", "PEXPIRE", "HSET", "SADD"]) assert.isTrue(RedisService.isIdempotent(name))
    assert.isTrue(RedisService.isIdempotent("SET", ["k", "v", "PX", 100]))
    assert.isTrue(RedisService.isIdempotent("ZADD", ["z", 1, "a"]))
    for (const name of ["INCR", "LPUSH", "PUBLISH", "EVAL", "FOO"]) assert.isFalse(RedisService.isIdempotent(name))
    assert.isFalse(RedisService.isIdempotent("SET", ["k", "v", "NX"]))
    assert.isFalse(RedisService.isIdempotent("set", ["k", "v", "get"]))
    assert.isFalse(RedisService.isIdempotent("ZADD", ["z", "INCR", 1, "a"]))
  })
})

describe("Watchdog (TestClock)", () => {
  it.effect("1000 commands in flight (the buffer grows past its first size): exactly the unsettled ones expire", () =>
    Effect.gen(function*() {
      const watchdog = yield* Watchdog.make(Duration.seconds(1))
      const expired: Array<number> = []
      const deadlines: Array<Watchdog.Deadline> = []
      for (let i = 0; i < 1000; i++) {
        deadlines.push(watchdog.watch(() => expired.push(i), watchdog.now()))
        // Some settle while others are still in flight, at the head and in the middle.
        if (i % 3 === 0) Watchdog.settle(deadlines[i]!)
        if (i === 300) yield* TestClock.adjust("500 millis")
      }
      yield* TestClock.adjust("600 millis")
      const unsettled = (from: number, to: number) =>
        Array.from({ length: to - from }, (_, k) => from + k).filter((i) => i % 3 !== 0)
      // t = 1.1 s: the first 301 were sent at t = 0 and are due; the others were sent at t = 0.5 s.
      assert.deepStrictEqual(expired, unsettled(0, 301))
      yield* TestClock.adjust("500 millis")
      assert.deepStrictEqual(expired, unsettled(0, 1000))
    }))

  it.effect("a deadline watched from inside an expiry (a fiber resuming at once) still expires", () =>
    Effect.gen(function*() {
      const watchdog = yield* Watchdog.make(Duration.seconds(1))
      const now = watchdog.now
      const expired: Array<string> = []
      const settledEarly = watchdog.watch(() => expired.push("never"), now())
      Watchdog.settle(settledEarly)
      watchdog.watch(() => {
        expired.push("first")
        // What a retrying caller does: its next command is watched from within the sweep.
        watchdog.watch(() => expired.push("second"), now())
      }, now())
      yield* TestClock.adjust("1100 millis")
      assert.deepStrictEqual(expired, ["first"])
      yield* TestClock.adjust("1100 millis")
      assert.deepStrictEqual(expired, ["first", "second"])
    }))
})
