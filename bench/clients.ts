/**
 * The clients under test, each built in the benchmark's scope on its own connection to the same `redis-server`:
 * raw ioredis promises, a bare `Effect.tryPromise` wrapper of ioredis, this library's layer with its defaults,
 * `@effect/platform-node`'s NodeRedis (node-redis underneath), and ioredis behind cockatiel's and opossum's circuit
 * breakers; raw ioredis, the bare wrapper and this layer also with ioredis auto-pipelining; and this layer's typed
 * commands (`redis.run(Command.get(k))`, `redis.run(Command.set(k, v))`) on a layer of their own.
 *
 * A client whose package is missing is `Unavailable` with the reason, so the tables say so instead of a number.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { Redis, type RedisOptions } from "ioredis"
import { Command, RedisService } from "../src/index.ts"
import type { RedisOptions as LayerOptions, RedisServiceShape } from "../src/index.ts"

/**
 * A client that is measured through promises (plain async code, as its users would call it).
 *
 * @since 0.1.0
 * @category models
 */
export interface PromiseClient {
  readonly _tag: "Promise"
  readonly id: string
  readonly label: string
  readonly get: (key: string) => Promise<unknown>
  readonly set: (key: string, value: string) => Promise<unknown>
  /** Measured only from this concurrency up (auto-pipelining does nothing for one caller). */
  readonly minConcurrency: number
}

/**
 * A client that is measured through Effects, run by the same fibers and loop for every Effect client.
 *
 * @since 0.1.0
 * @category models
 */
export interface EffectClient {
  readonly _tag: "Effect"
  readonly id: string
  readonly label: string
  readonly get: (key: string) => Effect.Effect<unknown, unknown>
  readonly set: (key: string, value: string) => Effect.Effect<unknown, unknown>
  readonly minConcurrency: number
}

/**
 * A client that could not be built, and why.
 *
 * @since 0.1.0
 * @category models
 */
export interface Unavailable {
  readonly _tag: "Unavailable"
  readonly id: string
  readonly label: string
  readonly reason: string
  readonly minConcurrency: number
}

/**
 * @since 0.1.0
 * @category models
 */
export type Client = PromiseClient | EffectClient | Unavailable

/**
 * Where the clients connect.
 *
 * @since 0.1.0
 * @category models
 */
export interface Target {
  readonly host: string
  readonly port: number
  readonly url: string
}

/**
 * The command timeout given to the breakers that have one (opossum), the same as the layer's default.
 *
 * @since 0.1.0
 * @category constants
 */
export const commandTimeoutMillis = 2_000

const describe = (cause: unknown): string => cause instanceof Error ? cause.message : String(cause)

const unavailable = (id: string, label: string, reason: string, minConcurrency = 1): Unavailable => ({
  _tag: "Unavailable",
  id,
  label,
  reason,
  minConcurrency
})

const missingPackage = (name: string, cause: unknown) =>
  `not run: package "${name}" could not be loaded (${describe(cause)}); run npm install`

/**
 * An ioredis client with ioredis' defaults plus `options`, connected, and disconnected when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const ioredis = (target: Target, options: Omit<RedisOptions, "replyMapping"> = {}) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const client = new Redis<"legacy">({ ...options, host: target.host, port: target.port, lazyConnect: true })
      // Without a listener ioredis prints every socket error; the benchmark counts failures itself.
      client.on("error", () => {})
      await client.connect()
      return client
    }),
    (client) => Effect.sync(() => client.disconnect())
  )

const rawClient = (id: string, label: string, client: Redis, minConcurrency: number): PromiseClient => ({
  _tag: "Promise",
  id,
  label,
  get: (key) => client.get(key),
  set: (key, value) => client.set(key, value),
  minConcurrency
})

const bareClient = (id: string, label: string, client: Redis, minConcurrency: number): EffectClient => ({
  _tag: "Effect",
  id,
  label,
  get: (key) => Effect.tryPromise({ try: () => client.get(key), catch: (cause) => cause }),
  set: (key, value) => Effect.tryPromise({ try: () => client.set(key, value), catch: (cause) => cause }),
  minConcurrency
})

/**
 * This layer's service, built from `RedisService.layer(options)` in the current scope (through the public surface
 * only: the service's shape, not its constructor).
 *
 * @since 0.1.0
 * @category constructors
 */
export const layerService = (
  options?: LayerOptions
): Effect.Effect<RedisServiceShape, Layer.Error<ReturnType<typeof RedisService.layer>>, Scope.Scope> =>
  Effect.map(Layer.build(RedisService.layer(options)), (context) => Context.get(context, RedisService))

const layerClient = Effect.fnUntraced(function*(
  target: Target,
  id: string,
  label: string,
  options: { readonly autoPipelining: boolean; readonly typed?: boolean; readonly minConcurrency: number }
) {
  const redis = yield* layerService({ url: target.url, awaitReady: true, autoPipelining: options.autoPipelining })
  return {
    _tag: "Effect",
    id,
    label,
    // Typed commands: the same operation built as a `Command` value and sent through `run`.
    get: options.typed === true ? (key) => redis.run(Command.get(key)) : (key) => redis.get(key),
    set: options.typed === true
      ? (key, value) => redis.run(Command.set(key, value))
      : (key, value) => redis.set(key, value),
    minConcurrency: options.minConcurrency
  } satisfies EffectClient as Client
})

const nodeRedisClient = (target: Target): Effect.Effect<Client, never, Scope.Scope> =>
  Effect.gen(function*() {
    const label = "NodeRedis (node-redis)"
    const modules = yield* Effect.tryPromise(() =>
      Promise.all([import("@effect/platform-node/NodeRedis"), import("effect/persistence/Redis")])
    ).pipe(Effect.result)
    if (modules._tag === "Failure") {
      return unavailable("node-redis", label, missingPackage("redis / @effect/platform-node", modules.failure.cause))
    }
    const [NodeRedis, PersistenceRedis] = modules.success
    const context = yield* Layer.build(NodeRedis.layer({ url: target.url })).pipe(Effect.result)
    if (context._tag === "Failure") {
      return unavailable("node-redis", label, `not run: NodeRedis.layer failed: ${describe(context.failure.cause)}`)
    }
    const redis = Context.get(context.success, PersistenceRedis.Redis)
    return {
      _tag: "Effect",
      id: "node-redis",
      label,
      get: (key) => redis.send("GET", key),
      set: (key, value) => redis.send("SET", key, value),
      minConcurrency: 1
    } satisfies EffectClient as Client
  })

const cockatielClient = (target: Target) =>
  Effect.gen(function*() {
    const label = "ioredis + cockatiel breaker"
    const loaded = yield* Effect.result(Effect.tryPromise(() => import("cockatiel")))
    if (loaded._tag === "Failure") {
      return unavailable("cockatiel", label, missingPackage("cockatiel", loaded.failure.cause))
    }
    const { circuitBreaker, ConsecutiveBreaker, handleAll } = loaded.success
    const client = yield* ioredis(target)
    // The layer's breaker settings: open after 5 consecutive failures, half-open after 1 s.
    const breaker = circuitBreaker(handleAll, { halfOpenAfter: 1_000, breaker: new ConsecutiveBreaker(5) })
    return {
      _tag: "Promise",
      id: "cockatiel",
      label,
      get: (key) => breaker.execute(() => client.get(key)),
      set: (key, value) => breaker.execute(() => client.set(key, value)),
      minConcurrency: 1
    } satisfies PromiseClient as Client
  })

const opossumClient = (target: Target) =>
  Effect.gen(function*() {
    const label = "ioredis + opossum breaker"
    const loaded = yield* Effect.result(Effect.tryPromise(() => import("opossum")))
    if (loaded._tag === "Failure") return unavailable("opossum", label, missingPackage("opossum", loaded.failure.cause))
    const CircuitBreaker = loaded.success.default
    const client = yield* ioredis(target)
    // opossum's defaults, except the timeout and reset period, which are the layer's (2 s command timeout, 1 s open).
    const breaker = yield* Effect.acquireRelease(
      Effect.sync(() =>
        new CircuitBreaker((run: () => Promise<unknown>) => run(), {
          timeout: commandTimeoutMillis,
          resetTimeout: 1_000
        })
      ),
      (breaker) => Effect.sync(() => breaker.shutdown())
    )
    return {
      _tag: "Promise",
      id: "opossum",
      label,
      get: (key) => breaker.fire(() => client.get(key)),
      set: (key, value) => breaker.fire(() => client.set(key, value)),
      minConcurrency: 1
    } satisfies PromiseClient as Client
  })

/**
 * Builds every client in the current scope, in table order.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeAll = Effect.fnUntraced(function*(target: Target) {
  const raw = yield* ioredis(target)
  const rawPipelined = yield* ioredis(target, { enableAutoPipelining: true })
  const bare = yield* ioredis(target)
  const barePipelined = yield* ioredis(target, { enableAutoPipelining: true })
  const clients: Array<Client> = [
    rawClient("raw", "raw ioredis", raw, 1),
    bareClient("bare", "bare Effect.tryPromise", bare, 1),
    yield* layerClient(target, "layer", "this layer (defaults)", { autoPipelining: false, minConcurrency: 1 }),
    yield* layerClient(target, "layer-typed", "this layer, typed: run(Command.get/set)", {
      autoPipelining: false,
      typed: true,
      minConcurrency: 1
    }),
    yield* nodeRedisClient(target),
    yield* cockatielClient(target),
    yield* opossumClient(target),
    rawClient("raw-ap", "raw ioredis, auto-pipelining", rawPipelined, 2),
    bareClient("bare-ap", "bare Effect.tryPromise, auto-pipelining", barePipelined, 2),
    yield* layerClient(target, "layer-ap", "this layer, autoPipelining: true", { autoPipelining: true, minConcurrency: 2 })
  ]
  return clients
})
