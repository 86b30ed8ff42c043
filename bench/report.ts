/**
 * What the benchmark concludes and prints: this layer's throughput and latency as ratios to every other client, the
 * issue's goals checked against them, and the resilience figures side by side with plain ioredis.
 *
 * @since 0.1.0
 */
import type * as Resilience from "./resilience.ts"
import {
  formatBytes,
  formatMillis,
  formatNumber,
  formatSpread,
  ratio,
  type Spread,
  spread,
  table
} from "./stats.ts"
import type * as Throughput from "./throughput.ts"

/**
 * This layer's figure divided by another client's, in one scenario.
 *
 * @since 0.1.0
 * @category models
 */
export interface Ratio {
  /** `layer` (defaults), `layer-ap` (`autoPipelining: true`) or `layer-typed` (`run(Command.get/set)`, defaults). */
  readonly subject: string
  readonly operation: Throughput.Operation
  readonly concurrency: number
  readonly versus: string
  readonly throughput: Spread
  /** p50 latency ratio (this layer / the other); below 1 is faster. */
  readonly p50: Spread
  /** CPU per operation ratio (this layer / the other); below 1 is cheaper. Robust to other processes' load. */
  readonly cpu: Spread
}

/**
 * One goal of the issue, checked.
 *
 * @since 0.1.0
 * @category models
 */
export interface Goal {
  readonly goal: string
  /** `undefined` when it could not be checked (a client did not run). */
  readonly met: boolean | undefined
  readonly detail: string
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Summary {
  readonly ratios: ReadonlyArray<Ratio>
  readonly goals: ReadonlyArray<Goal>
}

const measured = (
  figures: Throughput.ClientFigures | { readonly notRun: string } | undefined
): figures is Throughput.ClientFigures => figures !== undefined && !("notRun" in figures)

const scenarioName = (scenario: { readonly operation: string; readonly concurrency: number }) =>
  `${scenario.operation} c=${scenario.concurrency}`

const peers = ["bare", "raw", "node-redis", "cockatiel", "opossum", "raw-ap", "bare-ap"]
/** This layer with `autoPipelining: true` is compared with the auto-pipelined clients and NodeRedis (which pipelines). */
const pipelinedPeers = ["bare-ap", "raw-ap", "node-redis"]
/** The typed commands (`run(Command.get/set)`) are compared with the layer's own `get`/`set`. */
const subjects: ReadonlyArray<readonly [string, ReadonlyArray<string>]> = [
  ["layer", peers],
  ["layer-ap", pipelinedPeers],
  ["layer-typed", ["layer"]]
]

/**
 * Ratios of this layer to every other client in every scenario, and the goals: at least 0.95x the bare Effect
 * wrapper's throughput, ahead of NodeRedis, cockatiel and opossum, p50 at concurrency 1 within 10% of the bare
 * wrapper.
 *
 * @since 0.1.0
 * @category summarizing
 */
export const summarize = (scenarios: ReadonlyArray<Throughput.ScenarioResult>): Summary => {
  const ratios: Array<Ratio> = []
  for (const scenario of scenarios) {
    for (const [subject, versusAll] of subjects) {
      const layer = scenario.clients[subject]
      if (!measured(layer)) continue
      for (const versus of versusAll) {
        const other = scenario.clients[versus]
        if (!measured(other)) continue
        ratios.push({
          subject,
          operation: scenario.operation,
          concurrency: scenario.concurrency,
          versus,
          throughput: ratio(layer.opsPerSecond, other.opsPerSecond),
          p50: ratio(layer.p50, other.p50),
          cpu: ratio(layer.cpuMicrosPerOp, other.cpuMicrosPerOp)
        })
      }
    }
  }
  const find = (versus: string, subject = "layer") =>
    ratios.filter((entry) => entry.versus === versus && entry.subject === subject)
  const describe = (entries: ReadonlyArray<Ratio>, pick: (entry: Ratio) => Spread) =>
    entries.map((entry) => `${scenarioName(entry)} ${pick(entry).median.toFixed(3)}`).join(", ")
  const check = (
    goal: string,
    entries: ReadonlyArray<Ratio>,
    pick: (entry: Ratio) => Spread,
    ok: (value: number) => boolean
  ): Goal =>
    entries.length === 0
      ? { goal, met: undefined, detail: "not checked: a client did not run" }
      : { goal, met: entries.every((entry) => ok(pick(entry).median)), detail: describe(entries, pick) }

  const throughputOf = (entry: Ratio) => entry.throughput
  const concurrent = (entries: ReadonlyArray<Ratio>) => entries.filter((entry) => entry.concurrency >= 64)
  const goals: Array<Goal> = [
    // The performance issue's goals, on the layer with its default options.
    check(
      "GET/SET at c=64 and c=256: throughput >= 1.10x NodeRedis",
      concurrent(find("node-redis")),
      throughputOf,
      (r) => r >= 1.1
    ),
    check(
      "GET/SET at c=64 and c=256: throughput >= 0.85x raw ioredis with auto-pipelining",
      concurrent(find("raw-ap")),
      throughputOf,
      (r) => r >= 0.85
    ),
    check(
      "p50 latency at concurrency 1 within 5% of the bare wrapper",
      find("bare").filter((entry) => entry.concurrency === 1),
      (entry) => entry.p50,
      (r) => r <= 1.05
    ),
    check(
      "CPU per operation at c=256 no higher than NodeRedis",
      find("node-redis").filter((entry) => entry.concurrency === 256),
      (entry) => entry.cpu,
      (r) => r <= 1
    ),
    // The typed commands go through the same path as get/set; "not slower" within the 5% the other goals allow.
    check(
      "typed commands (run(Command.get/set)): throughput >= 0.95x get/set at c=1, 64, 256",
      find("layer", "layer-typed"),
      throughputOf,
      (r) => r >= 0.95
    ),
    check(
      "typed commands: p50 latency at concurrency 1 within 5% of get/set",
      find("layer", "layer-typed").filter((entry) => entry.concurrency === 1),
      (entry) => entry.p50,
      (r) => r <= 1.05
    ),
    // The first round's goals.
    check("throughput >= 0.95x the bare Effect.tryPromise wrapper", find("bare"), throughputOf, (r) => r >= 0.95),
    check("throughput ahead of NodeRedis (node-redis)", find("node-redis"), throughputOf, (r) => r > 1),
    check("throughput ahead of ioredis + cockatiel", find("cockatiel"), throughputOf, (r) => r > 1),
    check("throughput ahead of ioredis + opossum", find("opossum"), throughputOf, (r) => r > 1),
    check(
      "p50 latency at concurrency 1 within 10% of the bare wrapper",
      find("bare").filter((entry) => entry.concurrency === 1),
      (entry) => entry.p50,
      (r) => r <= 1.1
    ),
    check(
      "with autoPipelining: throughput >= 0.95x the bare wrapper with auto-pipelining",
      find("bare-ap", "layer-ap"),
      throughputOf,
      (r) => r >= 0.95
    ),
    check("with autoPipelining: throughput ahead of NodeRedis", find("node-redis", "layer-ap"), throughputOf, (r) => r > 1)
  ]
  return { ratios, goals }
}

const micros = (millis: Spread) => formatSpread(spread(millis.values.map((value) => value * 1000)))

/**
 * The throughput section: ratios first, then ops/s, latency percentiles and CPU per operation.
 *
 * @since 0.1.0
 * @category printing
 */
export const throughputReport = (
  scenarios: ReadonlyArray<Throughput.ScenarioResult>,
  summary: Summary,
  labels: Record<string, string>,
  options: Throughput.ThroughputOptions
): string => {
  const columns = scenarios.map(scenarioName)
  const ids = [...new Set(scenarios.flatMap((scenario) => Object.keys(scenario.clients)))]
  const label = (id: string) => labels[id] ?? id
  const cell = (
    id: string,
    scenario: Throughput.ScenarioResult,
    show: (figures: Throughput.ClientFigures) => string
  ) => {
    const figures = scenario.clients[id]
    return figures === undefined ? "" : measured(figures) ? show(figures) : "not run"
  }
  const out: Array<string> = []

  out.push(
    "\nThis layer's throughput / other client's: median (min–max) of the per-round ratios of " +
      `${options.rounds} alternating rounds. Above 1: the layer is faster.`
  )
  const ratioTable = (pick: (entry: Ratio) => Spread) =>
    table(
      ["this layer versus", ...columns],
      subjects.flatMap(([subject, versusAll]) =>
        versusAll.filter((versus) =>
          summary.ratios.some((entry) => entry.subject === subject && entry.versus === versus)
        ).map((versus) => [
          subject === "layer" ? label(versus) : `(${label(subject)}) ${label(versus)}`,
          ...scenarios.map((scenario) => {
            const entry = summary.ratios.find((entry) =>
              entry.subject === subject && entry.versus === versus && entry.operation === scenario.operation &&
              entry.concurrency === scenario.concurrency
            )
            return entry === undefined ? "" : formatSpread(pick(entry), 2)
          })
        ])
      )
    )
  out.push(ratioTable((entry) => entry.throughput))

  out.push(
    "\nThis layer's CPU time per operation / other client's (median (min–max) of per-round ratios). Below 1: the " +
      "layer costs less. CPU time does not count time spent descheduled, so it is steadier than throughput on a " +
      "busy machine."
  )
  out.push(ratioTable((entry) => entry.cpu))

  out.push("\nGoals")
  for (const goal of summary.goals) {
    out.push(`  ${goal.met === undefined ? "?" : goal.met ? "met   " : "MISSED"}  ${goal.goal}: ${goal.detail}`)
  }

  out.push(
    `\nThroughput, ops/s: median (min–max) of ${options.rounds} rounds of ${options.cellMillis} ms per client`
  )
  out.push(table(["client", ...columns], ids.map((id) => [label(id), ...scenarios.map((scenario) =>
    cell(id, scenario, (figures) => formatSpread(figures.opsPerSecond))
  )])))

  const latencyScenarios = scenarios.filter((scenario) => scenario.concurrency === 1 || scenario.concurrency === 64)
  out.push("\nLatency per operation, µs: p50 / p99 (median over rounds of each round's percentile)")
  out.push(table(["client", ...latencyScenarios.map(scenarioName)], ids.map((id) => [label(id), ...latencyScenarios.map(
    (scenario) =>
      cell(
        id,
        scenario,
        (figures) => `${formatNumber(figures.p50.median * 1000)} / ${formatNumber(figures.p99.median * 1000)}`
      )
  )])))
  out.push("\np50 latency at concurrency 1, µs: median (min–max)")
  out.push(table(
    ["client", ...scenarios.filter((scenario) => scenario.concurrency === 1).map(scenarioName)],
    ids.map((id) => [
      label(id),
      ...scenarios.filter((scenario) => scenario.concurrency === 1).map((scenario) =>
        cell(id, scenario, (figures) => micros(figures.p50))
      )
    ])
  ))

  out.push("\nCPU time of the benchmark process per operation, µs (user + system, median): what the client costs")
  out.push(table(["client", ...columns], ids.map((id) => [label(id), ...scenarios.map((scenario) =>
    cell(id, scenario, (figures) => formatNumber(figures.cpuMicrosPerOp.median, 1))
  )])))

  const notRun = ids.flatMap((id) => {
    const reasons = new Set(scenarios.flatMap((scenario) => {
      const figures = scenario.clients[id]
      return figures !== undefined && "notRun" in figures ? [figures.notRun] : []
    }))
    return [...reasons].map((reason) => `  ${label(id)}: ${reason}`)
  })
  if (notRun.length > 0) out.push(["\nNot run:", ...notRun].join("\n"))
  return out.join("\n")
}

const millisSpread = (value: Spread) =>
  !Number.isFinite(value.median)
    ? "-"
    : value.values.length === 1
    ? `${formatMillis(value.median)} (n=1)`
    : `${formatMillis(value.median)} (${formatMillis(value.min)}–${formatMillis(value.max)}, ` +
      `n=${value.values.length})`

const plural = (count: number, noun: string) => `${count} ${noun}${count === 1 ? "" : "s"}`

const detection = (detection: Resilience.Detection, windowMillis: number) =>
  detection.millis === undefined
    ? `not detected within ${formatMillis(windowMillis)}`
    : `${formatMillis(detection.millis)} (${detection.by})`

const outcomes = (figures: Resilience.CallerFigures) =>
  Object.entries(figures.outcomes).sort((a, b) => b[1] - a[1]).map(([outcome, count]) =>
    `${outcome} ${formatNumber(count)}`
  ).join(", ")

/**
 * The resilience section: one row per figure, this layer next to plain ioredis.
 *
 * @since 0.1.0
 * @category printing
 */
export const resilienceReport = (
  result: Resilience.ResilienceResult,
  options: Resilience.ResilienceOptions
): string => {
  const { freeze, heap, outage, restart } = result
  const ioredisDetected = freeze.rounds.filter((round) => round.ioredis.millis !== undefined)
  const shortestFreeze = Math.min(...freeze.rounds.map((round) => round.frozenMillis))
  const ioredisFreeze = [
    ...ioredisDetected.map((round) => detection(round.ioredis, round.frozenMillis)),
    ...(ioredisDetected.length < freeze.rounds.length
      ? [`not detected within ${formatMillis(shortestFreeze)} in ${freeze.rounds.length - ioredisDetected.length}`]
      : [])
  ]
  const rows: Array<ReadonlyArray<string>> = [
    [
      "frozen server (SIGSTOP) noticed after",
      freeze.layerDetect.values.length === freeze.rounds.length
        ? millisSpread(freeze.layerDetect)
        : `${millisSpread(freeze.layerDetect)}; missed in ${freeze.rounds.length - freeze.layerDetect.values.length}`,
      `${ioredisFreeze.join("; ")} of ${plural(freeze.rounds.length, "round")}; ` +
      `long watch: ${detection(freeze.long.ioredis, freeze.long.watchedMillis)}`
    ],
    ["first success after SIGCONT", millisSpread(freeze.layerBack), millisSpread(freeze.ioredisBack)],
    ["first success after a restart (from start)", millisSpread(restart.layerBack), millisSpread(restart.ioredisBack)],
    [
      `connection attempts in a ${formatMillis(outage.outageMillis)} outage`,
      `${outage.layer.attempts} (proxy accepts); ${outage.layer.connectFailures} connect failures (metric)`,
      `${outage.ioredis.attempts} (proxy accepts); ${outage.ioredis.reconnectingEvents} reconnecting events`
    ],
    [
      "circuit open after",
      outage.layer.circuitOpenAfterMillis === undefined
        ? "did not open"
        : formatMillis(outage.layer.circuitOpenAfterMillis),
      "no breaker"
    ],
    [
      "a call while the breaker is open",
      `p50 ${formatMillis(outage.openLatency.p50)}, p99 ${formatMillis(outage.openLatency.p99)} ` +
      `(n=${outage.openLatency.calls})`,
      "no breaker: see the callers' calls below"
    ],
    [
      `${options.outageCallers} callers' calls during the outage`,
      `${formatNumber(outage.layer.callers.calls)}: p50 ${formatMillis(outage.layer.callers.p50)}, ` +
      `p99 ${formatMillis(outage.layer.callers.p99)}`,
      `${formatNumber(outage.ioredis.callers.calls)}: p50 ${formatMillis(outage.ioredis.callers.p50)}, ` +
      `p99 ${formatMillis(outage.ioredis.callers.p99)}; ${formatNumber(outage.ioredis.callers.pendingAtEnd)} ` +
      "still waiting when the server came back"
    ],
    ["  their outcomes", outcomes(outage.layer.callers), outcomes(outage.ioredis.callers)],
    [
      `heap growth, ${formatNumber(heap.layer.callers)} callers, ${formatMillis(heap.waitMillis)} into an outage`,
      heap.gc
        ? `${formatBytes(heap.layer.growthBytes)}; ${formatNumber(heap.layer.pending)} waiting`
        : "not measured: run node with --expose-gc",
      heap.gc
        ? `${formatBytes(heap.ioredis.growthBytes)}; ${formatNumber(heap.ioredis.pending)} waiting ` +
          `(offline queue ${heap.ioredis.offlineQueue ?? "?"})`
        : "not measured: run node with --expose-gc"
    ]
  ]
  return [
    "\nResilience: this layer (defaults) next to plain ioredis 6 (defaults); times are median (min–max, n rounds)",
    table(["figure", "this layer", "plain ioredis"], rows)
  ].join("\n")
}

/**
 * The hot-path cost with the network taken out: nanoseconds per operation, and this layer's cost over the bare
 * wrapper's.
 *
 * @since 0.1.0
 * @category printing
 */
export const overheadReport = (
  scenarios: ReadonlyArray<Throughput.ScenarioResult>,
  labels: Record<string, string>,
  options: Omit<Throughput.ThroughputOptions, "concurrencies">
): string => {
  const nanos = (figures: Throughput.ClientFigures) => spread(figures.opsPerSecond.values.map((ops) => 1e9 / ops))
  const ids = [...new Set(scenarios.flatMap((scenario) => Object.keys(scenario.clients)))]
  const rows = ids.map((id) => [
    labels[id] ?? id,
    ...scenarios.map((scenario) => {
      const figures = scenario.clients[id]
      return measured(figures) ? formatSpread(nanos(figures)) : figures === undefined ? "" : "not run"
    })
  ])
  const difference = (id: string, base: string) =>
    scenarios.map((scenario) => {
      const a = scenario.clients[id]
      const b = scenario.clients[base]
      return measured(a) && measured(b) ? formatNumber(nanos(a).median - nanos(b).median) : "-"
    })
  return [
    "\nHot-path cost without I/O (ioredis answers GET/SET in-process), ns per operation on one core: " +
    `median (min–max) of ${options.rounds} rounds of ${options.cellMillis} ms`,
    table(["client", ...scenarios.map(scenarioName)], [
      ...rows,
      ["this layer − bare wrapper", ...difference("layer", "bare")],
      ["typed run(Command) − get/set", ...difference("layer-typed", "layer")]
    ])
  ].join("\n")
}
