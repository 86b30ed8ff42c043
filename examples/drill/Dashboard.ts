/**
 * The live view of the drill, refreshed every second: on a terminal a table redrawn in place (ANSI), otherwise one
 * plain line per second plus a line per event, which reads well in CI logs and in the README.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { Health, type RedisServiceShape } from "../../src/index.ts"
import type { Runner } from "./Runner.ts"
import { describeState, type DrillEvent, type Monitor } from "./Monitor.ts"
import type { Target } from "./Target.ts"
import { percentile, type PubSubFigures, type Stats } from "./Workload.ts"

/**
 * How the drill shows progress: `tty` (redrawn table), `plain` (lines), `none` (`--json`, tests).
 *
 * @since 0.1.0
 * @category models
 */
export type Display = "tty" | "plain" | "none"

/**
 * What the dashboard reads.
 *
 * @since 0.1.0
 * @category models
 */
export interface DashboardEnv {
  readonly monitor: Monitor
  readonly stats: Stats
  readonly runner: Runner
  readonly redis: RedisServiceShape
  readonly target: Target
  readonly pubsub: PubSubFigures
  readonly write: (text: string) => void
  /** Terminal width, for the table (read at every frame: the terminal may be resized). */
  readonly columns: () => number
}

/**
 * A running dashboard.
 *
 * @since 0.1.0
 * @category models
 */
export interface Dashboard {
  /** Stops refreshing (the last frame stays on screen). */
  readonly stop: Effect.Effect<void>
}

/**
 * A duration in milliseconds, the way a person reads it: `0.42 ms`, `4.2 ms`, `42 ms`, `1.25 s`.
 *
 * @since 0.1.0
 * @category rendering
 */
export const formatMillis = (millis: number): string =>
  millis < 1
    ? `${millis.toFixed(2)} ms`
    : millis < 10
    ? `${millis.toFixed(1)} ms`
    : millis < 1000
    ? `${Math.round(millis)} ms`
    : `${(millis / 1000).toFixed(2)} s`

/**
 * Seconds since the start, for the left column: `[ 12.3s]`.
 *
 * @since 0.1.0
 * @category rendering
 */
export const stamp = (millis: number): string => `[${(millis / 1000).toFixed(1).padStart(5)}s]`

const tags = (errors: ReadonlyMap<string, number>): string =>
  [...errors].sort((a, b) => b[1] - a[1]).map(([tag, count]) => `${tag} ${count}`).join(", ")

const color = {
  green: (s: string) => `\x1b[32m${s}\x1b[0m`,
  yellow: (s: string) => `\x1b[33m${s}\x1b[0m`,
  red: (s: string) => `\x1b[31m${s}\x1b[0m`,
  dim: (s: string) => `\x1b[2m${s}\x1b[0m`,
  bold: (s: string) => `\x1b[1m${s}\x1b[0m`
}

interface Frame {
  readonly at: number
  readonly fault: string
  readonly connection: string
  readonly connectionTag: string
  readonly connectionShort: string
  readonly circuit: string
  readonly okPerSecond: number
  readonly failedPerSecond: number
  /** Of the calls that succeeded in the last second: "-" when none did. */
  readonly p50: string
  readonly p99: string
  readonly windowErrors: ReadonlyMap<string, number>
  readonly totalErrors: ReadonlyMap<string, number>
  readonly reconnects: number
  readonly opened: number
  readonly accepted: number
  readonly rtt: string
  readonly pubsub: string
  readonly pubsubMode: string
}

/**
 * Starts the dashboard in the current scope (`none` draws nothing).
 *
 * @since 0.1.0
 * @category constructors
 */
export const start = Effect.fnUntraced(function*(
  display: Display,
  env: DashboardEnv
): Effect.fn.Return<Dashboard, never, Scope.Scope> {
  if (display === "none") return { stop: Effect.void }
  const { monitor, stats, runner, target, pubsub, write } = env
  const timeline = monitor.timeline
  const total = runner.plan.totalMillis

  const frame = Effect.gen(function*() {
    const window = stats.takeWindow()
    const seconds = Math.max(window.millis, 1) / 1000
    const health = yield* env.redis.health
    const state = monitor.connection()
    return {
      at: timeline.now(),
      fault: runner.describeCurrent(),
      connection: describeState(state),
      connectionTag: state._tag,
      connectionShort: state._tag === "Reconnecting" && state.attempt > 0
        ? `reconnecting (${state.attempt} failed)`
        : Health.connectionStatus(state),
      circuit: monitor.circuit(),
      okPerSecond: Math.round(window.ok / seconds),
      failedPerSecond: Math.round(window.failed / seconds),
      p50: window.durations.length === 0 ? "-" : formatMillis(percentile(window.durations, 0.5)),
      p99: window.durations.length === 0 ? "-" : formatMillis(percentile(window.durations, 0.99)),
      windowErrors: window.errors,
      totalErrors: stats.errors,
      reconnects: health.reconnects,
      opened: health.connectionsOpened,
      accepted: yield* target.proxy.accepted,
      // The last successful PING: stale while the connection is down.
      rtt: state._tag !== "Ready" ? "-" : Option.match(health.heartbeatRtt, {
        onNone: () => "-",
        onSome: (rtt) => formatMillis(Duration.toMillis(rtt))
      }),
      pubsub: `${pubsub.delivered.size}/${pubsub.published} received (${pubsub.polled} by polling), ` +
        `${pubsub.gaps} gaps`,
      pubsubMode: monitor.subscriberMode()
    } satisfies Frame
  })

  const plainLine = (f: Frame): string =>
    `${stamp(f.at)} ${f.fault} | ${f.connectionShort}, circuit ${f.circuit} | ${f.okPerSecond} ok/s ` +
    `${f.failedPerSecond} err/s p50 ${f.p50} p99 ${f.p99} | reconnects ${f.reconnects} ` +
    `opened ${f.opened} rtt ${f.rtt} | pub/sub ${f.pubsubMode}` +
    (f.windowErrors.size > 0 ? ` | ${tags(f.windowErrors)}` : "")

  const table = (f: Frame): Array<string> => {
    const columns = env.columns()
    const width = Math.max(20, columns - 18)
    const fit = (s: string) => s.length > width ? `${s.slice(0, width - 1)}…` : s
    const row = (label: string, value: string, paint?: (s: string) => string) =>
      `  ${label.padEnd(15)}${paint === undefined ? fit(value) : paint(fit(value))}`
    const stateColor = f.connectionTag === "Ready" ? color.green : color.yellow
    const circuitColor = f.circuit === "closed" ? color.green : f.circuit === "open" ? color.red : color.yellow
    const events = timeline.events.slice(-6).map((e: DrillEvent) =>
      `  ${color.dim(stamp(e.at))} ${fit(e.text)}`
    )
    // Every line fits the terminal: a wrapped line would throw off the redraw.
    return [
      color.bold("effect-redis-resilience chaos drill".slice(0, columns - 15)) +
      ` ${(f.at / 1000).toFixed(0).padStart(3)} s / ${(total / 1000).toFixed(0)} s`,
      "",
      row("redis", target.label, color.dim),
      row("fault", f.fault, f.fault.startsWith("none") ? undefined : color.yellow),
      row("connection", f.connection, stateColor),
      row("circuit", f.circuit, circuitColor),
      row("ops/s", `${f.okPerSecond} ok, ${f.failedPerSecond} failed`),
      row("latency", `p50 ${f.p50}, p99 ${f.p99} (successful calls, last second)`),
      row("errors/s", f.windowErrors.size === 0 ? "none" : tags(f.windowErrors)),
      row("errors total", f.totalErrors.size === 0 ? "none" : tags(f.totalErrors)),
      row("reconnects", `${f.reconnects}, connections opened ${f.opened}, proxy accepted ${f.accepted}`),
      row("heartbeat RTT", f.rtt),
      row("pub/sub", `${f.pubsubMode}, ${f.pubsub}`, f.pubsubMode === "live" ? undefined : color.yellow),
      "",
      color.dim("  recent events"),
      ...events,
      ...Array.from({ length: 6 - events.length }, () => "")
    ]
  }

  let drawn = 0
  let stopped = false
  const draw = (f: Frame) => {
    if (display === "plain") {
      write(`${plainLine(f)}\n`)
      return
    }
    const lines = table(f)
    // Back to the top of the previous frame, clear it, draw the new one.
    write(`${drawn > 0 ? `\x1b[${drawn}F` : ""}\x1b[J${lines.join("\n")}\n`)
    drawn = lines.length
  }

  if (display === "plain") {
    timeline.onEvent((event) => {
      if (!stopped) write(`${stamp(event.at)} » ${event.text}\n`)
    })
  } else {
    write("\x1b[?25l")
    yield* Effect.addFinalizer(() => Effect.sync(() => stopped ? undefined : write("\x1b[?25h")))
  }

  const loop = Effect.gen(function*() {
    while (true) {
      yield* Effect.sleep(1_000)
      draw(yield* frame)
    }
  })
  const fiber = yield* Effect.forkScoped(loop)

  return {
    stop: Effect.gen(function*() {
      yield* Fiber.interrupt(fiber)
      stopped = true
      if (display === "tty") write("\x1b[?25h")
    })
  }
})
