/**
 * Recording the layer's metrics (see `Health.ts` for the metrics themselves): state gauges, and per-command counts
 * and durations kept in plain numbers on the hot path.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import {
  circuitState,
  circuitTransitions,
  commandDuration,
  commands,
  connectionState,
  durationBoundaries
} from "../Health.ts"
import type { CircuitStatus, ConnectionStatus } from "../Health.ts"

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
