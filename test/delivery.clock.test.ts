/**
 * The time logic behind the delivery guarantees, proven deterministically:
 *
 * - a blocking call with a timeout of 0 runs as a loop of bounded blocks (`Dedicated.untilAnswered` with
 *   `Dedicated.blockSlice`), each under the deadline `Dedicated.deadlineOf` gives it, so a frozen server fails the
 *   call within slice + commandTimeout (TestClock, a model server: the real-server counterpart is in
 *   test/RedisBlocking.test.ts);
 * - a Cluster master's lost connection counts once per `reconnect.debounce` towards its own breaker, however many
 *   commands it failed (TestClock, no server needed: the breakers only read the clock);
 * - the record of an idempotency key lives `idempotencyTtl` on the server: within it a retry returns the recorded
 *   reply, after it the command is applied again (a real redis-server: the TTL is the server's, not Effect's clock).
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Context, Deferred, Duration, Effect, Fiber, Layer, Option } from "effect"
import { TestClock } from "effect/testing"
import { Command, RedisService } from "../src/index.ts"
import * as Dedicated from "../src/internal/dedicated.ts"
import * as NodeBreakers from "../src/internal/topology/clusterBreakers.ts"
import { RedisTestServer } from "../src/testing/index.ts"
import { fastOptions, waitUntil } from "./helpers.ts"

/**
 * A server answering one BLPOP at a time, as Redis does: an element pushed meanwhile at once, else nil when the block
 * runs out (on Effect's clock). A frozen server answers nothing. Every call is recorded with its start and block.
 */
const modelServer = Effect.gen(function*() {
  const pushed = yield* Deferred.make<string>()
  const calls: Array<{ readonly at: number; readonly block: number }> = []
  let frozen = false
  const blpop = (block: Duration.Duration): Effect.Effect<Option.Option<string>> =>
    Effect.gen(function*() {
      calls.push({ at: yield* Clock.currentTimeMillis, block: Duration.toMillis(block) })
      const answer = yield* Effect.raceFirst(
        Effect.map(Deferred.await(pushed), Option.some),
        Effect.as(Effect.sleep(block), Option.none<string>())
      )
      return frozen ? yield* Effect.never : answer
    })
  return {
    blpop,
    calls,
    push: (value: string) => Deferred.succeed(pushed, value),
    freeze: Effect.sync(() => {
      frozen = true
    })
  }
})

const commandTimeout = Duration.seconds(1)

/** One call as `Dedicated.send` bounds it: `deadlineOf(commandTimeout, block)`, then a CommandTimeout. */
const bounded = (call: (block: Duration.Duration) => Effect.Effect<Option.Option<string>>) =>
(block: Duration.Duration) => {
  const deadline = Dedicated.deadlineOf(commandTimeout, block)
  return deadline === undefined
    ? call(block)
    : Effect.timeoutOrElse(call(block), { duration: deadline, orElse: () => Effect.fail("CommandTimeout" as const) })
}

describe("a block of 0 as bounded blocks (TestClock)", () => {
  it("the slice is the heartbeat's detection time, at least 1 s; 2 s without a heartbeat", () => {
    const slice = (interval: number, misses: number) =>
      Duration.toMillis(Dedicated.blockSlice({ interval: Duration.millis(interval), misses }))
    assert.strictEqual(slice(200, 2), 1_000)
    assert.strictEqual(slice(1_000, 2), 2_000)
    assert.strictEqual(slice(300, 5), 1_500)
    assert.strictEqual(Duration.toMillis(Dedicated.blockSlice(undefined)), 2_000)
    // A block of 0 itself has no deadline; a slice has one.
    assert.isUndefined(Dedicated.deadlineOf(commandTimeout, Duration.zero))
    assert.strictEqual(Duration.toMillis(Dedicated.deadlineOf(commandTimeout, Duration.seconds(1))!), 2_000)
  })

  it.effect("a live server: a new slice each time one runs out, no deadline on the whole call, then the answer", () =>
    Effect.gen(function*() {
      const server = yield* modelServer
      const slice = Dedicated.blockSlice({ interval: Duration.millis(200), misses: 2 })
      const started = yield* Clock.currentTimeMillis
      const fiber = yield* Effect.forkChild(Dedicated.untilAnswered(slice, bounded(server.blpop)))
      yield* Effect.yieldNow
      // A minute of nothing: 60 slices ran out, the call is still waiting (no deadline on a block of 0).
      for (let i = 0; i < 60; i++) yield* TestClock.adjust(slice)
      assert.isUndefined(fiber.pollUnsafe())
      assert.strictEqual(server.calls.length, 61)
      // One call per slice, each a bounded block of the slice.
      assert.deepStrictEqual(
        server.calls.slice(0, 3).map(({ at, block }) => [at - started, block]),
        [[0, 1_000], [1_000, 1_000], [2_000, 1_000]]
      )
      yield* TestClock.adjust("400 millis")
      yield* server.push("job")
      assert.deepStrictEqual(yield* Fiber.join(fiber), Option.some("job"))
      assert.strictEqual(server.calls.length, 61)
    }))

  it.effect("a frozen server fails the call exactly at the start of its slice + slice + commandTimeout", () =>
    Effect.gen(function*() {
      const slice = Dedicated.blockSlice({ interval: Duration.millis(200), misses: 2 }) // 1 s
      const worst = Duration.toMillis(slice) + Duration.toMillis(commandTimeout)
      // Frozen at the start, in the middle and at the end of the third slice (it starts at 2 s).
      for (const frozenAt of [2_000, 2_500, 2_999]) {
        const server = yield* modelServer
        const started = yield* Clock.currentTimeMillis
        const fiber = yield* Effect.forkChild(Effect.exit(Dedicated.untilAnswered(slice, bounded(server.blpop))))
        yield* Effect.yieldNow
        yield* TestClock.adjust(frozenAt)
        yield* server.freeze
        // Third slice: started at 2 s, its deadline is 2 s + slice + commandTimeout = 4 s.
        yield* TestClock.adjust(4_000 - frozenAt - 1)
        assert.isUndefined(fiber.pollUnsafe(), `frozen at ${frozenAt}: failed before the deadline`)
        yield* TestClock.adjust(1)
        yield* Effect.yieldNow
        const exit = fiber.pollUnsafe()
        assert.strictEqual(exit?._tag, "Success", `frozen at ${frozenAt}: still running at the deadline`)
        assert.strictEqual(exit?._tag === "Success" ? exit.value._tag : undefined, "Failure")
        const failedAt = (yield* Clock.currentTimeMillis) - started
        assert.strictEqual(failedAt, 4_000)
        assert.isAtMost(failedAt - frozenAt, worst, `frozen at ${frozenAt}`)
        assert.strictEqual(server.calls.length, 3)
      }
    }))
})

describe("Cluster: a master's lost connection counts once per loss window (TestClock)", () => {
  it.effect("losses within reconnect.debounce of the last counted one do not count; other masters count alone", () =>
    Effect.gen(function*() {
      const breakers = yield* NodeBreakers.make({
        policy: { failureThreshold: 3, openDuration: Duration.seconds(1), maxOpenDuration: Duration.seconds(4) },
        keyPrefix: "",
        probeTimeout: Duration.millis(100),
        lossWindow: Duration.millis(50),
        current: () => undefined
      })
      const burst = (node: string) => Effect.forEach(Array.from({ length: 20 }), () => breakers.onLoss(node))
      // 20 commands fail with one loss: one failure, far below the threshold (3).
      yield* burst("a:1")
      yield* TestClock.adjust("49 millis")
      yield* burst("a:1") // still the same loss window: nothing
      assert.isFalse(breakers.isOpen("a:1"))
      // Another master's loss in a:1's window counts for b:2 alone.
      yield* burst("b:2")
      yield* TestClock.adjust("1 millis") // 50 ms after the first counted loss: a new window
      yield* burst("a:1")
      assert.isFalse(breakers.isOpen("a:1"), "2 counted losses")
      yield* TestClock.adjust("50 millis")
      yield* burst("a:1")
      yield* Effect.yieldNow
      assert.isTrue(breakers.isOpen("a:1"), "3 counted losses, 50 ms apart")
      assert.isFalse(breakers.isOpen("b:2"))
      assert.deepStrictEqual(Object.fromEntries(breakers.statuses()), { "a:1": "open", "b:2": "closed" })
    }))
})

describe("idempotency keys: the record's TTL (real redis-server)", () => {
  it.live("within idempotencyTtl a retry returns the recorded reply; after it the command is applied again", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const context = yield* Layer.build(RedisService.layer({ ...fastOptions, url: server.url }))
      const redis = Context.get(context, RedisService)
      const incr = (key: string, idempotencyTtl?: Duration.Input) =>
        redis.run(Command.incr("counter"), { idempotencyKey: key, idempotencyTtl })
      const marker = (key: string) => `idempotency:{counter}:${key}`

      const started = Date.now()
      assert.strictEqual(yield* incr("op-1", "300 millis"), 1)
      assert.strictEqual(yield* incr("op-1", "300 millis"), 1) // the recorded reply, not applied
      assert.strictEqual(yield* server.command("GET", "counter"), "1")
      const pttl = Number(yield* server.command("PTTL", marker("op-1")))
      assert.isTrue(pttl > 0 && pttl <= 300, `marker PTTL ${pttl}`)
      // The server drops the record after the TTL; the same key then applies the command again.
      yield* waitUntil(server.command("EXISTS", marker("op-1")), (n) => Number(n) === 0, 2_000)
      const expiredAfter = Date.now() - started
      assert.isAtLeast(expiredAfter, 250, `record gone after ${expiredAfter} ms`)
      assert.strictEqual(yield* incr("op-1", "300 millis"), 2)
      assert.strictEqual(yield* server.command("GET", "counter"), "2")
      // The default TTL is 24 hours.
      yield* incr("op-2")
      const defaultTtl = Number(yield* server.command("PTTL", marker("op-2")))
      assert.isTrue(defaultTtl > Duration.toMillis(Duration.hours(24)) - 60_000, `default PTTL ${defaultTtl}`)
      // A TTL of 0 would drop the record at once: refused before anything is sent.
      const refused = yield* Effect.flip(incr("op-3", 0))
      assert.strictEqual(refused._tag, "InvalidArgument")
      assert.strictEqual(yield* server.command("GET", "counter"), "3")
    }))
})
