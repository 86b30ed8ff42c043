/**
 * Resilience figures on a real `redis-server`: this layer with its defaults next to plain ioredis 6 with its defaults,
 * through the same faults at the same time. A frozen server (SIGSTOP), a stopped and restarted server, an outage with
 * many callers (connection attempts counted by a `ChaosProxy` in front of each client), the latency of a call while
 * the breaker is open, and the heap with many callers waiting during an outage.
 *
 * Durations are measured with `performance.now()`; nothing here runs under a `TestClock`.
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import type * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import type { RedisServiceShape } from "../src/index.ts"
import { ChaosProxy, RedisTestServer } from "../src/testing/index.ts"
import { layerService } from "./clients.ts"
import { percentiles, type Spread, spread } from "./stats.ts"

/**
 * @since 0.1.0
 * @category models
 */
export interface ResilienceOptions {
  /** Freeze (SIGSTOP) rounds, and how long each freeze lasts. */
  readonly freezeRounds: number
  readonly freezeMillis: number
  /** Stop/start rounds (no callers), and how long the server stays down. */
  readonly restartRounds: number
  readonly restartOutageMillis: number
  /** The outage with callers: how long, how many callers per client, how often each calls. */
  readonly outageMillis: number
  readonly outageCallers: number
  readonly callerIntervalMillis: number
  /** Sequential calls timed while the layer's breaker is open. */
  readonly openLatencyCalls: number
  /** Callers issued at once during an outage for the heap figure, and how long after that the heap is measured. */
  readonly heapCallers: number
  readonly heapWaitMillis: number
  /** How long to wait for a client's first successful command after the server is back. */
  readonly recoveryTimeoutMillis: number
  readonly onProgress?: ((message: string) => void) | undefined
}

/**
 * How and when a client noticed a fault (`undefined`: not within the window).
 *
 * @since 0.1.0
 * @category models
 */
export interface Detection {
  readonly millis: number | undefined
  readonly by: string | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface FreezeRound {
  readonly frozenMillis: number
  readonly layer: Detection
  readonly ioredis: Detection
  /** From SIGCONT to the first successful command. */
  readonly layerBackMillis: number | undefined
  readonly ioredisBackMillis: number | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface LongFreeze {
  readonly watchedMillis: number
  readonly ioredis: Detection
  readonly ioredisBackMillis: number | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface RestartRound {
  readonly downMillis: number
  /** How long `redis-server` took to start and answer PING (included in the times below). */
  readonly serverStartMillis: number
  /** From the start of the server to the first successful command. */
  readonly layerBackMillis: number | undefined
  readonly ioredisBackMillis: number | undefined
}

/**
 * Calls made by the callers of one client during the outage.
 *
 * @since 0.1.0
 * @category models
 */
export interface CallerFigures {
  readonly calls: number
  readonly outcomes: Record<string, number>
  /** Latency of the calls started during the outage, in milliseconds (calls still pending at the end count as such). */
  readonly p50: number
  readonly p99: number
  readonly max: number
  readonly pendingAtEnd: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface OutageResult {
  readonly outageMillis: number
  readonly callers: number
  readonly layer: {
    /** TCP connections the proxy in front of the layer accepted during the outage. */
    readonly attempts: number
    /** The layer's `redis_connect_failures_total` during the outage. */
    readonly connectFailures: number
    readonly circuitOpenAfterMillis: number | undefined
    readonly callers: CallerFigures
    readonly backMillis: number | undefined
  }
  readonly ioredis: {
    readonly attempts: number
    /** ioredis' `reconnecting` events during the outage. */
    readonly reconnectingEvents: number
    readonly callers: CallerFigures
    readonly backMillis: number | undefined
  }
  /** Latency of a call failing with `CircuitOpen`, in milliseconds, timed one at a time while the callers run. */
  readonly openLatency: { readonly calls: number; readonly p50: number; readonly p99: number; readonly max: number }
}

/**
 * @since 0.1.0
 * @category models
 */
export interface HeapFigures {
  readonly callers: number
  /** `heapUsed` after a forced GC, `waitMillis` after the calls were issued, minus the same before. */
  readonly growthBytes: number
  readonly pending: number
  /** Slowest settled call, in milliseconds. */
  readonly slowestSettledMillis: number | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface HeapResult {
  readonly gc: boolean
  readonly waitMillis: number
  readonly layer: HeapFigures
  readonly ioredis: HeapFigures & { readonly offlineQueue: number | undefined }
}

/**
 * Everything, with per-round values and their spreads.
 *
 * @since 0.1.0
 * @category models
 */
export interface ResilienceResult {
  readonly freeze: {
    readonly rounds: ReadonlyArray<FreezeRound>
    readonly layerDetect: Spread
    readonly layerBack: Spread
    readonly ioredisBack: Spread
    readonly long: LongFreeze
  }
  readonly restart: {
    readonly rounds: ReadonlyArray<RestartRound>
    readonly layerBack: Spread
    readonly ioredisBack: Spread
  }
  readonly outage: OutageResult
  readonly heap: HeapResult
}

const key = "bench:key"
const now = () => performance.now()
const sleep = (millis: number) => Effect.sleep(millis)
const sleepPromise = (millis: number) => new Promise<void>((resolve) => setTimeout(resolve, millis))

const collectGarbage = (): boolean => {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) return false
  gc()
  gc()
  return true
}

const defined = (values: ReadonlyArray<number | undefined>): Array<number> =>
  values.filter((value): value is number => value !== undefined)

/** A plain ioredis 6 client with its defaults (it connects at once), counting its `reconnecting` events. */
interface WatchedIORedis {
  readonly client: Redis
  reconnecting: number
}

const watchedIORedis = (target: { readonly host: string; readonly port: number }) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const client = new Redis({ host: target.host, port: target.port })
      const watched: WatchedIORedis = { client, reconnecting: 0 }
      // Without a listener ioredis prints every connection error.
      client.on("error", () => {})
      client.on("reconnecting", () => {
        watched.reconnecting++
      })
      await client.ping()
      return watched
    }),
    (watched) => Effect.sync(() => watched.client.disconnect())
  )

/** The layer with its defaults (plus `awaitReady`, so that the figures start from a ready connection). */
const layer = (url: string): Effect.Effect<RedisServiceShape, unknown, Scope.Scope> =>
  layerService({ url, awaitReady: true })

/** Resolves `true`/`false` with the command's outcome, or `undefined` when it has not settled within `millis`. */
const settleWithin = <A>(promise: Promise<A>, millis: number): Promise<boolean | undefined> =>
  new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), Math.max(0, millis))
    promise.then(
      () => {
        clearTimeout(timer)
        resolve(true)
      },
      () => {
        clearTimeout(timer)
        resolve(false)
      }
    )
  })

const layerFirstSuccess = (redis: RedisServiceShape, from: number, timeoutMillis: number) =>
  Effect.gen(function*() {
    while (now() - from < timeoutMillis) {
      const exit = yield* Effect.exit(redis.get(key))
      if (Exit.isSuccess(exit)) return now() - from
      yield* sleep(5)
    }
    return undefined
  })

const ioredisFirstSuccess = (client: Redis, from: number, timeoutMillis: number) =>
  Effect.promise(async () => {
    while (now() - from < timeoutMillis) {
      const outcome = await settleWithin(client.get(key), from + timeoutMillis - now())
      if (outcome === true) return now() - from
      if (outcome === false) await sleepPromise(5)
    }
    return undefined
  })

const waitForCircuit = (redis: RedisServiceShape, status: "open" | "closed", timeoutMillis: number) =>
  Effect.gen(function*() {
    const start = now()
    while (now() - start < timeoutMillis) {
      if ((yield* redis.health).circuit === status) return now() - start
      yield* sleep(5)
    }
    return undefined
  })

/**
 * Freeze rounds on one layer and one ioredis client that live through all of them. Each round starts from a healthy
 * connection at a random point of the heartbeat's cadence (the layer is at least 1.2 s old, so that its heartbeat is
 * in its steady rhythm), freezes the server for `freezeMillis`, then resumes it.
 */
const freezeRounds = (server: RedisTestServer.RedisTestServer, options: ResilienceOptions) =>
  Effect.scoped(Effect.gen(function*() {
    const redis = yield* layer(server.url)
    const io = yield* watchedIORedis(server)
    yield* sleep(1_200)
    const rounds: Array<FreezeRound> = []
    for (let round = 0; round < options.freezeRounds; round++) {
      options.onProgress?.(`freeze round ${round + 1}/${options.freezeRounds}`)
      yield* layerFirstSuccess(redis, now(), options.recoveryTimeoutMillis)
      yield* waitForCircuit(redis, "closed", options.recoveryTimeoutMillis)
      yield* Effect.promise(() => io.client.get(key))
      yield* sleep(Math.random() * 1_000)

      const start = now()
      yield* server.pause
      let layerDetected: Detection = { millis: undefined, by: undefined }
      let ioredisDetected: Detection = { millis: undefined, by: undefined }
      const ioredisNoticed = (by: string) => {
        if (ioredisDetected.millis === undefined) ioredisDetected = { millis: now() - start, by }
      }
      // Traffic while frozen: one GET in flight, and ioredis' own signals.
      const onClose = () => ioredisNoticed("close event")
      const onReconnecting = () => ioredisNoticed("reconnecting event")
      io.client.on("close", onClose)
      io.client.on("reconnecting", onReconnecting)
      io.client.get(key).catch((error: unknown) => ioredisNoticed(`GET failed: ${String(error)}`))
      while (now() - start < options.freezeMillis) {
        if (layerDetected.millis === undefined) {
          const health = yield* redis.health
          if (health.connection !== "ready") {
            layerDetected = { millis: now() - start, by: `health.connection ${health.connection}` }
          }
        }
        yield* sleep(5)
      }

      const resumed = now()
      yield* server.resume
      const [layerBackMillis, ioredisBackMillis] = yield* Effect.all([
        layerFirstSuccess(redis, resumed, options.recoveryTimeoutMillis),
        ioredisFirstSuccess(io.client, resumed, options.recoveryTimeoutMillis)
      ], { concurrency: 2 })
      io.client.off("close", onClose)
      io.client.off("reconnecting", onReconnecting)
      rounds.push({
        frozenMillis: resumed - start,
        layer: layerDetected,
        ioredis: ioredisDetected,
        layerBackMillis,
        ioredisBackMillis
      })
    }
    return rounds
  }))

/** Plain ioredis on a server of its own, frozen until `done` completes: how long it goes without noticing. */
const longFreeze = (done: Deferred.Deferred<void>, options: ResilienceOptions) =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* RedisTestServer.make()
    const io = yield* watchedIORedis(server)
    const start = now()
    yield* server.pause
    let detected: Detection = { millis: undefined, by: undefined }
    const noticed = (by: string) => {
      if (detected.millis === undefined) detected = { millis: now() - start, by }
    }
    io.client.once("close", () => noticed("close event"))
    io.client.once("reconnecting", () => noticed("reconnecting event"))
    // An application's traffic: a GET a second, each one left waiting.
    const traffic = setInterval(() => {
      io.client.get(key).catch((error: unknown) => noticed(`GET failed: ${String(error)}`))
    }, 1_000)
    io.client.get(key).catch((error: unknown) => noticed(`GET failed: ${String(error)}`))
    yield* Deferred.await(done)
    clearInterval(traffic)
    const resumed = now()
    yield* server.resume
    const back = yield* ioredisFirstSuccess(io.client, resumed, options.recoveryTimeoutMillis)
    return { watchedMillis: resumed - start, ioredis: detected, ioredisBackMillis: back } satisfies LongFreeze
  }))

const restartRound = (server: RedisTestServer.RedisTestServer, options: ResilienceOptions) =>
  Effect.scoped(Effect.gen(function*() {
    const redis = yield* layer(server.url)
    const io = yield* watchedIORedis(server)
    yield* redis.get(key)
    const stopped = now()
    yield* server.stop
    yield* sleep(Math.max(0, stopped + options.restartOutageMillis - now()))
    const starting = now()
    const pollers = yield* Effect.forkChild(Effect.all([
      layerFirstSuccess(redis, starting, options.recoveryTimeoutMillis),
      ioredisFirstSuccess(io.client, starting, options.recoveryTimeoutMillis)
    ], { concurrency: 2 }))
    yield* server.start
    const serverStartMillis = now() - starting
    const [layerBackMillis, ioredisBackMillis] = yield* Fiber.join(pollers)
    return {
      downMillis: starting - stopped,
      serverStartMillis,
      layerBackMillis,
      ioredisBackMillis
    } satisfies RestartRound
  }))

/** Call latencies and outcomes of one client's callers. */
class CallerLog {
  readonly latencies: Array<number> = []
  readonly outcomes: Record<string, number> = {}
  pending = 0
  calls = 0
  record(millis: number, outcome: string) {
    this.latencies.push(millis)
    this.outcomes[outcome] = (this.outcomes[outcome] ?? 0) + 1
  }
  figures(): CallerFigures {
    const samples = Float64Array.from(this.latencies)
    const [p50, p99, max] = percentiles(samples, samples.length, [50, 99, 100])
    return {
      calls: this.calls,
      outcomes: this.outcomes,
      p50: p50!,
      p99: p99!,
      max: max!,
      pendingAtEnd: this.pending
    }
  }
}

const errorTag = (error: unknown): string =>
  typeof error === "object" && error !== null && "_tag" in error ? String(error._tag) : String(error)

/** The tag of a cause's first failure (`defect` or `interrupted` when it has none). */
const failureTag = (cause: Cause.Cause<unknown>): string => {
  const reason = cause.reasons[0]
  return reason === undefined ? "empty" : reason._tag === "Fail" ? errorTag(reason.error) : reason._tag.toLowerCase()
}

const connectFailures = (registry: Metric.MetricRegistry) =>
  Metric.snapshot.pipe(
    Effect.provideService(Metric.MetricRegistry, registry),
    Effect.map((snapshots) =>
      snapshots
        .filter((snapshot) => snapshot.id === "redis_connect_failures_total" && snapshot.type === "Counter")
        .reduce((sum, snapshot) => sum + Number((snapshot.state as { readonly count: number | bigint }).count), 0)
    )
  )

const outage = (server: RedisTestServer.RedisTestServer, options: ResilienceOptions) =>
  Effect.scoped(Effect.gen(function*() {
    const layerProxy = yield* ChaosProxy.make({ target: server })
    const ioredisProxy = yield* ChaosProxy.make({ target: server })
    const registry: Metric.MetricRegistry = new Map()
    const redis = yield* layer(layerProxy.url).pipe(Effect.provideService(Metric.MetricRegistry, registry))
    const io = yield* watchedIORedis(ioredisProxy)
    yield* redis.get(key)
    yield* Effect.promise(() => io.client.get(key))

    const acceptedBefore = [yield* layerProxy.accepted, yield* ioredisProxy.accepted] as const
    const failuresBefore = yield* connectFailures(registry)
    const reconnectingBefore = io.reconnecting

    const start = now()
    yield* server.stop
    const deadline = start + options.outageMillis

    // The callers: each calls, waits for the outcome, sleeps `callerIntervalMillis`, until the deadline.
    const layerLog = new CallerLog()
    const layerCaller = Effect.gen(function*() {
      yield* sleep(Math.random() * options.callerIntervalMillis)
      while (now() < deadline) {
        const started = now()
        layerLog.calls++
        layerLog.pending++
        const exit = yield* Effect.exit(redis.get(key))
        layerLog.pending--
        layerLog.record(now() - started, Exit.isSuccess(exit) ? "ok" : failureTag(exit.cause))
        yield* sleep(options.callerIntervalMillis)
      }
    })
    const layerCallers = yield* Effect.forkChild(
      Effect.forEach(Array.from({ length: options.outageCallers }), () => layerCaller, {
        concurrency: "unbounded",
        discard: true
      })
    )
    const ioredisLog = new CallerLog()
    const ioredisCaller = async () => {
      await sleepPromise(Math.random() * options.callerIntervalMillis)
      while (now() < deadline) {
        const started = now()
        ioredisLog.calls++
        ioredisLog.pending++
        const outcome = await io.client.get(key).then(() => "ok", (error: unknown) => errorTag(error))
        ioredisLog.pending--
        ioredisLog.record(now() - started, outcome)
        await sleepPromise(options.callerIntervalMillis)
      }
    }
    const ioredisCallers = Promise.all(Array.from({ length: options.outageCallers }, ioredisCaller))

    // Once the layer's circuit is open: calls one at a time, timed.
    const circuitOpenAfter = yield* waitForCircuit(redis, "open", Math.max(0, deadline - now()))
    const circuitOpenAfterMillis = circuitOpenAfter === undefined ? undefined : now() - start
    const openSamples = new Float64Array(options.openLatencyCalls)
    let openCalls = 0
    if (circuitOpenAfter !== undefined) {
      for (let i = 0; i < options.openLatencyCalls && now() < deadline; i++) {
        const started = now()
        const exit = yield* Effect.exit(redis.get(key))
        const elapsed = now() - started
        if (Exit.isFailure(exit) && failureTag(exit.cause) === "CircuitOpen") openSamples[openCalls++] = elapsed
      }
    }
    const [openP50, openP99, openMax] = percentiles(openSamples, openCalls, [50, 99, 100])

    yield* sleep(Math.max(0, deadline - now()))
    const attempts = [
      (yield* layerProxy.accepted) - acceptedBefore[0],
      (yield* ioredisProxy.accepted) - acceptedBefore[1]
    ] as const
    const failures = (yield* connectFailures(registry)) - failuresBefore
    const reconnecting = io.reconnecting - reconnectingBefore
    const ioredisPendingAtEnd = ioredisLog.pending

    const starting = now()
    options.onProgress?.("outage over: starting the server")
    const pollers = yield* Effect.forkChild(Effect.all([
      layerFirstSuccess(redis, starting, options.recoveryTimeoutMillis),
      ioredisFirstSuccess(io.client, starting, options.recoveryTimeoutMillis)
    ], { concurrency: 2 }))
    yield* server.start
    const [layerBack, ioredisBack] = yield* Fiber.join(pollers)
    yield* Fiber.join(layerCallers)
    yield* Effect.promise(() => settleWithin(ioredisCallers, options.recoveryTimeoutMillis))

    const ioredisFigures = ioredisLog.figures()
    return {
      outageMillis: starting - start,
      callers: options.outageCallers,
      layer: {
        attempts: attempts[0],
        connectFailures: failures,
        circuitOpenAfterMillis,
        callers: layerLog.figures(),
        backMillis: layerBack
      },
      ioredis: {
        attempts: attempts[1],
        reconnectingEvents: reconnecting,
        callers: { ...ioredisFigures, pendingAtEnd: ioredisPendingAtEnd },
        backMillis: ioredisBack
      },
      openLatency: { calls: openCalls, p50: openP50!, p99: openP99!, max: openMax! }
    } satisfies OutageResult
  }))

const heapUsed = () => process.memoryUsage().heapUsed

const heap = (server: RedisTestServer.RedisTestServer, options: ResilienceOptions) =>
  Effect.scoped(Effect.gen(function*() {
    const redis = yield* layer(server.url)
    const io = yield* watchedIORedis(server)
    yield* redis.get(key)
    yield* server.stop
    // Measured once the layer has given up on the connection for now (circuit open), as in a lasting outage.
    yield* waitForCircuit(redis, "open", 10_000)

    const gc = collectGarbage()
    const layerBefore = heapUsed()
    let layerSettled = 0
    let layerSlowest = 0
    const issued = now()
    const layerCalls = yield* Effect.forkChild(
      Effect.forEach(Array.from({ length: options.heapCallers }), () =>
        Effect.exit(redis.get(key)).pipe(Effect.tap(() =>
          Effect.sync(() => {
            layerSettled++
            layerSlowest = now() - issued
          })
        )), { concurrency: "unbounded", discard: true })
    )
    yield* sleep(options.heapWaitMillis)
    collectGarbage()
    const layerAfter = heapUsed()
    yield* Fiber.interrupt(layerCalls)

    collectGarbage()
    const ioredisBefore = heapUsed()
    let ioredisSettled = 0
    let ioredisSlowest: number | undefined
    const ioredisIssued = now()
    for (let i = 0; i < options.heapCallers; i++) {
      const settle = () => {
        ioredisSettled++
        ioredisSlowest = now() - ioredisIssued
      }
      io.client.get(key).then(settle, settle)
    }
    yield* sleep(options.heapWaitMillis)
    collectGarbage()
    const ioredisAfter = heapUsed()
    const offlineQueue = (io.client as unknown as { readonly offlineQueue?: { readonly length: number } })
      .offlineQueue?.length
    // Rejects the offline queue, so that nothing is left waiting when the scope closes.
    io.client.disconnect()
    yield* server.start

    return {
      gc,
      waitMillis: options.heapWaitMillis,
      layer: {
        callers: options.heapCallers,
        growthBytes: layerAfter - layerBefore,
        pending: options.heapCallers - layerSettled,
        slowestSettledMillis: layerSettled > 0 ? layerSlowest : undefined
      },
      ioredis: {
        callers: options.heapCallers,
        growthBytes: ioredisAfter - ioredisBefore,
        pending: options.heapCallers - ioredisSettled,
        slowestSettledMillis: ioredisSlowest,
        offlineQueue
      }
    } satisfies HeapResult
  }))

/**
 * Runs every resilience scenario against `server` (it is stopped, frozen and restarted on the way and left running).
 *
 * @since 0.1.0
 * @category running
 */
export const run = Effect.fnUntraced(function*(server: RedisTestServer.RedisTestServer, options: ResilienceOptions) {
  const progress = options.onProgress ?? (() => {})
  const longFreezeDone = yield* Deferred.make<void>()
  const longFreezeFiber = yield* Effect.forkChild(longFreeze(longFreezeDone, options))

  const freeze = yield* freezeRounds(server, options)
  const restartRounds: Array<RestartRound> = []
  for (let round = 0; round < options.restartRounds; round++) {
    progress(`restart round ${round + 1}/${options.restartRounds}`)
    restartRounds.push(yield* restartRound(server, options))
  }
  progress(`outage: ${options.outageMillis / 1000} s, ${options.outageCallers} callers per client`)
  const outageResult = yield* outage(server, options)
  progress(`heap: ${options.heapCallers} callers per client`)
  const heapResult = yield* heap(server, options)

  yield* Deferred.succeed(longFreezeDone, undefined)
  const long = yield* Fiber.join(longFreezeFiber)

  return {
    freeze: {
      rounds: freeze,
      layerDetect: spread(defined(freeze.map((round) => round.layer.millis))),
      layerBack: spread(defined(freeze.map((round) => round.layerBackMillis))),
      ioredisBack: spread(defined(freeze.map((round) => round.ioredisBackMillis))),
      long
    },
    restart: {
      rounds: restartRounds,
      layerBack: spread(
        defined([...restartRounds.map((round) => round.layerBackMillis), outageResult.layer.backMillis])
      ),
      ioredisBack: spread(
        defined([...restartRounds.map((round) => round.ioredisBackMillis), outageResult.ioredis.backMillis])
      )
    },
    outage: outageResult,
    heap: heapResult
  } satisfies ResilienceResult
})
