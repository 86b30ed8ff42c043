/**
 * The command catalog: pure tests of how each command is encoded (arguments, key positions, idempotent / read-only
 * flags, arguments refused at construction) and how replies of every shape ioredis 6 hands over are decoded; then,
 * against one real redis-server behind a chaos proxy, every group's typed replies, bytes round-tripping, DecodeError,
 * InvalidArgument (nothing sent), and a connection reset while commands of every group are in flight.
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Layer, Option, Schema } from "effect"
import * as Command from "../src/Command.ts"
import type { RedisError } from "../src/RedisError.ts"
import * as RedisService from "../src/RedisService.ts"
import * as ChaosProxy from "../src/testing/ChaosProxy.ts"
import * as RedisTestServer from "../src/testing/RedisTestServer.ts"
import { failureTag, fastOptions } from "./helpers.ts"

/** The typed failure of an exit. */
const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined => {
  if (Exit.isSuccess(exit)) return undefined
  const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
  return reason?._tag === "Fail" ? reason.error : undefined
}

/** Decodes a raw reply with a command's decoder, returning the thrown error (if any) instead of throwing. */
const decodeError = (command: Command.Command<unknown>, reply: unknown): unknown => {
  try {
    command.decode(reply)
    return undefined
  } catch (error) {
    return error
  }
}

describe("Command (pure): encoding", () => {
  it("builds arguments, key positions and flags", () => {
    const get = Command.get("k")
    assert.strictEqual(get.name, "GET")
    assert.deepStrictEqual(get.args, ["k"])
    assert.deepStrictEqual(get.keys, [0])
    assert.isTrue(get.idempotent && get.readOnly && !get.binary)

    const set = Command.set("k", "v", { ttl: "1500 micros", mode: "XX" })
    // A sub-millisecond remainder rounds up (1.5 ms -> 2), never down to 0 (which Redis rejects).
    assert.deepStrictEqual(set.args, ["k", "v", "PX", 2, "XX"])
    assert.isTrue(set.idempotent)
    assert.isFalse(set.readOnly)
    assert.isFalse(Command.set("k", "v", { mode: "NX" }).idempotent)
    assert.isFalse(Command.setGet("k", "v").idempotent)
    assert.deepStrictEqual(Command.set("k", "v", { keepTtl: true }).args, ["k", "v", "KEEPTTL"])

    const mset = Command.mset({ a: "1", b: "2", c: "3" })
    assert.deepStrictEqual(mset.args, ["a", "1", "b", "2", "c", "3"])
    assert.deepStrictEqual(mset.keys, [0, 2, 4])
    assert.deepStrictEqual(Command.keysOf(mset), ["a", "b", "c"])
    assert.deepStrictEqual(Command.mget(["a", "b"]).keys, [0, 1])
    assert.deepStrictEqual(Command.mget("a", "b").args, ["a", "b"])
    assert.deepStrictEqual(Command.rename("a", "b").keys, [0, 1])
    assert.deepStrictEqual(Command.copy("a", "b").keys, [0, 1])
    assert.deepStrictEqual(Command.smove("a", "b", "m").keys, [0, 1])
    assert.deepStrictEqual(Command.lmove("a", "b", "LEFT", "RIGHT").keys, [0, 1])
    assert.deepStrictEqual(Command.sinterstore("d", "a", "b").keys, [0, 1, 2])
    assert.deepStrictEqual(Command.pfmerge("d", "a", "b").keys, [0, 1, 2])
    const lmpop = Command.lmpop(["a", "b"], "LEFT", 3)
    assert.deepStrictEqual(lmpop.args, [2, "a", "b", "LEFT", "COUNT", 3])
    assert.deepStrictEqual(lmpop.keys, [1, 2])
    assert.deepStrictEqual(Command.xgroupCreate("s", "g").args, ["CREATE", "s", "g", "$"])
    assert.deepStrictEqual(Command.xgroupCreate("s", "g").keys, [1])
    assert.deepStrictEqual(Command.xinfoStream("s").keys, [1])
    assert.deepStrictEqual(Command.publish("chan", "m").keys, [])

    assert.deepStrictEqual(Command.hset("h", { f: "v", g: "w" }).args, ["h", "f", "v", "g", "w"])
    const zadd = Command.zadd("z", [{ score: 1.5, member: "a" }, { score: -Infinity, member: "b" }], {
      mode: "XX",
      compare: "GT",
      ch: true
    })
    assert.deepStrictEqual(zadd.args, ["z", "XX", "GT", "CH", 1.5, "a", "-inf", "b"])
    assert.isTrue(zadd.idempotent)
    assert.isFalse(Command.zaddIncr("z", 1, "a").idempotent)
    const zrange = Command.zrange("z", Infinity, "(1", {
      by: "SCORE",
      rev: true,
      limit: { offset: 0, count: 10 },
      withScores: true
    })
    assert.deepStrictEqual(zrange.args, ["z", "+inf", "(1", "BYSCORE", "REV", "LIMIT", 0, 10, "WITHSCORES"])
    assert.isTrue(zrange.readOnly)
    const xadd = Command.xadd("s", "*", { a: "1" }, { trim: { maxlen: 1000, approximate: true, limit: 50 } })
    assert.deepStrictEqual(xadd.args, ["s", "MAXLEN", "~", 1000, "LIMIT", 50, "*", "a", "1"])
    assert.isFalse(xadd.idempotent)
    assert.deepStrictEqual(
      Command.xadd("s", "1-1", { a: "1" }, { nomkstream: true, trim: { minid: "0-5" } }).args,
      ["s", "NOMKSTREAM", "MINID", "=", "0-5", "1-1", "a", "1"]
    )
  })

  it("idempotent only where a retry has the effect of one run and a truthful reply", () => {
    const flags = (commands: Record<string, Command.Command<unknown>>) =>
      Object.fromEntries(Object.entries(commands).map(([name, command]) => [name, command.idempotent]))
    assert.deepStrictEqual(
      flags({
        del: Command.del("a"),
        expire: Command.expire("a", "1 second"),
        expireXX: Command.expire("a", "1 second", "XX"),
        expireNX: Command.expire("a", "1 second", "NX"),
        expireLT: Command.expire("a", "1 second", "LT"),
        expireatGT: Command.expireat("a", Date.now(), "GT"),
        hset: Command.hset("h", { f: "v" }),
        sadd: Command.sadd("s", "m"),
        lrem0: Command.lrem("l", 0, "x"),
        lrem1: Command.lrem("l", 1, "x"),
        ltrimHead: Command.ltrim("l", 0, 99),
        ltrimTail: Command.ltrim("l", -100, -1),
        ltrimShift: Command.ltrim("l", 1, -1),
        copy: Command.copy("a", "b"),
        copyReplace: Command.copy("a", "b", { replace: true }),
        incr: Command.incr("n"),
        lpush: Command.lpush("l", "x"),
        publish: Command.publish("c", "m"),
        spop: Command.spop("s"),
        zremrangebyrank: Command.zremrangebyrank("z", 0, 0),
        zremrangebyscore: Command.zremrangebyscore("z", 0, 1),
        setbit: Command.setbit("b", 1, 1),
        xack: Command.xack("s", "g", "1-1"),
        xclaim: Command.xclaim("s", "g", "c", 0, ["1-1"])
      }),
      {
        del: true,
        expire: true,
        expireXX: true,
        expireNX: false,
        expireLT: false,
        expireatGT: false,
        hset: true,
        sadd: true,
        lrem0: true,
        lrem1: false,
        ltrimHead: true,
        ltrimTail: true,
        ltrimShift: false,
        copy: false,
        copyReplace: true,
        incr: false,
        lpush: false,
        publish: false,
        spop: false,
        zremrangebyrank: false,
        zremrangebyscore: true,
        setbit: false,
        xack: true,
        xclaim: false
      }
    )
    const reads = [Command.ttl("a"), Command.hgetall("h"), Command.xrange("s"), Command.info()]
    assert.isTrue(reads.every((c) => c.readOnly))
  })

  it("TTL rounding: EXPIRE in whole seconds up, PEXPIRE in whole milliseconds up", () => {
    assert.deepStrictEqual(Command.expire("a", "1500 millis").args, ["a", 2])
    assert.deepStrictEqual(Command.pexpire("a", "0.3 millis").args, ["a", 1])
    assert.deepStrictEqual(Command.expireat("a", new Date(1_700_000_000_500)).args, ["a", 1_700_000_001])
    assert.deepStrictEqual(Command.pexpireat("a", 1_700_000_000_500, "XX").args, ["a", 1_700_000_000_500, "XX"])
  })

  it("refuses invalid arguments at construction, naming the argument and never the value", () => {
    const cases: ReadonlyArray<readonly [Command.Command<unknown>, string]> = [
      [Command.set("secret-key", "secret-value", { ttl: 0 }), "ttl"],
      [Command.set("secret-key", "secret-value", { ttl: -5 }), "ttl"],
      [Command.set("secret-key", "secret-value", { ttl: Number.NaN }), "ttl"],
      [Command.set("secret-key", "secret-value", { ttl: Infinity }), "ttl"],
      [Command.set("secret-key", "secret-value", { ttl: "1 second", keepTtl: true }), "keepTtl"],
      [Command.expire("secret-key", "-1 seconds"), "ttl"],
      [Command.pexpireat("secret-key", new Date(Number.NaN)), "at"],
      [Command.lpop("secret-key", -1), "count"],
      [Command.lpop("secret-key", Number.NaN), "count"],
      [Command.spop("secret-key", 1.5), "count"],
      [Command.zadd("secret-key", [{ score: Number.NaN, member: "secret-value" }]), "score"],
      [Command.zadd("secret-key", [{ score: 1, member: "m" }], { mode: "NX", compare: "GT" }), "compare"],
      [Command.zrange("secret-key", 0, 1, { limit: { offset: 0, count: 1 } }), "limit"],
      [Command.zrange("secret-key", "[a", "[b", { by: "LEX", withScores: true }), "withScores"],
      [Command.incrby("secret-key", 0.5), "increment"],
      [Command.incrbyfloat("secret-key", Infinity), "increment"],
      [Command.mget([]), "keys"],
      [Command.del(), "keys"],
      [Command.hset("secret-key", {}), "fields"],
      [Command.lpush("secret-key"), "values"],
      [Command.xadd("secret-key", "*", {}), "fields"],
      [Command.xadd("secret-key", "*", { f: "v" }, { trim: { maxlen: 1, minid: "0-1" } }), "trim"],
      [Command.xtrim("secret-key", { maxlen: 10, limit: 5 }), "trim.limit"],
      [Command.xclaim("secret-key", "g", "c", -1, ["1-1"]), "minIdle"],
      [Command.setbit("secret-key", -1, 1), "offset"],
      [Command.geoadd("secret-key", [{ longitude: 200, latitude: 0, member: "m" }]), "longitude"],
      [Command.geosearch("secret-key", { from: { member: "m" }, by: { radius: 0, unit: "km" } }), "radius"],
      [Command.lpos("secret-key", "x", { rank: 0 }), "rank"],
      [Command.incrbyBigint("secret-key", Number.NaN), "increment"]
    ]
    for (const [command, argument] of cases) {
      const invalid = command.invalid
      assert.isDefined(invalid, `${command.name} ${argument}`)
      assert.strictEqual(invalid?._tag, "InvalidArgument")
      assert.strictEqual(invalid?.argument, argument, command.name)
      assert.notInclude(invalid?.message ?? "", "secret", command.name)
    }
    assert.isUndefined(Command.set("k", "v", { ttl: "1 micro" }).invalid)
    assert.isUndefined(Command.xclaim("s", "g", "c", 0, ["1-1"]).invalid)
    assert.isUndefined(Command.hrandfield("h", -3).invalid)
  })

  it("the typed overloads (checked by the type checker)", () => {
    const scored: Command.Command<ReadonlyArray<{ readonly member: string; readonly score: number }>> = Command
      .zrange("z", 0, -1, { withScores: true })
    const plain: Command.Command<ReadonlyArray<string>> = Command.zrange("z", 0, -1)
    // @ts-expect-error WITHSCORES gives pairs, not strings
    const wrong: Command.Command<ReadonlyArray<string>> = Command.zrange("z", 0, -1, { withScores: true })
    const one: Command.Command<Option.Option<string>> = Command.lpop("l")
    const many: Command.Command<ReadonlyArray<string>> = Command.lpop("l", 2)
    const id: Command.Command<string> = Command.xadd("s", "*", { a: "1" })
    const maybeId: Command.Command<Option.Option<string>> = Command.xadd("s", "*", { a: "1" }, { nomkstream: true })
    const decoded: Command.Command<Option.Option<number>> = Command.withSchema(
      Command.get("n"),
      Schema.FiniteFromString
    )
    const record: Command.Command<Record<string, number>> = Command.withSchema(
      Command.hgetall("h"),
      Schema.FiniteFromString
    )
    assert.strictEqual([scored, plain, wrong, one, many, id, maybeId, decoded, record].length, 9)
  })
})

describe("Command (pure): decoding every shape ioredis hands over", () => {
  it("hashes: flat list (RESP2 / RESP3 legacy), pairs, object; __proto__ stays a field", () => {
    const hgetall = Command.hgetall("h")
    assert.deepStrictEqual(hgetall.decode(["a", "1", "b", "2"]), { a: "1", b: "2" })
    assert.deepStrictEqual(hgetall.decode([["a", "1"], ["b", "2"]]), { a: "1", b: "2" })
    assert.deepStrictEqual(hgetall.decode({ a: "1", b: Buffer.from("2") }), { a: "1", b: "2" })
    assert.deepStrictEqual(hgetall.decode([]), {})
    const proto = hgetall.decode(["__proto__", "x"])
    assert.strictEqual(Object.getPrototypeOf(proto), Object.prototype)
    assert.deepStrictEqual(Object.entries(proto), [["__proto__", "x"]])
    const bytes = Command.hgetallBuffer("h").decode([Buffer.from("f"), Buffer.from([0xff, 0x00])])
    assert.isTrue(bytes["f"]!.equals(Buffer.from([0xff, 0x00])))
    assert.strictEqual((decodeError(hgetall, ["a", "1", "b"]) as RedisError)._tag, "DecodeError")
    assert.strictEqual((decodeError(hgetall, "OK") as RedisError)._tag, "DecodeError")
  })

  it("scores: flat and paired WITHSCORES, doubles as strings or numbers, infinities", () => {
    const zrange = Command.zrange("z", 0, -1, { withScores: true })
    const expected = [{ member: "a", score: 1 }, { member: "b", score: Infinity }]
    assert.deepStrictEqual(zrange.decode(["a", "1", "b", "inf"]), expected)
    assert.deepStrictEqual(zrange.decode([["a", "1"], ["b", "+inf"]]), expected)
    assert.deepStrictEqual(zrange.decode([["a", 1], ["b", Infinity]]), expected)
    assert.deepStrictEqual(Command.zpopmin("z").decode(["a", "2"]), Option.some({ member: "a", score: 2 }))
    assert.deepStrictEqual(Command.zpopmin("z").decode([]), Option.none())
    assert.deepStrictEqual(Command.zpopmax("z", 2).decode([["a", "2"], ["b", "1"]]), [
      { member: "a", score: 2 },
      { member: "b", score: 1 }
    ])
    assert.deepStrictEqual(Command.zmscore("z", "a", "b").decode(["1.5", null]), [Option.some(1.5), Option.none()])
    assert.strictEqual((decodeError(Command.zscore("z", "a"), "not a number") as RedisError)._tag, "DecodeError")
  })

  it("integers beyond 2^53 fail with DecodeError (as an imprecise number or a string); bigint forms are exact", () => {
    assert.strictEqual((decodeError(Command.incr("n"), 2 ** 53) as RedisError)._tag, "DecodeError")
    assert.strictEqual((decodeError(Command.incr("n"), "9007199254740993") as RedisError)._tag, "DecodeError")
    assert.strictEqual(Command.incr("n").decode(2 ** 53 - 1), 2 ** 53 - 1)
    assert.strictEqual(Command.incrBigint("n").decode("9007199254740993"), 9007199254740993n)
  })

  it("streams, pending, XINFO, INFO, TIME, GEOPOS", () => {
    assert.deepStrictEqual(Command.xrange("s").decode([["1-0", ["a", "1"]], ["1-1", ["b", "2", "c", "3"]]]), [
      { id: "1-0", fields: { a: "1" } },
      { id: "1-1", fields: { b: "2", c: "3" } }
    ])
    assert.deepStrictEqual(Command.xpending("s", "g").decode([0, null, null, null]), {
      count: 0,
      first: Option.none(),
      last: Option.none(),
      consumers: []
    })
    assert.deepStrictEqual(Command.xpending("s", "g").decode([2, "1-0", "1-1", [["c", "2"]]]), {
      count: 2,
      first: Option.some("1-0"),
      last: Option.some("1-1"),
      consumers: [{ name: "c", count: 2 }]
    })
    assert.deepStrictEqual(
      Command.xautoclaim("s", "g", "c", 0).decode(["0-0", [["1-0", ["a", "1"]], null], ["1-1"]]),
      { next: "0-0", entries: [{ id: "1-0", fields: { a: "1" } }], deleted: ["1-1"] }
    )
    const info = Command.xinfoGroups("s").decode([
      ["name", "g", "consumers", 1, "pending", 0, "last-delivered-id", "1-0", "entries-read", null, "lag", 0]
    ])
    assert.deepStrictEqual(info, [{
      name: "g",
      consumers: 1,
      pending: 0,
      lastDeliveredId: "1-0",
      entriesRead: Option.none(),
      lag: Option.some(0)
    }])
    assert.strictEqual((decodeError(Command.xinfoStream("s"), ["length", 1]) as RedisError)._tag, "DecodeError")
    const text = "# Server\r\nredis_version:7.0.15\r\nempty:\r\n\r\n# Clients\r\nx:a:b"
    assert.deepStrictEqual(Command.info().decode(text), {
      redis_version: "7.0.15",
      empty: "",
      x: "a:b"
    })
    assert.deepStrictEqual(Command.time().decode(["1700000000", "123"]), { seconds: 1_700_000_000, microseconds: 123 })
    assert.deepStrictEqual(Command.geopos("g", "a", "b").decode([["13.5", "38.25"], null]), [
      Option.some({ longitude: 13.5, latitude: 38.25 }),
      Option.none()
    ])
    assert.deepStrictEqual(Command.bitpos("b", 1).decode(-1), Option.none())
    // LMPOP names the list as the server knows it (with ioredis' keyPrefix): it reads back as the key given.
    const lmpop = Command.lmpop(["jobs", "urgent:jobs"], "LEFT")
    assert.deepStrictEqual(lmpop.decode(["app:urgent:jobs", ["x"]]), Option.some({ key: "urgent:jobs", values: ["x"] }))
    assert.deepStrictEqual(lmpop.decode(["jobs", ["y"]]), Option.some({ key: "jobs", values: ["y"] }))
  })

  it("withSchema: inside the Option, per item, per field; a mismatch is a DecodeError without the value", () => {
    const get = Command.withSchema(Command.get("n"), Schema.FiniteFromString)
    assert.deepStrictEqual(get.decode("42"), Option.some(42))
    assert.deepStrictEqual(get.decode(null), Option.none())
    const error = decodeError(get, "secret-not-a-number") as RedisError
    assert.strictEqual(error._tag, "DecodeError")
    assert.notInclude(error.message, "secret")
    assert.strictEqual(error._tag === "DecodeError" ? error.key : undefined, "n")
    // Data-last too.
    const mget = Command.withSchema(Schema.FiniteFromString)(Command.mget("a", "b"))
    assert.deepStrictEqual(mget.decode(["1", null]), [Option.some(1), Option.none()])
    const hgetall = Command.withSchema(Command.hgetall("h"), Schema.FiniteFromString)
    assert.deepStrictEqual(hgetall.decode(["a", "1"]), { a: 1 })
    assert.deepStrictEqual(Command.withSchema(Command.lrange("l", 0, -1), Schema.FiniteFromString).decode(["1", "2"]), [
      1,
      2
    ])
  })
})

class Env extends Context.Service<Env, {
  readonly server: RedisTestServer.RedisTestServer
  readonly proxy: ChaosProxy.ChaosProxy
  readonly redis: RedisService.RedisServiceShape
}>()("test/Command/Env") {}

// One server for the file, behind a chaos proxy; no heartbeat (only the tests' commands on the wire), and a breaker
// that the resets of the chaos test do not open.
const EnvLive = Layer.effect(
  Env,
  Effect.gen(function*() {
    const server = yield* RedisTestServer.make()
    const proxy = yield* ChaosProxy.make({ target: server })
    const redis = yield* RedisService.make({
      ...fastOptions,
      url: proxy.url,
      heartbeat: false,
      awaitReady: true,
      breaker: { ...fastOptions.breaker, failureThreshold: 100 }
    })
    return Env.of({ server, proxy, redis })
  })
)

/** How many times the server ran a command (INFO commandstats). */
const calls = (server: RedisTestServer.RedisTestServer, command: string) =>
  Effect.map(
    server.command("INFO", "commandstats"),
    (info) => Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(String(info))?.[1] ?? 0)
  )

const sorted = (values: ReadonlyArray<string>) => [...values].sort()

layer(EnvLive, { excludeTestServices: true, timeout: "20 seconds" })("Command (real redis-server)", (it) => {
  it.effect("strings", () =>
    Effect.gen(function*() {
      const { redis: { run }, server } = yield* Env
      assert.deepStrictEqual(yield* run(Command.get("str:missing")), Option.none())
      assert.isTrue(yield* run(Command.set("str:a", "1")))
      assert.deepStrictEqual(yield* run(Command.get("str:a")), Option.some("1"))
      assert.isFalse(yield* run(Command.set("str:a", "2", { mode: "NX" })))
      assert.isFalse(yield* run(Command.set("str:none", "2", { mode: "XX" })))
      assert.isTrue(yield* run(Command.set("str:ttl", "x", { ttl: "10 seconds" })))
      const pttl = Number(yield* server.command("PTTL", "str:ttl"))
      assert.isTrue(pttl > 9_000 && pttl <= 10_000, `PTTL ${pttl}`)
      assert.isTrue(yield* run(Command.set("str:ttl", "y", { keepTtl: true })))
      assert.isTrue(Number(yield* server.command("PTTL", "str:ttl")) > 9_000)
      assert.deepStrictEqual(yield* run(Command.setGet("str:a", "3")), Option.some("1"))
      assert.isTrue(yield* run(Command.setnx("str:nx", "v")))
      assert.isFalse(yield* run(Command.setnx("str:nx", "w")))
      assert.deepStrictEqual(yield* run(Command.getdel("str:a")), Option.some("3"))
      assert.deepStrictEqual(yield* run(Command.get("str:a")), Option.none())
      assert.deepStrictEqual(yield* run(Command.getex("str:nx", { ttl: "5 seconds" })), Option.some("v"))
      assert.isTrue(Number(yield* server.command("PTTL", "str:nx")) > 4_000)
      assert.deepStrictEqual(yield* run(Command.getex("str:nx", { persist: true })), Option.some("v"))
      assert.strictEqual(yield* server.command("PTTL", "str:nx"), -1)

      yield* run(Command.mset({ "str:m1": "a", "str:m2": "b" }))
      assert.deepStrictEqual(yield* run(Command.mget("str:m1", "str:missing", "str:m2")), [
        Option.some("a"),
        Option.none(),
        Option.some("b")
      ])
      assert.isFalse(yield* run(Command.msetnx({ "str:m1": "x", "str:m3": "y" })))
      assert.strictEqual(yield* server.command("GET", "str:m3"), null)
      assert.isTrue(yield* run(Command.msetnx({ "str:m4": "x", "str:m5": "y" })))

      assert.strictEqual(yield* run(Command.incr("str:n")), 1)
      assert.strictEqual(yield* run(Command.incrby("str:n", 41)), 42)
      assert.strictEqual(yield* run(Command.decr("str:n")), 41)
      assert.strictEqual(yield* run(Command.decrby("str:n", 1)), 40)
      assert.strictEqual(yield* run(Command.incrbyfloat("str:n", 0.5)), 40.5)
      assert.strictEqual(yield* run(Command.append("str:ap", "ab")), 2)
      assert.strictEqual(yield* run(Command.append("str:ap", "cd")), 4)
      assert.strictEqual(yield* run(Command.strlen("str:ap")), 4)
      assert.strictEqual(yield* run(Command.getrange("str:ap", 1, 2)), "bc")
      assert.strictEqual(yield* run(Command.setrange("str:ap", 1, "XY")), 4)
      assert.strictEqual(yield* server.command("GET", "str:ap"), "aXYd")

      // The bigint forms: exact beyond 2^53, where the number forms fail with DecodeError.
      yield* server.command("SET", "str:big", String(2 ** 53 - 1))
      assert.strictEqual(yield* run(Command.incrBigint("str:big")), 9007199254740992n)
      assert.strictEqual(yield* run(Command.incrbyBigint("str:big", 9n)), 9007199254741001n)
      assert.strictEqual(yield* run(Command.decrBigint("str:big")), 9007199254741000n)
      assert.strictEqual(yield* run(Command.decrbyBigint("str:big", 10_000_000_000_000_000n)), -992800745259000n)
      assert.strictEqual(yield* server.command("GET", "str:big"), "-992800745259000")
    }))

  it.effect("keys", () =>
    Effect.gen(function*() {
      const { redis: { run }, server } = yield* Env
      yield* server.command("MSET", "key:a", "1", "key:b", "2")
      assert.strictEqual(yield* run(Command.del("key:a", "key:missing")), 1)
      assert.strictEqual(yield* run(Command.exists("key:b", "key:b", "key:none")), 2)
      assert.strictEqual(yield* run(Command.touch(["key:b", "key:none"])), 1)
      assert.isTrue(yield* run(Command.expire("key:b", "10 seconds")))
      assert.include([9, 10], yield* run(Command.ttl("key:b")))
      assert.isFalse(yield* run(Command.expire("key:b", "20 seconds", "NX")))
      assert.isFalse(yield* run(Command.expire("key:b", "5 seconds", "GT")))
      assert.isTrue(yield* run(Command.expire("key:b", "5 seconds", "LT")))
      assert.include([4, 5], yield* run(Command.ttl("key:b")))
      assert.isTrue(yield* run(Command.pexpire("key:b", "1500 millis")))
      const pttl = yield* run(Command.pttl("key:b"))
      assert.isTrue(pttl > 1_000 && pttl <= 1_500, `PTTL ${pttl}`)
      assert.isTrue(yield* run(Command.persist("key:b")))
      assert.strictEqual(yield* run(Command.ttl("key:b")), -1)
      assert.strictEqual(yield* run(Command.ttl("key:none")), -2)
      assert.isFalse(yield* run(Command.expire("key:none", "1 second")))
      assert.isTrue(yield* run(Command.expireat("key:b", new Date(Date.now() + 60_000))))
      assert.include([59, 60, 61], yield* run(Command.ttl("key:b")))
      assert.isTrue(yield* run(Command.pexpireat("key:b", Date.now() + 30_000)))
      assert.isTrue((yield* run(Command.pttl("key:b"))) <= 30_000)
      assert.strictEqual(yield* run(Command.type("key:b")), "string")
      assert.strictEqual(yield* run(Command.type("key:none")), "none")
      yield* run(Command.rename("key:b", "key:c"))
      assert.strictEqual(yield* server.command("GET", "key:c"), "2")
      const renameMissing = failureOf(yield* Effect.exit(run(Command.rename("key:none", "key:x"))))
      assert.strictEqual(renameMissing?._tag, "ReplyError")
      assert.isTrue(yield* run(Command.renamenx("key:c", "key:d")))
      yield* server.command("SET", "key:e", "other")
      assert.isFalse(yield* run(Command.renamenx("key:d", "key:e")))
      assert.isFalse(yield* run(Command.copy("key:d", "key:e")))
      assert.isTrue(yield* run(Command.copy("key:d", "key:e", { replace: true })))
      assert.strictEqual(yield* server.command("GET", "key:e"), "2")
      assert.strictEqual(yield* run(Command.unlink("key:d", "key:e")), 2)
    }))

  it.effect("hashes", () =>
    Effect.gen(function*() {
      const { redis: { run }, server } = yield* Env
      assert.strictEqual(yield* run(Command.hset("hash:a", { f1: "v1", f2: "v2" })), 2)
      assert.strictEqual(yield* run(Command.hset("hash:a", { f2: "V2", f3: "v3" })), 1)
      assert.strictEqual(yield* server.command("HGET", "hash:a", "f2"), "V2")
      assert.deepStrictEqual(yield* run(Command.hget("hash:a", "f1")), Option.some("v1"))
      assert.deepStrictEqual(yield* run(Command.hget("hash:a", "nope")), Option.none())
      assert.deepStrictEqual(yield* run(Command.hmget("hash:a", "f1", "nope")), [Option.some("v1"), Option.none()])
      assert.deepStrictEqual(yield* run(Command.hgetall("hash:a")), { f1: "v1", f2: "V2", f3: "v3" })
      assert.deepStrictEqual(yield* run(Command.hgetall("hash:none")), {})
      assert.isFalse(yield* run(Command.hsetnx("hash:a", "f1", "x")))
      assert.isTrue(yield* run(Command.hsetnx("hash:a", "f9", "x")))
      assert.isTrue(yield* run(Command.hexists("hash:a", "f9")))
      assert.strictEqual(yield* run(Command.hdel("hash:a", "f9", "nope")), 1)
      assert.isFalse(yield* run(Command.hexists("hash:a", "f9")))
      assert.strictEqual(yield* run(Command.hincrby("hash:n", "n", 5)), 5)
      assert.strictEqual(yield* run(Command.hincrbyfloat("hash:n", "x", 1.25)), 1.25)
      assert.deepStrictEqual(sorted(yield* run(Command.hkeys("hash:a"))), ["f1", "f2", "f3"])
      assert.deepStrictEqual(sorted(yield* run(Command.hvals("hash:a"))), ["V2", "v1", "v3"])
      assert.strictEqual(yield* run(Command.hlen("hash:a")), 3)
      assert.strictEqual(yield* run(Command.hstrlen("hash:a", "f1")), 2)
      const field = yield* run(Command.hrandfield("hash:a"))
      assert.isTrue(Option.isSome(field) && ["f1", "f2", "f3"].includes(field.value))
      assert.deepStrictEqual(yield* run(Command.hrandfield("hash:none")), Option.none())
      assert.strictEqual(new Set(yield* run(Command.hrandfield("hash:a", 2))).size, 2)
      const withValues = yield* run(Command.hrandfield("hash:a", -5, { withValues: true }))
      assert.strictEqual(withValues.length, 5)
      const all: Record<string, string> = { f1: "v1", f2: "V2", f3: "v3" }
      assert.isTrue(withValues.every(({ field, value }) => all[field] === value))
      // A field named __proto__ round-trips as a field.
      yield* run(Command.hset("hash:p", JSON.parse("{\"__proto__\":\"x\"}")))
      assert.deepStrictEqual(Object.entries(yield* run(Command.hgetall("hash:p"))), [["__proto__", "x"]])
    }))

  it.effect("lists", () =>
    Effect.gen(function*() {
      const { redis: { run } } = yield* Env
      assert.strictEqual(yield* run(Command.lpush("list:a", "a", "b")), 2)
      assert.strictEqual(yield* run(Command.rpush("list:a", "c")), 3)
      assert.strictEqual(yield* run(Command.lpushx("list:none", "x")), 0)
      assert.strictEqual(yield* run(Command.rpushx("list:none", "x")), 0)
      assert.deepStrictEqual(yield* run(Command.lrange("list:a", 0, -1)), ["b", "a", "c"])
      assert.strictEqual(yield* run(Command.llen("list:a")), 3)
      assert.deepStrictEqual(yield* run(Command.lindex("list:a", -1)), Option.some("c"))
      assert.deepStrictEqual(yield* run(Command.lindex("list:a", 10)), Option.none())
      yield* run(Command.lset("list:a", 1, "A"))
      assert.strictEqual(yield* run(Command.linsert("list:a", "BEFORE", "c", "z")), 4)
      assert.strictEqual(yield* run(Command.linsert("list:a", "AFTER", "nope", "z")), -1)
      assert.deepStrictEqual(yield* run(Command.lrange("list:a", 0, -1)), ["b", "A", "z", "c"])
      assert.deepStrictEqual(yield* run(Command.lpos("list:a", "c")), Option.some(3))
      assert.deepStrictEqual(yield* run(Command.lpos("list:a", "nope")), Option.none())
      assert.deepStrictEqual(yield* run(Command.lpos("list:a", "z", { count: 0 })), [2])
      assert.strictEqual(yield* run(Command.lrem("list:a", 0, "z")), 1)
      yield* run(Command.ltrim("list:a", 0, 1))
      assert.deepStrictEqual(yield* run(Command.lrange("list:a", 0, -1)), ["b", "A"])
      assert.deepStrictEqual(yield* run(Command.lmove("list:a", "list:b", "LEFT", "RIGHT")), Option.some("b"))
      assert.deepStrictEqual(yield* run(Command.lpop("list:a")), Option.some("A"))
      assert.deepStrictEqual(yield* run(Command.lpop("list:a")), Option.none())
      assert.deepStrictEqual(yield* run(Command.lpop("list:b", 5)), ["b"])
      assert.deepStrictEqual(yield* run(Command.lpop("list:none", 2)), [])
      yield* run(Command.rpush("list:c", "1", "2", "3", "4"))
      assert.deepStrictEqual(yield* run(Command.rpop("list:c")), Option.some("4"))
      assert.deepStrictEqual(yield* run(Command.rpop("list:c", 2)), ["3", "2"])
      assert.deepStrictEqual(
        yield* run(Command.lmpop(["list:none", "list:c"], "LEFT", 2)),
        Option.some({ key: "list:c", values: ["1"] })
      )
      assert.deepStrictEqual(yield* run(Command.lmpop(["list:none", "list:c"], "RIGHT")), Option.none())
    }))

  it.effect("sets", () =>
    Effect.gen(function*() {
      const { redis: { run }, server } = yield* Env
      assert.strictEqual(yield* run(Command.sadd("set:a", "a", "b", "c")), 3)
      assert.strictEqual(yield* run(Command.sadd("set:a", "c", "d")), 1)
      assert.strictEqual(yield* run(Command.srem("set:a", "d", "x")), 1)
      assert.deepStrictEqual(sorted(yield* run(Command.smembers("set:a"))), ["a", "b", "c"])
      assert.isTrue(yield* run(Command.sismember("set:a", "a")))
      assert.deepStrictEqual(yield* run(Command.smismember("set:a", "a", "x")), [true, false])
      assert.strictEqual(yield* run(Command.scard("set:a")), 3)
      yield* run(Command.sadd("set:b", "b", "c", "d"))
      assert.deepStrictEqual(sorted(yield* run(Command.sinter("set:a", "set:b"))), ["b", "c"])
      assert.deepStrictEqual(sorted(yield* run(Command.sunion(["set:a", "set:b"]))), ["a", "b", "c", "d"])
      assert.deepStrictEqual(yield* run(Command.sdiff("set:a", "set:b")), ["a"])
      assert.strictEqual(yield* run(Command.sinterstore("set:i", "set:a", "set:b")), 2)
      assert.strictEqual(yield* run(Command.sunionstore("set:u", "set:a", "set:b")), 4)
      assert.strictEqual(yield* run(Command.sdiffstore("set:d", "set:a", "set:b")), 1)
      assert.deepStrictEqual(sorted((yield* server.command("SMEMBERS", "set:i")) as Array<string>), ["b", "c"])
      assert.isTrue(yield* run(Command.smove("set:a", "set:b", "a")))
      assert.isFalse(yield* run(Command.smove("set:a", "set:b", "a")))
      assert.isTrue(Option.isSome(yield* run(Command.srandmember("set:a"))))
      assert.strictEqual((yield* run(Command.srandmember("set:a", 2))).length, 2)
      assert.deepStrictEqual(yield* run(Command.srandmember("set:none")), Option.none())
      const popped = yield* run(Command.spop("set:b"))
      assert.isTrue(Option.isSome(popped))
      assert.strictEqual((yield* run(Command.spop("set:b", 10))).length, 3)
      assert.deepStrictEqual(yield* run(Command.spop("set:b")), Option.none())
    }))

  it.effect("sorted sets", () =>
    Effect.gen(function*() {
      const { redis: { run } } = yield* Env
      const members = [{ score: 1, member: "one" }, { score: 2.5, member: "two" }, { score: Infinity, member: "top" }]
      assert.strictEqual(yield* run(Command.zadd("zset:a", members)), 3)
      assert.strictEqual(yield* run(Command.zadd("zset:a", [{ score: 3, member: "two" }], { ch: true })), 1)
      assert.strictEqual(yield* run(Command.zadd("zset:a", [{ score: 9, member: "new" }], { mode: "XX" })), 0)
      const lower = Command.zadd("zset:a", [{ score: 2, member: "two" }], { compare: "GT", ch: true })
      assert.strictEqual(yield* run(lower), 0)
      assert.deepStrictEqual(yield* run(Command.zrange("zset:a", 0, -1)), ["one", "two", "top"])
      assert.deepStrictEqual(yield* run(Command.zrange("zset:a", 0, -1, { withScores: true })), [
        { member: "one", score: 1 },
        { member: "two", score: 3 },
        { member: "top", score: Infinity }
      ])
      assert.deepStrictEqual(
        yield* run(Command.zrange("zset:a", Infinity, 2, {
          by: "SCORE",
          rev: true,
          limit: { offset: 0, count: 2 },
          withScores: true
        })),
        [{ member: "top", score: Infinity }, { member: "two", score: 3 }]
      )
      yield* run(Command.zadd("zset:lex", ["a", "b", "c"].map((member) => ({ score: 0, member }))))
      assert.deepStrictEqual(yield* run(Command.zrange("zset:lex", "[b", "+", { by: "LEX" })), ["b", "c"])
      assert.deepStrictEqual(yield* run(Command.zrangebyscore("zset:a", 1, "(3")), ["one"])
      assert.deepStrictEqual(yield* run(Command.zrangebyscore("zset:a", 3, Infinity, { withScores: true })), [
        { member: "two", score: 3 },
        { member: "top", score: Infinity }
      ])
      assert.deepStrictEqual(yield* run(Command.zaddIncr("zset:a", 2, "one")), Option.some(3))
      assert.deepStrictEqual(yield* run(Command.zaddIncr("zset:a", 2, "one", { mode: "NX" })), Option.none())
      assert.strictEqual(yield* run(Command.zincrby("zset:a", 1.5, "one")), 4.5)
      assert.deepStrictEqual(yield* run(Command.zrank("zset:a", "two")), Option.some(0))
      assert.deepStrictEqual(yield* run(Command.zrevrank("zset:a", "two")), Option.some(2))
      assert.deepStrictEqual(yield* run(Command.zrank("zset:a", "nope")), Option.none())
      assert.deepStrictEqual(yield* run(Command.zscore("zset:a", "one")), Option.some(4.5))
      assert.deepStrictEqual(yield* run(Command.zscore("zset:a", "nope")), Option.none())
      assert.deepStrictEqual(yield* run(Command.zmscore("zset:a", "two", "nope")), [Option.some(3), Option.none()])
      assert.strictEqual(yield* run(Command.zcard("zset:a")), 3)
      assert.strictEqual(yield* run(Command.zcount("zset:a", 4, Infinity)), 2)
      assert.strictEqual(yield* run(Command.zrem("zset:a", "top", "nope")), 1)
      assert.strictEqual(yield* run(Command.zremrangebylex("zset:lex", "[a", "[a")), 1)
      assert.strictEqual(yield* run(Command.zremrangebyrank("zset:lex", 0, 0)), 1)
      assert.deepStrictEqual(yield* run(Command.zrange("zset:lex", 0, -1)), ["c"])
      yield* run(Command.zadd("zset:p", [1, 2, 3, 4].map((score) => ({ score, member: `m${score}` }))))
      assert.strictEqual(yield* run(Command.zremrangebyscore("zset:p", 4, 4)), 1)
      assert.deepStrictEqual(yield* run(Command.zpopmin("zset:p")), Option.some({ member: "m1", score: 1 }))
      assert.deepStrictEqual(yield* run(Command.zpopmax("zset:p", 5)), [
        { member: "m3", score: 3 },
        { member: "m2", score: 2 }
      ])
      assert.deepStrictEqual(yield* run(Command.zpopmin("zset:p")), Option.none())
      assert.deepStrictEqual(yield* run(Command.zpopmax("zset:p", 2)), [])
    }))

  it.effect("streams and consumer groups", () =>
    Effect.gen(function*() {
      const { redis: { run }, server } = yield* Env
      const id1 = yield* run(Command.xadd("stream:a", "*", { a: "1" }))
      assert.match(id1, /^\d+-\d+$/)
      const id2 = yield* run(Command.xadd("stream:a", "*", { b: "2", c: "3" }, { trim: { maxlen: 10 } }))
      const noStream = Command.xadd("stream:none", "*", { a: "1" }, { nomkstream: true })
      assert.deepStrictEqual(yield* run(noStream), Option.none())
      assert.strictEqual(yield* server.command("EXISTS", "stream:none"), 0)
      assert.deepStrictEqual(yield* run(Command.xrange("stream:a")), [
        { id: id1, fields: { a: "1" } },
        { id: id2, fields: { b: "2", c: "3" } }
      ])
      assert.deepStrictEqual(yield* run(Command.xrevrange("stream:a", "+", "-", 1)), [
        { id: id2, fields: { b: "2", c: "3" } }
      ])
      assert.strictEqual(yield* run(Command.xlen("stream:a")), 2)

      yield* run(Command.xgroupCreate("stream:a", "g", "0"))
      const busy = failureOf(yield* Effect.exit(run(Command.xgroupCreate("stream:a", "g", "0"))))
      assert.isTrue(busy?._tag === "ReplyError" && busy.code === "BUSYGROUP")
      yield* run(Command.xgroupCreate("stream:new", "g", "$", { mkstream: true }))
      assert.strictEqual(yield* server.command("EXISTS", "stream:new"), 1)
      assert.isTrue(yield* run(Command.xgroupCreateConsumer("stream:a", "g", "c")))
      yield* server.command("XREADGROUP", "GROUP", "g", "c", "COUNT", "10", "STREAMS", "stream:a", ">")
      assert.deepStrictEqual(yield* run(Command.xpending("stream:a", "g")), {
        count: 2,
        first: Option.some(id1),
        last: Option.some(id2),
        consumers: [{ name: "c", count: 2 }]
      })
      const pending = yield* run(Command.xpending("stream:a", "g", { count: 10, idle: 0 }))
      assert.deepStrictEqual(pending.map(({ consumer, deliveries, id }) => ({ id, consumer, deliveries })), [
        { id: id1, consumer: "c", deliveries: 1 },
        { id: id2, consumer: "c", deliveries: 1 }
      ])
      assert.deepStrictEqual(yield* run(Command.xclaim("stream:a", "g", "c2", 0, [id1])), [
        { id: id1, fields: { a: "1" } }
      ])
      assert.deepStrictEqual(yield* run(Command.xclaimJustId("stream:a", "g", "c2", 0, [id2])), [id2])
      const claimed = yield* run(Command.xautoclaim("stream:a", "g", "c3", 0, "0-0", { count: 10 }))
      assert.deepStrictEqual(claimed.entries.map((entry) => entry.id), [id1, id2])
      assert.strictEqual(claimed.next, "0-0")
      assert.deepStrictEqual(claimed.deleted, [])

      const info = yield* run(Command.xinfoStream("stream:a"))
      assert.strictEqual(info.length, 2)
      assert.strictEqual(info.groups, 1)
      assert.strictEqual(info.lastGeneratedId, id2)
      assert.deepStrictEqual(info.firstEntry, Option.some({ id: id1, fields: { a: "1" } }))
      assert.deepStrictEqual(info.entriesAdded, Option.some(2))
      const [group] = yield* run(Command.xinfoGroups("stream:a"))
      assert.deepStrictEqual(
        { ...group, entriesRead: undefined, lag: undefined },
        { name: "g", consumers: 3, pending: 2, lastDeliveredId: id2, entriesRead: undefined, lag: undefined }
      )
      const consumers = yield* run(Command.xinfoConsumers("stream:a", "g"))
      assert.deepStrictEqual(consumers.map(({ name, pending }) => [name, pending]), [["c", 0], ["c2", 0], ["c3", 2]])
      assert.strictEqual(yield* run(Command.xack("stream:a", "g", id1, id2)), 2)
      assert.strictEqual(yield* run(Command.xgroupDelConsumer("stream:a", "g", "c3")), 0)
      yield* run(Command.xgroupSetId("stream:a", "g", "0"))
      assert.isTrue(yield* run(Command.xgroupDestroy("stream:a", "g")))
      assert.isFalse(yield* run(Command.xgroupDestroy("stream:a", "g")))
      assert.strictEqual(yield* run(Command.xdel("stream:a", id1)), 1)
      assert.strictEqual(yield* run(Command.xtrim("stream:a", { maxlen: 0 })), 1)
      assert.strictEqual(yield* run(Command.xlen("stream:a")), 0)
    }))

  it.effect("HyperLogLog, bitmaps, geo, publish, server reads", () =>
    Effect.gen(function*() {
      const { redis: { run }, server } = yield* Env
      assert.isTrue(yield* run(Command.pfadd("hll:a", "a", "b", "c")))
      assert.isFalse(yield* run(Command.pfadd("hll:a", "a")))
      yield* run(Command.pfadd("hll:b", "c", "d"))
      assert.strictEqual(yield* run(Command.pfcount("hll:a")), 3)
      assert.strictEqual(yield* run(Command.pfcount("hll:a", "hll:b")), 4)
      yield* run(Command.pfmerge("hll:m", "hll:a", "hll:b"))
      assert.strictEqual(yield* run(Command.pfcount("hll:m")), 4)

      assert.strictEqual(yield* run(Command.setbit("bit:a", 7, 1)), 0)
      assert.strictEqual(yield* run(Command.setbit("bit:a", 7, 1)), 1)
      assert.strictEqual(yield* run(Command.getbit("bit:a", 7)), 1)
      assert.strictEqual(yield* run(Command.getbit("bit:a", 100)), 0)
      assert.strictEqual(yield* run(Command.bitcount("bit:a")), 1)
      assert.strictEqual(yield* run(Command.bitcount("bit:a", { start: 0, end: 6, unit: "BIT" })), 0)
      assert.deepStrictEqual(yield* run(Command.bitpos("bit:a", 1)), Option.some(7))
      assert.deepStrictEqual(yield* run(Command.bitpos("bit:a", 1, { start: 1 })), Option.none())

      const sicily = [
        { longitude: 13.361389, latitude: 38.115556, member: "Palermo" },
        { longitude: 15.087269, latitude: 37.502669, member: "Catania" }
      ]
      assert.strictEqual(yield* run(Command.geoadd("geo:a", sicily)), 2)
      const [palermo, nope] = yield* run(Command.geopos("geo:a", "Palermo", "Nope"))
      assert.isTrue(Option.isSome(palermo!) && Math.abs(palermo.value.longitude - 13.361389) < 1e-5)
      assert.deepStrictEqual(nope, Option.none())
      const distance = yield* run(Command.geodist("geo:a", "Palermo", "Catania", "km"))
      assert.isTrue(Option.isSome(distance) && Math.abs(distance.value - 166.2742) < 1e-3)
      assert.deepStrictEqual(yield* run(Command.geodist("geo:a", "Palermo", "Nope")), Option.none())
      const around = { from: { longitude: 15, latitude: 37 }, by: { radius: 200, unit: "km" }, order: "ASC" } as const
      assert.deepStrictEqual(yield* run(Command.geosearch("geo:a", around)), ["Catania", "Palermo"])
      const [nearest, ...rest] = yield* run(Command.geosearchWith("geo:a", { ...around, count: 1 }))
      assert.strictEqual(rest.length, 0)
      assert.strictEqual(nearest?.member, "Catania")
      assert.isTrue(Math.abs(nearest!.distance - 56.4413) < 1e-3 && Math.abs(nearest!.latitude - 37.502669) < 1e-5)

      assert.strictEqual(yield* run(Command.publish("chan", "x")), 0)
      assert.strictEqual(yield* run(Command.spublish("chan", "x")), 0)

      assert.strictEqual(yield* run(Command.ping()), "PONG")
      assert.strictEqual(yield* run(Command.ping("hi")), "hi")
      assert.strictEqual(yield* run(Command.echo("hello")), "hello")
      const time = yield* run(Command.time())
      assert.isTrue(Math.abs(time.seconds - Date.now() / 1000) < 5 && time.microseconds < 1_000_000)
      assert.strictEqual(yield* run(Command.dbsize()), yield* server.command("DBSIZE"))
      const info = yield* run(Command.info("server"))
      assert.match(info["redis_version"] ?? "", /^\d+\.\d+\.\d+$/)
      assert.strictEqual(info["tcp_port"], String(server.port))
    }))

  it.effect("bytes round-trip (ff 00 fe 80) through every ...Buffer form", () =>
    Effect.gen(function*() {
      const { redis: { run }, server } = yield* Env
      const bytes = Buffer.from([0xff, 0x00, 0xfe, 0x80])
      const same = (value: Buffer | undefined) => value !== undefined && value.equals(bytes)
      const some = (value: Option.Option<Buffer>) => Option.isSome(value) && same(value.value)
      assert.isTrue(yield* run(Command.set("bin:s", bytes)))
      // Stored as 4 bytes, not as a UTF-8 rendering of them.
      assert.strictEqual(yield* server.command("STRLEN", "bin:s"), 4)
      assert.isTrue(some(yield* run(Command.getBuffer("bin:s"))))
      // The string form cannot carry these bytes (invalid UTF-8): the reason the binary forms exist.
      const asString = yield* run(Command.get("bin:s"))
      assert.isFalse(Option.isSome(asString) && Buffer.from(asString.value).equals(bytes))
      const [viaMget, missing] = yield* run(Command.mgetBuffer("bin:s", "bin:none"))
      assert.isTrue(some(viaMget!))
      assert.deepStrictEqual(missing, Option.none())
      assert.isTrue(some(yield* run(Command.getdelBuffer("bin:s"))))
      assert.deepStrictEqual(yield* run(Command.getBuffer("bin:s")), Option.none())

      yield* run(Command.hset("bin:h", { f: bytes }))
      assert.isTrue(some(yield* run(Command.hgetBuffer("bin:h", "f"))))
      assert.isTrue(some((yield* run(Command.hmgetBuffer("bin:h", "f")))[0]!))
      assert.isTrue(same((yield* run(Command.hgetallBuffer("bin:h")))["f"]))

      yield* run(Command.rpush("bin:l", bytes, bytes, bytes, bytes))
      assert.isTrue((yield* run(Command.lrangeBuffer("bin:l", 0, -1))).every(same))
      assert.isTrue(some(yield* run(Command.lindexBuffer("bin:l", 0))))
      assert.isTrue(some(yield* run(Command.lpopBuffer("bin:l"))))
      assert.isTrue(some(yield* run(Command.rpopBuffer("bin:l"))))
      assert.isTrue((yield* run(Command.lpopBuffer("bin:l", 2))).every(same))

      yield* run(Command.sadd("bin:set", bytes))
      const [member] = yield* run(Command.smembersBuffer("bin:set"))
      assert.isTrue(same(member))
      assert.isTrue(yield* run(Command.sismember("bin:set", bytes)))
      yield* run(Command.zadd("bin:z", [{ score: 1, member: bytes }]))
      assert.isTrue(same((yield* run(Command.zrangeBuffer("bin:z", 0, -1)))[0]))
    }))

  it.effect("DecodeError: a reply that does not fit its Schema, an integer beyond 2^53", () =>
    Effect.gen(function*() {
      const { redis: { run }, server } = yield* Env
      yield* server.command("SET", "dec:n", "not a number")
      const exit = yield* Effect.exit(run(Command.withSchema(Command.get("dec:n"), Schema.FiniteFromString)))
      const error = failureOf(exit)
      assert.strictEqual(error?._tag, "DecodeError")
      assert.notInclude(error?.message ?? "", "not a number")
      yield* server.command("SET", "dec:n", "42")
      assert.deepStrictEqual(
        yield* run(Command.withSchema(Command.get("dec:n"), Schema.FiniteFromString)),
        Option.some(42)
      )
      assert.deepStrictEqual(
        yield* run(Command.withSchema(Command.get("dec:none"), Schema.FiniteFromString)),
        Option.none()
      )

      yield* server.command("SET", "dec:big", String(2 ** 53 - 1))
      assert.strictEqual(failureTag(yield* Effect.exit(run(Command.incr("dec:big")))), "DecodeError")
      assert.strictEqual(failureTag(yield* Effect.exit(run(Command.incrby("dec:big", 2)))), "DecodeError")
      // A wrong type is the server's answer, not a decoding failure.
      assert.strictEqual(failureTag(yield* Effect.exit(run(Command.hgetall("dec:n")))), "ReplyError")
    }))

  it.effect("InvalidArgument: nothing is sent", () =>
    Effect.gen(function*() {
      const { redis: { run }, server } = yield* Env
      yield* server.command("SET", "inv:k", "original")
      yield* server.command("RPUSH", "inv:l", "x")
      const before = [yield* calls(server, "set"), yield* calls(server, "lpop"), yield* calls(server, "pexpire")]
      for (const ttl of [0, -1, Number.NaN, Infinity]) {
        const error = failureOf(yield* Effect.exit(run(Command.set("inv:k", "changed", { ttl }))))
        assert.isTrue(error?._tag === "InvalidArgument" && error.argument === "ttl", String(ttl))
      }
      assert.strictEqual(failureTag(yield* Effect.exit(run(Command.lpop("inv:l", -1)))), "InvalidArgument")
      assert.strictEqual(failureTag(yield* Effect.exit(run(Command.pexpire("inv:k", 0)))), "InvalidArgument")
      assert.strictEqual(yield* server.command("GET", "inv:k"), "original")
      assert.strictEqual(yield* server.command("LLEN", "inv:l"), 1)
      assert.strictEqual(yield* server.command("PTTL", "inv:k"), -1)
      assert.deepStrictEqual(
        [yield* calls(server, "set"), yield* calls(server, "lpop"), yield* calls(server, "pexpire")],
        before
      )
    }))

  it.effect("a reset with commands of every group in flight: idempotent ones retried, others at most once", () =>
    Effect.gen(function*() {
      const { proxy, redis: { run }, server } = yield* Env
      yield* server.command("SET", "chaos:n", "10")
      yield* server.command("RPUSH", "chaos:l", "a", "b")
      yield* server.command("HSET", "chaos:h", "n", "5")
      yield* server.command("SADD", "chaos:s", "m1", "m2")
      yield* server.command("ZADD", "chaos:z", "1", "m")
      yield* server.command("XADD", "chaos:x", "1-1", "f", "v")
      yield* server.command("SET", "chaos:k", "v")
      const accepted = yield* proxy.accepted

      yield* proxy.latency(150)
      const idempotent = yield* Effect.forkChild(Effect.all([
        Effect.exit(run(Command.set("chaos:set", "v"))),
        Effect.exit(run(Command.get("chaos:n"))),
        Effect.exit(run(Command.pexpire("chaos:k", "1 minute"))),
        Effect.exit(run(Command.hset("chaos:h", { f: "v" }))),
        Effect.exit(run(Command.lrange("chaos:l", 0, -1))),
        Effect.exit(run(Command.sadd("chaos:s", "m3"))),
        Effect.exit(run(Command.zadd("chaos:z", [{ score: 2, member: "m2" }]))),
        Effect.exit(run(Command.xrange("chaos:x")))
      ], { concurrency: "unbounded" }))
      const others = yield* Effect.forkChild(Effect.all([
        Effect.exit(run(Command.incr("chaos:n"))),
        Effect.exit(run(Command.hincrby("chaos:h", "n", 1))),
        Effect.exit(run(Command.lpush("chaos:l", "new"))),
        Effect.exit(run(Command.spop("chaos:s"))),
        Effect.exit(run(Command.zincrby("chaos:z", 1, "m"))),
        Effect.exit(run(Command.xadd("chaos:x", "*", { f: "w" }))),
        Effect.exit(run(Command.set("chaos:nx", "v", { mode: "NX" })))
      ], { concurrency: "unbounded" }))
      // The requests reach the server after 150 ms; the reset at 225 ms comes before their replies (300 ms).
      yield* Effect.sleep("225 millis")
      yield* proxy.resetAll
      yield* proxy.restore

      const retried: ReadonlyArray<Exit.Exit<unknown, RedisError>> = yield* Fiber.join(idempotent)
      for (const exit of retried) assert.isTrue(Exit.isSuccess(exit), Exit.isFailure(exit) ? String(exit.cause) : "")
      const values = retried.map((exit) => (Exit.isSuccess(exit) ? exit.value : undefined))
      // The reads were retried after the reset, so they see whatever the lost writes applied.
      assert.deepStrictEqual(values[1], Option.some(yield* server.command("GET", "chaos:n")))
      assert.deepStrictEqual(values[4], yield* server.command("LRANGE", "chaos:l", "0", "-1"))
      const entries = values[7] as ReadonlyArray<Command.StreamEntry>
      assert.deepStrictEqual(entries[0], { id: "1-1", fields: { f: "v" } })
      assert.strictEqual(entries.length, yield* server.command("XLEN", "chaos:x"))
      assert.strictEqual(yield* server.command("GET", "chaos:set"), "v")
      assert.strictEqual(yield* server.command("HGET", "chaos:h", "f"), "v")
      assert.strictEqual(yield* server.command("SISMEMBER", "chaos:s", "m3"), 1)
      assert.isTrue(Number(yield* server.command("PTTL", "chaos:k")) > 50_000)
      // They were answered on a new connection.
      assert.isTrue((yield* proxy.accepted) > accepted)

      const failed: ReadonlyArray<Exit.Exit<unknown, RedisError>> = yield* Fiber.join(others)
      for (const exit of failed) {
        const error = failureOf(exit)
        assert.include(["ConnectionReset", "ConnectionClosed"], error?._tag)
        assert.isTrue(error !== undefined && "sent" in error && error.sent === true)
      }
      // Applied at most once each (never resent).
      assert.include(["10", "11"], yield* server.command("GET", "chaos:n"))
      assert.include(["5", "6"], yield* server.command("HGET", "chaos:h", "n"))
      assert.include([2, 3], yield* server.command("LLEN", "chaos:l"))
      assert.include([2, 3], yield* server.command("SCARD", "chaos:s")) // m1, m2 (+ m3) (- one popped)
      assert.include(["1", "2"], yield* server.command("ZSCORE", "chaos:z", "m"))
      assert.include([1, 2], yield* server.command("XLEN", "chaos:x"))
      assert.include([null, "v"], yield* server.command("GET", "chaos:nx"))
    }), 20_000)
})
