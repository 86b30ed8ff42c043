/**
 * RedisBlocking against a real redis-server, behind a chaos proxy: blocking pops and reads on dedicated connections,
 * their deadlines, interruption (the socket is destroyed: an interrupted BLPOP pops nothing later), a reset under
 * BLPOP, keyPrefix, the pool's bound and the breaker. Each test is bounded to a few seconds.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Layer, Option } from "effect"
import type { RedisOptions } from "../src/index.ts"
import { make as makeCommand } from "../src/internal/command.ts"
import { RedisBlocking, type RedisBlockingOptions } from "../src/RedisBlocking.ts"
import * as RedisServiceModule from "../src/RedisService.ts"
import { RedisService } from "../src/RedisService.ts"
import * as ChaosProxy from "../src/testing/ChaosProxy.ts"
import * as RedisTestServer from "../src/testing/RedisTestServer.ts"
import { failureTag, fastOptions, sleepReal, waitUntil } from "./helpers.ts"

/** A server, a chaos proxy in front of it, and `RedisService` + `RedisBlocking` on the proxy. */
const setup = (options: RedisOptions = {}, blockingOptions: RedisBlockingOptions = {}) =>
  Effect.gen(function*() {
    const server = yield* RedisTestServer.make()
    const proxy = yield* ChaosProxy.make({ target: server })
    const context = yield* Layer.build(
      RedisBlocking.layerWith(blockingOptions).pipe(
        Layer.provideMerge(RedisService.layer({ ...fastOptions, ...options, url: proxy.url }))
      )
    )
    const redis = Context.get(context, RedisService)
    const blocking = Context.get(context, RedisBlocking)
    yield* waitUntil(redis.health, (h) => h.connection === "ready")
    return { server, proxy, redis, blocking }
  })

/** Connections blocked in a command (BLPOP ...) on the server. */
const blockedClients = (server: RedisTestServer.RedisTestServer) =>
  Effect.map(server.command("INFO", "clients"), (info) => Number(/blocked_clients:(\d+)/.exec(String(info))?.[1]))

/** The error of a failed exit (or undefined). */
const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined => {
  if (Exit.isSuccess(exit)) return undefined
  const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
  return reason?._tag === "Fail" ? reason.error : undefined
}

describe("RedisBlocking (real redis-server)", () => {
  it.live("a connection lost while idle in the pool is replaced, not handed to the next caller", () =>
    Effect.gen(function*() {
      const { blocking, server } = yield* setup({ heartbeat: false }, { maxConnections: 1 })
      yield* server.command("RPUSH", "q", "1", "2")
      assert.deepStrictEqual(yield* blocking.blpop(["q"], "1 second"), Option.some({ key: "q", value: "1" }))
      // The pooled connection is killed while nobody uses it.
      yield* server.killClients("normal")
      yield* sleepReal(100)
      assert.deepStrictEqual(yield* blocking.blpop(["q"], "1 second"), Option.some({ key: "q", value: "2" }))
    }))

  it.live("a block of 0 on a frozen server fails typed within slice + commandTimeout instead of hanging", () =>
    Effect.gen(function*() {
      // Heartbeat 200 ms x 2: blocks of 0 run as 1 s slices; commandTimeout 1 s.
      const { blocking, server } = yield* setup()
      const pending = yield* Effect.forkChild(Effect.exit(blocking.blpop(["never"], 0)))
      yield* waitUntil(blockedClients(server), (n) => n === 1)
      const started = Date.now()
      yield* server.pause
      const exit = yield* Fiber.join(pending).pipe(Effect.ensuring(server.resume))
      const elapsed = Date.now() - started
      assert.strictEqual(failureTag(exit), "CommandTimeout")
      assert.isBelow(elapsed, 6_000, `failed after ${elapsed} ms`)
    }))

  it.live("blpop: Some when an element is pushed, None when the timeout runs out, 0 waits until pushed", () =>
    Effect.gen(function*() {
      const { blocking, server } = yield* setup()
      const pending = yield* Effect.forkChild(blocking.blpop(["a", "b"], "2 seconds"))
      yield* waitUntil(blockedClients(server), (n) => n === 1)
      yield* server.command("RPUSH", "b", "x")
      assert.deepStrictEqual(yield* Fiber.join(pending), Option.some({ key: "b", value: "x" }))

      let started = Date.now()
      assert.deepStrictEqual(yield* blocking.brpop(["empty"], "200 millis"), Option.none())
      let elapsed = Date.now() - started
      assert.isTrue(elapsed >= 190 && elapsed < 3_000, `took ${elapsed} ms`)

      // Zero blocks until answered: longer than commandTimeout (1 s) is no timeout.
      started = Date.now()
      const forever = yield* Effect.forkChild(blocking.blpop(["later"], 0))
      yield* sleepReal(1_400)
      assert.isUndefined(forever.pollUnsafe())
      yield* server.command("LPUSH", "later", "y")
      assert.deepStrictEqual(yield* Fiber.join(forever), Option.some({ key: "later", value: "y" }))
      elapsed = Date.now() - started
      assert.isTrue(elapsed >= 1_400, `took ${elapsed} ms`)
      // One connection served all three calls, one at a time.
      const stats = yield* blocking.stats
      assert.strictEqual(stats.idle + stats.used, 1)
    }))

  it.live("interrupting a blpop destroys its connection: an element pushed afterwards stays in the list", () =>
    Effect.gen(function*() {
      const { blocking, server } = yield* setup()
      const pending = yield* Effect.forkChild(blocking.blpop(["jobs"], 0))
      yield* waitUntil(blockedClients(server), (n) => n === 1)
      const started = Date.now()
      yield* Fiber.interrupt(pending)
      yield* waitUntil(blockedClients(server), (n) => n === 0, 1_000)
      assert.isTrue(Date.now() - started < 1_500, `the blocked connection took ${Date.now() - started} ms to go`)
      yield* server.command("RPUSH", "jobs", "job-1")
      yield* sleepReal(200)
      assert.deepStrictEqual(yield* server.command("LRANGE", "jobs", "0", "-1"), ["job-1"])
      // The pool opens a new connection for the next call.
      assert.deepStrictEqual(yield* blocking.blpop(["jobs"], 1), Option.some({ key: "jobs", value: "job-1" }))
    }))

  it.live("the shared connection is not stalled while a blpop blocks", () =>
    Effect.gen(function*() {
      const { blocking, redis, server } = yield* setup()
      const pending = yield* Effect.forkChild(blocking.blpop(["q"], 0))
      yield* waitUntil(blockedClients(server), (n) => n === 1)
      const started = Date.now()
      for (let i = 0; i < 100; i++) yield* redis.set(`k${i}`, String(i))
      const values = yield* redis.mget(["k0", "k99"])
      const elapsed = Date.now() - started
      assert.deepStrictEqual(values, [Option.some("0"), Option.some("99")])
      assert.isTrue(elapsed < 1_500, `100 SETs took ${elapsed} ms`)
      assert.isUndefined(pending.pollUnsafe())
      yield* redis.command("RPUSH", ["q", "done"])
      assert.deepStrictEqual(yield* Fiber.join(pending), Option.some({ key: "q", value: "done" }))
      // A blocking command on the shared connection is refused, naming this service.
      assert.strictEqual(failureTag(yield* Effect.exit(redis.command("BLPOP", ["q", "0"]))), "CommandRefused")
    }))

  it.live("a reset during blpop fails it with ConnectionReset, sent: true; never resent; the next call works", () =>
    Effect.gen(function*() {
      const { blocking, proxy, server } = yield* setup({ heartbeat: false })
      const pending = yield* Effect.forkChild(Effect.exit(blocking.blpop(["q"], 0)))
      yield* waitUntil(blockedClients(server), (n) => n === 1)
      yield* proxy.resetAll
      const exit = yield* Fiber.join(pending)
      const error = failureOf(exit)
      assert.strictEqual(error?._tag, "ConnectionReset")
      if (error?._tag === "ConnectionReset") assert.isTrue(error.sent)
      // Not resent: once the server saw the reset, nothing blocks on q.
      yield* waitUntil(blockedClients(server), (n) => n === 0, 2_000)
      yield* server.command("RPUSH", "q", "kept")
      yield* sleepReal(100)
      assert.strictEqual(Number(yield* server.command("LLEN", "q")), 1)
      assert.deepStrictEqual(yield* blocking.blpop(["q"], 1), Option.some({ key: "q", value: "kept" }))
    }))

  it.live("a silent server: the deadline is the block plus commandTimeout, then CommandTimeout (sent: true)", () =>
    Effect.gen(function*() {
      const { blocking, proxy } = yield* setup({ heartbeat: false, commandTimeout: "500 millis" })
      assert.deepStrictEqual(yield* blocking.blpop(["q"], "100 millis"), Option.none())
      yield* proxy.blackhole
      const started = Date.now()
      const exit = yield* Effect.exit(blocking.blpop(["q"], "300 millis"))
      const elapsed = Date.now() - started
      yield* proxy.restore
      const error = failureOf(exit)
      assert.strictEqual(error?._tag, "CommandTimeout")
      if (error?._tag === "CommandTimeout") assert.isTrue(error.sent)
      assert.isTrue(elapsed >= 780 && elapsed < 3_000, `timed out after ${elapsed} ms`)
    }))

  it.live("keyPrefix is added to the keys sent and removed from the keys returned", () =>
    Effect.gen(function*() {
      const { blocking, server } = yield* setup({ keyPrefix: "app:" })
      yield* server.command("RPUSH", "app:q2", "v")
      assert.deepStrictEqual(yield* blocking.blpop(["q1", "q2"], 1), Option.some({ key: "q2", value: "v" }))
      yield* server.command("RPUSH", "app:src", "a", "b")
      assert.deepStrictEqual(yield* blocking.blmove("src", "dst", "LEFT", "RIGHT", 1), Option.some("a"))
      assert.deepStrictEqual(yield* server.command("LRANGE", "app:dst", "0", "-1"), ["a"])
      assert.deepStrictEqual(yield* blocking.brpoplpush("src", "dst", 1), Option.some("b"))
      yield* server.command("RPUSH", "app:m", "1", "2", "3")
      assert.deepStrictEqual(
        yield* blocking.blmpop(["none", "m"], "LEFT", 1, { count: 2 }),
        Option.some({ key: "m", values: ["1", "2"] })
      )
      yield* server.command("ZADD", "app:z", "1", "one", "2", "two", "3", "three")
      assert.deepStrictEqual(yield* blocking.bzpopmin(["z"], 1), Option.some({ key: "z", member: "one", score: 1 }))
      assert.deepStrictEqual(yield* blocking.bzpopmax(["z"], 1), Option.some({ key: "z", member: "three", score: 3 }))
      assert.deepStrictEqual(
        yield* blocking.bzmpop(["z"], "MIN", 1),
        Option.some({ key: "z", members: [{ member: "two", score: 2 }] })
      )
      assert.deepStrictEqual(yield* blocking.bzpopmin(["z"], "50 millis"), Option.none())
      // Streams: XREAD BLOCK waits for the entry; XREADGROUP delivers it to a consumer.
      const id = String(yield* server.command("XADD", "app:s", "*", "f", "v"))
      const read = yield* blocking.xread([{ stream: "s", id: "0" }], "100 millis")
      assert.deepStrictEqual(read, Option.some([{ stream: "s", entries: [{ id, fields: { f: "v" } }] }]))
      const waiting = yield* Effect.forkChild(blocking.xread([{ stream: "s", id }], "2 seconds"))
      yield* waitUntil(blockedClients(server), (n) => n === 1)
      const next = String(yield* server.command("XADD", "app:s", "*", "g", "w"))
      assert.deepStrictEqual(
        yield* Fiber.join(waiting),
        Option.some([{ stream: "s", entries: [{ id: next, fields: { g: "w" } }] }])
      )
      yield* server.command("XGROUP", "CREATE", "app:s", "grp", "0")
      const group = yield* blocking.xreadgroup("grp", "c1", [{ stream: "s", id: ">" }], 1, { count: 1 })
      assert.deepStrictEqual(group, Option.some([{ stream: "s", entries: [{ id, fields: { f: "v" } }] }]))
      assert.deepStrictEqual(yield* blocking.xread([{ stream: "s", id: next }], "50 millis"), Option.none())
      // Any command, by `run`; connection-state commands are refused.
      const popped = yield* blocking.run(makeCommand<unknown>({ name: "BLPOP", args: ["dst", 1], keys: [0] }), 1)
      assert.deepStrictEqual(popped, ["app:dst", "b"])
      const select = makeCommand<unknown>({ name: "SELECT", args: [1] })
      assert.strictEqual(failureTag(yield* Effect.exit(blocking.run(select, 0))), "CommandRefused")
    }))

  it.live("timeouts and arguments are validated before anything is sent", () =>
    Effect.gen(function*() {
      const { blocking, server } = yield* setup()
      const before = yield* server.clientCount
      for (const timeout of [-1, Number.NaN, "-1 seconds"] as const) {
        const error = failureOf(yield* Effect.exit(blocking.blpop(["q"], timeout)))
        assert.strictEqual(error?._tag, "InvalidArgument")
      }
      assert.strictEqual(failureTag(yield* Effect.exit(blocking.blpop([], 1))), "InvalidArgument")
      const noCount = yield* Effect.exit(blocking.blmpop(["q"], "LEFT", 1, { count: 0 }))
      assert.strictEqual(failureTag(noCount), "InvalidArgument")
      assert.strictEqual(failureTag(yield* Effect.exit(blocking.xread([], 1))), "InvalidArgument")
      assert.strictEqual(yield* server.clientCount, before)
      const stats = yield* blocking.stats
      assert.strictEqual(stats.idle + stats.used, 0)
      // A sub-millisecond block is not sent as 0 (which would block forever).
      assert.deepStrictEqual(yield* blocking.blpop(["q"], "100 micros"), Option.none())
    }))

  it.live("the pool is bounded: with every connection blocked, a call fails after acquireTimeout, nothing sent", () =>
    Effect.gen(function*() {
      const { blocking, server } = yield* setup({}, { maxConnections: 2 })
      const first = yield* Effect.forkChild(blocking.blpop(["one"], 0))
      const second = yield* Effect.forkChild(blocking.blpop(["two"], 0))
      yield* waitUntil(blockedClients(server), (n) => n === 2)
      const started = Date.now()
      const error = failureOf(yield* Effect.exit(blocking.blpop(["three"], 0)))
      const elapsed = Date.now() - started
      assert.strictEqual(error?._tag, "ConnectionTimeout")
      assert.isTrue(elapsed >= 450 && elapsed < 3_000, `waited ${elapsed} ms`)
      assert.strictEqual(yield* blockedClients(server), 2)
      const stats = yield* blocking.stats
      assert.strictEqual(stats.used, 2)
      assert.strictEqual(stats.max, 2)
      // A connection comes back once its call is answered, and serves the next one.
      yield* server.command("RPUSH", "one", "x")
      assert.deepStrictEqual(yield* Fiber.join(first), Option.some({ key: "one", value: "x" }))
      const third = yield* Effect.forkChild(blocking.blpop(["three"], 0))
      yield* waitUntil(blockedClients(server), (n) => n === 2)
      yield* server.command("RPUSH", "three", "y")
      yield* server.command("RPUSH", "two", "z")
      assert.deepStrictEqual(yield* Fiber.join(third), Option.some({ key: "three", value: "y" }))
      assert.deepStrictEqual(yield* Fiber.join(second), Option.some({ key: "two", value: "z" }))
      const after = yield* blocking.stats
      assert.strictEqual(after.idle + after.used, 2)
    }))

  it.live("a stopped server fails the call in flight; then CircuitOpen at once while the circuit is open", () =>
    Effect.gen(function*() {
      const { blocking, redis, server } = yield* setup()
      const pending = yield* Effect.forkChild(Effect.exit(blocking.blpop(["q"], 0)))
      yield* waitUntil(blockedClients(server), (n) => n === 1)
      yield* server.stop
      const lost = failureOf(yield* Fiber.join(pending))
      assert.include(["ConnectionReset", "ConnectionClosed"], lost?._tag)
      yield* waitUntil(redis.health, (h) => h.circuit === "open", 5_000)
      const started = Date.now()
      const error = failureOf(yield* Effect.exit(blocking.blpop(["q"], 0)))
      assert.isTrue(Date.now() - started < 1_000, `took ${Date.now() - started} ms`)
      assert.strictEqual(error?._tag, "CircuitOpen")
    }))

  it.live("closing the layer fails a blpop in flight at once and closes its connection", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const redis = yield* RedisServiceModule.make({ ...fastOptions, url: server.url })
      const own = yield* Effect.scoped(Effect.gen(function*() {
        const blocking = yield* Layer.build(Layer.provide(RedisBlocking.layer, Layer.succeed(RedisService, redis)))
        const service = Context.get(blocking, RedisBlocking)
        const pending = yield* Effect.forkDetach(Effect.exit(service.blpop(["never"], 0)))
        yield* waitUntil(blockedClients(server), (n) => n === 1)
        return pending
      }))
      const started = Date.now()
      const exit = yield* Fiber.join(own)
      assert.isTrue(Exit.isFailure(exit))
      assert.isTrue(Date.now() - started < 1_500, `took ${Date.now() - started} ms`)
      yield* waitUntil(blockedClients(server), (n) => n === 0, 2_000)
    }))
})
