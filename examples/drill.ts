/**
 * `npm start`: a short drill that shows what the layer does when Redis misbehaves.
 *
 * It starts an embedded redis-server with the test kit (or uses REDIS_URL), puts the chaos proxy in front of it, runs
 * commands through `RedisService`, injects faults at the proxy (a connection reset, refused connections) and prints
 * what the layer saw and did. Exit code 0 when every check holds.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Duration, Effect, Option, Stream } from "effect"
import type { ConnectionState } from "../src/index.ts"
import * as RedisService from "../src/RedisService.ts"
import * as ChaosProxy from "../src/testing/ChaosProxy.ts"
import * as RedisTestServer from "../src/testing/RedisTestServer.ts"

const sleep = (millis: number) => Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, millis)))

/** The Redis to drill against: REDIS_URL when set, else an embedded redis-server on a free port. */
const target = Effect.gen(function*() {
  const url = process.env.REDIS_URL
  if (url !== undefined && url !== "") {
    const parsed = new URL(url)
    return { host: parsed.hostname, port: Number(parsed.port || 6379), label: "REDIS_URL" }
  }
  const server = yield* RedisTestServer.make()
  return { host: server.host, port: server.port, label: `embedded redis-server on port ${server.port}` }
})

const ms = (duration: Duration.Duration) => `${Math.round(Duration.toMillis(duration))} ms`

const describe = (state: ConnectionState): string =>
  state._tag === "Reconnecting"
    ? state.attempt === 0
      ? `lost (${state.lastError?._tag ?? "closed"}), reconnecting in ${ms(state.nextDelay)}`
      : `attempt ${state.attempt} failed (${state.lastError?._tag}), next in ${ms(state.nextDelay)}`
    : state._tag

const program = Effect.gen(function*() {
  const redis_ = yield* target
  yield* Console.log(`Redis: ${redis_.label}`)
  const proxy = yield* ChaosProxy.make({ target: { host: redis_.host, port: redis_.port } })
  const redis = yield* RedisService.make({
    url: proxy.url,
    keyPrefix: "drill:",
    acquireTimeout: "500 millis",
    reconnect: { base: "50 millis", cap: "1 second" },
    heartbeat: { interval: "250 millis", timeout: "200 millis", misses: 2 },
    breaker: { openDuration: "300 millis" },
    awaitReady: true
  })
  yield* Effect.forkScoped(Stream.runForEach(redis.states, (state) => Console.log(`  connection: ${describe(state)}`)))
  yield* Effect.forkScoped(Stream.runForEach(redis.circuit, (status) => Console.log(`  circuit: ${status}`)))
  yield* sleep(50)

  const checks: Array<[string, boolean]> = []

  yield* Console.log("\n1. Healthy: SET, GET, INCR")
  yield* redis.set("greeting", "hello", { ttl: "1 minute" })
  const greeting = yield* redis.get("greeting")
  yield* redis.del("counter")
  const counter = yield* redis.incr("counter")
  yield* Console.log(`  GET greeting -> ${Option.getOrElse(greeting, () => "(none)")}, INCR counter -> ${counter}`)
  checks.push(["healthy commands work", Option.isSome(greeting) && counter === 1])

  yield* Console.log("\n2. The proxy resets every connection (real ECONNRESET)")
  yield* proxy.resetAll
  const afterReset = yield* redis.get("greeting")
  yield* Console.log(`  GET right after the reset -> ${Option.getOrElse(afterReset, () => "(none)")} (retried once)`)
  checks.push(["an idempotent read survives a reset", Option.isSome(afterReset)])

  yield* Console.log("\n3. Redis becomes unreachable (connections refused) for 2 s while callers keep calling")
  yield* proxy.refuse
  yield* proxy.resetAll
  const started = Date.now()
  const outcomes = new Map<string, number>()
  while (Date.now() - started < 2_000) {
    const exit = yield* Effect.exit(redis.get("greeting"))
    const tag = exit._tag === "Success" ? "ok" : (exit.cause.reasons[0]?._tag === "Fail"
      ? exit.cause.reasons[0].error._tag
      : "defect")
    outcomes.set(tag, (outcomes.get(tag) ?? 0) + 1)
    yield* sleep(20)
  }
  yield* Console.log(`  outcomes during the outage: ${JSON.stringify(Object.fromEntries(outcomes))}`)
  checks.push(["calls fail fast with CircuitOpen during the outage", (outcomes.get("CircuitOpen") ?? 0) > 0])
  checks.push(["no call hangs or succeeds against a dead server", !outcomes.has("defect")])

  yield* Console.log("\n4. Redis is reachable again")
  yield* proxy.restore
  const back = Date.now()
  let recovered: Option.Option<string> = Option.none()
  while (Option.isNone(recovered) && Date.now() - back < 5_000) {
    const exit = yield* Effect.exit(redis.get("greeting"))
    if (exit._tag === "Success") recovered = exit.value
    else yield* sleep(20)
  }
  yield* Console.log(`  first successful GET ${Date.now() - back} ms after Redis came back`)
  checks.push(["recovers by itself", Option.isSome(recovered)])

  const health = yield* redis.health
  yield* Console.log(
    `\nHealth: connection ${health.connection}, circuit ${health.circuit}, reconnects ${health.reconnects}, ` +
      `connections opened ${health.connectionsOpened}, proxy accepted ${yield* proxy.accepted} connections`
  )
  checks.push(["connection attempts stay bounded (no storm)", (yield* proxy.accepted) <= 4])

  yield* Console.log("\nChecks:")
  for (const [name, ok] of checks) yield* Console.log(`  ${ok ? "PASS" : "FAIL"} ${name}`)
  if (checks.some(([, ok]) => !ok)) return yield* Effect.fail(new Error("some checks failed"))
})

NodeRuntime.runMain(Effect.scoped(program))
