/**
 * The typed-command paths of RedisService against a real redis-server: run, batch, multi, watch, SCAN streams,
 * scripts, idempotency keys, the shared-connection refusals, bytes, big integers. Faults are real (chaos proxy
 * ECONNRESET, SCRIPT FLUSH, restarts).
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Option, Result, Schema, Stream } from "effect"
import { inspect } from "node:util"
import * as Command from "../src/Command.ts"
import * as C from "../src/internal/command.ts"
import * as RedisScript from "../src/RedisScript.ts"
import * as RedisService from "../src/RedisService.ts"
import * as ChaosProxy from "../src/testing/ChaosProxy.ts"
import * as RedisTestServer from "../src/testing/RedisTestServer.ts"
import { failureTag, fastOptions } from "./helpers.ts"

const get = (key: string) =>
  C.make({ name: "GET", args: [key], keys: [0], idempotent: true, readOnly: true, decode: C.optional(C.string("GET")) })
const incr = (key: string) => C.make({ name: "INCR", args: [key], keys: [0], decode: C.integer("INCR") })
const set = (key: string, value: string) =>
  C.make({ name: "SET", args: [key, value], keys: [0], idempotent: true, decode: C.written("SET") })
const lpush = (key: string, value: string) =>
  C.make({ name: "LPUSH", args: [key, value], keys: [0], decode: C.integer("LPUSH") })

const failure = <A, E>(exit: Exit.Exit<A, E>): E | undefined => {
  if (Exit.isSuccess(exit)) return undefined
  const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
  return reason?._tag === "Fail" ? reason.error : undefined
}

describe("RedisService typed commands (real redis-server)", () => {
  it.live("batch: one Result per command, a WRONGTYPE fails only its own", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const redis = yield* RedisService.make({ ...fastOptions, url: server.url })
      yield* redis.run(lpush("list", "x"))
      const [a, b, c, d] = yield* redis.batch([set("k", "v"), get("k"), get("list"), incr("n")] as const)
      assert.deepStrictEqual(a, Result.succeed(true))
      assert.deepStrictEqual(b, Result.succeed(Option.some("v")))
      assert.isTrue(Result.isFailure(c) && c.failure._tag === "ReplyError" && c.failure.code === "WRONGTYPE")
      assert.deepStrictEqual(d, Result.succeed(1))
      // A refused or invalid command fails alone, unsent.
      const [e, f] = yield* redis.batch([C.make({ name: "SELECT", args: [1] }), incr("n")])
      assert.isTrue(Result.isFailure(e) && e.failure._tag === "CommandRefused")
      assert.deepStrictEqual(f, Result.succeed(2))
    })))

  it.live("batch after a reset: idempotent commands are retried, the others fail with sent: true", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const proxy = yield* ChaosProxy.make({ target: server })
      const redis = yield* RedisService.make({ ...fastOptions, url: proxy.url, heartbeat: false })
      yield* redis.run(set("k", "v"))
      yield* proxy.latency(200)
      const fiber = yield* Effect.forkChild(redis.batch([get("k"), incr("n"), get("k")] as const))
      yield* Effect.sleep("80 millis")
      yield* proxy.resetAll
      yield* proxy.restore
      const [a, b, c] = yield* Fiber.join(fiber)
      assert.deepStrictEqual(a, Result.succeed(Option.some("v")))
      assert.deepStrictEqual(c, Result.succeed(Option.some("v")))
      assert.isTrue(Result.isFailure(b))
      if (Result.isFailure(b)) {
        assert.include(["ConnectionReset", "ConnectionClosed"], b.failure._tag)
        assert.isTrue("sent" in b.failure && b.failure.sent === true)
      }
      // Applied at most once.
      const n = yield* server.command("GET", "n")
      assert.include([null, "1"], n)
    })))

  it.live("multi: typed tuple, atomic; an INCR whose connection is reset is applied at most once and never resent", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const proxy = yield* ChaosProxy.make({ target: server })
      const redis = yield* RedisService.make({ ...fastOptions, url: proxy.url, heartbeat: false })
      const [ok, n, v] = yield* redis.multi([set("a", "1"), incr("n"), get("a")] as const)
      assert.isTrue(ok)
      assert.strictEqual(n, 1)
      assert.deepStrictEqual(v, Option.some("1"))

      yield* proxy.latency(200)
      const fiber = yield* Effect.forkChild(Effect.exit(redis.multi([incr("n"), incr("m")] as const)))
      yield* Effect.sleep("80 millis")
      yield* proxy.resetAll
      yield* proxy.restore
      const exit = yield* Fiber.join(fiber)
      const error = failure(exit)
      assert.include(["ConnectionReset", "ConnectionClosed"], error?._tag)
      assert.isTrue(error !== undefined && "sent" in error && error.sent === true)
      assert.include(error?.message ?? "", "applied entirely or not at all")
      // Atomic: both or neither.
      const [nAfter, mAfter] = [yield* server.command("GET", "n"), yield* server.command("GET", "m")]
      assert.isTrue((nAfter === "1" && mAfter === null) || (nAfter === "2" && mAfter === "1"), `${nAfter} ${mAfter}`)
    })))

  it.live("watch: commits, and a change by another connection fails with TransactionAborted (nothing applied)", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const redis = yield* RedisService.make({ ...fastOptions, url: server.url })
      yield* redis.run(set("balance", "10"))
      const [written] = yield* redis.watch(["balance"], (tx) =>
        Effect.map(tx.run(get("balance")), (v) => [set("balance", String(Number(Option.getOrThrow(v)) + 5))] as const))
      assert.isTrue(written)
      assert.strictEqual(yield* server.command("GET", "balance"), "15")

      const exit = yield* Effect.exit(redis.watch(["balance"], (tx) =>
        Effect.gen(function*() {
          yield* tx.run(get("balance"))
          // Someone else writes between WATCH and EXEC.
          yield* server.command("SET", "balance", "100")
          return [set("balance", "0"), set("other", "x")] as const
        })))
      assert.strictEqual(failureTag(exit), "TransactionAborted")
      assert.strictEqual(yield* server.command("GET", "balance"), "100")
      assert.isNull(yield* server.command("GET", "other"))
      // The shared connection was never in WATCH or MULTI state.
      assert.deepStrictEqual(yield* redis.get("balance"), Option.some("100"))
    })))

  it.live("scan: keyPrefix added to MATCH and stripped, every key once; hscan, sscan, zscan", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const redis = yield* RedisService.make({ ...fastOptions, url: server.url, keyPrefix: "app:" })
      for (let i = 0; i < 250; i++) yield* redis.set(`user:${i}`, "x")
      yield* server.command("SET", "other:user:1", "not ours")
      const keys = yield* Stream.runCollect(redis.scan({ match: "user:*", count: 20 }))
      assert.strictEqual(keys.length, 250)
      assert.strictEqual(new Set(keys).size, 250)
      assert.isTrue(keys.every((k) => k.startsWith("user:")))
      const all = yield* Stream.runCollect(redis.scan())
      assert.strictEqual(all.length, 250)

      yield* redis.command("HSET", ["h", "f1", "v1", "f2", "v2"])
      yield* redis.command("SADD", ["s", "a", "b", "c"])
      yield* redis.command("ZADD", ["z", "1", "one", "2.5", "two"])
      const fields = yield* Stream.runCollect(redis.hscan("h"))
      assert.deepStrictEqual([...fields].sort((a, b) => a.field.localeCompare(b.field)), [
        { field: "f1", value: "v1" },
        { field: "f2", value: "v2" }
      ])
      assert.deepStrictEqual([...(yield* Stream.runCollect(redis.sscan("s")))].sort(), ["a", "b", "c"])
      assert.deepStrictEqual(yield* Stream.runCollect(redis.zscan("z")), [
        { member: "one", score: 1 },
        { member: "two", score: 2.5 }
      ])
    })))

  it.live("scripts: EVALSHA, reloaded after SCRIPT FLUSH and after a restart without the caller noticing", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const redis = yield* RedisService.make({ ...fastOptions, url: server.url, awaitReady: true })
      const add = RedisScript.make<number>({
        lua: "return redis.call('INCRBY', KEYS[1], ARGV[1])",
        keys: 1,
        decode: C.integer("add")
      })
      assert.strictEqual(yield* redis.run(add(["n"], [2])), 2)
      assert.strictEqual(yield* redis.run(add(["n"], [3])), 5)
      yield* server.command("SCRIPT", "FLUSH")
      assert.strictEqual(yield* redis.run(add(["n"], [1])), 6)
      // In a batch too (NOSCRIPT there: sent again alone), and in a transaction (EVAL).
      yield* server.command("SCRIPT", "FLUSH")
      const [r] = yield* redis.batch([add(["n"], [1])])
      assert.deepStrictEqual(r, Result.succeed(7))
      yield* server.command("SCRIPT", "FLUSH")
      assert.deepStrictEqual(yield* redis.multi([add(["n"], [1])]), [8])
      yield* server.restart
      const after = yield* Effect.eventually(redis.run(add(["fresh"], [1])))
      assert.strictEqual(after, 1)
      // A wrong number of keys is refused before anything is sent.
      assert.strictEqual(failureTag(yield* Effect.exit(redis.run(add(["a", "b"], [1])))), "InvalidArgument")
    })))

  it.live("idempotency keys: an INCR lost to a reset is retried and applied exactly once", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const proxy = yield* ChaosProxy.make({ target: server })
      const redis = yield* RedisService.make({ ...fastOptions, url: proxy.url, heartbeat: false })
      assert.strictEqual(yield* redis.run(incr("counter"), { idempotencyKey: "req-1" }), 1)
      // The same key again: the recorded reply, not a second increment.
      assert.strictEqual(yield* redis.run(incr("counter"), { idempotencyKey: "req-1" }), 1)
      assert.strictEqual(yield* server.command("GET", "counter"), "1")

      let acknowledged = 0
      for (let round = 0; round < 5; round++) {
        yield* proxy.latency(100)
        const fibers = yield* Effect.forEach(
          Array.from({ length: 20 }, (_, i) => `round-${round}-${i}`),
          (id) => Effect.forkChild(redis.run(incr("counter"), { idempotencyKey: id }))
        )
        // The requests reach the server after 100 ms (applied), the replies would arrive at 200 ms: the reset at
        // 150 ms loses the replies of applied increments, which is what the idempotency key must absorb.
        yield* Effect.sleep("150 millis")
        yield* proxy.resetAll
        yield* proxy.restore
        for (const fiber of fibers) {
          const exit = yield* Fiber.await(fiber)
          assert.isTrue(Exit.isSuccess(exit), `round ${round}: ${Exit.isFailure(exit) ? String(exit.cause) : ""}`)
          acknowledged++
        }
      }
      assert.strictEqual(yield* server.command("GET", "counter"), String(1 + acknowledged))
      // The same scenario without a key: the INCR was applied, its reply lost, and the caller is told `sent: true`.
      yield* proxy.latency(100)
      const plain = yield* Effect.forkChild(Effect.exit(redis.run(incr("plain"))))
      yield* Effect.sleep("150 millis")
      yield* proxy.resetAll
      yield* proxy.restore
      const plainError = failure(yield* Fiber.join(plain))
      assert.isTrue(plainError !== undefined && "sent" in plainError && plainError.sent === true)
      assert.strictEqual(yield* server.command("GET", "plain"), "1")
      // A recorded integer replays exactly, also beyond cjson's 14 digits.
      yield* redis.set("big", "123456789012340")
      assert.strictEqual(yield* redis.run(incr("big"), { idempotencyKey: "big-1" }), 123456789012341)
      assert.strictEqual(yield* redis.run(incr("big"), { idempotencyKey: "big-1" }), 123456789012341)
      // Lists too, with a binary-safe value.
      assert.strictEqual(yield* redis.run(lpush("q", "job"), { idempotencyKey: "push-1" }), 1)
      assert.strictEqual(yield* redis.run(lpush("q", "job"), { idempotencyKey: "push-1" }), 1)
      assert.strictEqual(yield* server.command("LLEN", "q"), 1)
    })))

  it.live("the shared connection refuses MULTI, SELECT, BLPOP, MONITOR, CLIENT REPLY; other callers never notice", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const redis = yield* RedisService.make({ ...fastOptions, url: server.url })
      const refused: ReadonlyArray<readonly [string, ReadonlyArray<string>, string]> = [
        ["MULTI", [], "RedisService.multi"],
        ["select", ["5"], "db"],
        ["BLPOP", ["q", "0"], "RedisBlocking"],
        ["MONITOR", [], "MONITOR"],
        ["CLIENT", ["REPLY", "OFF"], "every reply"],
        ["SUBSCRIBE", ["c"], "RedisSubscriber"],
        ["XREAD", ["BLOCK", "0", "STREAMS", "s", "$"], "RedisStream"],
        ["RESET", [], "scope"],
        ["WAIT", ["1", "0"], "timeout"],
        ["WAITAOF", ["1", "0", "0"], "timeout"]
      ]
      for (const [name, args, hint] of refused) {
        const exit = yield* Effect.exit(redis.command(name, args))
        const error = failure(exit)
        assert.strictEqual(error?._tag, "CommandRefused", name)
        assert.include(error?.message ?? "", hint)
      }
      assert.strictEqual(failureTag(yield* Effect.exit(redis.run(C.make({ name: "multi" })))), "CommandRefused")
      // Not refused: XREAD without BLOCK (a stream named "block" included), CLIENT ID.
      yield* redis.command("XREAD", ["STREAMS", "block", "0"])
      yield* redis.command("XGROUP", ["CREATE", "s2", "block", "0", "MKSTREAM"])
      yield* redis.command("XREADGROUP", ["GROUP", "block", "block", "STREAMS", "s2", ">"])
      assert.strictEqual(failureTag(yield* Effect.exit(redis.command("PSYNC", ["?", "-1"]))), "CommandRefused")
      yield* redis.command("CLIENT", ["ID"])
      // A bounded WAIT runs (it only counts this connection's writes, so the shared connection is where it belongs).
      assert.strictEqual(yield* redis.command("WAIT", ["0", "10"]), 0)
      assert.isTrue(yield* redis.set("k", "v"))
      assert.deepStrictEqual(yield* redis.get("k"), Option.some("v"))
      assert.strictEqual(yield* server.command("GET", "k"), "v")
    })))

  it.live("a retried command whose retry finds no connection reports the first failure (sent: true), not 'never sent'", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const proxy = yield* ChaosProxy.make({ target: server })
      const redis = yield* RedisService.make({
        ...fastOptions,
        url: proxy.url,
        heartbeat: false,
        acquireTimeout: "300 millis"
      })
      yield* redis.set("k", "v")
      yield* proxy.latency(200)
      const pending = yield* Effect.forkChild(Effect.exit(redis.set("k", "w")))
      yield* Effect.sleep("80 millis")
      // The SET was written; its connection is reset and no new one can be opened before acquireTimeout.
      yield* proxy.refuse
      yield* proxy.resetAll
      const error = failure(yield* Fiber.join(pending))
      yield* proxy.restore
      assert.include(["ConnectionReset", "ConnectionClosed"], error?._tag)
      assert.isTrue(error !== undefined && "sent" in error && error.sent === true)
    })))

  it.live("the most used commands are methods of the service, typed as their Command", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const redis = yield* RedisService.make({ ...fastOptions, url: server.url })
      assert.strictEqual(yield* redis.hset("h", { a: "1", b: "2" }), 2)
      assert.deepStrictEqual(yield* redis.hget("h", "a"), Option.some("1"))
      assert.deepStrictEqual(yield* redis.hgetall("h"), { a: "1", b: "2" })
      assert.strictEqual(yield* redis.lpush("l", "x", "y"), 2)
      assert.deepStrictEqual(yield* redis.lrange("l", 0, -1), ["y", "x"])
      assert.strictEqual(yield* redis.sadd("s", "m"), 1)
      assert.deepStrictEqual(yield* redis.smembers("s"), ["m"])
      assert.strictEqual(yield* redis.zadd("z", [{ score: 2, member: "b" }, { score: 1, member: "a" }]), 2)
      assert.deepStrictEqual(yield* redis.zrange("z", 0, -1), ["a", "b"])
      assert.deepStrictEqual(yield* redis.zrange("z", 0, -1, { withScores: true }), [
        { member: "a", score: 1 },
        { member: "b", score: 2 }
      ])
      const id = yield* redis.xadd("events", "*", { kind: "signup" })
      assert.match(id, /^\d+-\d+$/)
      assert.strictEqual(yield* redis.exists("h", "l", "missing"), 2)
      assert.strictEqual(yield* redis.ttl("h"), -1)
    })))

  it.live("a DecodeError names neither the key nor the value it rejected, in any rendering", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const redis = yield* RedisService.make({ ...fastOptions, url: server.url })
      yield* redis.set("session:tok-SECRETKEY", JSON.stringify({ user: "SECRETVALUE" }))
      const schema = Schema.fromJsonString(Schema.Struct({ user: Schema.Number }))
      const exit = yield* Effect.exit(redis.run(Command.withSchema(Command.get("session:tok-SECRETKEY"), schema)))
      const error = failure(exit)
      assert.strictEqual(error?._tag, "DecodeError")
      assert.strictEqual(error?._tag === "DecodeError" ? error.key : undefined, "session:tok-SECRETKEY")
      const renderings = [JSON.stringify(error), inspect(error, { depth: 10 }), String(error), Cause.pretty(Cause.fail(error))]
      for (const text of renderings) {
        assert.notInclude(text, "SECRETKEY")
        assert.notInclude(text, "SECRETVALUE")
      }
    })))

  it.live("durations and counts are validated before anything is sent: nothing deleted, nothing written", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const redis = yield* RedisService.make({ ...fastOptions, url: server.url })
      yield* redis.set("kept", "v")
      for (const ttl of [0, -5, Number.NaN, "0 millis"] as const) {
        const expired = yield* Effect.exit(redis.expire("kept", ttl))
        assert.strictEqual(failureTag(expired), "InvalidArgument", `expire ${String(ttl)}`)
        assert.strictEqual(failureTag(yield* Effect.exit(redis.set("other", "v", { ttl }))), "InvalidArgument")
      }
      assert.strictEqual(yield* server.command("GET", "kept"), "v")
      assert.strictEqual(yield* server.command("TTL", "kept"), -1)
      assert.isNull(yield* server.command("GET", "other"))
      assert.strictEqual(failureTag(yield* Effect.exit(redis.incr("n", 1.5))), "InvalidArgument")
      assert.isNull(yield* server.command("GET", "n"))
      assert.strictEqual(failureTag(yield* Effect.exit(Stream.runCollect(redis.scan({ count: 0 })))), "InvalidArgument")
      const ttlExit = yield* Effect.exit(redis.run(incr("n"), { idempotencyKey: "a", idempotencyTtl: -1 }))
      assert.strictEqual(failureTag(ttlExit), "InvalidArgument")
      // A sub-millisecond TTL rounds up to 1 ms rather than being refused or sent as 0.
      assert.isTrue(yield* redis.set("brief", "v", { ttl: "0.2 millis" }))
    })))

  it.live("bytes round-trip; INCR beyond 2^53 fails with DecodeError; del takes a million keys", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const redis = yield* RedisService.make({ ...fastOptions, url: server.url, commandTimeout: "10 seconds" })
      const bytes = Buffer.from([0xff, 0x00, 0xfe, 0x80])
      yield* redis.command("SET", ["bin", bytes])
      const read = yield* redis.getBuffer("bin")
      assert.isTrue(Option.isSome(read) && read.value.equals(bytes))
      assert.deepStrictEqual(yield* redis.getBuffer("missing"), Option.none())
      const viaCommand = yield* redis.run(C.make({ name: "GET", args: ["bin"], binary: true, decode: C.buffer("GET") }))
      assert.isTrue(viaCommand.equals(bytes))

      yield* redis.set("big", String(2 ** 53 - 1))
      assert.strictEqual(failureTag(yield* Effect.exit(redis.incr("big"))), "DecodeError")
      assert.strictEqual(failureTag(yield* Effect.exit(redis.run(incr("big")))), "DecodeError")

      const keys = Array.from({ length: 1_000_000 }, (_, i) => `k${i}`)
      yield* redis.set("k1", "x")
      yield* redis.set("k999999", "x")
      assert.strictEqual(yield* redis.del(keys), 2)
    })), 60_000)
})
