/**
 * The drill's verdict: the figures of the run, the checks computed from them, and the two ways to print it (a text
 * report for people, JSON for machines). A failed check makes the drill exit with code 1.
 *
 * @since 0.1.0
 */
import { formatMillis } from "./Dashboard.ts"
import { type FaultKind, kinds } from "./Faults.ts"
import type { Plan, Scenario } from "./Plan.ts"
import type { Phase } from "./Runner.ts"
import type { Target } from "./Target.ts"
import {
  type Ledger,
  type Operation,
  operations,
  type OutboxEntry,
  percentile,
  type PubSubFigures,
  type Stats
} from "./Workload.ts"

/**
 * The limits the checks hold the layer to, derived from its settings.
 *
 * @since 0.1.0
 * @category models
 */
export interface Bounds {
  /** The slowest a call may be, by operation: acquireTimeout + commandTimeout per attempt, plus a margin. */
  readonly callMillis: Readonly<Record<Operation, number>>
  /** heartbeat interval x misses + heartbeat timeout, plus a margin. */
  readonly detectionMillis: number
  /** reconnect cap + connectTimeout + breaker maxOpenDuration, plus a margin. */
  readonly recoveryMillis: number
  /** The first connection, one per disruptive fault, plus a margin. */
  readonly connectionsOpened: number
}

/**
 * One check.
 *
 * @since 0.1.0
 * @category models
 */
export interface Check {
  readonly id: string
  readonly name: string
  readonly passed: boolean
  readonly detail: string
}

/**
 * What the server held at the end, read over a direct connection.
 *
 * @since 0.1.0
 * @category models
 */
export interface Verification {
  readonly writesPresent: number
  readonly writesMissing: number
  readonly writesWrong: number
  readonly examples: ReadonlyArray<string>
  readonly counter: number
  /** The exactly-once incrementers' counter. */
  readonly onceCounter: number
}

/**
 * Everything the report is built from.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReportInput {
  readonly target: Target
  readonly plan: Plan
  /** The faults that were injected. */
  readonly phases: ReadonlyArray<Phase>
  readonly stats: Stats
  readonly ledger: Ledger
  readonly pubsub: PubSubFigures
  readonly outbox: ReadonlyArray<OutboxEntry>
  readonly verification: Verification
  readonly bounds: Bounds
  readonly settings: Settings
  readonly elapsedMillis: number
  readonly connection: {
    readonly reconnects: number
    readonly connectionsOpened: number
    readonly proxyAccepted: number
    readonly state: string
    readonly circuit: string
  }
  /** Times (ms) at which the command connection was lost. */
  readonly losses: ReadonlyArray<number>
}

/**
 * The layer settings the drill runs with (milliseconds).
 *
 * @since 0.1.0
 * @category models
 */
export interface Settings {
  readonly connectTimeoutMs: number
  readonly commandTimeoutMs: number
  readonly acquireTimeoutMs: number
  readonly reconnect: { readonly baseMs: number; readonly capMs: number; readonly debounceMs: number }
  readonly heartbeat: { readonly intervalMs: number; readonly timeoutMs: number; readonly misses: number }
  readonly breaker: {
    readonly failureThreshold: number
    readonly openDurationMs: number
    readonly maxOpenDurationMs: number
  }
}

/**
 * The report, as `--json` prints it. Times are milliseconds; `atMs` fields count from the start of the drill.
 *
 * @since 0.1.0
 * @category models
 */
export interface Report {
  readonly passed: boolean
  readonly target: { readonly kind: "embedded" | "url"; readonly label: string }
  readonly scenario: Scenario
  readonly durationSeconds: number
  readonly elapsedSeconds: number
  readonly settings: Settings
  readonly bounds: Bounds
  readonly workload: {
    readonly calls: number
    readonly ok: number
    readonly failed: number
    readonly hung: number
    readonly latency: { readonly p50Ms: number; readonly p99Ms: number; readonly maxMs: number }
    readonly errors: Readonly<Record<string, number>>
    readonly operations: Readonly<
      Record<Operation, {
        readonly calls: number
        readonly ok: number
        readonly failed: number
        readonly hung: number
        readonly p50Ms: number
        readonly p99Ms: number
        readonly maxMs: number
      }>
    >
  }
  readonly ledger: {
    readonly writes: {
      readonly acknowledged: number
      readonly present: number
      readonly missing: number
      readonly wrongValue: number
      readonly examples: ReadonlyArray<string>
    }
    readonly reads: { readonly checked: number; readonly wrong: number; readonly examples: ReadonlyArray<string> }
    readonly counter: {
      readonly acknowledged: number
      readonly maybeApplied: number
      readonly notApplied: number
      readonly final: number
    }
    readonly exactlyOnce: {
      readonly keys: number
      readonly settled: number
      readonly pending: number
      readonly calls: number
      readonly failed: number
      readonly failedSent: number
      readonly settleCalls: number
      readonly replayed: number
      readonly replayedUnsent: number
      readonly final: number
    }
  }
  readonly pubsub: {
    readonly published: number
    readonly acknowledged: number
    readonly delivered: number
    readonly live: number
    readonly polled: number
    readonly caughtUp: number
    readonly missing: number
    readonly duplicates: number
    readonly gaps: number
    readonly resubscribed: number
    readonly failure: string | null
  }
  readonly connection: ReportInput["connection"]
  readonly faults: ReadonlyArray<{
    readonly index: number
    readonly kind: FaultKind
    readonly title: string
    readonly injectedAtMs: number | null
    readonly liftedAtMs: number | null
    readonly detectedAfterMs: number | null
    readonly detectedBy: string | null
    readonly recoveredAfterMs: number | null
    readonly pubsubLiveAfterMs: number | null
    readonly ok: number
    readonly failed: number
    readonly errors: Readonly<Record<string, number>>
    /** Of the calls that succeeded while the fault was injected; `null` when none did. */
    readonly p50Ms: number | null
    readonly p99Ms: number | null
  }>
  /** The faults summed up by kind (a soak has hundreds). */
  readonly faultsByKind: Readonly<Partial<Record<FaultKind, KindFigures>>>
  readonly checks: ReadonlyArray<Check>
}

/**
 * The faults of one kind: how many, how fast they were detected and recovered from (`null`: not measured, as for
 * latency), and the calls that failed meanwhile.
 *
 * @since 0.1.0
 * @category models
 */
export interface KindFigures {
  readonly count: number
  readonly detectedP50Ms: number | null
  readonly detectedMaxMs: number | null
  readonly recoveredP50Ms: number | null
  readonly recoveredMaxMs: number | null
  readonly failed: number
  readonly errors: Readonly<Record<string, number>>
}

const round = (millis: number): number => millis < 10 ? Math.round(millis * 100) / 100 : Math.round(millis)
const since = (at: number | undefined, from: number | undefined): number | null =>
  at === undefined || from === undefined ? null : round(at - from)
const count = (n: number): string => n.toLocaleString("en-US")

const faultName = (phase: Phase): string => `#${phase.index + 1} ${phase.spec.title}`

const missingOf = (input: ReportInput): Array<OutboxEntry> =>
  input.outbox.filter((entry) => !input.pubsub.delivered.has(entry.seq))

const describeMissing = (entry: OutboxEntry): string =>
  `#${entry.seq} (published at ${(entry.at / 1000).toFixed(2)} s, ` +
  (entry.receivers === undefined ? "PUBLISH failed)" : `reached ${entry.receivers} subscribers)`)

// Each latency fault's p99, or their range when there are many (a soak).
const p99s = (phases: ReadonlyArray<Phase>): string => {
  const values = phases.flatMap((p) => p.p99Millis === undefined ? [] : [p.p99Millis])
  if (phases.length <= 6 || values.length === 0) {
    return phases.map((p) => p.p99Millis === undefined ? "-" : formatMillis(p.p99Millis)).join(", ")
  }
  return `${formatMillis(Math.min(...values))} to ${formatMillis(Math.max(...values))} (${phases.length} faults)`
}

const exactlyOnceCheck = (ledger: Ledger, verification: Verification): Check => {
  const once = ledger.exactlyOnce
  return {
    id: "exactly-once",
    name: "INCRs with an idempotency key applied exactly once",
    passed: verification.onceCounter === once.keys && once.pending === 0,
    detail: `counter ${count(verification.onceCounter)} ${verification.onceCounter === once.keys ? "=" : "!="} ` +
      `${count(once.keys)} idempotency keys; ${count(once.calls)} calls, ${count(once.failed)} failed ` +
      `(${count(once.failedSent)} with sent: true), retried with their key` +
      (once.pending > 0 ? `; ${once.pending} keys still failing at the end` : ", all settled") +
      `; ${count(once.replayed)} retries got the recorded reply (${count(once.replayedUnsent)} after sent: false)`
  }
}

const checksOf = (input: ReportInput): Array<Check> => {
  const { bounds, ledger, phases, pubsub, stats, verification } = input
  const checks: Array<Check> = []

  const slow = operations.map((op) => {
    const figures = stats.byOperation[op]
    return { op, figures, ok: figures.hung === 0 && figures.maxMillis <= bounds.callMillis[op] }
  })
  checks.push({
    id: "no-hung-call",
    name: "no hung call",
    passed: slow.every((s) => s.ok),
    detail: slow.map((s) =>
      `${s.op} ${formatMillis(s.figures.maxMillis)} <= ${formatMillis(bounds.callMillis[s.op])}` +
      (s.figures.hung > 0 ? ` (${s.figures.hung} hung)` : "")
    ).join(", ")
  })

  const acknowledged = ledger.writes.size
  checks.push({
    id: "writes-present",
    name: "every acknowledged write present",
    passed: verification.writesMissing === 0 && verification.writesWrong === 0,
    detail: `${count(verification.writesPresent)} of ${count(acknowledged)} acknowledged SETs hold their value` +
      (verification.writesMissing + verification.writesWrong > 0
        ? `; missing ${verification.writesMissing}, wrong ${verification.writesWrong}: ` +
          verification.examples.join("; ")
        : "")
  })
  checks.push({
    id: "reads-consistent",
    name: "reads return what was written",
    passed: ledger.reads.wrong === 0,
    detail: `${count(ledger.reads.checked)} GETs of acknowledged keys, ${ledger.reads.wrong} wrong` +
      (ledger.reads.examples.length > 0 ? `: ${ledger.reads.examples.join("; ")}` : "")
  })

  const { counter } = ledger
  checks.push({
    id: "incr-applied",
    name: "every acknowledged INCR applied",
    passed: verification.counter >= counter.acknowledged,
    detail: `counter ${count(verification.counter)} >= ${count(counter.acknowledged)} acknowledged INCRs`
  })
  checks.push({
    id: "incr-once",
    name: "no INCR applied twice",
    passed: verification.counter <= counter.acknowledged + counter.maybeApplied,
    detail: `counter ${count(verification.counter)} <= ${count(counter.acknowledged)} acknowledged + ` +
      `${count(counter.maybeApplied)} failed with sent: true (${count(counter.notApplied)} failed unsent)`
  })
  checks.push(exactlyOnceCheck(ledger, verification))

  const disruptive = phases.filter((p) => p.spec.disruptive)
  checks.push({
    id: "connections-bounded",
    name: "connections opened bounded",
    passed: input.connection.connectionsOpened <= bounds.connectionsOpened,
    detail: `${input.connection.connectionsOpened} <= ${bounds.connectionsOpened} ` +
      `(1 + ${disruptive.length} disruptive faults + 2); ` +
      `proxy accepted ${input.connection.proxyAccepted} TCP connections`
  })

  if (disruptive.length > 0) {
    // The plan holds every fault at least 1.1 s, longer than the heartbeat needs (interval x misses + timeout).
    const late = disruptive.filter((p) =>
      p.detectedAt === undefined || p.injectedAt === undefined || p.detectedAt - p.injectedAt > bounds.detectionMillis
    )
    const slowest = Math.max(
      0,
      ...disruptive.map((p) => (p.detectedAt ?? p.injectedAt ?? 0) - (p.injectedAt ?? 0))
    )
    checks.push({
      id: "faults-detected",
      name: "every fault detected",
      passed: late.length === 0,
      detail: `${disruptive.length - late.length} of ${disruptive.length} ` +
        `within ${formatMillis(bounds.detectionMillis)}, ` +
        `slowest ${formatMillis(slowest)}` +
        (late.length > 0 ? `; late or missed: ${late.map(faultName).join(", ")}` : "")
    })
    const unrecovered = disruptive.filter((p) =>
      p.recoveredAt === undefined || p.liftedAt === undefined || p.recoveredAt - p.liftedAt > bounds.recoveryMillis
    )
    const slowestRecovery = Math.max(0, ...disruptive.map((p) => (p.recoveredAt ?? 0) - (p.liftedAt ?? 0)))
    checks.push({
      id: "faults-recovered",
      name: "recovered after every fault",
      passed: unrecovered.length === 0,
      detail: `${disruptive.length - unrecovered.length} of ${disruptive.length} within ` +
        `${formatMillis(bounds.recoveryMillis)}, slowest ${formatMillis(slowestRecovery)}` +
        (unrecovered.length > 0 ? `; not: ${unrecovered.map(faultName).join(", ")}` : "")
    })
  }

  const latency = phases.filter((p) => p.spec.kind === "latency")
  if (latency.length > 0) {
    const lost = (p: Phase) => input.losses.filter((at) => at >= (p.injectedAt ?? 0) && at <= (p.liftedAt ?? 0)).length
    const failed = latency.reduce((sum, p) => sum + p.failed, 0)
    const losses = latency.reduce((sum, p) => sum + lost(p), 0)
    checks.push({
      id: "latency-harmless",
      name: "added latency fails nothing",
      passed: failed === 0 && losses === 0,
      detail: `${failed} failed calls, ${losses} connections dropped; p99 while slowed ${p99s(latency)}`
    })
  }

  if (disruptive.length > 0) {
    const notLive = disruptive.filter((p) => p.pubsubLiveAt === undefined)
    checks.push({
      id: "pubsub-resumed",
      name: "pub/sub live again after every fault",
      passed: notLive.length === 0,
      detail: `${disruptive.length - notLive.length} of ${disruptive.length}, slowest ` +
        formatMillis(Math.max(0, ...disruptive.map((p) => (p.pubsubLiveAt ?? 0) - (p.liftedAt ?? 0)))) +
        ` after the fault ended; ${count(pubsub.live)} messages received live in all` +
        (notLive.length > 0 ? `; still polling after: ${notLive.map(faultName).join(", ")}` : "")
    })
  }

  const missing = missingOf(input)
  checks.push({
    id: "pubsub-delivered",
    name: "every published message received",
    passed: missing.length === 0 && pubsub.failure === undefined,
    detail: `${count(pubsub.delivered.size)} of ${count(pubsub.published)} (${count(pubsub.live)} live, ` +
      `${count(pubsub.polled)} by polling while pub/sub was down, ${pubsub.caughtUp} only by the drill's catch-up)` +
      (missing.length > 0 ? `; missing: ${missing.slice(0, 5).map(describeMissing).join(", ")}` : "") +
      (pubsub.failure === undefined ? "" : `; the subscription failed: ${pubsub.failure}`)
  })

  return checks
}

/**
 * Builds the report and its checks.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (input: ReportInput): Report => {
  const { ledger, pubsub, stats } = input
  const figures = operations.map((op) => stats.byOperation[op])
  const all = figures.flatMap((f) => f.durations)
  const checks = checksOf(input)
  const ops = Object.fromEntries(operations.map((op) => {
    const f = stats.byOperation[op]
    return [op, {
      calls: f.calls,
      ok: f.ok,
      failed: f.failed,
      hung: f.hung,
      p50Ms: round(percentile(f.durations, 0.5)),
      p99Ms: round(percentile(f.durations, 0.99)),
      maxMs: round(f.maxMillis)
    }]
  })) as Report["workload"]["operations"]
  return {
    passed: checks.every((c) => c.passed),
    target: { kind: input.target.kind, label: input.target.label },
    scenario: input.plan.scenario,
    durationSeconds: input.plan.totalMillis / 1000,
    elapsedSeconds: Math.round(input.elapsedMillis / 100) / 10,
    settings: input.settings,
    bounds: input.bounds,
    workload: {
      calls: figures.reduce((sum, f) => sum + f.calls, 0),
      ok: figures.reduce((sum, f) => sum + f.ok, 0),
      failed: figures.reduce((sum, f) => sum + f.failed, 0),
      hung: figures.reduce((sum, f) => sum + f.hung, 0),
      latency: {
        p50Ms: round(percentile(all, 0.5)),
        p99Ms: round(percentile(all, 0.99)),
        maxMs: round(Math.max(0, ...figures.map((f) => f.maxMillis)))
      },
      errors: Object.fromEntries([...stats.errors].sort((a, b) => b[1] - a[1])),
      operations: ops
    },
    ledger: {
      writes: {
        acknowledged: ledger.writes.size,
        present: input.verification.writesPresent,
        missing: input.verification.writesMissing,
        wrongValue: input.verification.writesWrong,
        examples: input.verification.examples
      },
      reads: { checked: ledger.reads.checked, wrong: ledger.reads.wrong, examples: ledger.reads.examples },
      counter: {
        acknowledged: ledger.counter.acknowledged,
        maybeApplied: ledger.counter.maybeApplied,
        notApplied: ledger.counter.notApplied,
        final: input.verification.counter
      },
      exactlyOnce: {
        keys: ledger.exactlyOnce.keys,
        settled: ledger.exactlyOnce.settled,
        pending: ledger.exactlyOnce.pending,
        calls: ledger.exactlyOnce.calls,
        failed: ledger.exactlyOnce.failed,
        failedSent: ledger.exactlyOnce.failedSent,
        settleCalls: ledger.exactlyOnce.settleCalls,
        replayed: ledger.exactlyOnce.replayed,
        replayedUnsent: ledger.exactlyOnce.replayedUnsent,
        final: input.verification.onceCounter
      }
    },
    pubsub: {
      published: pubsub.published,
      acknowledged: pubsub.acknowledged,
      delivered: pubsub.delivered.size,
      live: pubsub.live,
      polled: pubsub.polled,
      caughtUp: pubsub.caughtUp,
      missing: missingOf(input).length,
      duplicates: pubsub.duplicates,
      gaps: pubsub.gaps,
      resubscribed: pubsub.resubscribed,
      failure: pubsub.failure ?? null
    },
    connection: input.connection,
    faults: input.phases.map((p) => ({
      index: p.index + 1,
      kind: p.spec.kind,
      title: p.spec.title,
      injectedAtMs: p.injectedAt === undefined ? null : round(p.injectedAt),
      liftedAtMs: p.liftedAt === undefined ? null : round(p.liftedAt),
      detectedAfterMs: since(p.detectedAt, p.injectedAt),
      detectedBy: p.detectedBy ?? null,
      recoveredAfterMs: since(p.recoveredAt, p.liftedAt),
      pubsubLiveAfterMs: since(p.pubsubLiveAt, p.liftedAt),
      ok: p.ok,
      failed: p.failed,
      errors: p.errors,
      p50Ms: p.p50Millis === undefined ? null : round(p.p50Millis),
      p99Ms: p.p99Millis === undefined ? null : round(p.p99Millis)
    })),
    faultsByKind: byKind(input.phases),
    checks
  }
}

const byKind = (phases: ReadonlyArray<Phase>): Report["faultsByKind"] => {
  const summary: Partial<Record<FaultKind, KindFigures>> = {}
  for (const kind of kinds) {
    const of = phases.filter((p) => p.spec.kind === kind)
    if (of.length === 0) continue
    const measured = (times: Array<number | null>) => {
      const values = times.filter((t): t is number => t !== null)
      return values.length === 0
        ? { p50: null, max: null }
        : { p50: round(percentile(values, 0.5)), max: round(Math.max(...values)) }
    }
    const detected = measured(of.map((p) => p.spec.disruptive ? since(p.detectedAt, p.injectedAt) : null))
    const recovered = measured(of.map((p) => p.spec.disruptive ? since(p.recoveredAt, p.liftedAt) : null))
    const errors: Record<string, number> = {}
    for (const p of of) for (const [tag, n] of Object.entries(p.errors)) errors[tag] = (errors[tag] ?? 0) + n
    summary[kind] = {
      count: of.length,
      detectedP50Ms: detected.p50,
      detectedMaxMs: detected.max,
      recoveredP50Ms: recovered.p50,
      recoveredMaxMs: recovered.max,
      failed: of.reduce((sum, p) => sum + p.failed, 0),
      errors: Object.fromEntries(Object.entries(errors).sort((a, b) => b[1] - a[1]))
    }
  }
  return summary
}

const orDash = (millis: number | null): string => millis === null ? "-" : formatMillis(millis)

const tagList = (errors: Readonly<Record<string, number>>): string =>
  Object.entries(errors).map(([tag, n]) => `${tag} ${count(n)}`).join(", ")

// One line per fault, and the calls of its time; a long run (a soak) gets one line per kind instead.
const faultLines = (report: Report): Array<string> => {
  if (report.faults.length > 12) {
    return [
      `Faults (${count(report.faults.length)})`.padEnd(21) + "detected p50 / max".padEnd(21) +
      "recovered p50 / max".padEnd(21) + "failed calls",
      ...Object.entries(report.faultsByKind).map(([kind, f]) => {
        const pair = (p50: number | null, max: number | null) =>
          p50 === null ? "-" : `${formatMillis(p50)} / ${orDash(max)}`
        const errors = tagList(f.errors)
        return `  ${kind.padEnd(10)}${String(f.count).padStart(5)}    ` +
          `${pair(f.detectedP50Ms, f.detectedMaxMs).padEnd(21)}${pair(f.recoveredP50Ms, f.recoveredMaxMs).padEnd(21)}` +
          `${count(f.failed)}${errors === "" ? "" : `: ${errors}`}`
      })
    ]
  }
  return [
    "Faults                    detected    recovered   pub/sub live  detected by",
    ...report.faults.flatMap((f) => {
      const errors = tagList(f.errors)
      const title = `${String(f.index).padStart(2)}. ${f.title}`.padEnd(26)
      const detected = f.kind === "latency" ? "-" : orDash(f.detectedAfterMs)
      const by = f.kind === "latency" ? `(not a failure: p99 ${orDash(f.p99Ms)})` : f.detectedBy ?? "-"
      const recovered = f.kind === "latency" ? "-" : orDash(f.recoveredAfterMs)
      return [
        `${title}${detected.padEnd(12)}${recovered.padEnd(12)}${orDash(f.pubsubLiveAfterMs).padEnd(14)}${by}`,
        `${"".padEnd(8)}${count(f.ok)} ok, ${count(f.failed)} failed${errors === "" ? "" : `: ${errors}`}`
      ]
    })
  ]
}

/**
 * The report for people: figures, one line per fault, one line per check, the verdict.
 *
 * @since 0.1.0
 * @category rendering
 */
export const renderText = (report: Report): string => {
  const { ledger, pubsub, workload } = report
  const lines: Array<string> = []
  lines.push(
    `Drill report: --scenario ${report.scenario}, ${report.elapsedSeconds} s, ${report.target.label}`,
    "",
    `Workload    ${count(workload.calls)} calls: ${count(workload.ok)} ok, ${count(workload.failed)} failed, ` +
      `${workload.hung} hung; p50 ${formatMillis(workload.latency.p50Ms)}, ` +
      `p99 ${formatMillis(workload.latency.p99Ms)}` +
      ` (successful calls), slowest call ${formatMillis(workload.latency.maxMs)}`,
    `Errors      ${tagList(workload.errors) || "none"}`,
    ...operations.map((op, i) => {
      const f = workload.operations[op]
      return `${i === 0 ? "Operations" : ""}`.padEnd(12) + `${op.padEnd(10)}${count(f.calls).padStart(8)} calls, ` +
        `${count(f.ok)} ok, ${count(f.failed)} failed; p50 ${formatMillis(f.p50Ms)}, p99 ${formatMillis(f.p99Ms)}, ` +
        `slowest ${formatMillis(f.maxMs)}`
    }),
    `Ledger      ${count(ledger.writes.acknowledged)} acknowledged SETs, ` +
      `${count(ledger.reads.checked)} checked GETs, ` +
      `counter ${count(ledger.counter.final)} after ${count(ledger.counter.acknowledged)} acknowledged INCRs ` +
      `(+${count(ledger.counter.maybeApplied)} maybe applied, ${count(ledger.counter.notApplied)} not sent)`,
    `Exactly once counter ${count(ledger.exactlyOnce.final)} for ${count(ledger.exactlyOnce.keys)} idempotency keys: ` +
      `${count(ledger.exactlyOnce.calls)} INCRs, ${count(ledger.exactlyOnce.failed)} failed ` +
      `(${count(ledger.exactlyOnce.failedSent)} with sent: true), ` +
      `${count(ledger.exactlyOnce.settleCalls)} calls to settle at the end, ${ledger.exactlyOnce.pending} left; ` +
      `${count(ledger.exactlyOnce.replayed)} retries answered from the record ` +
      `(${count(ledger.exactlyOnce.replayedUnsent)} of keys told sent: false)`,
    `Pub/sub     ${count(pubsub.published)} published, ${count(pubsub.delivered)} received ` +
      `(${count(pubsub.live)} live, ${count(pubsub.polled)} by polling, ${pubsub.caughtUp} by catch-up), ` +
      `${pubsub.gaps} gaps reported, ` +
      `${pubsub.missing} missing`,
    `Connection  ${report.connection.reconnects} reconnects, ` +
      `${report.connection.connectionsOpened} connections opened, ` +
      `proxy accepted ${report.connection.proxyAccepted}; now ${report.connection.state}, circuit ` +
      report.connection.circuit,
    ""
  )
  if (report.faults.length > 0) lines.push(...faultLines(report), "")
  lines.push("Checks")
  for (const check of report.checks) {
    lines.push(`  ${check.passed ? "PASS" : "FAIL"}  ${check.name}: ${check.detail}`)
  }
  const failed = report.checks.filter((c) => !c.passed).length
  lines.push(
    "",
    report.passed
      ? `Result: PASS (${report.checks.length} checks)`
      : `Result: FAIL (${failed} of ${report.checks.length} checks failed)`
  )
  return lines.join("\n")
}
