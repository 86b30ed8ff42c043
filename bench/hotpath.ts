/**
 * Quick hot-path check: GET on a healthy connection, this layer vs a bare Effect.tryPromise wrapper vs raw ioredis,
 * in alternating rounds in one process. `npm run bench` (issue 5) grows this into the full benchmark.
 */
import { Effect } from "effect"
import { Redis } from "ioredis"
import * as RedisService from "../src/RedisService.ts"
import * as RedisTestServer from "../src/testing/RedisTestServer.ts"

const OPS = Number(process.env.OPS ?? 20_000)
const ROUNDS = Number(process.env.ROUNDS ?? 5)

const program = Effect.gen(function*() {
  const server = yield* RedisTestServer.make()
  const raw = new Redis({ host: server.host, port: server.port, lazyConnect: true })
  yield* Effect.promise(() => raw.connect())
  yield* Effect.promise(() => raw.set("k", "v"))
  const redis = yield* RedisService.make({ url: server.url })

  const bare = (k: string) => Effect.tryPromise({ try: () => raw.get(k), catch: (e) => e })

  const runEffect = <E>(op: () => Effect.Effect<unknown, E>, concurrency: number) =>
    Effect.gen(function*() {
      const start = performance.now()
      const perWorker = OPS / concurrency
      yield* Effect.forEach(
        Array.from({ length: concurrency }),
        () => Effect.gen(function*() {
          for (let i = 0; i < perWorker; i++) yield* op()
        }),
        { concurrency: "unbounded", discard: true }
      )
      return OPS / ((performance.now() - start) / 1000)
    })
  const runRaw = (concurrency: number) =>
    Effect.promise(async () => {
      const start = performance.now()
      const perWorker = OPS / concurrency
      await Promise.all(Array.from({ length: concurrency }, async () => {
        for (let i = 0; i < perWorker; i++) await raw.get("k")
      }))
      return OPS / ((performance.now() - start) / 1000)
    })

  for (const concurrency of [1, 64]) {
    const results: Record<string, Array<number>> = { raw: [], bare: [], layer: [] }
    for (let round = 0; round < ROUNDS; round++) {
      results.raw!.push(yield* runRaw(concurrency))
      results.bare!.push(yield* runEffect(() => bare("k"), concurrency))
      results.layer!.push(yield* runEffect(() => redis.get("k"), concurrency))
    }
    const median = (xs: Array<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
    const m = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, median(v)]))
    console.log(
      `c=${concurrency}: raw ${m.raw!.toFixed(0)} ops/s, bare ${m.bare!.toFixed(0)}, layer ${m.layer!.toFixed(0)}; ` +
        `layer/bare ${(m.layer! / m.bare!).toFixed(3)}`
    )
  }
  raw.disconnect()
})

Effect.runPromise(Effect.scoped(program)).then(() => process.exit(0))
