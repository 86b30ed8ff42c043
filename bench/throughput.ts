/**
 * Throughput and latency on a healthy server: GET and SET at several concurrencies, every client in the same process,
 * in alternating rounds (the order of the clients rotates every round), reporting medians over rounds with their min
 * and max. Every operation is timed with `performance.now()` by the same loop for every client, so the timing costs
 * the same everywhere; latency percentiles are per round, then the median over rounds.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type { Client } from "./clients.ts"
import { percentiles, type Spread, spread } from "./stats.ts"

/**
 * @since 0.1.0
 * @category models
 */
export interface ThroughputOptions {
  readonly concurrencies: ReadonlyArray<number>
  /** Default: GET and SET. */
  readonly operations?: ReadonlyArray<Operation> | undefined
  readonly rounds: number
  /** How long one client runs in one round of one scenario. */
  readonly cellMillis: number
  /** How long each client runs at concurrency 64 before the first round, to warm the JIT up. */
  readonly warmupMillis: number
  readonly onProgress?: ((message: string) => void) | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export type Operation = "GET" | "SET"

/**
 * One client's figures in one scenario. Latencies are in milliseconds.
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientFigures {
  readonly opsPerSecond: Spread
  /** CPU time (user + system) of this process per operation, in microseconds: what the client costs the host. */
  readonly cpuMicrosPerOp: Spread
  readonly p50: Spread
  readonly p90: Spread
  readonly p99: Spread
  readonly p999: Spread
  readonly max: Spread
}

/**
 * A scenario's results, by client id: figures, or why the client was not measured.
 *
 * @since 0.1.0
 * @category models
 */
export interface ScenarioResult {
  readonly operation: Operation
  readonly concurrency: number
  readonly clients: Record<string, ClientFigures | { readonly notRun: string }>
}

interface Cell {
  readonly ops: number
  readonly seconds: number
  readonly recorded: number
  readonly cpuMicros: number
}

const key = "bench:key"
const value = "v".repeat(64)

// A young-generation collection before every run, so that a run does not pay for the previous client's short-lived
// garbage. Old-generation collections are not forced: they happen where they happen, as in a program that runs for long.
const collectGarbage = (type: "minor" | "major"): void => {
  const gc = (globalThis as { gc?: (options?: { readonly type: "minor" | "major" }) => void }).gc
  if (gc !== undefined) gc({ type })
}

const finish = (ops: number, start: number, cpu: NodeJS.CpuUsage, capacity: number): Cell => {
  const seconds = (performance.now() - start) / 1000
  const used = process.cpuUsage(cpu)
  return { ops, seconds, recorded: Math.min(ops, capacity), cpuMicros: used.user + used.system }
}

const effectCell = (
  operation: () => Effect.Effect<unknown, unknown>,
  concurrency: number,
  millis: number,
  samples: Float64Array
): Effect.Effect<Cell, unknown> =>
  Effect.suspend(() => {
    const capacity = samples.length
    let ops = 0
    const cpu = process.cpuUsage()
    const start = performance.now()
    const end = start + millis
    const worker = Effect.gen(function*() {
      let now = performance.now()
      while (now < end) {
        yield* operation()
        const after = performance.now()
        if (ops < capacity) samples[ops] = after - now
        ops++
        now = after
      }
    })
    return Effect.forEach(Array.from({ length: concurrency }, () => worker), (run) => run, {
      concurrency: "unbounded",
      discard: true
    }).pipe(
      Effect.map(() => finish(ops, start, cpu, capacity))
    )
  })

const promiseCell = async (
  operation: () => Promise<unknown>,
  concurrency: number,
  millis: number,
  samples: Float64Array
): Promise<Cell> => {
  const capacity = samples.length
  let ops = 0
  const cpu = process.cpuUsage()
  const start = performance.now()
  const end = start + millis
  const worker = async () => {
    let now = performance.now()
    while (now < end) {
      await operation()
      const after = performance.now()
      if (ops < capacity) samples[ops] = after - now
      ops++
      now = after
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  return finish(ops, start, cpu, capacity)
}

const runCell = (
  client: Client,
  operation: Operation,
  concurrency: number,
  millis: number,
  samples: Float64Array
): Effect.Effect<Cell, unknown> => {
  switch (client._tag) {
    case "Effect": {
      const run = operation === "GET" ? () => client.get(key) : () => client.set(key, value)
      return effectCell(run, concurrency, millis, samples)
    }
    case "Promise": {
      const run = operation === "GET" ? () => client.get(key) : () => client.set(key, value)
      return Effect.tryPromise({ try: () => promiseCell(run, concurrency, millis, samples), catch: (cause) => cause })
    }
    case "Unavailable":
      return Effect.die(new Error(client.reason))
  }
}

interface Accumulator {
  readonly opsPerSecond: Array<number>
  readonly cpuMicrosPerOp: Array<number>
  readonly p50: Array<number>
  readonly p90: Array<number>
  readonly p99: Array<number>
  readonly p999: Array<number>
  readonly max: Array<number>
  failure: string | undefined
}

const emptyAccumulator = (): Accumulator => ({
  opsPerSecond: [],
  cpuMicrosPerOp: [],
  p50: [],
  p90: [],
  p99: [],
  p999: [],
  max: [],
  failure: undefined
})

/**
 * Runs every scenario (operation x concurrency). Within a scenario, each round runs every client once, in an order
 * rotated by one every round. With `--expose-gc`, a young-generation garbage collection precedes every run and a full one
 * the first round.
 *
 * @since 0.1.0
 * @category running
 */
export const run = Effect.fnUntraced(function*(clients: ReadonlyArray<Client>, options: ThroughputOptions) {
  const samples = new Float64Array(1 << 21)
  const measurable = clients.filter((client) => client._tag !== "Unavailable")
  const progress = options.onProgress ?? (() => {})

  // Warm-up: every client, every operation, at concurrency 64, discarded.
  for (const client of measurable) {
    for (const operation of options.operations ?? ["SET", "GET"]) {
      const concurrency = Math.max(64, client.minConcurrency)
      yield* Effect.ignore(runCell(client, operation, concurrency, options.warmupMillis, samples))
    }
  }

  collectGarbage("major")
  const results: Array<ScenarioResult> = []
  for (const operation of options.operations ?? ["GET", "SET"]) {
    for (const concurrency of options.concurrencies) {
      const inScenario = clients.filter((client) => concurrency >= client.minConcurrency)
      const running = inScenario.filter((client) => client._tag !== "Unavailable")
      const accumulators = new Map(running.map((client) => [client.id, emptyAccumulator()]))
      for (let round = 0; round < options.rounds; round++) {
        progress(`${operation} c=${concurrency} round ${round + 1}/${options.rounds}`)
        for (let i = 0; i < running.length; i++) {
          const client = running[(i + round) % running.length]!
          const accumulator = accumulators.get(client.id)!
          if (accumulator.failure !== undefined) continue
          collectGarbage("minor")
          const cell = yield* Effect.result(runCell(client, operation, concurrency, options.cellMillis, samples))
          if (cell._tag === "Failure") {
            accumulator.failure = `failed: ${String(cell.failure)}`
            continue
          }
          const [p50, p90, p99, p999, max] = percentiles(samples, cell.success.recorded, [50, 90, 99, 99.9, 100])
          accumulator.opsPerSecond.push(cell.success.ops / cell.success.seconds)
          accumulator.cpuMicrosPerOp.push(cell.success.cpuMicros / cell.success.ops)
          accumulator.p50.push(p50!)
          accumulator.p90.push(p90!)
          accumulator.p99.push(p99!)
          accumulator.p999.push(p999!)
          accumulator.max.push(max!)
        }
      }
      const figures: Record<string, ClientFigures | { readonly notRun: string }> = {}
      for (const client of inScenario) {
        const accumulator = accumulators.get(client.id)
        if (client._tag === "Unavailable" || accumulator === undefined) {
          figures[client.id] = { notRun: client._tag === "Unavailable" ? client.reason : "not run" }
        } else if (accumulator.failure !== undefined) {
          figures[client.id] = { notRun: accumulator.failure }
        } else {
          figures[client.id] = {
            opsPerSecond: spread(accumulator.opsPerSecond),
            cpuMicrosPerOp: spread(accumulator.cpuMicrosPerOp),
            p50: spread(accumulator.p50),
            p90: spread(accumulator.p90),
            p99: spread(accumulator.p99),
            p999: spread(accumulator.p999),
            max: spread(accumulator.max)
          }
        }
      }
      results.push({ operation, concurrency, clients: figures })
    }
  }
  return results
})
