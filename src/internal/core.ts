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
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { ResolvedRedisConfig } from "../RedisConfig.ts"
import * as Connection from "./connection.ts"
import type { IORedisOptions } from "./topology/options.ts"

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
}

const CoreKey: unique symbol = Symbol.for("effect-redis-resilience/internal/Core")

/** The core of a layer whose breaker is told through `signals`. */
export const make = (config: ResolvedRedisConfig, signals: BreakerSignals): Core => {
  const core: Core = {
    config,
    signals,
    open: (role, hooks = {}, clientOptions = {}) =>
      Connection.make(config, { ...hooks, onAttemptFailed: () => signals.failure }, {
        clientOptions: { connectionName: roleName(config, role), ...clientOptions }
      })
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
