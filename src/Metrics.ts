/**
 * The connection-health metrics (Effect `Metric`s, exportable with `PrometheusMetrics` or OTLP) and the `RedisHealth`
 * snapshot the service returns.
 *
 * Metric names are fixed and documented in docs/operations.md; commands are counted by command name and outcome
 * (`ok` or the error tag) and timed in seconds.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import type * as Option from "effect/Option"
import type { CircuitStatus } from "./CircuitBreaker.ts"
import type { ConnectionStatus } from "./Connection.ts"
import type { RedisError } from "./RedisError.ts"

/**
 * A plain snapshot of the layer's health.
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisHealth {
  readonly connection: ConnectionStatus
  readonly circuit: CircuitStatus
  /** Reconnect cycles started since the layer was built (connections lost). */
  readonly reconnects: number
  /** Connections that became ready since the layer was built (the first one included). */
  readonly connectionsOpened: number
  /** Round-trip time of the last successful heartbeat PING. `None` before the first one or with heartbeats off. */
  readonly heartbeatRtt: Option.Option<Duration.Duration>
  /** Failed heartbeat PINGs in a row on the current connection (on a Cluster: of the worst master). */
  readonly consecutiveHeartbeatFailures: number
  /**
   * Cluster: how often one node's trouble was handled without replacing the Cluster client (a master that stopped
   * answering was reconnected, or a command's lost node connection refreshed the slot map). 0 elsewhere.
   */
  readonly nodeRecoveries: number
  /** Which kind of deployment the layer talks to. */
  readonly topology: "standalone" | "sentinel" | "cluster"
  /**
   * Why no connection is ready: the last failed attempt's error (a refused `db`, a wrong password, a rejected TLS
   * certificate, ...) or what lost the connection. Absent while a connection is ready. Safe to log: this library's
   * errors carry no password, user name or command argument.
   */
  readonly lastError?: RedisError | undefined
  /**
   * The nodes of the current connection, with their role and ioredis' status: the server (standalone), the master the
   * sentinels pointed to (sentinel), every node of the slot map (cluster). Empty while no connection is ready.
   */
  readonly nodes: ReadonlyArray<NodeHealth>
}

/**
 * One node as seen by the current connection.
 *
 * @since 0.1.0
 * @category models
 */
export interface NodeHealth {
  readonly address: string
  readonly role: "master" | "replica"
  /** ioredis' connection status for that node: "ready", "connecting", "wait" (not yet needed), "end", ... */
  readonly status: string
  /** Cluster: the circuit of this master (one breaker per master); absent while it never failed. */
  readonly circuit?: "closed" | "open" | "half-open" | undefined
}

/**
 * Commands run, by `command` and `outcome` (`ok`, or the error's tag such as `ConnectionReset`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const commands = Metric.counter("redis_commands_total", {
  description: "Redis commands run through effect-redis-resilience, by command and outcome",
  incremental: true
})

const durationBoundaries = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

/**
 * Command duration in seconds, by `command`, from admission to reply (waiting for a connection included).
 *
 * @since 0.1.0
 * @category metrics
 */
export const commandDuration = Metric.histogram("redis_command_duration_seconds", {
  description: "Redis command duration in seconds",
  boundaries: durationBoundaries
})

/**
 * Reconnect cycles started (a ready connection was lost).
 *
 * @since 0.1.0
 * @category metrics
 */
export const reconnects = Metric.counter("redis_reconnects_total", {
  description: "Reconnect cycles started because a ready Redis connection was lost",
  incremental: true
})

/**
 * Connection attempts that failed, by error tag.
 *
 * @since 0.1.0
 * @category metrics
 */
export const connectFailures = Metric.counter("redis_connect_failures_total", {
  description: "Failed Redis connection attempts, by error",
  incremental: true
})

/**
 * Connections that became ready.
 *
 * @since 0.1.0
 * @category metrics
 */
export const connectionsOpened = Metric.counter("redis_connections_opened_total", {
  description: "Redis connections that completed their handshake",
  incremental: true
})

/**
 * The connection state: 0 connecting, 1 ready, 2 reconnecting, 3 closed.
 *
 * @since 0.1.0
 * @category metrics
 */
export const connectionState = Metric.gauge("redis_connection_state", {
  description: "Redis connection state: 0 connecting, 1 ready, 2 reconnecting, 3 closed"
})

/**
 * The circuit state: 0 closed, 1 half-open, 2 open.
 *
 * @since 0.1.0
 * @category metrics
 */
export const circuitState = Metric.gauge("redis_circuit_state", {
  description: "Redis circuit breaker state: 0 closed, 1 half-open, 2 open"
})

/**
 * Circuit transitions, by the state entered (`to`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const circuitTransitions = Metric.counter("redis_circuit_transitions_total", {
  description: "Redis circuit breaker transitions, by the state entered",
  incremental: true
})

/**
 * Heartbeat round-trip time in seconds.
 *
 * @since 0.1.0
 * @category metrics
 */
export const heartbeatRtt = Metric.histogram("redis_heartbeat_rtt_seconds", {
  description: "Round-trip time of the Redis heartbeat PING in seconds",
  boundaries: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5]
})

/**
 * Heartbeat PINGs that failed or timed out.
 *
 * @since 0.1.0
 * @category metrics
 */
export const heartbeatFailures = Metric.counter("redis_heartbeat_failures_total", {
  description: "Redis heartbeat PINGs that failed or timed out",
  incremental: true
})

const connectionStateCode: Record<ConnectionStatus, number> = { connecting: 0, ready: 1, reconnecting: 2, closed: 3 }
const circuitStateCode: Record<CircuitStatus, number> = { closed: 0, "half-open": 1, open: 2 }

/**
 * Records a connection state change.
 *
 * @since 0.1.0
 * @category recording
 */
export const recordConnectionState = (state: ConnectionStatus): Effect.Effect<void> =>
  Metric.update(connectionState, connectionStateCode[state])

/**
 * Records a circuit transition.
 *
 * @since 0.1.0
 * @category recording
 */
export const recordCircuitState = (state: CircuitStatus): Effect.Effect<void> =>
  Effect.andThen(
    Metric.update(circuitState, circuitStateCode[state]),
    Metric.update(Metric.withAttributes(circuitTransitions, { to: state }), 1)
  )

interface CommandSeries {
  readonly outcomes: Map<string, { count: number }>
  /** The `ok` counter, kept at hand: most commands succeed. */
  ok: { count: number } | undefined
  readonly buckets: Float64Array
  count: number
  sum: number
  min: number
  max: number
}

/**
 * Per-command counts and durations, kept in plain numbers on the hot path and read by the metric registry only when
 * a snapshot is taken (pull-based series registered with `Metric.registerUnsafe`). This is what lets every command be
 * counted and timed for the price of a few additions.
 *
 * The series appear as `redis_commands_total{client, command, outcome}` and
 * `redis_command_duration_seconds{client, command}`, where `client` is the layer's `connectionName` (or `default`):
 * two layers in one process need distinct names, else the second one's series replace the first one's.
 *
 * @since 0.1.0
 * @category recording
 */
export interface CommandStats {
  readonly record: (command: string, outcome: string, seconds: number) => void
}

/**
 * Creates the command statistics and registers their series in the current metric registry until the scope closes.
 *
 * @since 0.1.0
 * @category recording
 */
export const makeCommandStats = Effect.fnUntraced(function*(client: string) {
  const context = yield* Effect.context<never>()
  const series = new Map<string, CommandSeries>()
  const registrations: Array<{ remove(): void }> = []
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      for (const registration of registrations) registration.remove()
    })
  )
  const size = durationBoundaries.length

  const seriesFor = (command: string): CommandSeries => {
    let entry = series.get(command)
    if (entry === undefined) {
      const created: CommandSeries = {
        outcomes: new Map(),
        ok: undefined,
        buckets: new Float64Array(size + 1),
        count: 0,
        sum: 0,
        min: Number.MAX_VALUE,
        max: -Number.MAX_VALUE
      }
      entry = created
      series.set(command, created)
      registrations.push(Metric.registerUnsafe(Metric.withAttributes(commandDuration, { client, command }), context, {
        get: () => {
          const buckets: Array<[number, number]> = []
          let cumulated = 0
          for (let i = 0; i < size; i++) {
            cumulated += created.buckets[i]!
            buckets.push([durationBoundaries[i]!, cumulated])
          }
          return { buckets, count: created.count, sum: created.sum, min: created.min, max: created.max }
        },
        update: () => {},
        modify: () => {}
      }))
    }
    return entry
  }

  const outcomeFor = (entry: CommandSeries, command: string, outcome: string) => {
    let counter = entry.outcomes.get(outcome)
    if (counter === undefined) {
      const created = { count: 0 }
      counter = created
      entry.outcomes.set(outcome, created)
      registrations.push(Metric.registerUnsafe(Metric.withAttributes(commands, { client, command, outcome }), context, {
        get: () => ({ count: created.count, incremental: true }),
        update: () => {},
        modify: () => {}
      }))
    }
    return counter
  }

  const record = (command: string, outcome: string, seconds: number): void => {
    const entry = seriesFor(command)
    if (outcome === "ok") (entry.ok ??= outcomeFor(entry, command, outcome)).count++
    else outcomeFor(entry, command, outcome).count++
    let bucket = 0
    while (bucket < size && seconds > durationBoundaries[bucket]!) bucket++
    entry.buckets[bucket]!++
    entry.count++
    entry.sum += seconds
    if (seconds < entry.min) entry.min = seconds
    if (seconds > entry.max) entry.max = seconds
  }

  return { record } satisfies CommandStats as CommandStats
})
