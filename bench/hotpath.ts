/**
 * One client, one operation, one concurrency, for a fixed time: the harness to profile the hot path with.
 *
 * ```sh
 * npx node --cpu-prof --cpu-prof-dir=bench/results/profiles bench/hotpath.ts --client=layer --concurrency=64
 * npx node bench/hotpath.ts --client=bare --operation=SET --seconds=5
 * ```
 *
 * Clients: the ids of bench/clients.ts (raw, bare, layer, layer-typed, node-redis, cockatiel, opossum, raw-ap, bare-ap,
 * layer-ap).
 * `npm run bench` is the benchmark; this only prints one throughput figure.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { parseArgs } from "node:util"
import { RedisTestServer } from "../src/testing/index.ts"
import * as Clients from "./clients.ts"
import * as Throughput from "./throughput.ts"

const { values: args } = parseArgs({
  options: {
    client: { type: "string", default: "layer" },
    operation: { type: "string", default: "GET" },
    concurrency: { type: "string", default: "64" },
    seconds: { type: "string", default: "5" }
  }
})

const program = Effect.gen(function*() {
  const server = yield* RedisTestServer.make()
  const clients = yield* Clients.makeAll(server)
  const client = clients.find((client) => client.id === args.client)
  if (client === undefined) return yield* Effect.die(new Error(`unknown client ${args.client}`))
  const operation = args.operation === "SET" ? "SET" : "GET"
  const concurrency = Number(args.concurrency)
  const [result] = yield* Throughput.run([client], {
    concurrencies: [concurrency],
    operations: [operation],
    rounds: 1,
    cellMillis: Number(args.seconds) * 1000,
    warmupMillis: 500
  })
  const figures = result?.clients[client.id]
  if (figures === undefined || "notRun" in figures) {
    console.log(`${client.label}: ${figures?.notRun ?? "not run"}`)
    return
  }
  console.log(
    `${client.label} ${operation} c=${concurrency}: ${figures.opsPerSecond.median.toFixed(0)} ops/s, ` +
      `p50 ${(figures.p50.median * 1000).toFixed(0)} µs, p99 ${(figures.p99.median * 1000).toFixed(0)} µs`
  )
})

Effect.runPromise(Effect.scoped(program)).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
