/**
 * RedisCache cost on a real `redis-server`: a cache hit against a plain GET plus Schema decode (one caller, then many
 * concurrent callers), an L1 hit, and misses against computes under concurrency (single-flight). Prints figures and
 * ratios; `run` returns them for `npm run bench`.
 *
 * ```sh
 * npx node bench/cache.ts                  # about 20 s
 * npx node bench/cache.ts --quick          # about 5 s
 * ```
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { parseArgs } from "node:util"
import { pathToFileURL } from "node:url"
import { RedisCache, RedisService } from "../src/index.ts"
import { RedisTestServer } from "../src/testing/index.ts"
import { layerService } from "./clients.ts"

/**
 * Settings of a run.
 *
 * @since 0.1.0
 * @category models
 */
export interface CacheBenchOptions {
  /** Rounds per figure; the median is reported. */
  readonly rounds: number
  /** Sequential operations per round. */
  readonly operations: number
  /** Callers in the concurrent hit figures. */
  readonly concurrency: number
  /** Distinct keys and callers per key in the miss figures. */
  readonly keys: number
  readonly callersPerKey: number
  /** How long one compute takes (a stand-in for a database query), in milliseconds. */
  readonly computeMillis: number
}

/**
 * What `run` measured. Times are medians over rounds.
 *
 * @since 0.1.0
 * @category models
 */
export interface CacheBenchFigures {
  readonly options: CacheBenchOptions
  /** One caller: microseconds per operation. */
  readonly sequential: {
    readonly getDecode: number
    readonly cacheHit: number
    readonly l1Hit: number
    /** cacheHit / getDecode. */
    readonly hitRatio: number
  }
  /** `concurrency` callers: operations per second, over 1000 keys, and all on one hot key. */
  readonly concurrent: {
    readonly getDecode: number
    readonly cacheHit: number
    /** cacheHit / getDecode (throughput: 1 means as fast). */
    readonly hitRatio: number
    readonly hotGetDecode: number
    readonly hotCacheHit: number
    /** hotCacheHit / hotGetDecode: concurrent hits of one key share one GET. */
    readonly hotHitRatio: number
  }
  /** `keys` x `callersPerKey` concurrent first calls. */
  readonly misses: {
    readonly calls: number
    readonly computes: number
    /** computes / calls. */
    readonly computeRatio: number
    /** Wall time of the calls through the cache, and of the same calls each running its compute, in ms. */
    readonly cacheMillis: number
    readonly computeOnlyMillis: number
    /** cacheMillis / computeOnlyMillis. */
    readonly timeRatio: number
    /** One miss alone with an instant compute (GET, encode, SET), in microseconds. */
    readonly missOverheadMicros: number
  }
}

const Product = Schema.Struct({
  sku: Schema.String,
  name: Schema.String,
  price: Schema.Number,
  tags: Schema.Array(Schema.String),
  updatedAt: Schema.Date
})
type Product = typeof Product.Type

const product = (sku: string): Product => ({
  sku,
  name: `Product ${sku}`,
  price: 19.99,
  tags: ["a", "b", "c"],
  updatedAt: new Date("2024-01-01T00:00:00.000Z")
})

const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

const sleepReal = (millis: number) =>
  Effect.callback<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), millis)
    return Effect.sync(() => clearTimeout(timer))
  })

/** Wall time of an effect, in milliseconds (real time). */
const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.suspend(() => {
    const start = performance.now()
    return Effect.map(effect, () => performance.now() - start)
  })

const repeatN = <E, R>(n: number, effect: Effect.Effect<unknown, E, R>): Effect.Effect<void, E, R> =>
  Effect.gen(function*() {
    for (let i = 0; i < n; i++) yield* effect
  })

/**
 * Runs the cache figures against a fresh `redis-server`.
 *
 * @since 0.1.0
 * @category running
 */
export const run = (options: CacheBenchOptions) =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* RedisTestServer.make()
    const redis = yield* layerService({ url: server.url })
    const provide = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.provideService(effect, RedisService, redis)
    const codec = RedisCache.valueCodec(Product)
    const cache = yield* provide(RedisCache.make({ prefix: "bench", schema: Product, ttl: "10 minutes" }))
    const l1Cache = yield* provide(
      RedisCache.make({ prefix: "bench", schema: Product, ttl: "10 minutes", l1: { capacity: 1000 } })
    )
    const never = Effect.die("a hit must not compute")
    const spread = 1_000
    yield* cache.set("hot", product("hot"))
    for (let i = 0; i < spread; i++) yield* cache.set(String(i), product(String(i)))

    // A plain GET and decode: what a hand-written cache read costs.
    const getDecodeOf = (key: string) =>
      Effect.flatMap(redis.get(`bench:${key}`), (stored) => {
        if (stored._tag === "None") return Effect.die("missing")
        const decoded = codec.decode(stored.value)
        return decoded._tag === "Success" ? Effect.succeed(decoded.value) : Effect.die("does not decode")
      })
    const getDecode = getDecodeOf("hot")
    const cacheHit = cache.get("hot", never)
    const l1Hit = l1Cache.get("hot", never)

    // Two contenders one call each in turn, each call timed: drift (GC, other processes) hits both alike.
    const interleaved = (a: Effect.Effect<unknown, unknown>, b: Effect.Effect<unknown, unknown>) =>
      Effect.gen(function*() {
        let totalA = 0
        let totalB = 0
        for (let i = 0; i < options.operations; i++) {
          totalA += yield* timed(a)
          totalB += yield* timed(b)
        }
        return [(totalA * 1000) / options.operations, (totalB * 1000) / options.operations] as const
      })
    const perOp = (effect: Effect.Effect<unknown, unknown>) =>
      Effect.map(timed(repeatN(options.operations, effect)), (millis) => (millis * 1000) / options.operations)
    const throughput = (effect: (i: number) => Effect.Effect<unknown, unknown>) => {
      const total = options.operations * 4
      return Effect.map(
        timed(Effect.forEach(Array.from({ length: total }, (_, i) => i), effect, {
          concurrency: options.concurrency,
          discard: true
        })),
        (millis) => total / (millis / 1000)
      )
    }

    // Warm-up (JIT, connection), then rounds that alternate the contenders so that drift hits them alike.
    yield* repeatN(2_000, getDecode)
    yield* repeatN(2_000, cacheHit)
    yield* repeatN(2_000, l1Hit)
    const sequential = { getDecode: [] as Array<number>, cacheHit: [] as Array<number>, l1Hit: [] as Array<number> }
    const concurrent = {
      getDecode: [] as Array<number>,
      cacheHit: [] as Array<number>,
      hotGetDecode: [] as Array<number>,
      hotCacheHit: [] as Array<number>
    }
    for (let round = 0; round < options.rounds; round++) {
      const [plain, hit] = yield* interleaved(getDecode, cacheHit)
      sequential.getDecode.push(plain)
      sequential.cacheHit.push(hit)
      sequential.l1Hit.push(yield* perOp(l1Hit))
      concurrent.getDecode.push(yield* throughput((i) => getDecodeOf(String(i % spread))))
      concurrent.cacheHit.push(yield* throughput((i) => cache.get(String(i % spread), never)))
      concurrent.hotGetDecode.push(yield* throughput(() => getDecode))
      concurrent.hotCacheHit.push(yield* throughput(() => cacheHit))
    }

    // Misses: every key is new; `callersPerKey` callers ask for each at once.
    const calls = options.keys * options.callersPerKey
    let computes = 0
    const compute = (sku: string) =>
      Effect.suspend(() => {
        computes++
        return Effect.as(sleepReal(options.computeMillis), product(sku))
      })
    const cacheMillis: Array<number> = []
    const computeOnlyMillis: Array<number> = []
    const computeRatios: Array<number> = []
    for (let round = 0; round < options.rounds; round++) {
      computes = 0
      const missCache = yield* provide(
        RedisCache.make({ prefix: `miss${round}`, schema: Product, ttl: "10 minutes" })
      )
      cacheMillis.push(
        yield* timed(Effect.forEach(Array.from({ length: calls }, (_, i) => String(i % options.keys)), (sku) =>
          missCache.get(sku, compute(sku)), { concurrency: "unbounded", discard: true }))
      )
      computeRatios.push(computes / calls)
      computeOnlyMillis.push(
        yield* timed(Effect.forEach(Array.from({ length: calls }, (_, i) => String(i % options.keys)), compute, {
          concurrency: "unbounded",
          discard: true
        }))
      )
    }

    // One miss alone, with an instant compute: what a miss adds (GET, encode, SET).
    const overheads: Array<number> = []
    const alone = yield* provide(RedisCache.make({ prefix: "alone", schema: Product, ttl: "10 minutes" }))
    for (let i = 0; i < options.operations; i++) {
      overheads.push((yield* timed(alone.get(`k${i}`, Effect.succeed(product(`k${i}`))))) * 1000)
    }

    const figures: CacheBenchFigures = {
      options,
      sequential: {
        getDecode: median(sequential.getDecode),
        cacheHit: median(sequential.cacheHit),
        l1Hit: median(sequential.l1Hit),
        hitRatio: median(sequential.cacheHit) / median(sequential.getDecode)
      },
      concurrent: {
        getDecode: median(concurrent.getDecode),
        cacheHit: median(concurrent.cacheHit),
        hitRatio: median(concurrent.cacheHit) / median(concurrent.getDecode),
        hotGetDecode: median(concurrent.hotGetDecode),
        hotCacheHit: median(concurrent.hotCacheHit),
        hotHitRatio: median(concurrent.hotCacheHit) / median(concurrent.hotGetDecode)
      },
      misses: {
        calls,
        computes: Math.round(median(computeRatios) * calls),
        computeRatio: median(computeRatios),
        cacheMillis: median(cacheMillis),
        computeOnlyMillis: median(computeOnlyMillis),
        timeRatio: median(cacheMillis) / median(computeOnlyMillis),
        missOverheadMicros: median(overheads)
      }
    }
    return figures
  }))

/**
 * The figures as text, ratios first.
 *
 * @since 0.1.0
 * @category formatting
 */
export const format = (figures: CacheBenchFigures): string => {
  const { concurrent, misses, options, sequential } = figures
  const f = (n: number, digits = 1) => n.toFixed(digits)
  const callers = options.concurrency
  return [
    "RedisCache (real redis-server, loopback)",
    "",
    "ratios",
    ...[
      ["hit / (GET + decode), 1 caller", `${f(sequential.hitRatio, 2)}x the time`],
      [`hit / (GET + decode), ${callers} callers, 1000 keys`, `${f(concurrent.hitRatio, 2)}x the throughput`],
      [`hit / (GET + decode), ${callers} callers, 1 key`, `${f(concurrent.hotHitRatio, 2)}x the throughput`],
      ["L1 hit / (GET + decode), 1 caller", `${f(sequential.l1Hit / sequential.getDecode, 3)}x the time`],
      ["computes / calls (concurrent misses)", `${f(misses.computeRatio, 3)} (${misses.computes} for ${misses.calls})`],
      ["wall time, cache / every call computing", `${f(misses.timeRatio, 2)}x`]
    ].map(([label, value]) => `  ${`${label}:`.padEnd(46)}${value}`),
    "",
    "figures (medians)",
    `  GET + decode:   ${f(sequential.getDecode)} µs/op; ${f(concurrent.getDecode, 0)} ops/s (1000 keys), ` +
    `${f(concurrent.hotGetDecode, 0)} ops/s (1 key) at ${options.concurrency}`,
    `  cache hit:      ${f(sequential.cacheHit)} µs/op; ${f(concurrent.cacheHit, 0)} ops/s (1000 keys), ` +
    `${f(concurrent.hotCacheHit, 0)} ops/s (1 key) at ${options.concurrency}`,
    `  L1 hit:         ${f(sequential.l1Hit, 2)} µs/op`,
    `  misses:         ${options.keys} keys x ${options.callersPerKey} callers at once, ${options.computeMillis} ms ` +
    `compute: ${f(misses.cacheMillis, 0)} ms through the cache, ${f(misses.computeOnlyMillis, 0)} ms with every call ` +
    "computing (in parallel, for free here: a database would not be)",
    `  one miss:       ${f(misses.missOverheadMicros, 0)} µs with an instant compute (GET, encode, SET)`
  ].join("\n")
}

/**
 * Default settings: `quick` for a smoke run.
 *
 * @since 0.1.0
 * @category running
 */
export const defaults = (quick: boolean): CacheBenchOptions =>
  quick
    ? { rounds: 3, operations: 2_000, concurrency: 64, keys: 50, callersPerKey: 20, computeMillis: 5 }
    : { rounds: 7, operations: 10_000, concurrency: 64, keys: 100, callersPerKey: 50, computeMillis: 5 }

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values: args } = parseArgs({ options: { quick: { type: "boolean", default: false } } })
  Effect.runPromise(run(defaults(args.quick === true))).then(
    (figures) => {
      console.log(format(figures))
      process.exit(0)
    },
    (error) => {
      console.error(error)
      process.exit(1)
    }
  )
}
