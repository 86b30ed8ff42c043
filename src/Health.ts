/**
 * What the layer tells about its health: the `RedisHealth` snapshot (`redis.health`), the connection states
 * (`redis.states`) and the Effect `Metric`s it records (exportable with `PrometheusMetrics` or OTLP).
 *
 * Metric names are fixed and documented in docs/operations.md; commands are counted by command name and outcome
 * (`ok` or the error tag) and timed in seconds.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import * as Metric from "effect/Metric"
import type * as Option from "effect/Option"
import type { RedisError } from "./RedisError.ts"

/**
 * The state of the connection.
 *
 * - `Connecting`: the first connection is being opened (`attempt` counts the attempts so far).
 * - `Ready`: a connection answered its handshake and takes commands. `generation` grows with every new connection.
 * - `Reconnecting`: the connection was lost (or never made); `attempt` failed attempts so far in this cycle, the
 *   next one in `nextDelay`; `lastError` is why.
 * - `Closed`: the layer's scope closed.
 *
 * @since 0.1.0
 * @category models
 */
export type ConnectionState =
  | { readonly _tag: "Connecting"; readonly attempt: number }
  | { readonly _tag: "Ready"; readonly generation: number }
  | {
    readonly _tag: "Reconnecting"
    readonly attempt: number
    readonly nextDelay: Duration.Duration
    readonly lastError: RedisError | undefined
  }
  | { readonly _tag: "Closed" }

/**
 * The lower-case state name used in `RedisHealth` and metrics.
 *
 * @since 0.1.0
 * @category models
 */
export type ConnectionStatus = "connecting" | "ready" | "reconnecting" | "closed"

/**
 * The lower-case name of a `ConnectionState`, as `RedisHealth.connection` and the `redis_connection_state` gauge
 * report it.
 *
 * @since 0.1.0
 * @category models
 */
export const connectionStatus = (state: ConnectionState): ConnectionStatus =>
  state._tag === "Connecting"
    ? "connecting"
    : state._tag === "Ready"
    ? "ready"
    : state._tag === "Reconnecting"
    ? "reconnecting"
    : "closed"

/**
 * The lower-case state name used in `RedisHealth` and metrics.
 *
 * @since 0.1.0
 * @category models
 */
export type CircuitStatus = "closed" | "open" | "half-open"

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
  readonly circuit?: CircuitStatus | undefined
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

/** @internal */
export const durationBoundaries = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

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

