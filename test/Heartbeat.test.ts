/**
 * The heartbeat under TestClock against a real redis-server frozen with SIGSTOP: misses are counted at a fixed rate
 * and the connection is invalidated exactly when `misses` PINGs in a row have timed out.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Option } from "effect"
import { TestClock } from "effect/testing"
import * as Connection from "../src/internal/connection.ts"
import * as Heartbeat from "../src/internal/heartbeat.ts"
import * as RedisConfig from "../src/RedisConfig.ts"
import { ConnectionReset } from "../src/RedisError.ts"
import * as RedisTestServer from "../src/testing/RedisTestServer.ts"
import { sleepReal, waitUntil } from "./helpers.ts"

const policy: Heartbeat.HeartbeatPolicy = {
  interval: Duration.seconds(1),
  timeout: Duration.millis(500),
  misses: 2
}

/** A server and a Connection to it, ready; `reconnect` as given (the heartbeat under test is made by the test). */
const readyConnection = (reconnect: NonNullable<RedisConfig.RedisOptions["reconnect"]>) =>
  Effect.gen(function*() {
    const server = yield* RedisTestServer.make()
    const config = yield* RedisConfig.resolve({ url: server.url, heartbeat: false, reconnect })
    const connection = yield* Connection.make(config)
    yield* waitUntil(connection.state, (s) => s._tag === "Ready")
    return { server, connection }
  })

describe("Heartbeat (TestClock + real redis-server)", () => {
  it.effect("a frozen server is detected after interval x misses + timeout at most, and not before", () =>
    Effect.gen(function*() {
      const { connection, server } = yield* readyConnection({ debounce: "1 hour" })
      let failures = 0
      const heartbeat = yield* Heartbeat.make(connection, policy, {
        onFailure: () =>
          Effect.sync(() => {
            failures++
          })
      })

      // t = 1 s: the first PING, answered for real.
      yield* TestClock.adjust("1 second")
      const rtt = yield* waitUntil(heartbeat.rtt, Option.isSome)
      assert.isTrue(Option.isSome(rtt))
      assert.strictEqual(yield* heartbeat.consecutiveFailures, 0)

      // The server freezes just after that beat.
      yield* server.pause
      // t = 2 s: PING 2 is sent and hangs; t = 2.5 s: it times out (miss 1).
      yield* TestClock.adjust("1 second")
      yield* sleepReal(20)
      yield* TestClock.adjust("499 millis")
      yield* sleepReal(20)
      assert.strictEqual(yield* heartbeat.consecutiveFailures, 0)
      yield* TestClock.adjust("1 millis")
      yield* waitUntil(heartbeat.consecutiveFailures, (n) => n === 1)
      assert.strictEqual((yield* connection.state)._tag, "Ready", "one miss is not enough")
      // t = 3 s: PING 3; t = 3.5 s: miss 2 -> invalidated. 1.5 s after the freeze <= 1 s x 2 + 0.5 s.
      yield* TestClock.adjust("500 millis")
      yield* sleepReal(20)
      yield* TestClock.adjust("499 millis")
      yield* sleepReal(20)
      assert.strictEqual((yield* connection.state)._tag, "Ready")
      yield* TestClock.adjust("1 millis")
      yield* waitUntil(connection.state, (s) => s._tag === "Reconnecting")
      assert.strictEqual(yield* heartbeat.consecutiveFailures, 2)
      assert.strictEqual(failures, 2)
      yield* server.resume
    }))

  it.effect("a freeze before the first beat completes is detected within interval x misses + timeout too", () =>
    Effect.gen(function*() {
      const { connection, server } = yield* readyConnection({ debounce: "1 hour" })
      const heartbeat = yield* Heartbeat.make(connection, policy)
      // Frozen at t = 0: PINGs at 1 s and 2 s time out at 1.5 s and 2.5 s (a grid anchored at the end of the first
      // beat would put the second PING at 2.5 s and notice at 3 s).
      yield* server.pause
      yield* TestClock.adjust("1 second")
      yield* sleepReal(20)
      yield* TestClock.adjust("1 second")
      yield* sleepReal(20)
      yield* TestClock.adjust("499 millis")
      yield* sleepReal(20)
      assert.strictEqual(yield* heartbeat.consecutiveFailures, 1)
      assert.strictEqual((yield* connection.state)._tag, "Ready")
      yield* TestClock.adjust("1 millis")
      yield* waitUntil(connection.state, (s) => s._tag === "Reconnecting")
      assert.strictEqual(yield* heartbeat.consecutiveFailures, 2)
      yield* server.resume
    }))

  it.effect("a successful PING on a new connection resets the miss count", () =>
    Effect.gen(function*() {
      const { connection, server } = yield* readyConnection({ debounce: "10 millis", base: "10 millis", jitter: false })
      const heartbeat = yield* Heartbeat.make(connection, { ...policy, misses: 3 })
      yield* server.pause
      yield* TestClock.adjust("1 second")
      yield* sleepReal(20)
      yield* TestClock.adjust("500 millis")
      yield* waitUntil(heartbeat.consecutiveFailures, (n) => n === 1)
      yield* server.resume
      // Replace the connection (t = 1.5 s). Beats are on a fixed grid from the start (1 s, 2 s, ...), so the next
      // beat, at t = 2 s, PINGs the new connection.
      yield* connection.invalidate(connection.current()!, new ConnectionReset({ message: "test", sent: false }))
      yield* TestClock.adjust("10 millis")
      yield* waitUntil(connection.state, (s) => s._tag === "Ready")
      yield* TestClock.adjust("480 millis")
      yield* sleepReal(20)
      assert.strictEqual(yield* heartbeat.consecutiveFailures, 1)
      assert.isTrue(Option.isNone(yield* heartbeat.rtt))
      yield* TestClock.adjust("10 millis")
      yield* waitUntil(heartbeat.rtt, Option.isSome)
      assert.strictEqual(yield* heartbeat.consecutiveFailures, 0)
    }))
})
