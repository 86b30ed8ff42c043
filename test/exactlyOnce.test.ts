/**
 * Exactly-once writes with idempotency keys, against a real redis-server with AOF (fsync always): 10,000 INCRs
 * through 50 connection resets (real ECONNRESET from the chaos proxy) and a server restart. Every call that failed
 * is retried by the caller with the same key, as a user would; the counter must equal the number of keys exactly.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import * as C from "../src/internal/command.ts"
import * as RedisService from "../src/RedisService.ts"
import * as ChaosProxy from "../src/testing/ChaosProxy.ts"
import * as RedisTestServer from "../src/testing/RedisTestServer.ts"
import { fastOptions, sleepReal } from "./helpers.ts"

const incr = (key: string) => C.make({ name: "INCR", args: [key], keys: [0], decode: C.integer("INCR") })

describe("exactly-once writes (idempotency keys)", () => {
  it.live("10,000 INCRs through 50 resets and a restart: the counter equals the keys, no call ends sent: true", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisTestServer.make({ appendOnly: true })
      const proxy = yield* ChaosProxy.make({ target: server })
      const redis = yield* RedisService.make({ ...fastOptions, url: proxy.url, acquireTimeout: "2 seconds" })
      // At least 10,000 INCRs, and as many more as it takes for the faults to be over.
      let total = 10_000
      let next = 0
      let ambiguous = 0
      let retries = 0
      const worker = Effect.gen(function*() {
        while (next < total) {
          const id = `op-${next++}`
          for (let attempt = 0;; attempt++) {
            const exit = yield* Effect.exit(redis.run(incr("counter"), { idempotencyKey: id }))
            if (Exit.isSuccess(exit)) break
            const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
            const error = reason?._tag === "Fail" ? reason.error : undefined
            if (error !== undefined && "sent" in error && error.sent === true) ambiguous++
            if (attempt > 50) return yield* Effect.die(new Error(`${id} never succeeded: ${String(exit.cause)}`))
            retries++
            yield* sleepReal(20)
          }
        }
      })
      const workers = yield* Effect.forkChild(Effect.all(Array.from({ length: 50 }, () => worker), {
        concurrency: "unbounded",
        discard: true
      }))
      let resets = 0
      // Resets 60-120 ms apart: each lands on a connection that has just been reopened and is carrying INCRs.
      while (resets < 50) {
        total = Math.max(total, next + 1_000)
        yield* sleepReal(60 + Math.floor(Math.random() * 60))
        yield* proxy.resetAll
        resets++
        if (resets === 25) yield* server.restart
      }
      total = Math.max(10_000, next)
      yield* Fiber.join(workers)
      assert.isAtLeast(resets, 50, `only ${resets} resets happened before the workload ended`)
      console.log(`exactly-once: ${total} INCRs, ${resets} resets + 1 restart, ${retries} caller retries`)
      assert.isAtLeast(total, 10_000)
      assert.strictEqual(yield* server.command("GET", "counter"), String(total))
      // The layer's one retry absorbs a lost connection; only a retry lost to the next reset as well (resets 60-120 ms
      // apart) can end with sent: true, and even then the caller's retry with the same key applied it once (above).
      assert.isAtMost(ambiguous, 10, `${ambiguous} calls failed with sent: true (${retries} retries)`)
    })), 90_000)
})
