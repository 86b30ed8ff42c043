/**
 * The typed-command paths on a real Redis Cluster: a batch or transaction across slots fails with CrossSlot before
 * anything is sent, one in a slot runs on its master, SCAN walks every master, scripts and idempotency keys route by
 * their keys.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option, Result, Stream } from "effect"
import * as C from "../src/internal/command.ts"
import * as RedisScript from "../src/RedisScript.ts"
import * as RedisService from "../src/RedisService.ts"
import * as RedisTestCluster from "../src/testing/RedisTestCluster.ts"
import { failoverOptions, failureTag } from "./helpers.ts"

const get = (key: string) =>
  C.make({ name: "GET", args: [key], keys: [0], idempotent: true, readOnly: true, decode: C.optional(C.string("GET")) })
const set = (key: string, value: string) =>
  C.make({ name: "SET", args: [key, value], keys: [0], idempotent: true, decode: C.written("SET") })
const incr = (key: string) => C.make({ name: "INCR", args: [key], keys: [0], decode: C.integer("INCR") })

describe("RedisService typed commands on Redis Cluster", () => {
  it.live("CrossSlot before sending; batch, multi, watch, scripts and idempotency keys in one slot; SCAN on every master", () =>
    Effect.gen(function*() {
      const cluster = yield* RedisTestCluster.make({ replicasPerMaster: 0 })
      const redis = yield* RedisService.make({
        ...failoverOptions,
        keyPrefix: "app:",
        topology: { _tag: "Cluster", nodes: cluster.startupNodes }
      })
      // "a" and "b" are in different slots: nothing is sent.
      const spanning = yield* Effect.exit(redis.batch([set("a", "1"), set("b", "2")]))
      assert.strictEqual(failureTag(spanning), "CrossSlot")
      assert.strictEqual(failureTag(yield* Effect.exit(redis.multi([set("a", "1"), set("b", "2")]))), "CrossSlot")
      assert.deepStrictEqual(yield* redis.get("a"), Option.none())
      assert.deepStrictEqual(yield* redis.get("b"), Option.none())

      const [x, y] = yield* redis.batch([set("{u1}:name", "ada"), get("{u1}:name")] as const)
      assert.deepStrictEqual(x, Result.succeed(true))
      assert.deepStrictEqual(y, Result.succeed(Option.some("ada")))
      assert.deepStrictEqual(yield* redis.multi([incr("{u1}:n"), incr("{u1}:n")] as const), [1, 2])
      const [ok] = yield* redis.watch(["{u1}:n"], (tx) =>
        Effect.map(tx.run(get("{u1}:n")), (n) => [set("{u1}:copy", Option.getOrThrow(n))] as const))
      assert.isTrue(ok)
      assert.deepStrictEqual(yield* redis.get("{u1}:copy"), Option.some("2"))

      const twice = RedisScript.make<number>({
        lua: "return redis.call('INCRBY', KEYS[1], 2)",
        keys: 1,
        decode: C.integer("twice")
      })
      assert.strictEqual(yield* redis.run(twice(["counter"])), 2)
      assert.strictEqual(yield* redis.run(incr("other"), { idempotencyKey: "r1" }), 1)
      assert.strictEqual(yield* redis.run(incr("other"), { idempotencyKey: "r1" }), 1)

      yield* Effect.forEach(Array.from({ length: 120 }, (_, i) => i), (i) => redis.set(`scan:${i}`, "x"), {
        concurrency: 10
      })
      const keys = yield* Stream.runCollect(redis.scan({ match: "scan:*", count: 50 }))
      assert.strictEqual(new Set(keys).size, 120)
      assert.strictEqual(keys.length, 120)
    }), 60_000)
})
