/**
 * Readiness and liveness of the Redis layer, for load balancers and orchestrators. `ready` says whether commands would
 * run now (the connection is ready and the circuit closed), `live` whether the layer is running at all, and
 * `layerHttp` adds `GET /health/ready` (200 or 503) and `GET /health/live` to an `HttpRouter`.
 *
 * Both read the layer's in-memory state and never send anything to Redis, so they answer at once while Redis hangs;
 * a timeout bounds them anyway. The JSON bodies list the fields they show one by one: no URL, password, username or
 * key can appear in them.
 *
 * **Example**
 *
 * ```ts
 * import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
 * import { Layer } from "effect"
 * import { HttpRouter } from "effect/http"
 * import { RedisHealthCheck, RedisService } from "effect-redis-resilience"
 * import { createServer } from "node:http"
 *
 * const Server = HttpRouter.serve(RedisHealthCheck.layerHttp()).pipe(
 *   Layer.provide(RedisService.layerConfig()),
 *   Layer.provide(NodeHttpServer.layer(createServer, { port: 3000 }))
 * )
 *
 * Layer.launch(Server).pipe(NodeRuntime.runMain)
 * ```
 *
 * @since 0.2.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as HttpRouter from "effect/http/HttpRouter"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type { RedisHealth } from "./Health.ts"
import { RedisService } from "./RedisService.ts"

/**
 * The answer of `ready`.
 *
 * @since 0.2.0
 * @category models
 */
export interface Readiness {
  /** The connection is ready and the circuit closed: a command sent now would run. */
  readonly ok: boolean
  /** The layer's snapshot; `undefined` only when it did not come within the timeout (then `ok` is false). */
  readonly health: RedisHealth | undefined
}

/**
 * Options of `readyWith`, `liveWith` and `layerHttp`.
 *
 * @since 0.2.0
 * @category models
 */
export interface HealthCheckOptions {
  /** How long to wait for the layer's snapshot before answering "not ready" / "not live". Default 500 ms. */
  readonly timeout?: Duration.Input | undefined
}

const defaultTimeout: Duration.Input = "500 millis"

/**
 * Whether a snapshot means "commands would run now": connection `ready` and circuit `closed`. While the circuit is
 * half-open only its probe runs, so that is not ready either.
 *
 * @since 0.2.0
 * @category predicates
 */
export const isReady = (health: RedisHealth): boolean => health.connection === "ready" && health.circuit === "closed"

const snapshot = (timeout: Duration.Input | undefined) =>
  RedisService.use((redis) => redis.health).pipe(Effect.timeoutOption(timeout ?? defaultTimeout))

/**
 * `ready` with options.
 *
 * @since 0.2.0
 * @category health
 */
export const readyWith = (options: HealthCheckOptions = {}): Effect.Effect<Readiness, never, RedisService> =>
  Effect.map(snapshot(options.timeout), (health): Readiness =>
    Option.match(health, {
      onNone: () => ({ ok: false, health: undefined }),
      onSome: (health) => ({ ok: isReady(health), health })
    }))

/**
 * Whether Redis is usable now, with the snapshot that says so. Never fails; answers within 500 ms (`readyWith` to
 * change that) even when Redis hangs, since it reads the layer's state and sends nothing.
 *
 * @since 0.2.0
 * @category health
 */
export const ready: Effect.Effect<Readiness, never, RedisService> = readyWith()

/**
 * `live` with options.
 *
 * @since 0.2.0
 * @category health
 */
export const liveWith = (options: HealthCheckOptions = {}): Effect.Effect<boolean, never, RedisService> =>
  Effect.map(snapshot(options.timeout), Option.match({ onNone: () => false, onSome: (h) => h.connection !== "closed" }))

/**
 * Whether the layer is running: true while Redis is down, reconnecting or refused (the layer keeps trying by itself,
 * so restarting the process would not help); false once the layer's scope closed, or when its state could not be read
 * within 500 ms.
 *
 * @since 0.2.0
 * @category health
 */
export const live: Effect.Effect<boolean, never, RedisService> = liveWith()

/**
 * A snapshot as JSON, field by field (`heartbeatRtt` in milliseconds, `null` before the first PING).
 *
 * @since 0.2.0
 * @category rendering
 */
export const toJson = (health: RedisHealth) => ({
  connection: health.connection,
  circuit: health.circuit,
  reconnects: health.reconnects,
  connectionsOpened: health.connectionsOpened,
  heartbeatRttMillis: Option.getOrNull(Option.map(health.heartbeatRtt, Duration.toMillis)),
  consecutiveHeartbeatFailures: health.consecutiveHeartbeatFailures,
  nodeRecoveries: health.nodeRecoveries,
  topology: health.topology,
  nodes: health.nodes.map((node) => ({
    address: node.address,
    role: node.role,
    status: node.status,
    ...(node.circuit === undefined ? {} : { circuit: node.circuit })
  }))
})

/**
 * Options of `layerHttp`.
 *
 * @since 0.2.0
 * @category models
 */
export interface HttpOptions extends HealthCheckOptions {
  /** Where the two routes go: `${path}/ready` and `${path}/live`. Default `/health`. */
  readonly path?: `/${string}` | undefined
}

// Probes must see the state of now, never a cached answer.
const noStore = { "cache-control": "no-store" }

/**
 * Adds the two routes to an `HttpRouter`:
 *
 * - `GET /health/ready`: 200 `{ status: "ready", redis }` while `ready` holds, else 503 `{ status: "unavailable",
 *   redis }` (`redis` is `toJson` of the snapshot, `null` if it did not come within the timeout).
 * - `GET /health/live`: 200 `{ status: "live" }` while the layer runs, else 503 `{ status: "stopped" }`.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerHttp = (
  options: HttpOptions = {}
): Layer.Layer<never, never, HttpRouter.HttpRouter | RedisService> =>
  Layer.effectDiscard(Effect.gen(function*() {
    // Loaded here, not at the top: a program that never serves HTTP does not pay for loading effect's HTTP modules.
    const [Router, Response] = yield* Effect.promise(() =>
      Promise.all([import("effect/http/HttpRouter"), import("effect/http/HttpServerResponse")])
    )
    const router = yield* Router.HttpRouter
    const redis = yield* RedisService
    const path = options.path ?? "/health"
    const readiness = Effect.provideService(readyWith(options), RedisService, redis)
    const liveness = Effect.provideService(liveWith(options), RedisService, redis)
    yield* router.add(
      "GET",
      `${path}/ready`,
      Effect.map(readiness, ({ health, ok }) =>
        Response.jsonUnsafe(
          { status: ok ? "ready" : "unavailable", redis: health === undefined ? null : toJson(health) },
          { status: ok ? 200 : 503, headers: noStore }
        ))
    )
    yield* router.add(
      "GET",
      `${path}/live`,
      Effect.map(liveness, (ok) =>
        Response.jsonUnsafe({ status: ok ? "live" : "stopped" }, { status: ok ? 200 : 503, headers: noStore }))
    )
  }))
