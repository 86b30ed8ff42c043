/**
 * `npm run bench`: throughput and latency of this layer next to raw ioredis, a bare Effect wrapper, NodeRedis and the
 * cockatiel- and opossum-wrapped clients, then resilience figures next to plain ioredis, on real `redis-server`
 * processes. Prints tables (ratios first) and writes `bench/results/latest.json`.
 *
 * ```sh
 * npm run bench                 # full: about 3 minutes (the cluster section about 40 s)
 * npm run bench -- --quick      # quick: about 1 minute, fewer and shorter rounds, a 10 s outage
 * npm run bench -- --only=throughput   # or --only=resilience, --only=cache, --only=cluster
 * npm run bench -- --no-pin            # do not pin the process and the server to CPUs
 * ```
 *
 * A benchmark that cannot run (no `redis-server`, a package missing) says so instead of printing numbers.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import { parseArgs } from "node:util"
import { RedisTestServer } from "../src/testing/index.ts"
import * as Cache from "./cache.ts"
import * as Clients from "./clients.ts"
import * as ClusterBench from "./cluster.ts"
import * as Overhead from "./overhead.ts"
import * as Report from "./report.ts"
import * as Resilience from "./resilience.ts"
import * as Throughput from "./throughput.ts"

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    out: { type: "string", default: new URL("results/latest.json", import.meta.url).pathname },
    pin: { type: "boolean", default: true }
  },
  allowNegative: true
})

if (args.only !== undefined && !["throughput", "resilience", "cache", "cluster"].includes(args.only)) {
  console.error(`--only=${args.only}: expected throughput, resilience, cache or cluster`)
  process.exit(2)
}

const quick = args.quick === true
const sections = {
  throughput: args.only === undefined || args.only === "throughput",
  resilience: args.only === undefined || args.only === "resilience",
  cache: args.only === undefined || args.only === "cache",
  cluster: args.only === undefined || args.only === "cluster"
}

// The cache figures with bench/cache.ts' quick settings (about 5 s); `npx node bench/cache.ts` runs its full set.
const cacheOptions: Cache.CacheBenchOptions = Cache.defaults(true)

// One node against a 3-master cluster, per-node batching against auto-pipelined ioredis Cluster, and failover times
// (bench/cluster.ts): about 40 s, quick about 25 s.
const clusterOptions = ClusterBench.defaults(quick)

const throughputOptions: Throughput.ThroughputOptions = quick
  ? { concurrencies: [1, 64, 256], rounds: 7, cellMillis: 30, warmupMillis: 100 }
  : { concurrencies: [1, 64, 256], rounds: 15, cellMillis: 80, warmupMillis: 300 }

const overheadOptions: Omit<Throughput.ThroughputOptions, "concurrencies"> = quick
  ? { rounds: 3, cellMillis: 150, warmupMillis: 100 }
  : { rounds: 5, cellMillis: 300, warmupMillis: 200 }

const resilienceOptions: Resilience.ResilienceOptions = quick
  ? {
    freezeRounds: 1,
    freezeMillis: 3_000,
    restartRounds: 0,
    restartOutageMillis: 3_000,
    outageMillis: 10_000,
    outageCallers: 1_000,
    callerIntervalMillis: 100,
    openLatencyCalls: 2_000,
    heapCallers: 10_000,
    heapWaitMillis: 1_500,
    recoveryTimeoutMillis: 15_000
  }
  : {
    freezeRounds: 3,
    freezeMillis: 4_000,
    restartRounds: 1,
    restartOutageMillis: 3_000,
    outageMillis: 30_000,
    outageCallers: 1_000,
    callerIntervalMillis: 100,
    openLatencyCalls: 2_000,
    heapCallers: 10_000,
    heapWaitMillis: 2_000,
    recoveryTimeoutMillis: 15_000
  }

const startedAt = new Date()
const started = performance.now()

const progress = (message: string) =>
  process.stderr.write(`  … ${((performance.now() - started) / 1000).toFixed(0).padStart(3)} s  ${message}\n`)

const commandOutput = (command: string, commandArgs: ReadonlyArray<string>): string | undefined => {
  try {
    return execFileSync(command, commandArgs, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim()
  } catch {
    return undefined
  }
}

const packageVersion = (name: string): string | undefined => {
  try {
    const path = new URL(`../node_modules/${name}/package.json`, import.meta.url)
    return (JSON.parse(Fs.readFileSync(path, "utf8")) as { readonly version?: string }).version
  } catch {
    return undefined
  }
}

const cpuModel = (): string => {
  try {
    const line = Fs.readFileSync("/proc/cpuinfo", "utf8").split("\n").find((line) => line.startsWith("model name"))
    if (line !== undefined) return line.slice(line.indexOf(":") + 1).trim()
  } catch {
    // not Linux: fall back to what Node reports
  }
  return Os.cpus()[0]?.model ?? "unknown"
}

const git = {
  commit: commandOutput("git", ["rev-parse", "--short", "HEAD"]),
  /** Files of src/ that differ from the commit: the figures are of the working tree. */
  srcChanges: (commandOutput("git", ["status", "--porcelain", "--", "src"]) ?? "").split("\n")
    .filter((line) => line !== "")
}

const machine = {
  nproc: Os.availableParallelism(),
  cpu: cpuModel(),
  memoryGiB: Math.round(Os.totalmem() / 1024 ** 3),
  node: process.version,
  redisServer: commandOutput("redis-server", ["--version"]),
  platform: `${Os.type()} ${Os.release()}`,
  gc: typeof (globalThis as { gc?: unknown }).gc === "function",
  packages: Object.fromEntries(
    ["effect", "ioredis", "@effect/platform-node", "redis", "cockatiel", "opossum"].map((name) => [
      name,
      packageVersion(name) ?? "not installed"
    ])
  )
}

/**
 * On a machine with two cores or more, the benchmark's main thread runs on CPU 0 and the throughput server on CPU 1,
 * so that every round trip crosses cores the same way: unpinned, the scheduler moves them between sharing a core
 * (~25 µs round trips here) and not (~70 µs), which swamps the differences being measured at concurrency 1.
 */
const pinning = {
  enabled: args.pin === true && Os.availableParallelism() >= 2 && commandOutput("taskset", ["--version"]) !== undefined,
  benchmarkCpu: 0,
  serverCpu: 1
}

/** Pins `pid` to `cpu` (-1: every CPU again). */
const pin = (pid: number, cpu: number, allThreads: boolean): boolean =>
  commandOutput("taskset", [
    ...(allThreads ? ["-a"] : []),
    "-p",
    "-c",
    cpu < 0 ? `0-${Os.availableParallelism() - 1}` : String(cpu),
    String(pid)
  ]) !== undefined

const writeResults = (results: unknown) => {
  Fs.mkdirSync(new URL(".", `file://${args.out}`), { recursive: true })
  Fs.writeFileSync(args.out, JSON.stringify(results, null, 2) + "\n")
  console.log(`\nResults written to ${args.out}`)
}

const loadBefore = Os.loadavg()

console.log(
  `effect-redis-resilience benchmark (${quick ? "quick" : "full"}), commit ${git.commit ?? "unknown"}` +
    (git.srcChanges.length > 0 ? ` with ${git.srcChanges.length} uncommitted change(s) in src/` : "")
)
console.log(
  `${machine.nproc} cores, ${machine.cpu}, ${machine.memoryGiB} GiB, Node ${machine.node}, ` +
    `${machine.redisServer ?? "redis-server: not found"}, load average ${loadBefore.map((l) => l.toFixed(2)).join(" ")}`
)

if (machine.redisServer === undefined) {
  const reason = "redis-server was not found on PATH, so no benchmark ran. Install it " +
    "(apt-get install redis-server, or brew install redis) and run npm run bench again."
  console.log(`\nNOT RUN: ${reason}`)
  writeResults({ startedAt: startedAt.toISOString(), mode: quick ? "quick" : "full", machine, notRun: reason })
  process.exit(1)
}

const program = Effect.gen(function*() {
  let throughput: ReadonlyArray<Throughput.ScenarioResult> | undefined
  let overhead: ReadonlyArray<Throughput.ScenarioResult> | undefined
  let clients: ReadonlyArray<Clients.Client> = []
  let pinned = false
  if (sections.throughput) {
    console.log("\nThroughput and latency (healthy server)")
    yield* Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const serverPid = yield* server.pid
      if (pinning.enabled && serverPid !== undefined) {
        pinned = pin(process.pid, pinning.benchmarkCpu, false) && pin(serverPid, pinning.serverCpu, true)
      }
      progress(pinned ? "benchmark main thread on CPU 0, redis-server on CPU 1" : "not pinned to CPUs")
      clients = yield* Clients.makeAll(server)
      throughput = yield* Throughput.run(clients, { ...throughputOptions, onProgress: progress })
      progress("hot-path cost without I/O")
      overhead = yield* Overhead.run(clients, { ...overheadOptions, onProgress: progress })
    }))
    if (pinned) pin(process.pid, -1, false)
  }
  let resilience: Resilience.ResilienceResult | undefined
  if (sections.resilience) {
    console.log("\nResilience (real server, defaults)")
    const server = yield* RedisTestServer.make()
    resilience = yield* Resilience.run(server, { ...resilienceOptions, onProgress: progress })
  }
  let cache: Cache.CacheBenchFigures | undefined
  if (sections.cache) {
    progress("RedisCache figures (bench/cache.ts)")
    cache = yield* Cache.run(cacheOptions)
  }
  let cluster: ClusterBench.ClusterBenchResult | undefined
  if (sections.cluster) {
    console.log("\nCluster and Sentinel (bench/cluster.ts)")
    cluster = yield* ClusterBench.run({ ...clusterOptions, onProgress: progress })
  }
  return { throughput, overhead, clients, resilience, pinned, cache, cluster }
})

Effect.runPromise(Effect.scoped(program)).then(
  ({ cache, clients, cluster, overhead, pinned, resilience, throughput }) => {
    const elapsed = (performance.now() - started) / 1000
    const loadAfter = Os.loadavg()
    const labels = Object.fromEntries(clients.map((client) => [client.id, client.label]))
    const summary = throughput === undefined ? undefined : Report.summarize(throughput)
    if (throughput !== undefined && summary !== undefined) {
      console.log(Report.throughputReport(throughput, summary, labels, throughputOptions))
    }
    if (overhead !== undefined) console.log(Report.overheadReport(overhead, labels, overheadOptions))
    if (resilience !== undefined) console.log(Report.resilienceReport(resilience, resilienceOptions))
    if (cache !== undefined) console.log(`\n${Cache.format(cache)}`)
    if (cluster !== undefined) console.log(`\n${ClusterBench.format(cluster, clusterOptions)}`)
    console.log(
      `\nDone in ${elapsed.toFixed(0)} s; load average ${loadBefore.map((l) => l.toFixed(2)).join(" ")} before, ` +
        `${loadAfter.map((l) => l.toFixed(2)).join(" ")} after.`
    )
    writeResults({
      startedAt: startedAt.toISOString(),
      mode: quick ? "quick" : "full",
      elapsedSeconds: elapsed,
      machine: { ...machine, loadAverageBefore: loadBefore, loadAverageAfter: loadAfter },
      git,
      pinning: pinned ? pinning : { enabled: false },
      settings: {
        throughput: throughputOptions,
        overhead: overheadOptions,
        resilience: resilienceOptions,
        cache: cacheOptions,
        cluster: clusterOptions
      },
      clients: clients.map((client) => ({
        id: client.id,
        label: client.label,
        ...(client._tag === "Unavailable" ? { notRun: client.reason } : {})
      })),
      summary,
      throughput,
      overhead,
      resilience,
      cache,
      cluster
    })
    process.exit(0)
  },
  (error: unknown) => {
    console.error("\nThe benchmark failed:", error)
    process.exit(1)
  }
)
