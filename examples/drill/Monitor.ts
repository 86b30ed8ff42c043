/**
 * What the drill observed, in order: a clock that counts from the start of the drill, a log of events (faults,
 * connection and circuit transitions, pub/sub mode changes), and the latest state of the layer as its streams
 * report it. The dashboard draws from here; the fault runner and the report read the timestamps.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type {
  CircuitStatus,
  ConnectionState,
  DeliveryMode,
  RedisError,
  RedisServiceShape,
  RedisSubscriberShape
} from "../../src/index.ts"

/**
 * Where an event comes from.
 *
 * @since 0.1.0
 * @category models
 */
export type EventKind = "fault" | "connection" | "circuit" | "pubsub" | "detection"

/**
 * One line of the event log. `at` is milliseconds since the drill started.
 *
 * @since 0.1.0
 * @category models
 */
export interface DrillEvent {
  readonly at: number
  readonly kind: EventKind
  readonly text: string
}

/**
 * The drill's clock and event log. Plain mutable state: every reader runs on the same thread.
 *
 * @since 0.1.0
 * @category models
 */
export interface Timeline {
  /** Milliseconds since the drill started. */
  readonly now: () => number
  readonly events: ReadonlyArray<DrillEvent>
  readonly emit: (kind: EventKind, text: string) => void
  /** Called for every new event (the plain-mode dashboard prints them as they happen). */
  readonly onEvent: (listener: (event: DrillEvent) => void) => void
}

/**
 * A timeline starting now.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeTimeline = (): Timeline => {
  const startedAt = performance.now()
  const events: Array<DrillEvent> = []
  const listeners: Array<(event: DrillEvent) => void> = []
  const now = () => performance.now() - startedAt
  return {
    now,
    events,
    emit: (kind, text) => {
      const event = { at: now(), kind, text }
      events.push(event)
      for (const listener of listeners) listener(event)
    },
    onEvent: (listener) => {
      listeners.push(listener)
    }
  }
}

/**
 * The layer as its streams last reported it, and when the command connection was last lost.
 *
 * @since 0.1.0
 * @category models
 */
export interface Monitor {
  readonly timeline: Timeline
  readonly connection: () => ConnectionState
  readonly circuit: () => CircuitStatus
  readonly subscriberMode: () => DeliveryMode
  /** Times (ms) at which the command connection left `Ready`, with the reason. */
  readonly losses: ReadonlyArray<{ readonly at: number; readonly reason: string }>
  /** Times (ms) at which the subscriber went back to live delivery. */
  readonly liveAgain: ReadonlyArray<number>
  /** Times (ms) at which the subscriber fell back to polling. */
  readonly fellBack: ReadonlyArray<number>
  /** Called synchronously when the command connection leaves `Ready` (detection of a fault). */
  readonly onLoss: (listener: (at: number, reason: string) => void) => void
}

// Commands that time out do not drop the connection; the heartbeat's PING does, after `misses` in a row.
const lossReason = (error: RedisError | undefined): string =>
  error === undefined
    ? "closed"
    : error._tag === "CommandTimeout" && error.command === "PING"
    ? "heartbeat PING timed out"
    : error._tag

/**
 * How a connection state reads in the event log and on the dashboard.
 *
 * @since 0.1.0
 * @category rendering
 */
export const describeState = (state: ConnectionState): string => {
  switch (state._tag) {
    case "Connecting":
      return "connecting"
    case "Ready":
      return `ready (connection #${state.generation})`
    case "Closed":
      return "closed"
    case "Reconnecting": {
      const why = lossReason(state.lastError)
      const next = Math.round(Duration.toMillis(state.nextDelay))
      return state.attempt === 0
        ? `lost (${why}), reconnecting`
        : `reconnecting: attempt ${state.attempt} failed (${why}), next in ${next} ms`
    }
  }
}

/**
 * Follows the command connection, the circuit and the subscriber for as long as the scope lives, logging every
 * transition on the timeline.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(
  timeline: Timeline,
  redis: RedisServiceShape,
  subscriber: RedisSubscriberShape
): Effect.fn.Return<Monitor, never, Scope.Scope> {
  let connection: ConnectionState = { _tag: "Connecting", attempt: 0 }
  let circuit: CircuitStatus = "closed"
  let mode: DeliveryMode = "polling"
  let wasLive = false
  const losses: Array<{ at: number; reason: string }> = []
  const liveAgain: Array<number> = []
  const fellBack: Array<number> = []
  const lossListeners: Array<(at: number, reason: string) => void> = []

  let failedAttempts = 0
  yield* Effect.forkScoped(Stream.runForEach(redis.states, (state) =>
    Effect.sync(() => {
      const previous = connection
      connection = state
      if (previous._tag === "Ready" && state._tag !== "Ready" && state._tag !== "Closed") {
        const at = timeline.now()
        const reason = state._tag === "Reconnecting" ? lossReason(state.lastError) : state._tag
        losses.push({ at, reason })
        for (const listener of lossListeners) listener(at, reason)
      }
      if (state._tag === "Reconnecting") failedAttempts = state.attempt
      // Every failed attempt is a state of its own: the log keeps the first three of a cycle, then the outcome.
      if (state._tag === "Reconnecting" && state.attempt > 3) return
      if (state._tag === "Ready" && failedAttempts > 3) {
        timeline.emit("connection", `connection ${describeState(state)} after ${failedAttempts} failed attempts`)
      } else if (state._tag !== "Closed") {
        timeline.emit("connection", `connection ${describeState(state)}`)
      }
      if (state._tag === "Ready") failedAttempts = 0
    })))
  yield* Effect.forkScoped(Stream.runForEach(redis.circuit, (status) =>
    Effect.sync(() => {
      if (status !== circuit) timeline.emit("circuit", `circuit ${status}`)
      circuit = status
    })))
  yield* Effect.forkScoped(Stream.runForEach(subscriber.mode, (next) =>
    Effect.sync(() => {
      if (next !== mode) {
        timeline.emit(
          "pubsub",
          next === "polling" ? "pub/sub falls back to polling" : wasLive ? "pub/sub live again" : "pub/sub live"
        )
        if (next === "live") {
          liveAgain.push(timeline.now())
          wasLive = true
        } else {
          fellBack.push(timeline.now())
        }
      }
      mode = next
    })))

  return {
    timeline,
    connection: () => connection,
    circuit: () => circuit,
    subscriberMode: () => mode,
    losses,
    liveAgain,
    fellBack,
    onLoss: (listener) => {
      lossListeners.push(listener)
    }
  }
})
