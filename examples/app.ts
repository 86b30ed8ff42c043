// npm run app   (env: PORT, default 3000; REDIS_URL and REDIS_*, default an embedded redis-server;
//                OTEL_EXPORTER_OTLP_ENDPOINT to export traces, OTEL_SERVICE_NAME)
/**
 * A small HTTP service built on effect-redis-resilience the way an Effect application is composed: services in
 * layers, routes on an `HttpRouter`, one `RedisService` under everything, `NodeRuntime.runMain`.
 *
 * - `GET /visits/:page`, `POST /visits/:page`: a counter (GET, INCR). POSTs are rate limited per client by effect's
 *   `RateLimiter` on this library's connection (`RedisPersistence`): 429 with `retry-after` past the limit.
 * - `GET /products/:id`: a cached read (`RedisCache`) in front of a slow catalog; keeps answering while Redis is down
 *   (a recent copy from the in-process L1, or the catalog itself).
 * - `GET /events/:room`: Server-Sent Events from `RedisSubscriber`; `POST /messages/:room` publishes the body (text).
 * - `GET /metrics`: effect's metrics, the layer's `redis_*` series among them, in the Prometheus text format.
 * - `GET /health/ready` (200 while Redis is usable, else 503) and `GET /health/live`: `RedisHealthCheck.layerHttp`.
 *
 * `layer(options)` is the whole service on a port (for tests); `App` is the same without the HTTP server and Redis
 * layers, which `main` picks from the environment. Redis trouble never takes a route down with a stack trace: every
 * Redis error becomes a 503 naming its tag, and the body never carries a Redis URL, password or key.
 */
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Clock, Config, Context, Duration, Effect, Layer, Option, Schema, Stream } from "effect"
import { FetchHttpClient, HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { OtlpSerialization, OtlpTracer, PrometheusMetrics } from "effect/observability"
import { RateLimiter } from "effect/persistence"
import { createServer } from "node:http"
import {
  type ConnectionTimeout,
  InvalidChannelName,
  type InvalidRedisOptions,
  isRedisError,
  RedisCache,
  RedisChannel,
  RedisConfig,
  type RedisError,
  RedisHealthCheck,
  type RedisOptions,
  RedisPersistence,
  RedisService,
  RedisSubscriber,
  type SubscriptionEvent
} from "../src/index.ts"
import { RedisTestServer } from "../src/testing/index.ts"

/** Options of the service. */
export interface AppOptions {
  /** Default 3000; 0 picks a free port (read it from `HttpServer.address`). */
  readonly port?: number | undefined
  /** Default: every interface. */
  readonly host?: string | undefined
  /** Options of `RedisService` (used by `layer`; `main` reads the environment). */
  readonly redis?: RedisOptions | undefined
  /** POSTs to /visits per client and window. Default 20 per 10 seconds. */
  readonly rateLimit?: { readonly limit: number; readonly window: Duration.Input } | undefined
  /** How long one catalog lookup takes (the "database" behind the cache). Default 50 ms. */
  readonly catalogLatency?: Duration.Input | undefined
  /** Request and listen logs. Default true. */
  readonly log?: boolean | undefined
}

/** What `main` uses unless the environment says otherwise: back within a second or so of Redis returning. */
export const redisDefaults = {
  reconnect: { cap: "1 second" },
  breaker: { openDuration: "500 millis", maxOpenDuration: "2 seconds" }
} satisfies RedisOptions

// --- the catalog and its cache --------------------------------------------------------------------------------------

/** A product as the catalog returns it; `loadedAt` (epoch ms) tells a cached copy from a fresh lookup. */
export const Product = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  cents: Schema.Int,
  loadedAt: Schema.Int
})
export type Product = typeof Product.Type

export class ProductNotFound extends Schema.TaggedError<ProductNotFound>()("ProductNotFound", {
  id: Schema.String
}) {}

/** The slow source of truth the cache is in front of (a database in a real service). */
export class Catalog extends Context.Service<Catalog, {
  readonly lookup: (id: string) => Effect.Effect<Product, ProductNotFound>
}>()("examples/app/Catalog") {
  static readonly layer = (options: AppOptions = {}) =>
    Layer.succeed(Catalog)({
      lookup: (id) =>
        Effect.gen(function*() {
          yield* Effect.sleep(options.catalogLatency ?? "50 millis")
          const n = Number(id)
          if (!Number.isInteger(n) || n < 1 || n > 1000) return yield* new ProductNotFound({ id })
          return { id, name: `Product ${n}`, cents: 100 * n + 99, loadedAt: yield* Clock.currentTimeMillis }
        })
    })
}

/** Products through a `RedisCache`: Redis for every instance, a small L1 that also serves while Redis is down. */
export class Products extends Context.Service<Products, {
  readonly get: (id: string) => Effect.Effect<Product, ProductNotFound>
}>()("examples/app/Products") {
  static readonly layer = Layer.effect(
    Products,
    Effect.gen(function*() {
      const catalog = yield* Catalog
      const cache = yield* RedisCache.make({
        prefix: "app:product",
        schema: Product,
        ttl: "5 minutes",
        l1: { capacity: 1_000, ttl: "5 seconds" },
        // While Redis is down, a copy up to an hour old beats a lookup per request.
        staleWhileDown: "1 hour",
        // A frozen Redis must not hold a page for a whole commandTimeout.
        redisTimeout: "100 millis"
      })
      return Products.of({ get: (id) => cache.get(id, catalog.lookup(id)) })
    })
  )
}

// --- chat rooms: typed channels -------------------------------------------------------------------------------------

export const ChatMessage = Schema.Struct({ text: Schema.String, at: Schema.Int })
export type ChatMessage = typeof ChatMessage.Type

/** The typed channel of a room (`app:room:<name>`); a bad name is an `InvalidChannelName`, never a glob. */
const roomChannel = (room: string) =>
  Effect.try({
    try: () => RedisChannel.make({ name: ["app", "room", room], schema: ChatMessage }),
    catch: (error) =>
      error instanceof InvalidChannelName ? error : new InvalidChannelName({ message: String(error), name: room })
  })

const frame = (data: string, event?: string): string =>
  `${event === undefined ? "" : `event: ${event}\n`}data: ${data}\n\n`

const eventFrame = (event: SubscriptionEvent<ChatMessage>): string => {
  switch (event._tag) {
    case "Message":
      return frame(JSON.stringify(event.message))
    case "Gap":
      // Pub/sub lost what was published meanwhile: the page should say so (or reload from a log, see sse-server.ts).
      return frame(JSON.stringify({ reason: event.reason }), "gap")
    case "Resubscribed":
      return frame("{}", "resubscribed")
    case "Invalid":
      return frame(JSON.stringify({ error: "a message did not match the schema" }), "invalid")
  }
}

/** A room's SSE body: a `retry:` hint, its messages, the delivery mode, and keep-alive comments for proxies. */
const roomEvents = (subscriber: RedisSubscriber["Service"], channel: RedisChannel.RedisChannel<ChatMessage>) =>
  Stream.concat(
    Stream.succeed("retry: 2000\n\n"),
    Stream.merge(
      subscriber.events(channel).pipe(
        Stream.map(eventFrame),
        // The subscription itself failed: say so and end, so that EventSource reconnects.
        Stream.orElseSucceed((error) => frame(JSON.stringify({ error: error._tag }), "error"))
      ),
      Stream.merge(
        Stream.map(subscriber.mode, (mode) => frame(mode, "mode")),
        Stream.tick("15 seconds").pipe(Stream.drop(1), Stream.as(": keep-alive\n\n"))
      ),
      { haltStrategy: "left" }
    )
  )

// --- routes ---------------------------------------------------------------------------------------------------------

const NAME = /^[A-Za-z0-9_-]{1,64}$/
const maxBody = 16 * 1024

const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
  HttpServerResponse.jsonUnsafe(body, { status, headers })

const seconds = (duration: Duration.Duration) => Math.max(1, Math.ceil(Duration.toSeconds(duration)))

/**
 * A Redis failure as an answer: its tag only (messages can name keys). A reply error is a bug here (500); anything
 * else means Redis is unavailable for now (503, with a hint when to come back).
 */
const unavailable = (error: RedisError) =>
  error._tag === "ReplyError"
    ? json({ error: error._tag }, 500)
    : json({ error: error._tag }, 503, {
      "retry-after": error._tag === "CircuitOpen" ? String(seconds(error.retryAfter)) : "1"
    })

const param = (name: string) =>
  Effect.map(HttpRouter.params, (params) => Option.liftPredicate(params[name] ?? "", (value) => NAME.test(value)))

/** The counter: `GET` reads it, `POST` increments it (rate limited per client). */
const VisitRoutes = (options: AppOptions) =>
  HttpRouter.use(Effect.fnUntraced(function*(router) {
    const redis = yield* RedisService
    const limiter = yield* RateLimiter.RateLimiter
    const { limit, window } = options.rateLimit ?? { limit: 20, window: "10 seconds" }
    const key = (page: string) => `app:visits:${page}`

    yield* router.add(
      "GET",
      "/visits/:page",
      Effect.gen(function*() {
        const page = yield* param("page")
        if (Option.isNone(page)) return json({ error: "page must be 1-64 letters, digits, _ or -" }, 400)
        const visits = yield* redis.get(key(page.value))
        return json({ page: page.value, visits: Number(Option.getOrElse(visits, () => "0")) })
      }).pipe(Effect.catchIf(isRedisError, (error) => Effect.succeed(unavailable(error))))
    )

    yield* router.add(
      "POST",
      "/visits/:page",
      Effect.gen(function*() {
        const page = yield* param("page")
        if (Option.isNone(page)) return json({ error: "page must be 1-64 letters, digits, _ or -" }, 400)
        const request = yield* HttpServerRequest.HttpServerRequest
        const client = Option.getOrElse(request.remoteAddress, () => "unknown")
        const exceeded = yield* limiter.consume({ key: `visits:${client}`, limit, window, onExceeded: "fail" }).pipe(
          Effect.as(Option.none<Duration.Duration>()),
          Effect.catchTag("RateLimiterError", ({ reason }) =>
            reason._tag === "RateLimitExceeded"
              ? Effect.succeed(Option.some(reason.retryAfter))
              // The limiter's store is Redis: while it is unavailable, let requests through rather than refuse all.
              : Effect.as(Effect.logWarning("Rate limiter store unavailable: request allowed"), Option.none())
          )
        )
        if (Option.isSome(exceeded)) {
          const retryAfter = seconds(exceeded.value)
          return json({ error: "RateLimitExceeded", limit, retryAfterSeconds: retryAfter }, 429, {
            "retry-after": String(retryAfter)
          })
        }
        const visits = yield* redis.incr(key(page.value))
        return json({ page: page.value, visits })
      }).pipe(Effect.catchIf(isRedisError, (error) => Effect.succeed(unavailable(error))))
    )
  }))

/** The cached read. */
const ProductRoutes = HttpRouter.use(Effect.fnUntraced(function*(router) {
  const products = yield* Products
  yield* router.add(
    "GET",
    "/products/:id",
    Effect.gen(function*() {
      const id = yield* param("id")
      if (Option.isNone(id)) return json({ error: "id must be 1-64 letters, digits, _ or -" }, 404)
      return json(yield* products.get(id.value))
    }).pipe(Effect.catchTag("ProductNotFound", () => Effect.succeed(json({ error: "ProductNotFound" }, 404))))
  )
}))

/** Chat rooms over pub/sub. */
const RoomRoutes = HttpRouter.use(Effect.fnUntraced(function*(router) {
  const redis = yield* RedisService
  const subscriber = yield* RedisSubscriber
  const room = Effect.flatMap(param("room"), (name) =>
    Option.isNone(name)
      ? Effect.fail(new InvalidChannelName({ message: "room must be 1-64 letters, digits, _ or -", name: "" }))
      : roomChannel(name.value))
  const badRoom = (error: InvalidChannelName) => Effect.succeed(json({ error: error.message }, 400))

  yield* router.add(
    "GET",
    "/events/:room",
    Effect.map(room, (channel) =>
      HttpServerResponse.stream(Stream.encodeText(roomEvents(subscriber, channel)), {
        contentType: "text/event-stream",
        headers: { "cache-control": "no-cache", "x-accel-buffering": "no" }
      })).pipe(Effect.catchTag("InvalidChannelName", badRoom))
  )

  yield* router.add(
    "POST",
    "/messages/:room",
    Effect.gen(function*() {
      const channel = yield* room
      const request = yield* HttpServerRequest.HttpServerRequest
      const text = yield* request.text
      if (Buffer.byteLength(text) > maxBody) return json({ error: "message too large" }, 413)
      const receivers = yield* RedisChannel.publish(channel, { text, at: yield* Clock.currentTimeMillis }).pipe(
        Effect.provideService(RedisService, redis)
      )
      return json({ receivers })
    }).pipe(
      Effect.catchTag("InvalidChannelName", badRoom),
      Effect.catchTag("HttpServerError", () => Effect.succeed(json({ error: "could not read the body" }, 400))),
      Effect.catchIf(isRedisError, (error) => Effect.succeed(unavailable(error)))
    )
  )
}))

const IndexRoute = HttpRouter.add(
  "GET",
  "/",
  HttpServerResponse.text(
    [
      "GET  /visits/:page       POST /visits/:page (rate limited)",
      "GET  /products/:id       (cached)",
      "GET  /events/:room       (SSE)    POST /messages/:room (text body)",
      "GET  /metrics            GET  /health/ready    GET /health/live",
      ""
    ].join("\n")
  )
)

// --- layers ---------------------------------------------------------------------------------------------------------

/** Every route. */
export const routes = (options: AppOptions = {}) =>
  Layer.mergeAll(
    IndexRoute,
    VisitRoutes(options),
    ProductRoutes,
    RoomRoutes,
    PrometheusMetrics.layerHttp(),
    RedisHealthCheck.layerHttp()
  )

/** The services behind the routes; they need `RedisService`. One subscriber connection serves SSE and persistence. */
export const services = (options: AppOptions = {}) => {
  const rateLimiter = RateLimiter.layer.pipe(
    Layer.provide(RateLimiter.layerStoreRedis({ prefix: "app:ratelimit:" })),
    Layer.provide(RedisPersistence.layer)
  )
  return Layer.mergeAll(Products.layer.pipe(Layer.provide(Catalog.layer(options))), rateLimiter).pipe(
    Layer.provideMerge(RedisSubscriber.layer)
  )
}

/** The service without its HTTP server and Redis layers: it needs `HttpServer` and `RedisService`. */
export const App = (options: AppOptions = {}) => {
  const log = options.log ?? true
  return HttpRouter.serve(routes(options), { disableLogger: !log, disableListenLog: !log }).pipe(
    Layer.provide(services(options))
  )
}

const httpServer = (options: AppOptions) =>
  NodeHttpServer.layer(createServer, {
    port: options.port ?? 3000,
    ...(options.host === undefined ? {} : { host: options.host }),
    // Open SSE streams never end by themselves: do not wait long for them on shutdown.
    gracefulShutdownTimeout: "1 second"
  })

/** The whole service on a port, with `RedisService.layer(options.redis)`. Build it in a scope, or `Layer.launch` it. */
export const layer = (options: AppOptions = {}) =>
  App(options).pipe(
    Layer.provideMerge(httpServer(options)),
    Layer.provideMerge(RedisService.layer({ ...redisDefaults, ...options.redis }))
  )

/**
 * OTLP/HTTP trace export when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (spans go to `<endpoint>/v1/traces`, service name
 * `OTEL_SERVICE_NAME`); nothing otherwise. Every request gets a span, and every Redis command a child span of it.
 */
export const Tracing = Layer.unwrap(Effect.gen(function*() {
  const endpoint = yield* Config.option(Config.URL("OTEL_EXPORTER_OTLP_ENDPOINT"))
  if (Option.isNone(endpoint)) return Layer.empty
  const serviceName = yield* Config.String("OTEL_SERVICE_NAME").pipe(Config.withDefault("effect-redis-resilience-app"))
  const url = new URL(endpoint.value)
  url.pathname = `${url.pathname.replace(/\/$/, "")}/v1/traces`
  // The origin only: an endpoint URL may carry credentials.
  yield* Effect.log(`Tracing: OTLP/HTTP to ${url.origin} as ${serviceName}`)
  return OtlpTracer.layer({ url: url.href, resource: { serviceName } }).pipe(
    Layer.provide(OtlpSerialization.layerJson),
    Layer.provide(FetchHttpClient.layer)
  )
}))

// --- main -----------------------------------------------------------------------------------------------------------

const main = Effect.gen(function*() {
  const port = yield* Config.Port("PORT").pipe(Config.withDefault(3000))
  const url = yield* Config.option(Config.NonEmptyString("REDIS_URL"))
  const embedded = Option.isSome(url) ? undefined : yield* RedisTestServer.make()
  // Where Redis is, never the URL itself: it may carry a password.
  yield* Effect.log(
    embedded === undefined
      ? "Redis: REDIS_URL"
      : `Redis: embedded redis-server on ${embedded.host}:${embedded.port} (set REDIS_URL to use another)`
  )
  const redis: Layer.Layer<RedisService, InvalidRedisOptions | ConnectionTimeout | Config.ConfigError> =
    embedded === undefined
      // REDIS_URL and every REDIS_* variable, over the defaults above.
      ? RedisService.layerConfig(RedisConfig.config.pipe(Config.map((env) => ({ ...redisDefaults, ...env }))))
      : RedisService.layer({ ...redisDefaults, url: embedded.url })
  return yield* Layer.launch(App().pipe(
    Layer.provide(httpServer({ port })),
    Layer.provide(redis),
    Layer.provide(Tracing)
  ))
})

if (import.meta.main) NodeRuntime.runMain(Effect.scoped(main))
