/**
 * Cluster and Sentinel figures on real processes. Throughput of one GET/SET workload (keys over many hash slots)
 * through this layer on one `redis-server` and on a 3-master, 3-replica `RedisTestCluster`, in alternating rounds, with
 * raw ioredis (`Redis` against `Cluster`) measured in the same rounds as the reference pair. Then per-node batching on
 * the same cluster: GET and SET (each alone) through the layer with its defaults against raw ioredis `Cluster` with
 * `enableAutoPipelining: true` (the performance issue's Cluster goal, >= 0.85x). Then failover: a master
 * frozen with SIGSTOP (the master of a key on the cluster, the master of a `RedisTestSentinel`), timed from the freeze
 * to the layer noticing and to its first successful write, with the test settings of
 * test/RedisService.topology.test.ts.
 *
 * ```sh
 * npm run bench -- --only=cluster            # about 40 s
 * npm run bench -- --only=cluster --quick    # about 25 s
 * ```
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as References from "effect/References"
import { Cluster, Redis } from "ioredis"
import type { RedisOptions, RedisServiceShape } from "../src/index.ts"
import { RedisTestCluster, RedisTestSentinel, RedisTestServer } from "../src/testing/index.ts"
import { failoverOptions } from "../test/helpers.ts"
import { layerService } from "./clients.ts"
import { formatMillis, formatNumber, formatSpread, percentiles, ratio, type Spread, spread, table } from "./stats.ts"

/**
 * Settings of a run.
 *
 * @since 0.1.0
 * @category models
 */
export interface ClusterBenchOptions {
  readonly concurrencies: ReadonlyArray<number>
  /** Rounds of the per-node batching comparison (GET and SET each alone, at every concurrency). */
  readonly batchingRounds: number
  /** Distinct keys of the workload (they hash to about as many slots). */
  readonly keys: number
  readonly rounds: number
  /** How long one client runs in one round of one concurrency. */
  readonly cellMillis: number
  /** How long each client runs before the first round. */
  readonly warmupMillis: number
  /** Cluster failover rounds, each freezing a different master of one cluster (at most 3). */
  readonly clusterFailoverRounds: number
  /** Sentinel failover rounds, each on a fresh master, replica and 3 sentinels. */
  readonly sentinelFailoverRounds: number
  /** How long to wait for the first successful write after a freeze. */
  readonly recoveryTimeoutMillis: number
  readonly onProgress?: ((message: string) => void) | undefined
}

/**
 * One client's figures at one concurrency; latencies in milliseconds.
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientFigures {
  readonly opsPerSecond: Spread
  /** CPU time (user + system) of this process per operation, in microseconds. */
  readonly cpuMicrosPerOp: Spread
  readonly p50: Spread
  readonly p99: Spread
  /** Operations that failed, over every round (not counted in the throughput), and the first one's message. */
  readonly failedOps: number
  readonly firstError?: string | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ThroughputScenario {
  readonly concurrency: number
  /** By client id: `layer-standalone`, `layer-cluster`, `raw-standalone`, `raw-cluster`. */
  readonly clients: Record<string, ClientFigures | { readonly notRun: string }>
  /** Per-round throughput ratios, cluster / standalone. */
  readonly layerRatio: Spread
  readonly rawRatio: Spread
}

/**
 * One operation at one concurrency of the per-node batching comparison.
 *
 * @since 0.1.0
 * @category models
 */
export interface BatchingScenario {
  readonly operation: "GET" | "SET"
  readonly concurrency: number
  /** By client id: `layer-cluster`, `layer-cluster-ap`, `raw-cluster`, `raw-cluster-ap`. */
  readonly clients: Record<string, ClientFigures | { readonly notRun: string }>
  /** Per-round throughput ratios, the layer (defaults) / raw ioredis `Cluster` auto-pipelined: the goal's figure. */
  readonly layerVsAutoPipelined: Spread
  /** The same for the layer with `autoPipelining: true`. */
  readonly layerAutoPipeliningVsAutoPipelined: Spread
  /** Per-round CPU-per-operation ratios, the layer (defaults) / raw ioredis `Cluster` auto-pipelined. */
  readonly layerCpuVsAutoPipelined: Spread
  /** `layerVsAutoPipelined.median >= batchingGoal`; `undefined` when a client did not run. */
  readonly goalMet: boolean | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface BatchingResult {
  /** How many of the workload's keys each master holds. */
  readonly keysPerMaster: ReadonlyArray<number>
  readonly scenarios: ReadonlyArray<BatchingScenario>
}

/**
 * The performance issue's Cluster goal: the layer with its default options at least this fraction of raw ioredis
 * `Cluster` with auto-pipelining (median of per-round ratios), GET and SET at every concurrency.
 *
 * @since 0.1.0
 * @category settings
 */
export const batchingGoal = 0.85

/**
 * How and when the layer noticed the frozen master (`undefined`: not before writes came back or the timeout).
 *
 * @since 0.1.0
 * @category models
 */
export interface Detection {
  readonly millis: number | undefined
  readonly by: string | undefined
}

/**
 * One freeze. Every time is from the SIGSTOP, in milliseconds.
 *
 * @since 0.1.0
 * @category models
 */
export interface FailoverRound {
  readonly frozenPort: number
  /**
   * `health.connection` left "ready"; or the frozen node's entry in `health.nodes` left "ready", stopped being a
   * master or went; or `health.nodeRecoveries` (where src/ has it) went up.
   */
  readonly noticed: Detection
  /** `health.circuit` left "closed". */
  readonly circuitOpenMillis: number | undefined
  /** The replica answered `ROLE` with "master" (polled every 20 ms on a connection of its own). */
  readonly promotedMillis: number | undefined
  /** The first `redis.set` that succeeded (one writer, the next attempt 5 ms after a failure). */
  readonly writeBackMillis: number | undefined
  /** The failed writes before it, by error tag. */
  readonly failedWrites: Record<string, number>
  /** Cluster: from SIGCONT until the old master was an in-sync replica again (before the next round). */
  readonly rejoinMillis?: number | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface FailoverResult {
  readonly rounds: ReadonlyArray<FailoverRound>
  readonly noticed: Spread
  readonly promoted: Spread
  readonly writeBack: Spread
  /** How long the setup took to start (cluster: once; sentinel: per round). */
  readonly setupMillis: Spread
}

/**
 * Everything `run` measured; a part that could not run says why.
 *
 * @since 0.1.0
 * @category models
 */
export interface ClusterBenchResult {
  readonly throughput: ReadonlyArray<ThroughputScenario> | { readonly notRun: string }
  readonly batching: BatchingResult | { readonly notRun: string }
  readonly clusterFailover: FailoverResult | { readonly notRun: string }
  readonly sentinelFailover: FailoverResult | { readonly notRun: string }
}

/**
 * The layer's settings in the failover rounds: those of test/RedisService.topology.test.ts (`failoverOptions`).
 * The Redis side is the test kit's defaults, as in those tests: `cluster-node-timeout` 1 s,
 * `down-after-milliseconds` 1 s, `failover-timeout` 3 s.
 *
 * @since 0.1.0
 * @category settings
 */
export const testSettings: RedisOptions = failoverOptions

const heartbeatIntervalMillis = 200
const rejoinTimeoutMillis = 8_000
const value = "v".repeat(64)
const now = () => performance.now()

const collectGarbage = (type: "minor" | "major"): void => {
  const gc = (globalThis as { gc?: (options?: { readonly type: "minor" | "major" }) => void }).gc
  if (gc !== undefined) gc({ type })
}

const errorMessage = (cause: unknown): string =>
  cause instanceof Error ? cause.message : typeof cause === "object" && cause !== null && "message" in cause
  ? String(cause.message)
  : String(cause)

const defined = (values: ReadonlyArray<number | undefined>): Array<number> =>
  values.filter((value): value is number => value !== undefined)

// ---------------------------------------------------------------------------------------------------------------------
// throughput
// ---------------------------------------------------------------------------------------------------------------------

/** A client of the workload: every operation is a GET or a SET (alternately) of the next key. */
type Contender =
  | { readonly _tag: "Effect"; readonly id: string; readonly op: (n: number) => Effect.Effect<unknown, unknown> }
  | { readonly _tag: "Promise"; readonly id: string; readonly op: (n: number) => Promise<unknown> }

/**
 * @since 0.1.0
 * @category labels
 */
export const labels: Record<string, string> = {
  "layer-standalone": "this layer, one node",
  "layer-cluster": "this layer, cluster",
  "raw-standalone": "raw ioredis Redis, one node",
  "raw-cluster": "raw ioredis Cluster"
}

/**
 * @since 0.1.0
 * @category labels
 */
export const batchingLabels: Record<string, string> = {
  "layer-cluster": "this layer, cluster (defaults)",
  "layer-cluster-ap": "this layer, cluster, autoPipelining: true",
  "raw-cluster-ap": "raw ioredis Cluster, enableAutoPipelining",
  "raw-cluster": "raw ioredis Cluster"
}

interface Cell {
  /** Operations that succeeded (the throughput counts only these). */
  readonly ops: number
  readonly failed: number
  readonly firstError: string | undefined
  readonly seconds: number
  readonly recorded: number
  readonly cpuMicros: number
}

const runCell = (contender: Contender, concurrency: number, millis: number, samples: Float64Array) =>
  Effect.suspend((): Effect.Effect<Cell, unknown> => {
    const capacity = samples.length
    let issued = 0
    let ops = 0
    let failed = 0
    let firstError: string | undefined
    const fail = (cause: unknown) => {
      failed++
      firstError ??= errorMessage(cause)
    }
    const cpu = process.cpuUsage()
    const start = now()
    const end = start + millis
    const finish = (): Cell => {
      const used = process.cpuUsage(cpu)
      return {
        ops,
        failed,
        firstError,
        seconds: (now() - start) / 1000,
        recorded: Math.min(ops, capacity),
        cpuMicros: used.user + used.system
      }
    }
    if (contender._tag === "Effect") {
      const worker = Effect.gen(function*() {
        let before = now()
        while (before < end) {
          const exit = yield* Effect.exit(contender.op(issued++))
          const after = now()
          if (exit._tag === "Failure") fail(Cause.squash(exit.cause))
          else {
            if (ops < capacity) samples[ops] = after - before
            ops++
          }
          before = after
        }
      })
      return Effect.map(
        Effect.forEach(Array.from({ length: concurrency }, () => worker), (w) => w, {
          concurrency: "unbounded",
          discard: true
        }),
        finish
      )
    }
    const worker = async () => {
      let before = now()
      while (before < end) {
        let ok = true
        await contender.op(issued++).catch((cause: unknown) => {
          ok = false
          fail(cause)
        })
        const after = now()
        if (ok) {
          if (ops < capacity) samples[ops] = after - before
          ops++
        }
        before = after
      }
    }
    return Effect.tryPromise({
      try: () => Promise.all(Array.from({ length: concurrency }, worker)).then(finish),
      catch: (cause) => cause
    })
  })

const rawClient = <C extends Redis | Cluster>(make: () => C) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const client = make()
      // Without a listener ioredis prints every connection error.
      client.on("error", () => {})
      return client
    }),
    (client) => Effect.sync(() => client.disconnect())
  )

/**
 * The clients on one server and one cluster, with every key of the workload written first: the four of the mixed
 * workload, and the contenders of the per-node batching comparison for one operation.
 */
const contenders = Effect.fnUntraced(function*(
  server: RedisTestServer.RedisTestServer,
  cluster: RedisTestCluster.RedisTestCluster,
  keys: ReadonlyArray<string>
) {
  const layerStandalone = yield* layerService({ url: server.url, awaitReady: true })
  const clusterTopology = { _tag: "Cluster", nodes: cluster.startupNodes } as const
  const layerCluster = yield* layerService({ topology: clusterTopology, awaitReady: true })
  const layerClusterPipelined = yield* layerService({
    topology: clusterTopology,
    awaitReady: true,
    autoPipelining: true
  })
  const rawStandalone = yield* rawClient(() => new Redis({ host: server.host, port: server.port }))
  const rawCluster = yield* rawClient(() => new Cluster([...cluster.startupNodes]))
  const rawClusterPipelined = yield* rawClient(() =>
    new Cluster([...cluster.startupNodes], { enableAutoPipelining: true })
  )
  yield* Effect.tryPromise({
    try: () => Promise.all(keys.map((key) => Promise.all([rawStandalone.set(key, value), rawCluster.set(key, value)]))),
    catch: (cause) => cause
  })
  // Every master holds some of the keys (the cluster is fresh: a master's DBSIZE is its share of them), so that the
  // comparison is of batching per node, not on one node.
  const keysPerMaster = yield* Effect.tryPromise({
    try: () => Promise.all(rawCluster.nodes("master").map((node) => node.dbsize())),
    catch: (cause) => cause
  })
  if (keysPerMaster.length < cluster.masters.length || keysPerMaster.some((count) => count === 0)) {
    return yield* Effect.fail(
      new Error(`the ${keys.length} keys are spread ${keysPerMaster.join("/")} over the masters`)
    )
  }
  const k = keys.length
  const effectOp = (redis: RedisServiceShape) => (n: number) =>
    (n & 1) === 0 ? redis.get(keys[(n >> 1) % k]!) : redis.set(keys[(n >> 1) % k]!, value)
  const promiseOp = (client: Redis | Cluster) => (n: number) =>
    (n & 1) === 0 ? client.get(keys[(n >> 1) % k]!) : client.set(keys[(n >> 1) % k]!, value)
  const mixed: ReadonlyArray<Contender> = [
    { _tag: "Effect", id: "layer-standalone", op: effectOp(layerStandalone) },
    { _tag: "Effect", id: "layer-cluster", op: effectOp(layerCluster) },
    { _tag: "Promise", id: "raw-standalone", op: promiseOp(rawStandalone) },
    { _tag: "Promise", id: "raw-cluster", op: promiseOp(rawCluster) }
  ]
  const layerOp = (redis: RedisServiceShape, operation: "GET" | "SET") =>
    operation === "GET"
      ? (n: number) => redis.get(keys[n % k]!)
      : (n: number) => redis.set(keys[n % k]!, value)
  const rawOp = (client: Cluster, operation: "GET" | "SET") =>
    operation === "GET"
      ? (n: number) => client.get(keys[n % k]!)
      : (n: number) => client.set(keys[n % k]!, value)
  const batching = (operation: "GET" | "SET"): ReadonlyArray<Contender> => [
    { _tag: "Effect", id: "layer-cluster", op: layerOp(layerCluster, operation) },
    { _tag: "Promise", id: "raw-cluster-ap", op: rawOp(rawClusterPipelined, operation) },
    { _tag: "Effect", id: "layer-cluster-ap", op: layerOp(layerClusterPipelined, operation) },
    { _tag: "Promise", id: "raw-cluster", op: rawOp(rawCluster, operation) }
  ]
  return { mixed, batching, keysPerMaster }
})

interface Accumulator {
  readonly opsPerSecond: Array<number>
  readonly cpuMicrosPerOp: Array<number>
  readonly p50: Array<number>
  readonly p99: Array<number>
  failedOps: number
  firstError: string | undefined
  failure: string | undefined
}

/**
 * `rounds` rounds of every contender at one concurrency, in an order rotated by one every round; per contender, the
 * figures and every round's throughput and CPU per operation (for per-round ratios).
 */
const measureRounds = Effect.fnUntraced(function*(
  all: ReadonlyArray<Contender>,
  concurrency: number,
  rounds: number,
  cellMillis: number,
  samples: Float64Array,
  progress: (round: number) => void
) {
  const accumulators = new Map(all.map((contender) => [contender.id, {
    opsPerSecond: [],
    cpuMicrosPerOp: [],
    p50: [],
    p99: [],
    failedOps: 0,
    firstError: undefined,
    failure: undefined
  } as Accumulator]))
  for (let round = 0; round < rounds; round++) {
    progress(round)
    for (let i = 0; i < all.length; i++) {
      const contender = all[(i + round) % all.length]!
      const accumulator = accumulators.get(contender.id)!
      if (accumulator.failure !== undefined) continue
      collectGarbage("minor")
      const cell = yield* Effect.result(runCell(contender, concurrency, cellMillis, samples))
      if (cell._tag === "Failure") {
        accumulator.failure = `failed: ${errorMessage(cell.failure)}`
        continue
      }
      const [p50, p99] = percentiles(samples, cell.success.recorded, [50, 99])
      accumulator.opsPerSecond.push(cell.success.ops / cell.success.seconds)
      accumulator.cpuMicrosPerOp.push(cell.success.cpuMicros / cell.success.ops)
      accumulator.p50.push(p50!)
      accumulator.p99.push(p99!)
      accumulator.failedOps += cell.success.failed
      accumulator.firstError ??= cell.success.firstError
    }
  }
  const clients: Record<string, ClientFigures | { readonly notRun: string }> = {}
  for (const [id, accumulator] of accumulators) {
    clients[id] = accumulator.failure !== undefined
      ? { notRun: accumulator.failure }
      : {
        opsPerSecond: spread(accumulator.opsPerSecond),
        cpuMicrosPerOp: spread(accumulator.cpuMicrosPerOp),
        p50: spread(accumulator.p50),
        p99: spread(accumulator.p99),
        failedOps: accumulator.failedOps,
        ...(accumulator.firstError === undefined ? {} : { firstError: accumulator.firstError })
      }
  }
  // Median of the per-round ratios of two contenders' figures (NaN figures when one did not run).
  const ratioOf = (numerator: string, denominator: string, pick: (a: Accumulator) => ReadonlyArray<number>) => {
    const a = accumulators.get(numerator)!
    const b = accumulators.get(denominator)!
    return a.failure !== undefined || b.failure !== undefined ? spread([]) : ratio(spread(pick(a)), spread(pick(b)))
  }
  return { clients, ratioOf }
})

const throughput = Effect.fnUntraced(function*(
  server: RedisTestServer.RedisTestServer,
  cluster: RedisTestCluster.RedisTestCluster,
  options: ClusterBenchOptions
) {
  const progress = options.onProgress ?? (() => {})
  const keys = Array.from({ length: options.keys }, (_, i) => `bench:cluster:${i}`)
  const { batching, keysPerMaster, mixed } = yield* contenders(server, cluster, keys)
  const samples = new Float64Array(1 << 20)
  const warmupConcurrency = Math.max(...options.concurrencies)
  for (const contender of [...mixed, ...batching("GET"), ...batching("SET")]) {
    yield* Effect.ignore(runCell(contender, warmupConcurrency, options.warmupMillis, samples))
  }
  collectGarbage("major")
  const scenarios: Array<ThroughputScenario> = []
  for (const concurrency of options.concurrencies) {
    const { clients, ratioOf } = yield* measureRounds(
      mixed,
      concurrency,
      options.rounds,
      options.cellMillis,
      samples,
      (round) => progress(`cluster throughput c=${concurrency} round ${round + 1}/${options.rounds}`)
    )
    const opsPerSecond = (a: Accumulator) => a.opsPerSecond
    scenarios.push({
      concurrency,
      clients,
      layerRatio: ratioOf("layer-cluster", "layer-standalone", opsPerSecond),
      rawRatio: ratioOf("raw-cluster", "raw-standalone", opsPerSecond)
    })
  }
  const batchingScenarios: Array<BatchingScenario> = []
  for (const operation of ["GET", "SET"] as const) {
    for (const concurrency of options.concurrencies) {
      const { clients, ratioOf } = yield* measureRounds(
        batching(operation),
        concurrency,
        options.batchingRounds,
        options.cellMillis,
        samples,
        (round) =>
          progress(`cluster batching ${operation} c=${concurrency} round ${round + 1}/${options.batchingRounds}`)
      )
      const opsPerSecond = (a: Accumulator) => a.opsPerSecond
      const layerVsAutoPipelined = ratioOf("layer-cluster", "raw-cluster-ap", opsPerSecond)
      batchingScenarios.push({
        operation,
        concurrency,
        clients,
        layerVsAutoPipelined,
        layerAutoPipeliningVsAutoPipelined: ratioOf("layer-cluster-ap", "raw-cluster-ap", opsPerSecond),
        layerCpuVsAutoPipelined: ratioOf("layer-cluster", "raw-cluster-ap", (a) => a.cpuMicrosPerOp),
        goalMet: Number.isFinite(layerVsAutoPipelined.median) ? layerVsAutoPipelined.median >= batchingGoal : undefined
      })
    }
  }
  return { scenarios, batching: { keysPerMaster, scenarios: batchingScenarios } }
})

// ---------------------------------------------------------------------------------------------------------------------
// failover
// ---------------------------------------------------------------------------------------------------------------------

/** A connection of its own to a replica, asking `ROLE`: when did Redis promote it. */
const roleProbe = (port: number) =>
  Effect.map(
    rawClient(() =>
      new Redis({ host: "127.0.0.1", port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => 50 })
    ),
    (client) =>
      Effect.promise(() =>
        (client.call("ROLE") as Promise<ReadonlyArray<unknown>>).then((role) => role[0] === "master", () => false)
      )
  )

const waitFor = (check: Effect.Effect<boolean, unknown>, timeoutMillis: number) =>
  Effect.gen(function*() {
    const start = now()
    while (now() - start < timeoutMillis) {
      const ok = yield* Effect.orElseSucceed(check, () => false)
      if (ok) return now() - start
      yield* Effect.sleep(10)
    }
    return undefined
  })

/** The layer is ready, its circuit closed, and a write of `key` succeeds. */
const layerReady = (redis: RedisServiceShape, key: string, timeoutMillis: number) =>
  waitFor(
    Effect.gen(function*() {
      const health = yield* redis.health
      if (health.connection !== "ready" || health.circuit !== "closed") return false
      return Exit.isSuccess(yield* Effect.exit(redis.set(key, "before")))
    }),
    timeoutMillis
  )

/** `health.nodeRecoveries` where src/ reports it (a Cluster master reconnected on its own, the connection kept). */
const nodeRecoveries = (health: object): number | undefined =>
  "nodeRecoveries" in health && typeof health.nodeRecoveries === "number" ? health.nodeRecoveries : undefined

/**
 * Freezes `frozen` and measures, from the freeze: when the layer noticed, when its circuit opened, when the replica
 * reported itself master, and the first successful write of `key`. Resumes the frozen server before returning.
 */
const measureFailover = (
  redis: RedisServiceShape,
  key: string,
  frozen: RedisTestServer.RedisTestServer,
  promotedProbe: Effect.Effect<boolean>,
  timeoutMillis: number
) =>
  Effect.gen(function*() {
    const address = `127.0.0.1:${frozen.port}`
    let noticed: Detection = { millis: undefined, by: undefined }
    let circuitOpenMillis: number | undefined
    let promotedMillis: number | undefined
    const failedWrites: Record<string, number> = {}
    const before = yield* redis.health
    // Judge the node by its entry only if the layer listed it before the freeze.
    const listed = before.nodes.some((node) => node.address === address && node.role === "master")
    const recoveriesBefore = nodeRecoveries(before)
    const start = now()
    yield* frozen.pause
    const watcher = yield* Effect.forkChild(Effect.gen(function*() {
      while (noticed.millis === undefined || circuitOpenMillis === undefined) {
        const health = yield* redis.health
        const at = now() - start
        if (noticed.millis === undefined) {
          const node = health.nodes.find((node) => node.address === address)
          if (health.connection !== "ready") noticed = { millis: at, by: `health.connection ${health.connection}` }
          else if (node !== undefined && node.status !== "ready") {
            noticed = { millis: at, by: `node status ${node.status}` }
          } else if (listed && (node === undefined || node.role !== "master")) {
            noticed = { millis: at, by: node === undefined ? "node dropped" : `node listed as ${node.role}` }
          } else if ((nodeRecoveries(health) ?? 0) > (recoveriesBefore ?? 0)) {
            noticed = { millis: at, by: "health.nodeRecoveries" }
          }
        }
        if (circuitOpenMillis === undefined && health.circuit !== "closed") circuitOpenMillis = at
        yield* Effect.sleep(5)
      }
    }))
    const promotion = yield* Effect.forkChild(Effect.gen(function*() {
      while (true) {
        if (yield* promotedProbe) {
          promotedMillis = now() - start
          return
        }
        yield* Effect.sleep(20)
      }
    }))
    let writeBackMillis: number | undefined
    while (now() - start < timeoutMillis) {
      const exit = yield* Effect.exit(redis.set(key, "after"))
      if (Exit.isSuccess(exit)) {
        writeBackMillis = now() - start
        break
      }
      const failure = exit.cause.reasons.find((reason) => reason._tag === "Fail")
      const error = failure?._tag === "Fail" ? failure.error : undefined
      const tag = error === undefined
        ? "defect"
        : error._tag === "ReplyError"
        ? `ReplyError ${error.code}`
        : error._tag
      failedWrites[tag] = (failedWrites[tag] ?? 0) + 1
      yield* Effect.sleep(5)
    }
    // The promotion is polled every 20 ms: give it a moment to be seen when writes came back first.
    if (promotedMillis === undefined) yield* Effect.ignore(Effect.timeoutOption(Fiber.join(promotion), 500))
    yield* Fiber.interrupt(promotion)
    yield* Fiber.interrupt(watcher)
    return {
      frozenPort: frozen.port,
      noticed,
      circuitOpenMillis,
      promotedMillis,
      writeBackMillis,
      failedWrites
    } satisfies FailoverRound
  }).pipe(
    // Resumed however the round ends (SIGCONT to a running server does nothing).
    Effect.ensuring(frozen.resume)
  )

const summarizeFailover = (rounds: ReadonlyArray<FailoverRound>, setupMillis: ReadonlyArray<number>) => ({
  rounds,
  noticed: spread(defined(rounds.map((round) => round.noticed.millis))),
  promoted: spread(defined(rounds.map((round) => round.promotedMillis))),
  writeBack: spread(defined(rounds.map((round) => round.writeBackMillis))),
  setupMillis: spread(setupMillis)
} satisfies FailoverResult)

const info = (server: RedisTestServer.RedisTestServer, ...args: ReadonlyArray<string>) =>
  Effect.map(server.command(...args), (reply) => {
    const fields: Record<string, string> = {}
    for (const line of String(reply).split("\n")) {
      const index = line.indexOf(":")
      if (index > 0) fields[line.slice(0, index)] = line.slice(index + 1).trim()
    }
    return fields
  })

/** Every replica of `master` has acknowledged the master's replication offset. */
const replicated = (master: RedisTestServer.RedisTestServer) =>
  Effect.map(info(master, "INFO", "replication"), (fields) => {
    const offset = Number(fields.master_repl_offset ?? -1)
    const replicas = Object.entries(fields).filter(([name]) => /^slave\d+$/.test(name))
    return replicas.length > 0 &&
      replicas.every(([, line]) => Number(/offset=(\d+)/.exec(line)?.[1] ?? -1) >= offset)
  })

/**
 * Cluster rounds on one cluster: each freezes the master of a key whose master no earlier round froze, so that every
 * round fails over a master that still has its replica; the frozen master is resumed and, before the next round, has
 * rejoined as an in-sync replica.
 */
const clusterFailover = (
  cluster: RedisTestCluster.RedisTestCluster,
  setupMillis: number,
  options: ClusterBenchOptions
) =>
  Effect.scoped(Effect.gen(function*() {
    const redis = yield* layerService({
      ...testSettings,
      topology: { _tag: "Cluster", nodes: cluster.startupNodes }
    })
    const frozen = new Set<number>()
    const rounds: Array<FailoverRound> = []
    const count = Math.min(options.clusterFailoverRounds, cluster.masters.length)
    for (let round = 0; round < count; round++) {
      options.onProgress?.(`cluster failover round ${round + 1}/${count}`)
      let key = ""
      let master: RedisTestCluster.RedisTestClusterNode | undefined
      // A master as formed and not frozen yet: it still has its replica (a promoted one's replica is a resumed node).
      for (let n = 0; master === undefined && n < 256; n++) {
        const candidate = yield* cluster.masterOf(`bench:failover:${n}`)
        if (candidate.role === "master" && !frozen.has(candidate.port)) {
          key = `bench:failover:${n}`
          master = candidate
        }
      }
      const replica = cluster.nodes.find((node) => node.replicaOf === master?.port)
      if (master === undefined || replica === undefined) {
        return yield* Effect.fail(new Error(`round ${round + 1}: found no key on a master that was not frozen yet`))
      }
      const isPromoted = yield* roleProbe(replica.port)
      yield* layerReady(redis, key, options.recoveryTimeoutMillis)
      yield* waitFor(replicated(master), 5_000)
      // A random point of the heartbeat's rhythm.
      yield* Effect.sleep(Math.random() * heartbeatIntervalMillis)
      const measured = yield* measureFailover(redis, key, master, isPromoted, options.recoveryTimeoutMillis)
      frozen.add(master.port)
      // The old master is back: wait until it is a replica in sync and every node sees the cluster whole again.
      const rejoinMillis = round + 1 < count
        ? yield* waitFor(
          Effect.gen(function*() {
            const replication = yield* info(master, "INFO", "replication")
            if (replication.role !== "slave" || replication.master_link_status !== "up") return false
            if (replication.master_sync_in_progress !== "0") return false
            for (const node of cluster.nodes) {
              if ((yield* info(node, "CLUSTER", "INFO")).cluster_state !== "ok") return false
            }
            return true
          }),
          rejoinTimeoutMillis
        )
        : undefined
      rounds.push({ ...measured, rejoinMillis })
    }
    return summarizeFailover(rounds, [setupMillis])
  }))

/** Sentinel rounds, each on a fresh setup: sentinels do not fail the same master over again for 2x failover-timeout. */
const sentinelFailover = (options: ClusterBenchOptions) =>
  Effect.gen(function*() {
    const rounds: Array<FailoverRound> = []
    const setups: Array<number> = []
    for (let round = 0; round < options.sentinelFailoverRounds; round++) {
      options.onProgress?.(`sentinel failover round ${round + 1}/${options.sentinelFailoverRounds}`)
      const measured = yield* Effect.scoped(Effect.gen(function*() {
        const starting = now()
        const setup = yield* RedisTestSentinel.make()
        setups.push(now() - starting)
        const redis = yield* layerService({
          ...testSettings,
          topology: {
            _tag: "Sentinel",
            name: setup.name,
            sentinels: setup.sentinels.map(({ host, port }) => ({ host, port }))
          }
        })
        const key = "bench:failover"
        const isPromoted = yield* roleProbe(setup.replica.port)
        yield* layerReady(redis, key, options.recoveryTimeoutMillis)
        // WAIT blocks the shared connection: keep each one shorter than the heartbeat's timeout.
        yield* waitFor(
          Effect.map(redis.command<number>("WAIT", ["1", "100"]), (acked) => acked >= 1),
          5_000
        )
        yield* Effect.sleep(Math.random() * heartbeatIntervalMillis)
        return yield* measureFailover(redis, key, setup.master, isPromoted, options.recoveryTimeoutMillis)
      }))
      rounds.push(measured)
    }
    return summarizeFailover(rounds, setups)
  })

// ---------------------------------------------------------------------------------------------------------------------
// running
// ---------------------------------------------------------------------------------------------------------------------

const notRun = (part: string, cause: unknown) => ({ notRun: `${part} did not run: ${errorMessage(cause)}` })

/**
 * Runs the throughput rounds and the cluster failover rounds on one `RedisTestCluster` (and one `redis-server`), then
 * the Sentinel rounds. A part that cannot run (no `redis-cli`, a node that does not start) reports why.
 *
 * @since 0.1.0
 * @category running
 */
export const run = (options: ClusterBenchOptions): Effect.Effect<ClusterBenchResult> =>
  Effect.gen(function*() {
    const progress = options.onProgress ?? (() => {})
    progress("cluster section: starting a redis-server and a 3-master, 3-replica cluster")
    const clusterPart = yield* Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const starting = now()
      const cluster = yield* RedisTestCluster.make()
      const setupMillis = now() - starting
      const measured = yield* Effect.result(Effect.scoped(throughput(server, cluster, options)))
      yield* server.stop
      const failover = yield* Effect.result(clusterFailover(cluster, setupMillis, options))
      return {
        throughput: measured._tag === "Success"
          ? measured.success.scenarios
          : notRun("cluster throughput", measured.failure),
        batching: measured._tag === "Success"
          ? measured.success.batching
          : notRun("cluster batching", measured.failure),
        clusterFailover: failover._tag === "Success" ? failover.success : notRun("cluster failover", failover.failure)
      }
    })).pipe(
      Effect.catch((cause: unknown) =>
        Effect.succeed({
          throughput: notRun("cluster throughput", cause),
          batching: notRun("cluster batching", cause),
          clusterFailover: notRun("cluster failover", cause)
        })
      )
    )
    const sentinelPart = yield* Effect.result(sentinelFailover(options))
    return {
      ...clusterPart,
      sentinelFailover: sentinelPart._tag === "Success"
        ? sentinelPart.success
        : notRun("sentinel failover", sentinelPart.failure)
    }
  }).pipe(
    // The layer warns at every reconnection; a few dozen warnings per freeze would bury the tables.
    Effect.provideService(References.MinimumLogLevel, "Error")
  )

/**
 * Default settings: `quick` for a smoke run.
 *
 * @since 0.1.0
 * @category running
 */
export const defaults = (quick: boolean): Omit<ClusterBenchOptions, "onProgress"> =>
  quick
    ? {
      concurrencies: [64, 256],
      batchingRounds: 5,
      keys: 1024,
      rounds: 5,
      cellMillis: 80,
      warmupMillis: 150,
      clusterFailoverRounds: 1,
      sentinelFailoverRounds: 1,
      recoveryTimeoutMillis: 15_000
    }
    : {
      concurrencies: [64, 256],
      batchingRounds: 9,
      keys: 1024,
      rounds: 5,
      cellMillis: 100,
      warmupMillis: 300,
      clusterFailoverRounds: 2,
      sentinelFailoverRounds: 2,
      recoveryTimeoutMillis: 15_000
    }

// ---------------------------------------------------------------------------------------------------------------------
// formatting
// ---------------------------------------------------------------------------------------------------------------------

const isFigures = (figures: ClientFigures | { readonly notRun: string } | undefined): figures is ClientFigures =>
  figures !== undefined && !("notRun" in figures)

const formatRatio = (value: Spread) =>
  Number.isFinite(value.median)
    ? `${value.median.toFixed(2)}x (${value.min.toFixed(2)}–${value.max.toFixed(2)})`
    : "-"

const formatTime = (value: Spread) =>
  Number.isFinite(value.median)
    ? `${formatMillis(value.median)} (${formatMillis(value.min)}–${formatMillis(value.max)})`
    : "-"

const formatFailover = (title: string, result: FailoverResult | { readonly notRun: string }) => {
  if ("notRun" in result) return [title, `  NOT RUN: ${result.notRun}`]
  const rows = result.rounds.map((round, i) => [
    String(i + 1),
    formatMillis(round.noticed.millis ?? Number.NaN),
    round.noticed.by ?? "-",
    formatMillis(round.circuitOpenMillis ?? Number.NaN),
    formatMillis(round.promotedMillis ?? Number.NaN),
    formatMillis(round.writeBackMillis ?? Number.NaN),
    Object.entries(round.failedWrites).map(([tag, count]) => `${count} ${tag}`).join(", ") || "0",
    round.rejoinMillis === undefined ? "" : formatMillis(round.rejoinMillis)
  ])
  return [
    title,
    `  from SIGSTOP: noticed ${formatTime(result.noticed)}, replica promoted ${formatTime(result.promoted)}, ` +
    `writes back ${formatTime(result.writeBack)}; setup ${formatTime(result.setupMillis)}`,
    "",
    table(
      ["round", "noticed", "by", "circuit open", "promoted", "writes back", "failed writes", "rejoined"],
      rows
    ).split("\n").map((line) => `  ${line}`).join("\n")
  ]
}

const formatBatching = (
  batching: BatchingResult | { readonly notRun: string },
  options: Omit<ClusterBenchOptions, "onProgress">
): ReadonlyArray<string> => {
  if ("notRun" in batching) return ["per-node batching", `  NOT RUN: ${batching.notRun}`]
  const result = batching.scenarios
  const name = (s: BatchingScenario) => `${s.operation} c=${s.concurrency}`
  const indent = (text: string) => text.split("\n").map((line) => `  ${line}`).join("\n")
  const failures = result.flatMap((s) =>
    Object.keys(batchingLabels).flatMap((id) => {
      const figures = s.clients[id]
      return isFigures(figures) && figures.failedOps > 0
        ? [`  ${batchingLabels[id]} ${name(s)}: ${figures.failedOps} failed (first: ${figures.firstError})`]
        : []
    })
  )
  return [
    `per-node batching, 3 masters: GET or SET over ${options.keys} keys (${batching.keysPerMaster.join(" / ")} per ` +
    `master), ${options.batchingRounds} rounds of ${options.cellMillis} ms per client`,
    "",
    "  / raw ioredis Cluster with enableAutoPipelining, median (min–max) of per-round ratios",
    indent(table(
      ["", ...result.map(name)],
      [
        ["this layer (defaults): throughput", ...result.map((s) => formatRatio(s.layerVsAutoPipelined))],
        ["this layer (defaults): CPU per op", ...result.map((s) => formatRatio(s.layerCpuVsAutoPipelined))],
        ["this layer, autoPipelining: true", ...result.map((s) => formatRatio(s.layerAutoPipeliningVsAutoPipelined))]
      ]
    )),
    "",
    ...result.map((s) =>
      `  ${s.goalMet === undefined ? "?     " : s.goalMet ? "met   " : "MISSED"}  ${name(s)}: the layer (defaults) ` +
      `>= ${batchingGoal}x raw ioredis Cluster auto-pipelined: ${formatRatio(s.layerVsAutoPipelined)}`
    ),
    "",
    indent(table(
      ["client", ...result.flatMap((s) => [`ops/s ${name(s)}`, "CPU µs/op", "p50"])],
      Object.keys(batchingLabels).map((id) => [
        batchingLabels[id]!,
        ...result.flatMap((s) => {
          const figures = s.clients[id]
          return isFigures(figures)
            ? [
              formatSpread(figures.opsPerSecond),
              formatNumber(figures.cpuMicrosPerOp.median, 1),
              formatMillis(figures.p50.median)
            ]
            : [figures?.notRun ?? "not run", "", ""]
        })
      ])
    )),
    "",
    ...(failures.length === 0 ? ["  no operation failed"] : ["  failed operations:", ...failures])
  ]
}

/**
 * The figures as text, the cluster / one node ratios first.
 *
 * @since 0.1.0
 * @category formatting
 */
export const format = (result: ClusterBenchResult, options: Omit<ClusterBenchOptions, "onProgress">): string => {
  const lines: Array<string> = [
    "Cluster and Sentinel (real redis-server processes, loopback)",
    ""
  ]
  if ("notRun" in result.throughput) {
    lines.push("throughput", `  NOT RUN: ${result.throughput.notRun}`)
  } else {
    const scenarios = result.throughput
    lines.push(
      `throughput, GET/SET 1:1 over ${options.keys} keys, 64-byte values: ${options.rounds} rounds of ` +
        `${options.cellMillis} ms per client, median (min–max)`,
      "",
      "  cluster (3 masters) / one node, median of per-round ratios",
      table(
        ["", ...scenarios.map((s) => `c=${s.concurrency}`)],
        [
          ["this layer", ...scenarios.map((s) => formatRatio(s.layerRatio))],
          ["raw ioredis", ...scenarios.map((s) => formatRatio(s.rawRatio))]
        ]
      ).split("\n").map((line) => `  ${line}`).join("\n"),
      "",
      table(
        ["client", ...scenarios.flatMap((s) => [`ops/s c=${s.concurrency}`, `CPU µs/op`, "p50"])],
        Object.keys(labels).map((id) => [
          labels[id]!,
          ...scenarios.flatMap((s) => {
            const figures = s.clients[id]
            return isFigures(figures)
              ? [
                formatSpread(figures.opsPerSecond),
                formatNumber(figures.cpuMicrosPerOp.median, 1),
                formatMillis(figures.p50.median)
              ]
              : [figures?.notRun ?? "not run", "", ""]
          })
        ])
      ).split("\n").map((line) => `  ${line}`).join("\n")
    )
    const failures = scenarios.flatMap((s) =>
      Object.keys(labels).flatMap((id) => {
        const figures = s.clients[id]
        return isFigures(figures) && figures.failedOps > 0
          ? [`  ${labels[id]} c=${s.concurrency}: ${figures.failedOps} failed (first: ${figures.firstError})`]
          : []
      })
    )
    lines.push("", ...(failures.length === 0 ? ["  no operation failed"] : ["  failed operations:", ...failures]))
  }
  lines.push("", ...formatBatching(result.batching, options))
  lines.push(
    "",
    "failover, a master frozen with SIGSTOP; the layer with the test settings of test/RedisService.topology.test.ts",
    "(heartbeat 200 ms x 2, timeout 150 ms; commandTimeout 500 ms; cluster-node-timeout 1 s; down-after 1 s)",
    "",
    ...formatFailover("cluster (3 masters, 3 replicas)", result.clusterFailover),
    "",
    ...formatFailover("sentinel (1 master, 1 replica, 3 sentinels)", result.sentinelFailover)
  )
  return lines.join("\n")
}
