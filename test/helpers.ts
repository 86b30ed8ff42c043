/**
 * Helpers shared by the tests: fast resilience options, and probes for tests that mix real I/O with TestClock.
 * Waiting uses real timers, never Effect's Clock, so it works whether or not the clock is a TestClock.
 */
import { Effect, Exit, Tracer } from "effect"
import * as Net from "node:net"
import type { RedisOptions } from "../src/index.ts"

/**
 * The settings of the failover tests (test/RedisService.topology.test.ts) and of the benchmark's failover rounds
 * (bench/cluster.ts): fast detection and reconnection, short timeouts, for Redis Cluster and Sentinel test kits.
 */
export const failoverOptions = {
  connectTimeout: "1 second",
  commandTimeout: "500 millis",
  acquireTimeout: "500 millis",
  reconnect: { base: "50 millis", cap: "500 millis" },
  heartbeat: { interval: "200 millis", timeout: "150 millis", misses: 2 },
  breaker: { openDuration: "200 millis", maxOpenDuration: "1 second" },
  awaitReady: true
} satisfies RedisOptions

/** Fast settings so that fault tests finish in seconds; tests override what they need (`{ ...fastOptions, ... }`). */
export const fastOptions = {
  connectTimeout: "1 second",
  commandTimeout: "1 second",
  acquireTimeout: "500 millis",
  reconnect: { base: "50 millis", factor: 2, cap: "400 millis", jitter: false, debounce: "20 millis" },
  heartbeat: { interval: "200 millis", timeout: "100 millis", misses: 2 },
  breaker: { failureThreshold: 3, openDuration: "300 millis", maxOpenDuration: "1 second" }
} satisfies RedisOptions

/** Sleeps for real, outside Effect's Clock. */
export const sleepReal = (millis: number): Effect.Effect<void> =>
  Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, millis)))

/** Polls `effect` (real time) until `predicate` holds; dies after `timeoutMillis`. */
export const waitUntil = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  predicate: (a: A) => boolean,
  timeoutMillis = 5_000
): Effect.Effect<A, E, R> =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMillis
    while (true) {
      const value = yield* effect
      if (predicate(value)) return value
      if (Date.now() > deadline) {
        return yield* Effect.die(
          new Error(`condition not met within ${timeoutMillis} ms; last value: ${JSON.stringify(value)}`)
        )
      }
      yield* sleepReal(5)
    }
  })

/** The `_tag` of the typed failure of an exit, "defect" for a defect, undefined for a success. */
export const failureTag = <A, E extends { readonly _tag: string }>(exit: Exit.Exit<A, E>): string | undefined => {
  if (Exit.isSuccess(exit)) return undefined
  const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
  return reason?._tag === "Fail" ? reason.error._tag : "defect"
}

/** Result of a raw TCP connect to a loopback port: "connected" or the error code (e.g. "ECONNREFUSED"). */
export const tcpConnect = (port: number): Effect.Effect<string> =>
  Effect.promise(() =>
    new Promise<string>((resolve) => {
      const socket = Net.connect({ host: "127.0.0.1", port })
      socket.once("connect", () => {
        socket.destroy()
        resolve("connected")
      })
      socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message))
    })
  )

/** Whether a process with this id exists (signal 0 probes without sending anything). */
export const processExists = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Fast settings for pub/sub tests (the subscriber and the SSE example). */
export const pubsubFastOptions = {
  connectTimeout: "1 second",
  acquireTimeout: "300 millis",
  reconnect: { base: "50 millis", cap: "200 millis", jitter: false, debounce: "20 millis" },
  heartbeat: { interval: "200 millis", timeout: "100 millis", misses: 2 },
  breaker: { openDuration: "200 millis", maxOpenDuration: "400 millis" }
} as const

/** An in-memory tracer that keeps every span it starts (to assert on names, attributes and events). */
export const recorder = () => {
  const spans: Array<Tracer.NativeSpan> = []
  const tracer = Tracer.make({
    span: (options) => {
      const span = new Tracer.NativeSpan(options)
      spans.push(span)
      return span
    }
  })
  return { spans, tracer }
}
