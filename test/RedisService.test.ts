/**
 * RedisService against a real redis-server: operations, typed errors, and every resilience claim shown once with a
 * real fault (chaos proxy ECONNRESET, CLIENT KILL, SIGSTOP, stop/start). Each test is bounded to a few seconds.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Metric, Option, Result } from "effect"
import type { RedisOptions } from "../src/index.ts"
import * as Health from "../src/Health.ts"
import * as RedisService from "../src/RedisService.ts"
import * as ChaosProxy from "../src/testing/ChaosProxy.ts"
import * as RedisTestServer from "../src/testing/RedisTestServer.ts"
import { failureTag, fastOptions, sleepReal, waitUntil } from "./helpers.ts"

// `fastOptions`, with a breaker that opens after 5 failures rather than 3.
const fast = {
  ...fastOptions,
  breaker: { ...fastOptions.breaker, failureThreshold: 5 }
} satisfies RedisOptions

/** Builds the service in the current scope. */
const service = (options: RedisOptions) => RedisService.make(options)

describe("RedisService (real redis-server)", () => {
  it.live("runs the typed operations", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const redis = yield* service({ ...fast, url: server.url })
      assert.isTrue(yield* redis.set("a", "1"))
      assert.deepStrictEqual(yield* redis.get("a"), Option.some("1"))
      assert.deepStrictEqual(yield* redis.get("missing"), Option.none())
      assert.isFalse(yield* redis.set("a", "2", { mode: "NX" }))
      assert.isTrue(yield* redis.set("b", "2", { mode: "NX", ttl: "10 seconds" }))
      assert.isFalse(yield* redis.set("c", "3", { mode: "XX" }))
      assert.deepStrictEqual(
        yield* redis.mget(["a", "missing", "b"]),
        [Option.some("1"), Option.none(), Option.some("2")]
      )
      assert.deepStrictEqual(yield* redis.mget([]), [])
      assert.strictEqual(yield* redis.incr("n"), 1)
      assert.strictEqual(yield* redis.incr("n", 41), 42)
      assert.isTrue(yield* redis.expire("n", "5 seconds"))
      assert.isFalse(yield* redis.expire("nothing", "5 seconds"))
      const pttl = yield* redis.command<number>("PTTL", ["b"])
      assert.isTrue(pttl > 9_000 && pttl <= 10_000, `PTTL ${pttl}`)
      assert.strictEqual(yield* redis.del("a", "b", "missing"), 2)
      assert.strictEqual(yield* redis.publish("nobody-listens", "x"), 0)
      assert.strictEqual(yield* redis.command<number>("HSET", ["h", "f", "v"]), 1)
      assert.strictEqual(yield* redis.command<string>("HGET", ["h", "f"], { idempotent: true }), "v")
      const health = yield* redis.health
      assert.strictEqual(health.connection, "ready")
      assert.strictEqual(health.circuit, "closed")
      assert.strictEqual(health.connectionsOpened, 1)
      assert.strictEqual(health.reconnects, 0)
      assert.strictEqual(health.topology, "standalone")
      assert.deepStrictEqual(health.nodes, [{ address: `127.0.0.1:${server.port}`, role: "master", status: "ready" }])
    })))

  it.live("a reply error is a ReplyError with its code and never opens the breaker", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const redis = yield* service({ ...fast, url: server.url })
      yield* redis.command("LPUSH", ["list", "x"])
      for (let i = 0; i < 20; i++) {
        const result = yield* Effect.result(redis.get("list"))
        assert.isTrue(Result.isFailure(result))
        if (Result.isFailure(result)) {
          assert.strictEqual(result.failure._tag, "ReplyError")
          if (result.failure._tag === "ReplyError") assert.strictEqual(result.failure.code, "WRONGTYPE")
        }
      }
      assert.strictEqual((yield* redis.health).circuit, "closed")
      assert.deepStrictEqual(yield* redis.get("absent"), Option.none())
    })))

  it.live("READONLY on one server is a plain ReplyError: the connection stays (only Sentinel/Cluster reroute)", () =>
    Effect.gen(function*() {
      const master = yield* RedisTestServer.make()
      const replica = yield* RedisTestServer.make({ args: ["--replicaof", master.host, String(master.port)] })
      const redis = yield* service({ ...fast, url: replica.url, heartbeat: false })
      const exit = yield* Effect.exit(redis.incr("counter"))
      assert.strictEqual(failureTag(exit), "ReplyError")
      if (Exit.isFailure(exit)) {
        const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
        if (reason?._tag === "Fail" && reason.error._tag === "ReplyError") {
          assert.strictEqual(reason.error.code, "READONLY")
        }
      }
      const health = yield* redis.health
      assert.strictEqual(health.reconnects, 0)
      assert.strictEqual(health.circuit, "closed")
      assert.deepStrictEqual(yield* redis.get("counter"), Option.none())
    }))

  it.live("500 concurrent commands share one TCP connection; closing the layer closes it and leaves no fiber", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      // Counts the fibers started and ended inside the layer's scope (heartbeat, watchdog, breaker, reconnect loop).
      let fibers = 0
      const tracker: Metric.FiberRuntimeMetricsService = {
        recordFiberStart: () => {
          fibers++
        },
        recordFiberEnd: () => {
          fibers--
        }
      }
      yield* Effect.scoped(Effect.gen(function*() {
        const redis = yield* service({ ...fast, url: server.url })
        const results = yield* Effect.forEach(
          Array.from({ length: 500 }, (_, i) => i),
          (i) => Effect.andThen(redis.set(`k${i}`, String(i)), redis.get(`k${i}`)),
          { concurrency: "unbounded" }
        )
        assert.deepStrictEqual(results[499], Option.some("499"))
        assert.strictEqual(yield* server.clientCount, 1)
        assert.strictEqual((yield* redis.health).connectionsOpened, 1)
        assert.isTrue(fibers >= 4, `${fibers} fibers running`)
      })).pipe(Effect.provideService(Metric.FiberRuntimeMetrics, tracker))
      // The scope is closed: the socket is gone and every fiber the layer started has ended.
      assert.strictEqual(fibers, 0)
      assert.strictEqual(yield* waitUntil(server.clientCount, (n) => n === 0, 2_000), 0)
    }).pipe(Effect.scoped))

  it.live("ECONNRESET on an in-flight INCR is a ConnectionReset (sent) and is never applied twice", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const proxy = yield* ChaosProxy.make({ target: { host: server.host, port: server.port } })
      const redis = yield* service({ ...fast, url: proxy.url, heartbeat: false })
      yield* redis.set("counter", "0")
      yield* proxy.latency(300)
      const incr = yield* Effect.forkChild(Effect.exit(redis.incr("counter")))
      yield* sleepReal(100)
      yield* proxy.resetAll
      yield* proxy.restore
      const exit = yield* Fiber.join(incr)
      assert.strictEqual(failureTag(exit), "ConnectionReset")
      if (Exit.isFailure(exit)) {
        const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
        if (reason?._tag === "Fail" && reason.error._tag === "ConnectionReset") assert.isTrue(reason.error.sent)
      }
      yield* waitUntil(redis.health, (h) => h.connection === "ready")
      const value = Number(Option.getOrThrow(yield* redis.get("counter")))
      assert.isTrue(value <= 1, `INCR applied ${value} times`)
      assert.strictEqual((yield* redis.health).reconnects, 1)
    })))

  it.live("ECONNRESET after the server applied a write: ConnectionReset { sent: true }, applied exactly once", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const proxy = yield* ChaosProxy.make({ target: server })
      const redis = yield* service({ ...fast, url: proxy.url, heartbeat: false, commandTimeout: "2 seconds" })
      // INCR, then keep the server busy for 300 ms: the write is applied, the reply is not back yet.
      const script = "redis.call('INCR', KEYS[1]); local t = redis.call('TIME'); " +
        "local start = t[1] * 1000000 + t[2]; local now = start; " +
        "while now - start < 300000 do t = redis.call('TIME'); now = t[1] * 1000000 + t[2] end; return 1"
      const running = yield* Effect.forkChild(Effect.exit(redis.command("EVAL", [script, 1, "applied"])))
      yield* sleepReal(100)
      yield* proxy.resetAll
      const exit = yield* Fiber.join(running)
      assert.strictEqual(failureTag(exit), "ConnectionReset")
      if (Exit.isFailure(exit)) {
        const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
        if (reason?._tag === "Fail" && reason.error._tag === "ConnectionReset") assert.isTrue(reason.error.sent)
      }
      yield* waitUntil(redis.health, (h) => h.connection === "ready", 5_000)
      // Applied by the server, and not resent by the layer.
      assert.deepStrictEqual(yield* redis.get("applied"), Option.some("1"))
    }))

  it.live("heartbeat off: a silent connection is still replaced (the breaker's failed probe invalidates it)", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const proxy = yield* ChaosProxy.make({ target: server })
      const redis = yield* service({
        ...fast,
        url: proxy.url,
        heartbeat: false,
        commandTimeout: "200 millis",
        breaker: { failureThreshold: 2, openDuration: "200 millis", maxOpenDuration: "400 millis" }
      })
      yield* redis.set("k", "v")
      yield* proxy.blackhole
      yield* Effect.exit(redis.get("k"))
      yield* Effect.exit(redis.get("k"))
      yield* waitUntil(redis.health, (h) => h.reconnects >= 1, 5_000)
      yield* proxy.restore
      yield* waitUntil(redis.health, (h) => h.connection === "ready" && h.circuit === "closed", 10_000)
      assert.deepStrictEqual(yield* redis.get("k"), Option.some("v"))
    }))

  it.live("an in-flight GET survives an ECONNRESET (retried once on the next connection)", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const proxy = yield* ChaosProxy.make({ target: { host: server.host, port: server.port } })
      const redis = yield* service({ ...fast, url: proxy.url, heartbeat: false })
      yield* redis.set("key", "value")
      yield* proxy.latency(300)
      const get = yield* Effect.forkChild(redis.get("key"))
      yield* sleepReal(100)
      yield* proxy.resetAll
      yield* proxy.restore
      assert.deepStrictEqual(yield* Fiber.join(get), Option.some("value"))
      const health = yield* redis.health
      assert.strictEqual(health.reconnects, 1)
      assert.strictEqual(health.connectionsOpened, 2)
    })))

  it.live("one reset under 20 in-flight GETs: all 20 are retried and succeed, the circuit stays closed", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const proxy = yield* ChaosProxy.make({ target: server })
      const redis = yield* service({ ...fast, url: proxy.url, heartbeat: false })
      yield* redis.set("key", "value")
      yield* proxy.latency(300)
      const gets = yield* Effect.forkChild(
        Effect.forEach(Array.from({ length: 20 }), () => redis.get("key"), { concurrency: "unbounded" })
      )
      yield* sleepReal(100)
      yield* proxy.resetAll
      yield* proxy.restore
      const values = yield* Fiber.join(gets)
      assert.deepStrictEqual(new Set(values.map((v) => Option.getOrNull(v))), new Set(["value"]))
      const health = yield* redis.health
      assert.strictEqual(health.circuit, "closed")
      assert.strictEqual(health.reconnects, 1)
    }))

  it.live("commands issued together share socket writes (by default and with autoPipelining); retries unchanged", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const readsDuring = (redis: RedisService.RedisServiceShape) =>
        Effect.gen(function*() {
          const reads = server.command("INFO", "stats").pipe(
            Effect.map((info) => Number(/total_reads_processed:(\d+)/.exec(String(info))?.[1]))
          )
          const before = yield* reads
          const values = yield* Effect.forEach(Array.from({ length: 200 }, (_, i) => i), (i) =>
            Effect.andThen(redis.set(`k${i}`, `v${i}`), redis.get(`k${i}`)), { concurrency: "unbounded" })
          assert.deepStrictEqual(values.map(Option.getOrNull), Array.from({ length: 200 }, (_, i) => `v${i}`))
          // Minus the INFO call itself.
          return (yield* reads) - before - 1
        })
      const plain = yield* readsDuring(yield* service({ ...fast, url: server.url, heartbeat: false }))
      const pipelined = yield* readsDuring(
        yield* service({ ...fast, url: server.url, heartbeat: false, autoPipelining: true })
      )
      yield* Effect.logInfo(`400 commands: ${plain} server reads by default, ${pipelined} with auto-pipelining`)
      // 400 commands issued in two ticks: the default corks the socket for a tick (one write per tick), ioredis'
      // auto-pipelining batches per tick too. Without either, a command was one write: ~200-320 reads here.
      assert.isBelow(plain, 50, `${plain} reads by default`)
      assert.isBelow(pipelined, 50, `${pipelined} reads with auto-pipelining`)

      // An ECONNRESET under pipelined GETs: retried once on the next connection, as without auto-pipelining.
      const proxy = yield* ChaosProxy.make({ target: server })
      const redis = yield* service({ ...fast, url: proxy.url, heartbeat: false, autoPipelining: true })
      assert.deepStrictEqual(yield* redis.get("k1"), Option.some("v1"))
      yield* proxy.latency(300)
      const gets = yield* Effect.forkChild(
        Effect.forEach(Array.from({ length: 20 }), () => redis.get("k1"), { concurrency: "unbounded" })
      )
      yield* sleepReal(100)
      yield* proxy.resetAll
      yield* proxy.restore
      assert.deepStrictEqual(new Set((yield* Fiber.join(gets)).map(Option.getOrNull)), new Set(["v1"]))
      assert.strictEqual((yield* redis.health).reconnects, 1)
    }))

  it.live("CLIENT KILL: the connection comes back by itself", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const redis = yield* service({ ...fast, url: server.url })
      yield* redis.set("k", "v")
      assert.strictEqual(yield* server.killClients("normal"), 1)
      yield* waitUntil(redis.health, (h) => h.connectionsOpened === 2 && h.connection === "ready")
      assert.deepStrictEqual(yield* redis.get("k"), Option.some("v"))
      assert.strictEqual((yield* redis.health).reconnects, 1)
    })))

  it.live("SIGSTOP: the heartbeat notices within interval x misses + timeout; SIGCONT: recovered", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const redis = yield* service({ ...fast, url: server.url })
      yield* redis.set("k", "v")
      yield* server.pause
      const frozenAt = Date.now()
      yield* waitUntil(redis.health, (h) => h.connection !== "ready", 3_000)
      const detection = Date.now() - frozenAt
      // interval 200 ms x 2 misses + 100 ms timeout = 500 ms, plus slack for a loaded machine (the exact bound is
      // proven under TestClock in Heartbeat.test.ts).
      assert.isTrue(detection <= 1_500, `detected after ${detection} ms`)
      yield* server.resume
      yield* waitUntil(redis.health, (h) => h.connection === "ready" && h.circuit === "closed", 5_000)
      assert.deepStrictEqual(yield* redis.get("k"), Option.some("v"))
    })))

  it.live("a frozen server gives CommandTimeout, not a hang", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const redis = yield* service({ ...fast, url: server.url, heartbeat: false, commandTimeout: "300 millis" })
      yield* redis.set("k", "v")
      yield* server.pause
      const started = Date.now()
      const exit = yield* Effect.exit(redis.incr("k2"))
      const elapsed = Date.now() - started
      yield* server.resume
      assert.strictEqual(failureTag(exit), "CommandTimeout")
      assert.isTrue(elapsed < 1_000, `took ${elapsed} ms`)
    })))

  it.live("server stopped: the breaker opens and 200 calls fail with CircuitOpen at once; back: closed", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const redis = yield* service({ ...fast, url: server.url })
      yield* redis.set("k", "v")
      yield* server.stop
      yield* waitUntil(redis.health, (h) => h.circuit === "open", 5_000)
      const started = Date.now()
      const exits = yield* Effect.forEach(
        Array.from({ length: 200 }),
        () => Effect.exit(redis.get("k")),
        { concurrency: "unbounded" }
      )
      const elapsed = Date.now() - started
      const tags = new Set(exits.map(failureTag))
      assert.deepStrictEqual([...tags], ["CircuitOpen"])
      assert.isTrue(elapsed < 1_000, `200 rejected calls took ${elapsed} ms`)
      yield* server.start
      yield* waitUntil(redis.health, (h) => h.circuit === "closed" && h.connection === "ready", 5_000)
      assert.deepStrictEqual(yield* redis.get("k"), Option.none()) // no persistence: the restarted server is empty
    })))

  it.live("200 callers through an outage cause one connection attempt per schedule step, not one per caller", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const proxy = yield* ChaosProxy.make({ target: { host: server.host, port: server.port } })
      const redis = yield* service({ ...fast, url: proxy.url })
      yield* redis.set("k", "v")
      const acceptedBefore = yield* proxy.accepted
      yield* proxy.refuse
      yield* proxy.resetAll
      const outageMillis = 1_500
      const deadline = Date.now() + outageMillis
      let calls = 0
      yield* Effect.forEach(
        Array.from({ length: 200 }),
        () =>
          Effect.gen(function*() {
            while (Date.now() < deadline) {
              calls++
              yield* Effect.exit(redis.get("k"))
              yield* sleepReal(20)
            }
          }),
        { concurrency: "unbounded", discard: true }
      )
      yield* proxy.restore
      yield* waitUntil(redis.health, (h) => h.connection === "ready" && h.circuit === "closed", 5_000)
      const refused = (yield* Metric.value(
        Metric.withAttributes(Health.connectFailures, { error: "ConnectionRefused" })
      )).count
      // Debounce 20 ms, then delays 50, 100, 200, 400, 400, ... ms: about 6 attempts fit in 1.5 s, whatever the
      // number of callers (who made thousands of calls meanwhile).
      assert.isTrue(calls > 2_000, `${calls} calls`)
      assert.isTrue(refused >= 4 && refused <= 9, `${refused} refused connection attempts`)
      const accepted = (yield* proxy.accepted) - acceptedBefore
      assert.isTrue(accepted >= 1 && accepted <= 2, `${accepted} accepted connections after the outage`)
      assert.deepStrictEqual(yield* redis.get("k"), Option.some("v"))
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())))

  it.live("the layer builds with Redis down; commands fail with typed errors until it is up", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      yield* server.stop
      const redis = yield* service({ ...fast, url: server.url })
      const exit = yield* Effect.exit(redis.get("k"))
      assert.include(["ConnectionTimeout", "CircuitOpen"], failureTag(exit))
      yield* server.start
      yield* waitUntil(redis.health, (h) => h.connection === "ready" && h.circuit === "closed", 5_000)
      assert.deepStrictEqual(yield* redis.get("k"), Option.none())
    })))
})
