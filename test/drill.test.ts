/**
 * The chaos drill (`npm start`): its main effect against an embedded redis-server, the shape of its JSON report, and
 * the command line's answers to bad input. Each run is a few seconds long; the soak's, about fifteen.
 */
import { spawnSync } from "node:child_process"
import * as Path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Result } from "effect"
import * as Drill from "../examples/drill/Drill.ts"
import * as Plan from "../examples/drill/Plan.ts"
import type * as Report from "../examples/drill/Report.ts"

const root = Path.resolve(import.meta.dirname, "..")

/** Runs `examples/drill.ts` with the Node that runs the tests (Node 24), as `npm start -- ...args` would. */
const cli = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  spawnSync(process.execPath, ["--experimental-strip-types", "--no-warnings", "examples/drill.ts", ...args], {
    cwd: root,
    encoding: "utf8",
    env: { ...process.env, REDIS_URL: "", ...env },
    timeout: 25_000
  })

/** The report as `--json` prints it, checked field by field. */
const assertShape = (json: unknown): Report.Report => {
  const report = json as Report.Report
  assert.isBoolean(report.passed)
  assert.strictEqual(report.target.kind, "embedded")
  assert.isString(report.target.label)
  assert.isNumber(report.durationSeconds)
  assert.isNumber(report.elapsedSeconds)
  for (const key of ["connectTimeoutMs", "commandTimeoutMs", "acquireTimeoutMs"] as const) {
    assert.isNumber(report.settings[key])
  }
  assert.hasAllKeys(report.bounds, ["callMillis", "detectionMillis", "recoveryMillis", "connectionsOpened"])
  assert.hasAllKeys(report.workload.operations, ["GET", "SET", "INCR", "INCR-once", "PUBLISH"])
  for (const op of Object.values(report.workload.operations)) {
    assert.hasAllKeys(op, ["calls", "ok", "failed", "hung", "p50Ms", "p99Ms", "maxMs"])
  }
  assert.hasAllKeys(report.ledger.counter, ["acknowledged", "maybeApplied", "notApplied", "final"])
  assert.hasAllKeys(report.ledger.writes, ["acknowledged", "present", "missing", "wrongValue", "examples"])
  assert.hasAllKeys(report.ledger.exactlyOnce, [
    "keys",
    "settled",
    "pending",
    "calls",
    "failed",
    "failedSent",
    "settleCalls",
    "replayed",
    "replayedUnsent",
    "final"
  ])
  assert.hasAllKeys(report.pubsub, [
    "published",
    "acknowledged",
    "delivered",
    "live",
    "polled",
    "caughtUp",
    "missing",
    "duplicates",
    "gaps",
    "resubscribed",
    "failure"
  ])
  assert.hasAllKeys(report.connection, ["reconnects", "connectionsOpened", "proxyAccepted", "state", "circuit"])
  for (const fault of report.faults) {
    assert.hasAllKeys(fault, [
      "index",
      "kind",
      "title",
      "injectedAtMs",
      "liftedAtMs",
      "detectedAfterMs",
      "detectedBy",
      "recoveredAfterMs",
      "pubsubLiveAfterMs",
      "ok",
      "failed",
      "errors",
      "p50Ms",
      "p99Ms"
    ])
  }
  for (const figures of Object.values(report.faultsByKind)) {
    assert.hasAllKeys(figures, [
      "count",
      "detectedP50Ms",
      "detectedMaxMs",
      "recoveredP50Ms",
      "recoveredMaxMs",
      "failed",
      "errors"
    ])
  }
  for (const check of report.checks) {
    assert.hasAllKeys(check, ["id", "name", "passed", "detail"])
    assert.isBoolean(check.passed)
  }
  return report
}

describe("chaos drill", () => {
  it.live("an outage against the embedded server: every check passes, the figures add up", () =>
    Effect.gen(function*() {
      const report = assertShape(JSON.parse(JSON.stringify(
        yield* Effect.scoped(Drill.run({ durationSeconds: 6, scenario: "outage", display: "none" }))
      )))
      const failed = report.checks.filter((check) => !check.passed)
      assert.deepStrictEqual(failed, [], "every check passes")
      assert.deepStrictEqual(report.checks.map((check) => check.id), [
        "no-hung-call",
        "writes-present",
        "reads-consistent",
        "incr-applied",
        "incr-once",
        "exactly-once",
        "connections-bounded",
        "faults-detected",
        "faults-recovered",
        "pubsub-resumed",
        "pubsub-delivered"
      ])
      assert.isTrue(report.passed)

      // One outage: detected at once (the proxy resets the connections), recovered, calls failed fast meanwhile.
      assert.strictEqual(report.faults.length, 1)
      const [outage] = report.faults
      assert.strictEqual(outage!.kind, "outage")
      assert.isNotNull(outage!.detectedAfterMs)
      assert.isBelow(outage!.detectedAfterMs!, report.bounds.detectionMillis)
      assert.isNotNull(outage!.recoveredAfterMs)
      assert.isAbove(outage!.errors["CircuitOpen"] ?? 0, 0, "the breaker opened and failed calls fast")
      assert.isAtLeast(report.connection.reconnects, 1)
      assert.isAtMost(report.connection.connectionsOpened, report.bounds.connectionsOpened)

      // The ledger: work was done and the counter is within what was acknowledged and what may have been applied.
      const { counter, writes } = report.ledger
      assert.isAbove(writes.acknowledged, 0)
      assert.strictEqual(writes.present, writes.acknowledged)
      assert.isAbove(counter.acknowledged, 0)
      assert.isAtLeast(counter.final, counter.acknowledged)
      assert.isAtMost(counter.final, counter.acknowledged + counter.maybeApplied)
      const { exactlyOnce } = report.ledger
      assert.isAbove(exactlyOnce.keys, 0)
      assert.strictEqual(exactlyOnce.final, exactlyOnce.keys)
      assert.strictEqual(exactlyOnce.pending, 0)
      assert.isAbove(report.workload.operations.GET.ok, 0)
      assert.strictEqual(report.workload.hung, 0)

      // Pub/sub kept delivering: live before and after, polled while the subscriber was down.
      assert.strictEqual(report.pubsub.missing, 0)
      assert.isAbove(report.pubsub.live, 0)
      assert.isAbove(report.pubsub.polled + report.pubsub.caughtUp, 0)
      assert.isAtLeast(report.pubsub.gaps, 1)
    }), 30_000)

  it.live("a short soak: random faults every 1-2 s, every check holds, INCRs with idempotency keys exactly once", () =>
    Effect.gen(function*() {
      const report = assertShape(JSON.parse(JSON.stringify(
        yield* Effect.scoped(Drill.run({ durationSeconds: 14, scenario: "soak", display: "none" }))
      )))
      assert.strictEqual(report.scenario, "soak")
      const failed = report.checks.filter((check) => !check.passed)
      assert.deepStrictEqual(failed, [], "every check passes")
      assert.isTrue(report.passed)
      const ids = report.checks.map((check) => check.id)
      for (const id of ["no-hung-call", "writes-present", "incr-once", "exactly-once", "connections-bounded"]) {
        assert.include(ids, id)
      }

      // About 12 s between warm-up and cool-down: a fault every 1-2 s (later when recovery takes longer), never less
      // than 1 s apart.
      assert.isAtLeast(report.faults.length, 4)
      report.faults.slice(1).forEach((fault, i) => {
        assert.isAtLeast(fault.injectedAtMs! - report.faults[i]!.injectedAtMs!, 990)
      })
      for (const fault of report.faults.filter((f) => f.kind !== "latency")) {
        assert.isNotNull(fault.detectedAfterMs, `fault ${fault.index} (${fault.kind}) detected`)
        assert.isNotNull(fault.recoveredAfterMs, `fault ${fault.index} (${fault.kind}) recovered`)
      }
      assert.strictEqual(report.workload.hung, 0)

      // The exactly-once incrementers: the counter equals the keys, nothing left pending.
      const { exactlyOnce } = report.ledger
      assert.isAbove(exactlyOnce.keys, 0)
      assert.strictEqual(exactlyOnce.final, exactlyOnce.keys)
      assert.strictEqual(exactlyOnce.pending, 0)
      assert.strictEqual(exactlyOnce.settled, exactlyOnce.keys)
      assert.isAtMost(exactlyOnce.failedSent, exactlyOnce.failed)
      assert.isAtMost(exactlyOnce.replayedUnsent, exactlyOnce.replayed)
    }), 45_000)

  it.effect("a plan: faults in order, held shorter than their slot; too short a duration is refused", () =>
    Effect.gen(function*() {
      const all = Result.getOrThrow(Plan.plan("all", 45, true))
      assert.deepStrictEqual(all.schedule.map((f) => f.kind), [
        "reset",
        "latency",
        "blackhole",
        "outage",
        "freeze",
        "restart"
      ])
      assert.isBelow(all.holdMillis, all.slotMillis)
      assert.strictEqual(all.warmupMillis + all.schedule.length * all.slotMillis + all.cooldownMillis, 45_000)

      const url = Result.getOrThrow(Plan.plan("all", 45, false))
      assert.deepStrictEqual(url.skipped, ["freeze", "restart"])
      assert.isFalse(url.schedule.some((f) => f.kind === "freeze"))

      assert.isTrue(Result.isFailure(Plan.plan("all", 10, true)))
      const freeze = yield* Effect.flip(
        Drill.planFor({ durationSeconds: 20, scenario: "freeze", redisUrl: "redis://x" })
      )
      assert.include(freeze.message, "needs the embedded redis-server")
    }))

  it("a soak plan: every kind drawn, 1-2 s apart, each held 0.3-1 s, all before the cool-down", () => {
    const soak = Result.getOrThrow(Plan.plan("soak", 600, true))
    assert.isTrue(soak.soak)
    assert.isAtLeast(soak.schedule.length, 300)
    assert.sameMembers([...new Set(soak.schedule.map((f) => f.kind))], [...Plan.scenarios.slice(2)])
    soak.schedule.forEach((fault, i) => {
      if (fault.kind === "reset") assert.strictEqual(fault.holdMillis, 0)
      else assert.isTrue(fault.holdMillis >= 300 && fault.holdMillis <= 1_000, `hold ${fault.holdMillis}`)
      assert.isAtMost(fault.at + fault.holdMillis, soak.totalMillis - soak.cooldownMillis)
      if (i > 0) {
        const gap = fault.at - soak.schedule[i - 1]!.at
        assert.isTrue(gap >= 999 && gap <= 2_001, `gap ${gap}`)
      }
    })
    const url = Result.getOrThrow(Plan.plan("soak", 60, false))
    assert.deepStrictEqual(url.skipped, ["freeze", "restart"])
    assert.isFalse(url.schedule.some((f) => f.kind === "freeze" || f.kind === "restart"))
    assert.isTrue(Result.isFailure(Plan.plan("soak", 9, true)))
  })

  it("--bogus, --scenario nope and an unreachable REDIS_URL: a clear message, exit code 1, no stack trace", () => {
    const bogus = cli(["--bogus"])
    assert.strictEqual(bogus.status, 1)
    assert.include(bogus.stderr, "Unrecognized flag: --bogus")
    assert.notMatch(bogus.stderr, /\n\s+at /)

    const scenario = cli(["--scenario", "nope"])
    assert.strictEqual(scenario.status, 1)
    assert.include(scenario.stderr, "--scenario")

    const unreachable = cli(["--duration", "15"], { REDIS_URL: "redis://127.0.0.1:1" })
    assert.strictEqual(unreachable.status, 1)
    assert.include(unreachable.stderr, "Cannot use REDIS_URL redis://127.0.0.1:1/0")
    assert.include(unreachable.stderr, "ECONNREFUSED")
    assert.notMatch(unreachable.stderr, /\n\s+at /)
  }, 30_000)

  it("--json prints the report, and nothing else, on stdout", () => {
    const run = cli(["--json", "--scenario", "reset", "--duration", "4"])
    assert.strictEqual(run.status, 0, run.stderr)
    const report = assertShape(JSON.parse(run.stdout))
    assert.isTrue(report.passed)
    assert.strictEqual(report.faults[0]!.kind, "reset")
  }, 30_000)
})
