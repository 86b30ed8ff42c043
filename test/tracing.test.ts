/**
 * Spans by OpenTelemetry's database conventions, recorded by an in-memory tracer against a real redis-server: one
 * span per logical call, attributes without keys or values, `error.type` on failure, an event per retry.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Stream } from "effect"
import { PrometheusMetrics } from "effect/observability"
import * as RedisBlocking from "../src/RedisBlocking.ts"
import * as RedisSubscriber from "../src/RedisSubscriber.ts"
import * as C from "../src/internal/command.ts"
import * as RedisService from "../src/RedisService.ts"
import * as ChaosProxy from "../src/testing/ChaosProxy.ts"
import * as RedisTestServer from "../src/testing/RedisTestServer.ts"
import { fastOptions, recorder } from "./helpers.ts"

describe("tracing", () => {
  it.live("one client span per call with db.system.name, db.operation.name, db.namespace, server.*; error.type", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const redis = yield* RedisService.make({ ...fastOptions, url: server.url, db: 3 })
      const { spans, tracer } = recorder()
      yield* Effect.withTracer(
        Effect.gen(function*() {
          yield* redis.set("secret-key", "secret-value")
          yield* redis.command("LPUSH", ["list", "x"])
          yield* Effect.ignore(redis.get("list"))
          yield* redis.run(C.make({ name: "HSET", args: ["h", "f", "secret-field-value"], keys: [0] }))
        }),
        tracer
      )
      assert.deepStrictEqual(spans.map((s) => s.name), ["redis.SET", "redis.LPUSH", "redis.GET", "redis.HSET"])
      const set = spans[0]!
      assert.strictEqual(set.kind, "client")
      assert.strictEqual(set.attributes.get("db.system.name"), "redis")
      assert.strictEqual(set.attributes.get("db.operation.name"), "SET")
      assert.strictEqual(set.attributes.get("db.namespace"), "3")
      assert.strictEqual(set.attributes.get("server.address"), "127.0.0.1")
      assert.strictEqual(set.attributes.get("server.port"), server.port)
      assert.isUndefined(set.attributes.get("error.type"))
      assert.strictEqual(spans[2]!.attributes.get("error.type"), "ReplyError")
      // Nothing of a key or a value in any span.
      const text = JSON.stringify(spans.map((s) => [s.name, [...s.attributes.entries()]]))
      for (const secret of ["secret-key", "secret-value", "secret-field-value"]) assert.notInclude(text, secret)
    })))

  it.live("db.query.text only with tracing.queryText: the command name, `key` and `?`, never a key or a value", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const off = yield* RedisService.make({ ...fastOptions, url: server.url })
      const on = yield* RedisService.make({ ...fastOptions, url: server.url, tracing: { queryText: true } })
      const { spans, tracer } = recorder()
      yield* Effect.withTracer(
        Effect.gen(function*() {
          yield* off.set("secret-key", "secret-value")
          yield* on.set("secret-key", "secret-value")
          yield* on.set("secret-key", "secret-value", { ttl: "1 minute", mode: "XX" })
          yield* on.get("secret-key")
          yield* on.mget(["secret-key", "secret-other"])
          yield* on.command("LPUSH", ["secret-list", "secret-item"])
          yield* on.run(C.make({ name: "HSET", args: ["secret-hash", "f", "secret-field-value"], keys: [0] }))
        }),
        tracer
      )
      assert.deepStrictEqual(spans.map((s) => s.attributes.get("db.query.text")), [
        undefined,
        "SET key ?",
        "SET key ? ? ? ?",
        "GET key",
        "MGET key key",
        "LPUSH ? ?",
        "HSET key ? ?"
      ])
      const text = JSON.stringify(spans.map((s) => [s.name, [...s.attributes.entries()]]))
      for (const secret of ["secret-key", "secret-value", "secret-other", "secret-list", "secret-item"]) {
        assert.notInclude(text, secret)
      }
    })))

  it.live("the subscriber connection's commands are traced and counted too (client <name>:subscriber)", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const redis = yield* RedisService.make({ ...fastOptions, url: server.url, connectionName: "app" })
      const subscriber = yield* RedisSubscriber.make(redis)
      const { spans, tracer } = recorder()
      const fiber = yield* Effect.forkChild(
        Effect.withTracer(Stream.runHead(subscriber.subscribe("secret-channel")), tracer)
      )
      yield* subscriber.awaitSubscribed("secret-channel")
      yield* redis.publish("secret-channel", "secret-message")
      yield* Fiber.join(fiber)
      const subscribe = spans.find((span) => span.name === "redis.SUBSCRIBE")
      assert.isDefined(subscribe)
      assert.strictEqual(subscribe!.kind, "client")
      assert.strictEqual(subscribe!.attributes.get("db.system.name"), "redis")
      assert.strictEqual(subscribe!.attributes.get("db.operation.name"), "SUBSCRIBE")
      const text = JSON.stringify(spans.map((s) => [s.name, [...s.attributes.entries()]]))
      assert.notInclude(text, "secret")
      const metrics = yield* PrometheusMetrics.format()
      assert.match(metrics, /redis_commands_total\{[^}]*client="app:subscriber"[^}]*command="SUBSCRIBE"[^}]*outcome="ok"/)
    })))

  it.live("dedicated connections' commands are traced and counted too (client <name>:blocking)", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const redis = yield* RedisService.make({ ...fastOptions, url: server.url, connectionName: "app" })
      const blocking = yield* RedisBlocking.make(redis)
      yield* redis.command("RPUSH", ["secret-queue", "secret-item"])
      const { spans, tracer } = recorder()
      const popped = yield* Effect.withTracer(blocking.blpop(["secret-queue"], "1 second"), tracer)
      assert.isTrue(popped._tag === "Some")
      assert.deepStrictEqual(spans.map((s) => s.name), ["redis.BLPOP"])
      assert.strictEqual(spans[0]!.attributes.get("db.operation.name"), "BLPOP")
      assert.strictEqual(spans[0]!.attributes.get("server.port"), server.port)
      assert.notInclude(JSON.stringify(spans.map((s) => [...s.attributes.entries()])), "secret")
      const metrics = yield* PrometheusMetrics.format()
      assert.match(metrics, /redis_commands_total\{[^}]*client="app:blocking"[^}]*command="BLPOP"[^}]*outcome="ok"/)
    })))

  it.live("a retried idempotent command is one span with a redis.retry event", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const proxy = yield* ChaosProxy.make({ target: server })
      const redis = yield* RedisService.make({ ...fastOptions, url: proxy.url, heartbeat: false })
      yield* redis.set("k", "v")
      const { spans, tracer } = recorder()
      yield* proxy.latency(200)
      const fiber = yield* Effect.forkChild(Effect.withTracer(redis.get("k"), tracer))
      yield* Effect.sleep("80 millis")
      yield* proxy.resetAll
      yield* proxy.restore
      yield* Fiber.join(fiber)
      assert.deepStrictEqual(spans.map((s) => s.name), ["redis.GET"])
      const events = (spans[0]! as unknown as { events: Array<[string, bigint, Record<string, unknown>]> }).events
      assert.deepStrictEqual(events.map(([name, , attributes]) => [name, attributes["error.type"]]), [
        ["redis.retry", "ConnectionReset"]
      ])
    })))
})
