/**
 * The chaos drill (`npm start`): its main effect against an embedded redis-server, the shape of its JSON report, and
 * the command line's answers to bad input. Each run is a few seconds long.
 */
import { spawnSync } from "node:child_process"
import * as Path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Result } from "effect"
import * as Drill from "../examples/drill/Drill.ts"
import * as Faults from "../examples/drill/Faults.ts"
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
  assert.hasAllKeys(report.workload.operations, ["GET", "SET", "INCR", "PUBLISH"])
  for (const op of Object.values(report.workload.operations)) {
    assert.hasAllKeys(op, ["calls", "ok", "failed", "hung", "p50Ms", "p99Ms", "maxMs"])
  }
  assert.hasAllKeys(report.ledger.counter, ["acknowledged", "maybeApplied", "notApplied", "final"])
  assert.hasAllKeys(report.ledger.writes, ["acknowledged", "present", "missing", "wrongValue", "examples"])
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
      assert.isAbove(report.workload.operations.GET.ok, 0)
      assert.strictEqual(report.workload.hung, 0)

      // Pub/sub kept delivering: live before and after, polled while the subscriber was down.
      assert.strictEqual(report.pubsub.missing, 0)
      assert.isAbove(report.pubsub.live, 0)
      assert.isAbove(report.pubsub.polled + report.pubsub.caughtUp, 0)
      assert.isAtLeast(report.pubsub.gaps, 1)
    }), 30_000)

  it.effect("a plan: faults in order, held shorter than their slot; too short a duration is refused", () =>
    Effect.gen(function*() {
      const all = Result.getOrThrow(Faults.plan("all", 45, true))
      assert.deepStrictEqual(all.faults, ["reset", "latency", "blackhole", "outage", "freeze", "restart"])
      assert.isBelow(all.holdMillis, all.slotMillis)
      assert.strictEqual(all.warmupMillis + all.faults.length * all.slotMillis + all.cooldownMillis, 45_000)

      const url = Result.getOrThrow(Faults.plan("all", 45, false))
      assert.deepStrictEqual(url.skipped, ["freeze", "restart"])
      assert.isFalse(url.faults.includes("freeze"))

      assert.isTrue(Result.isFailure(Faults.plan("all", 10, true)))
      const freeze = yield* Effect.flip(
        Drill.planFor({ durationSeconds: 20, scenario: "freeze", redisUrl: "redis://x" })
      )
      assert.include(freeze.message, "needs the embedded redis-server")
    }))

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
