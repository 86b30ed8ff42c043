/**
 * RedisHealthCheck: what counts as ready, and the bound on every answer. The layer's snapshot is in memory, so the
 * timeout can only be reached with a `RedisService` whose `health` hangs: a stand-in that has nothing but `health`
 * shows it (nothing else of the service is touched). The routes against a real server are in test/app.test.ts.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Layer, Option } from "effect"
import { HttpRouter, HttpServer } from "effect/http"
import { TestClock } from "effect/testing"
import { type RedisHealth, RedisHealthCheck, RedisService, type RedisServiceShape } from "../src/index.ts"

const snapshot = (overrides: Partial<RedisHealth> = {}): RedisHealth => ({
  connection: "ready",
  circuit: "closed",
  reconnects: 2,
  connectionsOpened: 3,
  heartbeatRtt: Option.some(Duration.millis(1.5)),
  consecutiveHeartbeatFailures: 0,
  nodeRecoveries: 0,
  topology: "standalone",
  nodes: [{ address: "127.0.0.1:6379", role: "master", status: "ready" }],
  ...overrides
})

const withHealth = (health: Effect.Effect<RedisHealth>) =>
  Layer.succeed(RedisService)({ health } as unknown as RedisServiceShape)

describe("RedisHealthCheck", () => {
  it.effect("ready only with the connection ready and the circuit closed; live until the layer closed", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [Partial<RedisHealth>, boolean, boolean]> = [
        [{}, true, true],
        [{ circuit: "half-open" }, false, true],
        [{ circuit: "open" }, false, true],
        [{ connection: "reconnecting" }, false, true],
        [{ connection: "connecting" }, false, true],
        [{ connection: "closed" }, false, false]
      ]
      for (const [overrides, ready, live] of cases) {
        const health = snapshot(overrides)
        const layer = withHealth(Effect.succeed(health))
        const readiness = yield* RedisHealthCheck.ready.pipe(Effect.provide(layer))
        assert.deepStrictEqual(readiness, { ok: ready, health }, JSON.stringify(overrides))
        assert.strictEqual(yield* RedisHealthCheck.live.pipe(Effect.provide(layer)), live, JSON.stringify(overrides))
      }
    }))

  it.effect("a snapshot that does not come: not ready and not live after the timeout (TestClock)", () =>
    Effect.gen(function*() {
      const layer = withHealth(Effect.never)
      const ready = yield* RedisHealthCheck.ready.pipe(Effect.provide(layer), Effect.forkChild)
      const live = yield* RedisHealthCheck.liveWith({ timeout: "2 seconds" }).pipe(
        Effect.provide(layer),
        Effect.forkChild
      )
      yield* Effect.yieldNow
      yield* TestClock.adjust("499 millis")
      assert.isUndefined(ready.pollUnsafe(), "still waiting at 499 ms")
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(yield* Fiber.join(ready), { ok: false, health: undefined })
      yield* TestClock.adjust("1500 millis")
      assert.isFalse(yield* Fiber.join(live))
    }))

  it.effect("toJson lists the fields one by one, the RTT in milliseconds", () =>
    Effect.sync(() => {
      assert.deepStrictEqual(RedisHealthCheck.toJson(snapshot({ heartbeatRtt: Option.none() })), {
        connection: "ready",
        circuit: "closed",
        reconnects: 2,
        connectionsOpened: 3,
        heartbeatRttMillis: null,
        consecutiveHeartbeatFailures: 0,
        nodeRecoveries: 0,
        topology: "standalone",
        nodes: [{ address: "127.0.0.1:6379", role: "master", status: "ready" }]
      })
      assert.strictEqual(RedisHealthCheck.toJson(snapshot()).heartbeatRttMillis, 1.5)
    }))

  it.live("layerHttp: 200 / 503 with JSON bodies, and a hanging snapshot answered 503 within the timeout", () =>
    Effect.gen(function*() {
      let health: Effect.Effect<RedisHealth> = Effect.succeed(snapshot())
      const routes = RedisHealthCheck.layerHttp({ path: "/probe", timeout: "100 millis" }).pipe(
        Layer.provide(withHealth(Effect.suspend(() => health))),
        Layer.provide(HttpServer.layerServices)
      )
      const { dispose, handler } = HttpRouter.toWebHandler(routes, { disableLogger: true })
      yield* Effect.addFinalizer(() => Effect.promise(dispose))
      const get = (path: string) =>
        Effect.promise(async () => {
          const started = Date.now()
          const response = await handler(new Request(`http://localhost${path}`))
          const text = await response.text()
          return {
            status: response.status,
            cache: response.headers.get("cache-control"),
            body: (text === "" ? undefined : JSON.parse(text)) as any,
            millis: Date.now() - started
          }
        })

      const ready = yield* get("/probe/ready")
      assert.strictEqual(ready.status, 200)
      assert.strictEqual(ready.cache, "no-store")
      assert.deepStrictEqual(ready.body, { status: "ready", redis: RedisHealthCheck.toJson(snapshot()) })
      assert.deepStrictEqual((yield* get("/probe/live")).body, { status: "live" })

      health = Effect.succeed(snapshot({ connection: "reconnecting", circuit: "open", nodes: [] }))
      const down = yield* get("/probe/ready")
      assert.strictEqual(down.status, 503)
      assert.strictEqual(down.body.status, "unavailable")
      assert.strictEqual(down.body.redis.circuit, "open")
      assert.strictEqual((yield* get("/probe/live")).status, 200)

      health = Effect.never
      const hanging = yield* get("/probe/ready")
      assert.deepStrictEqual({ status: hanging.status, body: hanging.body }, {
        status: 503,
        body: { status: "unavailable", redis: null }
      })
      assert.isBelow(hanging.millis, 1_000)
      assert.deepStrictEqual((yield* get("/probe/live")).body, { status: "stopped" })
      assert.strictEqual((yield* get("/health/ready")).status, 404, "only under the path given")
    }).pipe(Effect.scoped))
})
