/**
 * The example service (examples/app.ts) against a real redis-server, driven over HTTP with node's fetch: the counter,
 * the cached read, the rate limit, an SSE message, /metrics and the health routes; then with Redis stopped: ready goes
 * 503 within 2 s while live stays 200 and cached reads keep answering. Also `npm run app` itself (one command, an
 * embedded redis-server, a clean exit on SIGTERM) and the OTLP trace export.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Layer, Scope } from "effect"
import { HttpServer } from "effect/http"
import { spawn } from "node:child_process"
import * as Http from "node:http"
import * as Net from "node:net"
import * as Path from "node:path"
import * as App from "../examples/app.ts"
import * as RedisTestServer from "../src/testing/RedisTestServer.ts"
import { fastOptions, sleepReal, tcpConnect } from "./helpers.ts"

const root = Path.resolve(import.meta.dirname, "..")
// In the URL the layer is given: no answer of the service may repeat it.
const password = "pw-2c1f8e7a"

interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly text: string
  readonly millis: number
}

const call = (base: string, path: string, init: RequestInit = {}): Effect.Effect<Answer> =>
  Effect.promise(async () => {
    const started = Date.now()
    const response = await fetch(`${base}${path}`, { ...init, signal: AbortSignal.timeout(5_000) })
    const text = await response.text()
    return { status: response.status, headers: response.headers, text, millis: Date.now() - started }
  })

const json = (answer: Answer): any => JSON.parse(answer.text)

/** Builds the service on a free port in the current scope; returns its base URL. */
const start = (layer: Layer.Layer<HttpServer.HttpServer, unknown>) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(layer)
    const address = Context.get(context, HttpServer.HttpServer).address
    assert.strictEqual(address._tag, "InetAddressV4")
    return `http://127.0.0.1:${address._tag === "InetAddressV4" ? address.port : 0}`
  })

/** Reads an SSE response until `predicate` holds for the text so far, at most `timeoutMillis`. */
const readUntil = (response: Response, predicate: (text: string) => boolean, timeoutMillis = 5_000) =>
  Effect.promise(async () => {
    const reader = response.body!.getReader()
    const decoder = new TextDecoder()
    const deadline = Date.now() + timeoutMillis
    let text = ""
    try {
      while (!predicate(text)) {
        const left = deadline - Date.now()
        if (left <= 0) break
        const chunk = await Promise.race([
          reader.read(),
          new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), left))
        ])
        if (chunk === undefined || chunk.done) break
        text += decoder.decode(chunk.value, { stream: true })
      }
    } finally {
      reader.releaseLock()
    }
    return text
  })

describe("examples/app.ts", () => {
  it.live("serves over HTTP; with Redis stopped: ready 503 within 2 s, live 200, cached reads answer", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make({ password })
      const base = yield* start(App.layer({
        port: 0,
        host: "127.0.0.1",
        log: false,
        redis: { ...fastOptions, url: server.url, awaitReady: true },
        rateLimit: { limit: 4, window: "1 minute" }
      }))
      const answers: Array<Answer> = []
      const get = (path: string, init?: RequestInit) =>
        Effect.tap(call(base, path, init), (answer) => Effect.sync(() => answers.push(answer)))

      // A normal request: INCR, then GET, through RedisService.
      const first = yield* get("/visits/home", { method: "POST" })
      assert.strictEqual(first.status, 200, first.text)
      assert.deepStrictEqual(json(first), { page: "home", visits: 1 })
      assert.deepStrictEqual(json(yield* get("/visits/home")), { page: "home", visits: 1 })
      assert.strictEqual((yield* get("/visits/no*globs")).status, 400)

      // The cached read: a miss loads from the catalog and writes Redis; the next read returns that copy.
      const miss = yield* get("/products/7")
      assert.strictEqual(miss.status, 200, miss.text)
      const product = json(miss)
      assert.strictEqual(product.name, "Product 7")
      const hit = yield* get("/products/7")
      assert.deepStrictEqual(json(hit), product, "the second read returns the cached copy (same loadedAt)")
      const stored = yield* server.command("GET", "app:product:7")
      assert.strictEqual(JSON.parse(String(stored)).loadedAt, product.loadedAt, "the copy is in Redis")
      assert.strictEqual((yield* get("/products/9999")).status, 404)

      // The rate limit: 4 POSTs per client and minute through effect's RateLimiter on RedisPersistence.
      const statuses: Array<number> = [first.status]
      for (let i = 0; i < 3; i++) statuses.push((yield* get("/visits/home", { method: "POST" })).status)
      const limited = yield* get("/visits/home", { method: "POST" })
      statuses.push(limited.status)
      assert.deepStrictEqual(statuses, [200, 200, 200, 200, 429])
      assert.strictEqual(json(limited).error, "RateLimitExceeded")
      const retryAfter = Number(limited.headers.get("retry-after"))
      assert.isTrue(retryAfter >= 1 && retryAfter <= 60, `retry-after ${retryAfter}`)
      assert.notInclude(limited.text, "127.0.0.1", "the limiter's key (the client address) is not shown")
      assert.deepStrictEqual(json(yield* get("/visits/home")), { page: "home", visits: 4 }, "the 429 did not count")

      // SSE: a message published after the subscription is acknowledged arrives on the open stream.
      const controller = new AbortController()
      yield* Effect.addFinalizer(() => Effect.sync(() => controller.abort()))
      const events = yield* Effect.promise(() => fetch(`${base}/events/lobby`, { signal: controller.signal }))
      assert.strictEqual(events.status, 200)
      assert.strictEqual(events.headers.get("content-type"), "text/event-stream")
      const deadline = Date.now() + 5_000
      const subscribers = server.command("PUBSUB", "NUMSUB", "app:room:lobby").pipe(
        Effect.map((reply) => Number((reply as Array<unknown>)[1]))
      )
      while ((yield* subscribers) < 1) {
        assert.isBelow(Date.now(), deadline, "the SSE stream subscribed within 5 s")
        yield* sleepReal(10)
      }
      const published = yield* get("/messages/lobby", { method: "POST", body: "hello lobby" })
      assert.deepStrictEqual(json(published), { receivers: 1 })
      const stream = yield* readUntil(events, (text) => text.includes("hello lobby"))
      assert.match(stream, /^retry: 2000\n\n/)
      assert.match(stream, /data: \{"text":"hello lobby","at":\d+\}\n\n/)
      controller.abort()

      // Metrics in the Prometheus text format, with the layer's series.
      const metrics = yield* get("/metrics")
      assert.strictEqual(metrics.status, 200)
      assert.match(metrics.headers.get("content-type") ?? "", /^text\/plain/)
      assert.match(metrics.text, /^redis_commands_total\{[^}]*command="INCR"[^}]*outcome="ok"[^}]*\} \d+/m)

      // Health while Redis is up.
      const ready = yield* get("/health/ready")
      assert.strictEqual(ready.status, 200, ready.text)
      assert.strictEqual(json(ready).status, "ready")
      assert.strictEqual(json(ready).redis.connection, "ready")
      assert.strictEqual((yield* get("/health/live")).status, 200)

      // Redis stopped: ready says 503 within 2 s, every answer within a second.
      yield* server.stop
      const stopped = Date.now()
      let notReady: Answer | undefined
      while (notReady === undefined) {
        const answer = yield* get("/health/ready")
        assert.isBelow(answer.millis, 1_000, "/health/ready answers at once")
        if (answer.status === 503) notReady = answer
        else assert.isBelow(Date.now() - stopped, 2_000, "ready went 503 within 2 s")
        yield* sleepReal(20)
      }
      assert.isBelow(Date.now() - stopped, 2_000)
      assert.strictEqual(json(notReady).status, "unavailable")
      assert.notStrictEqual(json(notReady).redis.connection, "ready")
      const live = yield* get("/health/live")
      assert.strictEqual(live.status, 200)
      assert.isBelow(live.millis, 1_000)

      // The cached read keeps answering: the copy read before the outage, and a product never cached (from the
      // catalog, since nothing can be cached now).
      const cached = yield* get("/products/7")
      assert.strictEqual(cached.status, 200, cached.text)
      assert.deepStrictEqual(json(cached), product)
      assert.isBelow(cached.millis, 1_000)
      const uncached = yield* get("/products/8")
      assert.strictEqual(uncached.status, 200, uncached.text)
      assert.strictEqual(json(uncached).name, "Product 8")
      assert.isBelow(uncached.millis, 1_000)

      // A command fails fast with a typed error turned into a 503, naming only its tag.
      const write = yield* get("/visits/home")
      assert.strictEqual(write.status, 503, write.text)
      assert.include(["CircuitOpen", "ConnectionTimeout", "ConnectionRefused", "ConnectionClosed"], json(write).error)
      assert.isBelow(write.millis, 1_000)

      // Redis back: ready again.
      yield* server.start
      const back = Date.now()
      while ((yield* get("/health/ready")).status !== 200) {
        assert.isBelow(Date.now() - back, 5_000, "ready again within 5 s of Redis returning")
        yield* sleepReal(50)
      }

      for (const answer of answers) {
        assert.notInclude(answer.text, password, "no answer shows the password")
        assert.notInclude(answer.text, "redis://", "no answer shows the Redis URL")
      }
      const health = answers.filter((a) => a.text.includes("\"connection\""))
      assert.isAbove(health.length, 2)
      for (const answer of health) assert.notInclude(answer.text, "app:", "no health body shows a key")
    }).pipe(Effect.scoped), 30_000)

  it.live("exports request and Redis spans over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make({ password })
      const bodies: Array<string> = []
      const collector = yield* Effect.acquireRelease(
        Effect.promise(() =>
          new Promise<Http.Server>((resolve) => {
            const http = Http.createServer((request, response) => {
              let body = ""
              request.on("data", (chunk) => (body += chunk))
              request.on("end", () => {
                if (request.url === "/otlp/v1/traces") bodies.push(body)
                response.writeHead(200, { "content-type": "application/json" }).end("{}")
              })
            })
            http.listen(0, "127.0.0.1", () => resolve(http))
          })
        ),
        (http) => Effect.promise(() => new Promise<void>((resolve) => http.close(() => resolve())))
      )
      const collectorPort = (collector.address() as Net.AddressInfo).port
      const tracing = App.Tracing.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${collectorPort}/otlp`,
        OTEL_SERVICE_NAME: "app-test"
      }))))

      // Closing the service's scope flushes the exporter.
      const scope = yield* Scope.make()
      const base = yield* start(App.layer({
        port: 0,
        host: "127.0.0.1",
        log: false,
        redis: { ...fastOptions, url: server.url, awaitReady: true }
      }).pipe(Layer.provide(tracing))).pipe(Scope.provide(scope))
      const answer = yield* call(base, "/visits/traced", { method: "POST" })
      assert.strictEqual(answer.status, 200, answer.text)
      yield* Scope.close(scope, Effect.void as any)

      const spans = bodies.flatMap((body) =>
        (JSON.parse(body).resourceSpans as Array<any>).flatMap((resource) =>
          (resource.scopeSpans as Array<any>).flatMap((scope) =>
            (scope.spans as Array<any>).map((span) => ({ ...span, resource: resource.resource }))
          )
        )
      )
      const incr = spans.find((span) => span.name === "redis.INCR")
      assert.isDefined(incr, `a redis.INCR span among ${spans.map((s) => s.name).join(", ")}`)
      const request = spans.find((span) => span.traceId === incr.traceId && span.kind === 2)
      assert.isDefined(request, "the INCR span is in the trace of the HTTP request (a server span)")
      const serviceName = incr.resource.attributes.find((a: any) => a.key === "service.name")?.value.stringValue
      assert.strictEqual(serviceName, "app-test")
      const attributes = Object.fromEntries(
        (incr.attributes as Array<any>).map((a) => [a.key, Object.values(a.value)[0]])
      )
      assert.strictEqual(attributes["db.system.name"], "redis")
      assert.strictEqual(attributes["db.operation.name"], "INCR")
      for (const body of bodies) {
        assert.notInclude(body, password)
        assert.notInclude(body, "app:visits:traced", "no span carries the key")
      }
    }).pipe(Effect.scoped), 30_000)

  it.live("npm run app: one command, an embedded redis-server, ready over HTTP, a clean exit on SIGTERM", () =>
    Effect.gen(function*() {
      const port = yield* freePort
      const child = spawn(process.execPath, ["--experimental-strip-types", "--no-warnings", "examples/app.ts"], {
        cwd: root,
        env: { ...process.env, PORT: String(port), REDIS_URL: "", OTEL_EXPORTER_OTLP_ENDPOINT: "" },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let output = ""
      child.stdout.on("data", (chunk) => (output += chunk))
      child.stderr.on("data", (chunk) => (output += chunk))
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
      yield* Effect.addFinalizer(() => Effect.sync(() => child.kill("SIGKILL")))

      const base = `http://127.0.0.1:${port}`
      const deadline = Date.now() + 15_000
      while (true) {
        const status = yield* Effect.promise(() =>
          fetch(`${base}/health/ready`, { signal: AbortSignal.timeout(1_000) }).then((r) => r.status, () => 0)
        )
        if (status === 200) break
        assert.isBelow(Date.now(), deadline, `ready within 15 s; output:\n${output}`)
        yield* sleepReal(100)
      }
      const embedded = /embedded redis-server on 127\.0\.0\.1:(\d+)/.exec(output)
      assert.isNotNull(embedded, output)
      const visits = yield* call(base, "/visits/cli", { method: "POST" })
      assert.deepStrictEqual(json(visits), { page: "cli", visits: 1 })

      child.kill("SIGTERM")
      const code = yield* Effect.promise(() =>
        Promise.race([exited, new Promise<"hung">((resolve) => setTimeout(() => resolve("hung"), 5_000))])
      )
      assert.notStrictEqual(code, "hung", `exited within 5 s of SIGTERM; output:\n${output}`)
      assert.strictEqual(yield* tcpConnect(Number(embedded![1])), "ECONNREFUSED", "the embedded server is gone")
    }).pipe(Effect.scoped), 30_000)
})

const freePort = Effect.promise(() =>
  new Promise<number>((resolve, reject) => {
    const probe = Net.createServer()
    probe.once("error", reject)
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as Net.AddressInfo
      probe.close(() => resolve(port))
    })
  })
)
