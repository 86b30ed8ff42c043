/**
 * The connection's reconnect loop under TestClock, against a real redis-server: the delay sequence of the reconnect
 * schedule, the cap, the reset after a ready connection, and the debounce of failure signals.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import * as Connection from "../src/Connection.ts"
import * as RedisConfig from "../src/RedisConfig.ts"
import { ConnectionReset } from "../src/RedisError.ts"
import * as RedisTestServer from "../src/testing/RedisTestServer.ts"
import { sleepReal, waitUntil } from "./helpers.ts"

const config = (url: string) =>
  RedisConfig.resolve({
    url,
    heartbeat: false,
    reconnect: { base: "100 millis", factor: 2, cap: "400 millis", jitter: false, debounce: "50 millis" }
  })

const reset = new ConnectionReset({ message: "test signal", sent: false })

const isReconnecting = (attempt: number, delayMillis: number) => (state: Connection.ConnectionState) =>
  state._tag === "Reconnecting" && state.attempt === attempt &&
  Math.round(state.nextDelay.value._tag === "Millis" ? state.nextDelay.value.millis : -1) === delayMillis

describe("Connection (TestClock + real redis-server)", () => {
  it.effect("20 failure signals inside the debounce window lead to exactly one reconnect attempt", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const connection = yield* Connection.make(yield* config(server.url))
      yield* waitUntil(connection.state, (s) => s._tag === "Ready")
      assert.strictEqual(yield* connection.attempts, 1)
      const live = connection.current()!
      for (let i = 0; i < 10; i++) yield* connection.invalidate(live, reset)
      yield* TestClock.adjust("25 millis")
      for (let i = 0; i < 10; i++) yield* connection.invalidate(live, reset)
      assert.isUndefined(connection.current())
      yield* TestClock.adjust("24 millis")
      yield* sleepReal(20)
      assert.strictEqual(yield* connection.attempts, 1, "no attempt inside the window")
      yield* TestClock.adjust("1 millis")
      yield* waitUntil(connection.state, (s) => s._tag === "Ready")
      assert.strictEqual(yield* connection.attempts, 2)
      assert.strictEqual(yield* connection.reconnects, 1)
      assert.strictEqual(yield* connection.connectionsOpened, 2)
      // A late signal about the old connection changes nothing.
      yield* connection.invalidate(live, reset)
      yield* TestClock.adjust("1 second")
      yield* sleepReal(20)
      assert.strictEqual(yield* connection.attempts, 2)
      assert.strictEqual((yield* connection.state)._tag, "Ready")
    }))

  it.effect(
    "attempts follow the schedule (100, 200, 400, 400 ms) and it restarts from base after a ready connection",
    () =>
      Effect.gen(function*() {
        const server = yield* RedisTestServer.make()
        yield* server.stop
        const connection = yield* Connection.make(yield* config(server.url))
        // The first attempt is refused at once (real ECONNREFUSED).
        yield* waitUntil(connection.state, isReconnecting(1, 100))
        for (const [attempt, delay] of [[2, 200], [3, 400], [4, 400]] as const) {
          const previous = attempt === 2 ? 100 : attempt === 3 ? 200 : 400
          yield* TestClock.adjust(previous - 1)
          yield* sleepReal(10)
          assert.strictEqual(yield* connection.attempts, attempt - 1, `no attempt before ${previous} ms`)
          yield* TestClock.adjust(1)
          yield* waitUntil(connection.state, isReconnecting(attempt, delay))
        }
        yield* server.start
        yield* TestClock.adjust(400)
        yield* waitUntil(connection.state, (s) => s._tag === "Ready")
        assert.strictEqual(yield* connection.attempts, 5)
        // Lose it again with the server down: after the debounce the first delay is base again, not the cap.
        yield* server.stop
        yield* waitUntil(connection.state, (s) => s._tag === "Reconnecting" && s.attempt === 0)
        yield* TestClock.adjust(50)
        yield* waitUntil(connection.state, isReconnecting(1, 100))
        assert.strictEqual(yield* connection.attempts, 6)
      })
  )

  it.effect("closing the scope closes the socket and marks the state closed", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const cfg = yield* config(server.url)
      const states = yield* Effect.scoped(Effect.gen(function*() {
        const connection = yield* Connection.make(cfg)
        yield* waitUntil(connection.state, (s) => s._tag === "Ready")
        assert.strictEqual(yield* server.clientCount, 1)
        return connection
      }))
      assert.strictEqual((yield* states.state)._tag, "Closed")
      assert.strictEqual(yield* states.reconnects, 0, "closing is not a reconnect")
      yield* waitUntil(server.clientCount, (n) => n === 0)
      const error = yield* Effect.flip(states.acquire("GET"))
      assert.strictEqual(error._tag, "ConnectionClosed")
    }))

  it.effect("acquire waits at most acquireTimeout for a ready connection (TestClock)", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      yield* server.stop
      const cfg = yield* RedisConfig.resolve({ url: server.url, heartbeat: false, acquireTimeout: "1 second" })
      const connection = yield* Connection.make(cfg)
      const waiting = yield* Effect.forkChild(Effect.flip(connection.acquire("GET")))
      yield* Effect.yieldNow
      yield* TestClock.adjust("1 second")
      const error = yield* Fiber.join(waiting)
      assert.strictEqual(error._tag, "ConnectionTimeout")
      if (error._tag === "ConnectionTimeout") {
        assert.strictEqual(error.phase, "acquire")
        assert.include(error.message, "GET was not sent")
      }
    }))
})

describe("makeClient", () => {
  it.effect("autoPipelining reaches ioredis: the Redis client, or the Cluster (not its node connections)", () =>
    Effect.gen(function*() {
      const standalone = Connection.makeClient(yield* RedisConfig.resolve({ autoPipelining: true }))
      assert.isTrue(standalone.options.enableAutoPipelining)
      const off = Connection.makeClient(yield* RedisConfig.resolve({}))
      assert.isFalse(off.options.enableAutoPipelining)
      const cluster = Connection.makeClient(
        yield* RedisConfig.resolve({
          autoPipelining: true,
          topology: { _tag: "Cluster", nodes: [{ host: "127.0.0.1", port: 7000 }] }
        })
      )
      assert.isTrue(cluster.options.enableAutoPipelining)
      const nodeOptions = (cluster as unknown as { options: { redisOptions: object } }).options.redisOptions
      assert.notProperty(nodeOptions, "enableAutoPipelining")
      for (const client of [standalone, off, cluster]) client.disconnect()
    }))
})
