/**
 * Spans and metrics for the commands sent outside the shared connection's executor (the subscriber's, the dedicated
 * connections'), so that every connection the layer opens shows in traces and in `redis_commands_total` /
 * `redis_command_duration_seconds`, under its own `client` label (`<connectionName>:<role>`).
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Scope from "effect/Scope"
import type { ResolvedRedisConfig } from "../RedisConfig.ts"
import type { RedisError } from "../RedisError.ts"
import * as Metrics from "./metrics.ts"
import * as Spans from "./spans.ts"
import { connectorFor } from "./topology/connector.ts"

/** Wraps one command: timed and counted by outcome, and a `redis.<COMMAND>` span when the program traces. */
export type Observe = <A>(
  name: string,
  effect: Effect.Effect<A, RedisError>,
  query?: Spans.QueryText | undefined
) => Effect.Effect<A, RedisError>

/**
 * The observer of the connection of `client` (a metrics label), registered in the current scope. An interrupted
 * command is not counted (nothing is known of its outcome).
 */
export const make = Effect.fnUntraced(function*(
  config: ResolvedRedisConfig,
  client: string
): Effect.fn.Return<Observe, never, Scope.Scope> {
  const stats = yield* Metrics.makeCommandStats(client)
  const spans = Spans.make(connectorFor(config).serverAttributes, config.tracing.queryText)
  return <A>(name: string, effect: Effect.Effect<A, RedisError>, query?: Spans.QueryText) =>
    Effect.withFiber<A, RedisError>((fiber) => {
      const start = performance.now()
      const counted = Effect.onExit(effect, (exit) =>
        Effect.sync(() => {
          const outcome = Exit.isSuccess(exit) ? "ok" : failureTag(exit)
          if (outcome !== undefined) stats.record(name, outcome, (performance.now() - start) / 1000)
        }))
      if (!spans.traced(fiber)) return counted
      const span = spans.spanFor(name, query)
      return Effect.withSpan(Effect.tapError(counted, Spans.errorType), span.name, span.options)
    })
})

const failureTag = (exit: Exit.Failure<unknown, RedisError>): string | undefined => {
  for (const reason of exit.cause.reasons) if (reason._tag === "Fail") return reason.error._tag
  return undefined
}

/** An observer that neither counts nor traces (a core made by hand, in tests). */
export const none: Observe = (_name, effect) => effect
