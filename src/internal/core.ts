/**
 * The layer's core, shared with its companions (`RedisSubscriber`, `RedisBlocking`, `RedisPersistence`, `watch`):
 * the resolved config, the circuit breaker's signals, and `open`, which opens any further connection to the same
 * Redis with the layer's options, a `<connectionName>:<role>` name and its failed attempts counted by the breaker.
 * So "one breaker speaks for the server" holds by construction, not by each companion remembering to wire it.
 *
 * The core travels on the service value under a symbol (not part of `RedisServiceShape`): a service decorated with
 * an object spread keeps it, and it renders as `RedisCore` (never its config or functions).
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import type * as Scope from "effect/Scope"
import * as Health from "../Health.ts"
import type { ResolvedRedisConfig } from "../RedisConfig.ts"
import { type ConnectionTimeout, isTransient } from "../RedisError.ts"
import * as CircuitBreaker from "./breaker.ts"
import * as Connection from "./connection.ts"
import * as Executor from "./executor.ts"
import * as Heartbeat from "./heartbeat.ts"
import * as Metrics from "./metrics.ts"
import * as Observe from "./observe.ts"
import * as NodeBreakers from "./topology/clusterBreakers.ts"
import type { IORedisOptions } from "./topology/options.ts"
import * as Watchdog from "./watchdog.ts"

/** What a companion may tell the layer's circuit breaker. */
export interface BreakerSignals {
  readonly failure: Effect.Effect<void>
  readonly success: Effect.Effect<void>
}

export interface Core {
  readonly config: ResolvedRedisConfig
  readonly signals: BreakerSignals
  /**
   * Opens a further connection in the current scope (it reconnects by the layer's schedule until the scope closes).
   * Its failed attempts count towards the breaker; whatever else it should report is the caller's `hooks`.
   */
  readonly open: (
    role: string,
    hooks?: Omit<Connection.ConnectionHooks, "onAttemptFailed">,
    clientOptions?: Partial<IORedisOptions>
  ) => Effect.Effect<Connection.Connection, never, Scope.Scope>
  /**
   * Counts (`redis_commands_total{client: "<name>:<role>"}`, durations) and traces the commands of the connections
   * opened for `role`. One observer per role for the layer's life: the pooled connections of a role share it (series
   * registered twice under one label would replace each other).
   */
  readonly observe: (role: Role) => Observe.Observe
}

/** The roles of the connections the core opens besides the command connection. */
export type Role = "subscriber" | "blocking" | "reserved" | "watch"

const roles: ReadonlyArray<Role> = ["subscriber", "blocking", "reserved", "watch"]

/** The observers of every role, registered in the current scope (series appear at a role's first command). */
export const makeObservers = Effect.fnUntraced(function*(config: ResolvedRedisConfig) {
  const observers = new Map<Role, Observe.Observe>()
  for (const role of roles) observers.set(role, yield* Observe.make(config, roleName(config, role)))
  return (role: Role): Observe.Observe => observers.get(role) ?? Observe.none
})

const CoreKey: unique symbol = Symbol.for("effect-redis-resilience/internal/Core")

/** The core of a layer whose breaker is told through `signals`. */
export const make = (
  config: ResolvedRedisConfig,
  signals: BreakerSignals,
  observe: (role: Role) => Observe.Observe = () => Observe.none
): Core => {
  const core: Core = {
    config,
    signals,
    open: (role, hooks = {}, clientOptions = {}) =>
      Connection.make(config, { ...hooks, onAttemptFailed: () => signals.failure }, {
        clientOptions: { connectionName: roleName(config, role), ...clientOptions }
      }),
    observe
  }
  return Object.defineProperties(core, {
    toJSON: { value: () => "RedisCore" },
    [Symbol.for("nodejs.util.inspect.custom")]: { value: () => "RedisCore" }
  })
}

/** The name of a connection opened for `role`: `<connectionName>:<role>`, or `role` alone. */
export const roleName = (config: ResolvedRedisConfig, role: string): string =>
  config.connectionName === undefined ? role : `${config.connectionName}:${role}`

/** `service` carrying `core` (an enumerable symbol property: an object spread of the service keeps it). */
export const attach = <S extends object>(service: S, core: Core): S => Object.assign(service, { [CoreKey]: core })

/**
 * The core of a service built by `RedisService.layer`. A service made by hand (a test double) has none: the companions
 * that need one die with a message that says so.
 */
export const of = (service: object): Core => {
  const core = (service as { readonly [CoreKey]?: Core })[CoreKey]
  if (core === undefined) {
    throw new Error(
      "This RedisService was not built by RedisService.layer (or make): RedisSubscriber, RedisBlocking and " +
        "RedisPersistence open their connections through the layer's own core"
    )
  }
  return core
}

/**
 * The command path of a layer, in the current scope: the breaker (its transitions recorded), the command connection
 * (attempts, readiness and losses feeding the breaker and the metrics), its heartbeat, the breaker's probe, the
 * per-master breakers where keys route by slot, and the executor every operation runs through. Waits for the first
 * connection when `awaitReady` is set.
 */
export const makeCommandPath = Effect.fnUntraced(function*(
  config: ResolvedRedisConfig
): Effect.fn.Return<CommandPath, ConnectionTimeout, Scope.Scope> {
  const breaker = yield* CircuitBreaker.make(config.breaker, {
    onTransition: (state) => Metrics.recordCircuitState(CircuitBreaker.status(state))
  })
  const connection = yield* Connection.make(config, {
    onAttemptFailed: (error) =>
      Effect.andThen(
        breaker.onFailure,
        Metric.update(Metric.withAttributes(Health.connectFailures, { error: error._tag }), 1)
      ),
    onReady: () => Effect.andThen(breaker.onConnectionReady, Metric.update(Health.connectionsOpened, 1)),
    onLost: () => Effect.andThen(breaker.onFailure, Metric.update(Health.reconnects, 1)),
    onState: (state) => Metrics.recordConnectionState(Health.connectionStatus(state)),
    // Cluster: a node's lost connection counts towards that master's own breaker (see NodeBreakers), not the layer's:
    // one failing master must not open the circuit for the others.
  })
  const heartbeat = config.heartbeat === undefined
    ? undefined
    : yield* Heartbeat.make(connection, config.heartbeat, {
      onSuccess: (rtt) =>
        Effect.andThen(breaker.onSuccess, Metric.update(Health.heartbeatRtt, Duration.toSeconds(rtt))),
      onFailure: () => Effect.andThen(breaker.onFailure, Metric.update(Health.heartbeatFailures, 1)),
      // Cluster: a master that stops answering while the others answer is reconnected on its own.
      onNodeFailure: () => Metric.update(Health.heartbeatFailures, 1),
      onNodeMisses: connection.recoverNode
    })

  // The breaker's probe: a PING of its own on the next ready connection, never a user's command.
  const probeTimeout = config.heartbeat?.timeout ?? config.commandTimeout
  // A failed probe also replaces the connection: with the heartbeat off, nothing else would notice a silent socket.
  // On a Cluster the probe succeeds when any master answers (see `Heartbeat.probe`); when none does and the Cluster
  // is still up, the slot map is refreshed instead.
  yield* breaker.run(Effect.flatMap(
    connection.acquire("PING"),
    (live) =>
      Heartbeat.probe(connection.connector, live, probeTimeout).pipe(
        Effect.tapError((error) => isTransient(error) ? connection.lost(live, error) : Effect.void)
      )
  ))

  // Its ConnectionTimeout says why the last attempt failed (a refused SELECT, a TLS certificate, ...).
  if (config.awaitReady) yield* connection.awaitReady

  const stats = yield* Metrics.makeCommandStats(config.connectionName ?? "default")
  const watchdog = yield* Watchdog.make(config.commandTimeout)
  // Cluster: a breaker per master, so that one failing master does not fail the commands routed to the others.
  const nodes = connection.connector.slotted
    ? yield* NodeBreakers.make({
      policy: config.breaker,
      keyPrefix: config.keyPrefix,
      probeTimeout,
      lossWindow: config.reconnect.debounce,
      current: connection.current
    })
    : undefined
  const execute = Executor.make(config, connection, breaker, stats, watchdog, nodes)
  const core = make(config, { failure: breaker.onFailure, success: breaker.onSuccess }, yield* makeObservers(config))
  return { core, breaker, connection, heartbeat, nodes, execute }
})

/** What `makeCommandPath` opened. */
export interface CommandPath {
  readonly core: Core
  readonly breaker: CircuitBreaker.CircuitBreaker
  readonly connection: Connection.Connection
  readonly heartbeat: Heartbeat.Heartbeat | undefined
  readonly nodes: NodeBreakers.NodeBreakers | undefined
  readonly execute: ReturnType<typeof Executor.make>
}
