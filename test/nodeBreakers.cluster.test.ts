/**
 * Redis Cluster with one breaker per master, against a real cluster: one master frozen (SIGSTOP) with no replica to
 * take over. Its commands fail (timeouts, then CircuitOpen at once), the commands routed to the other masters keep
 * working, and the layer's own circuit stays closed; after SIGCONT the master's circuit closes again.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import * as RedisService from "../src/RedisService.ts"
import * as RedisTestCluster from "../src/testing/RedisTestCluster.ts"
import { failoverOptions, failureTag, sleepReal, waitUntil } from "./helpers.ts"

describe("Redis Cluster: one breaker per master", () => {
  it.live("a frozen master opens its own circuit; the other masters keep serving", () =>
    Effect.gen(function*() {
      const cluster = yield* RedisTestCluster.make({
        replicasPerMaster: 0,
        args: ["--cluster-require-full-coverage", "no"]
      })
      const redis = yield* RedisService.make({
        ...failoverOptions,
        breaker: { failureThreshold: 3, openDuration: "300 millis", maxOpenDuration: "600 millis" },
        topology: { _tag: "Cluster", nodes: cluster.startupNodes }
      })
      // One key per master.
      const keys = new Map<number, string>()
      for (let i = 0; keys.size < cluster.masters.length && i < 1000; i++) {
        const port = (yield* cluster.masterOf(`k${i}`)).port
        if (!keys.has(port)) keys.set(port, `k${i}`)
      }
      assert.strictEqual(keys.size, cluster.masters.length)
      for (const key of keys.values()) yield* redis.set(key, "before")

      const frozen = cluster.masters[0]!
      const frozenKey = keys.get(frozen.port)!
      const healthyKeys = [...keys].filter(([port]) => port !== frozen.port).map(([, key]) => key)
      yield* frozen.pause
      const started = Date.now()
      const failuresOnFrozen = new Map<string, number>()
      let healthyOk = 0
      let healthyFailed = 0
      while (Date.now() - started < 3_000) {
        const frozenExit = yield* Effect.exit(redis.set(frozenKey, "during"))
        const tag = failureTag(frozenExit) ?? "ok"
        failuresOnFrozen.set(tag, (failuresOnFrozen.get(tag) ?? 0) + 1)
        for (const key of healthyKeys) {
          const exit = yield* Effect.exit(redis.set(key, "during"))
          if (Exit.isSuccess(exit)) healthyOk++
          else healthyFailed++
        }
        yield* sleepReal(20)
      }
      const health = yield* redis.health
      yield* frozen.resume
      // The frozen master's commands were refused at once once its circuit opened; the others never failed.
      assert.isAbove(failuresOnFrozen.get("CircuitOpen") ?? 0, 10, JSON.stringify([...failuresOnFrozen]))
      assert.strictEqual(healthyFailed, 0, `${healthyFailed} failures on healthy masters (${healthyOk} ok)`)
      assert.isAbove(healthyOk, 50)
      assert.strictEqual(health.circuit, "closed")
      const frozenNode = health.nodes.find((node) => node.address.endsWith(`:${frozen.port}`))
      assert.include(["open", "half-open"], frozenNode?.circuit)
      // After SIGCONT the master's probe closes its circuit: writes work again.
      yield* waitUntil(Effect.exit(redis.set(frozenKey, "after")), Exit.isSuccess, 10_000)
    }), 60_000)
})
