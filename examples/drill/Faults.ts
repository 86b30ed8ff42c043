/**
 * The scripted faults: what each one does, how a scenario and a duration become a timed plan, and the runner that
 * injects each fault, lifts it, and measures how long the layer took to notice (detection) and to serve again
 * (recovery).
 *
 * Every network fault is injected at the `ChaosProxy`; a frozen server (SIGSTOP) and a restart need the embedded
 * `redis-server`. Between two faults the runner waits for recovery, so that each measurement starts from a healthy
 * layer.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Result from "effect/Result"
import type { RedisServiceShape } from "../../src/index.ts"
import type { Monitor } from "./Monitor.ts"
import { DrillError, type Target } from "./Target.ts"
import { percentile, type Stats } from "./Workload.ts"

/**
 * The kinds of fault.
 *
 * @since 0.1.0
 * @category models
 */
export type FaultKind = "reset" | "latency" | "blackhole" | "outage" | "freeze" | "restart"

/**
 * What `--scenario` accepts: one kind of fault (repeated), or `all` of them in turn.
 *
 * @since 0.1.0
 * @category models
 */
export type Scenario = "all" | FaultKind

/**
 * @since 0.1.0
 * @category models
 */
export const scenarios = ["all", "reset", "latency", "blackhole", "outage", "freeze", "restart"] as const

/**
 * Latency added in each direction by the latency fault: well under the heartbeat and command timeouts.
 *
 * @since 0.1.0
 * @category models
 */
export const LATENCY_MILLIS = 50

/**
 * A kind of fault.
 *
 * @since 0.1.0
 * @category models
 */
export interface FaultSpec {
  readonly kind: FaultKind
  readonly title: string
  /** How it is injected. */
  readonly how: string
  /** Needs the embedded server (it acts on the process). */
  readonly embeddedOnly: boolean
  /** Breaks connections: the layer must detect it and recover. (Latency only slows commands down.) */
  readonly disruptive: boolean
  /** Injected once, with nothing to lift. */
  readonly instant: boolean
}

/**
 * Every fault, in the order `all` runs them.
 *
 * @since 0.1.0
 * @category models
 */
export const catalog: Readonly<Record<FaultKind, FaultSpec>> = {
  reset: {
    kind: "reset",
    title: "connection reset",
    how: "the proxy resets every open connection with a TCP RST (clients read ECONNRESET)",
    embeddedOnly: false,
    disruptive: true,
    instant: true
  },
  latency: {
    kind: "latency",
    title: `latency +${LATENCY_MILLIS} ms`,
    how: `the proxy delays every chunk by ${LATENCY_MILLIS} ms in each direction`,
    embeddedOnly: false,
    disruptive: false,
    instant: false
  },
  blackhole: {
    kind: "blackhole",
    title: "blackhole",
    how: "the proxy holds every byte in both directions; sockets stay open, nothing answers",
    embeddedOnly: false,
    disruptive: true,
    instant: false
  },
  outage: {
    kind: "outage",
    title: "refused connections",
    how: "the proxy stops listening (ECONNREFUSED) and resets the open connections",
    embeddedOnly: false,
    disruptive: true,
    instant: false
  },
  freeze: {
    kind: "freeze",
    title: "frozen server",
    how: "redis-server gets SIGSTOP, then SIGCONT: connections stay open, nothing answers",
    embeddedOnly: true,
    disruptive: true,
    instant: false
  },
  restart: {
    kind: "restart",
    title: "server restart",
    how: "redis-server is stopped (SIGTERM), stays down, then starts again on the same port",
    embeddedOnly: true,
    disruptive: true,
    instant: false
  }
}

const order: ReadonlyArray<FaultKind> = ["reset", "latency", "blackhole", "outage", "freeze", "restart"]

/** The length of one fault's slot (fault, recovery, calm) when the duration allows it. */
const IDEAL_SLOT_MILLIS = 6_500
const MIN_SLOT_MILLIS = 2_000

/**
 * When each fault happens.
 *
 * @since 0.1.0
 * @category models
 */
export interface Plan {
  readonly scenario: Scenario
  readonly faults: ReadonlyArray<FaultKind>
  /** Faults of the scenario left out because they need the embedded server. */
  readonly skipped: ReadonlyArray<FaultKind>
  readonly warmupMillis: number
  readonly slotMillis: number
  /** How long a fault stays injected. */
  readonly holdMillis: number
  readonly cooldownMillis: number
  readonly totalMillis: number
}

/**
 * The minimum `--duration` for a scenario, in seconds.
 *
 * @since 0.1.0
 * @category plan
 */
export const minimumSeconds = (scenario: Scenario, embedded: boolean): number => {
  const faults = scenario === "all" ? order.filter((kind) => embedded || !catalog[kind].embeddedOnly).length : 1
  return 2 + (MIN_SLOT_MILLIS / 1000) * faults
}

/**
 * Turns a scenario and a duration into a plan: a warm-up, one slot per fault (a single-fault scenario repeats its
 * fault to fill the time), a cool-down. Fails with a message when the duration is too short or the scenario needs
 * the embedded server.
 *
 * @since 0.1.0
 * @category plan
 */
export const plan = (scenario: Scenario, durationSeconds: number, embedded: boolean): Result.Result<Plan, string> => {
  if (scenario !== "all" && catalog[scenario].embeddedOnly && !embedded) {
    return Result.fail(
      `--scenario ${scenario} needs the embedded redis-server (it acts on the server process); unset REDIS_URL`
    )
  }
  const minimum = minimumSeconds(scenario, embedded)
  if (!Number.isFinite(durationSeconds) || durationSeconds < minimum) {
    return Result.fail(
      `--duration ${durationSeconds} is too short for --scenario ${scenario}: at least ${minimum} seconds`
    )
  }
  const base = scenario === "all" ? order.filter((kind) => embedded || !catalog[kind].embeddedOnly) : [scenario]
  const skipped = scenario === "all" ? order.filter((kind) => !base.includes(kind)) : []
  const totalMillis = durationSeconds * 1000
  const edge = Math.min(3_000, Math.max(1_000, totalMillis * 0.07))
  const available = totalMillis - 2 * edge
  const count = Math.max(base.length, Math.floor(available / IDEAL_SLOT_MILLIS))
  const faults = Array.from({ length: count }, (_, i) => base[i % base.length]!)
  const slotMillis = available / count
  return Result.succeed({
    scenario,
    faults,
    skipped,
    warmupMillis: edge,
    slotMillis,
    holdMillis: Math.min(4_000, slotMillis * 0.55),
    cooldownMillis: edge,
    totalMillis
  })
}

/**
 * One fault as it happened. Times are milliseconds since the drill started.
 *
 * @since 0.1.0
 * @category models
 */
export interface Phase {
  readonly index: number
  readonly spec: FaultSpec
  readonly plannedAt: number
  status: "pending" | "active" | "recovering" | "done"
  injectedAt: number | undefined
  liftedAt: number | undefined
  /** The first sign, after injection, that the layer noticed: a failed call or a lost connection. */
  detectedAt: number | undefined
  detectedBy: string | undefined
  /** The first moment after the lift when the connection was ready, the circuit closed and a GET succeeded. */
  recoveredAt: number | undefined
  /** When the subscriber went back to live delivery after the lift. */
  pubsubLiveAt: number | undefined
  /** Failed calls by tag, from injection to the next fault (or the end). */
  errors: Record<string, number>
  ok: number
  failed: number
  /** p50 / p99 of the calls that succeeded while the fault was injected (`undefined`: none did). */
  p50Millis: number | undefined
  p99Millis: number | undefined
}

/**
 * What the runner needs.
 *
 * @since 0.1.0
 * @category models
 */
export interface RunnerEnv {
  readonly target: Target
  readonly redis: RedisServiceShape
  readonly monitor: Monitor
  readonly stats: Stats
  /** A key the recovery probe reads (without the key prefix). */
  readonly probeKey: string
  /** How long recovery is awaited before the next fault starts anyway. */
  readonly recoveryWaitMillis: number
}

/**
 * The fault runner: `phases` fill in as `run` goes; `describeCurrent` is what the dashboard shows.
 *
 * @since 0.1.0
 * @category models
 */
export interface Runner {
  readonly plan: Plan
  readonly phases: ReadonlyArray<Phase>
  readonly describeCurrent: () => string
  /** Runs the whole plan: warm-up, every fault, cool-down. */
  readonly run: Effect.Effect<void, DrillError>
}

/**
 * Builds the runner of a plan.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeRunner = (plan: Plan, env: RunnerEnv): Runner => {
  const { monitor, stats, target } = env
  const timeline = monitor.timeline
  const phases: Array<Phase> = plan.faults.map((kind, index) => ({
    index,
    spec: catalog[kind],
    plannedAt: plan.warmupMillis + index * plan.slotMillis,
    status: "pending",
    injectedAt: undefined,
    liftedAt: undefined,
    detectedAt: undefined,
    detectedBy: undefined,
    recoveredAt: undefined,
    pubsubLiveAt: undefined,
    errors: {},
    ok: 0,
    failed: 0,
    p50Millis: undefined,
    p99Millis: undefined
  }))
  let current: Phase | undefined
  let armed: Phase | undefined
  let coolingDown = false

  const detect = (at: number, how: string) => {
    const phase = armed
    if (phase === undefined || phase.injectedAt === undefined || at < phase.injectedAt) return
    armed = undefined
    phase.detectedAt = at
    phase.detectedBy = how
    timeline.emit("detection", `${phase.spec.title} detected after ${Math.round(at - phase.injectedAt)} ms: ${how}`)
  }
  stats.onFailure((at, operation, tag) => detect(at, `${operation} failed with ${tag}`))
  monitor.onLoss((at, reason) => detect(at, `connection lost (${reason})`))

  const sleepUntil = (at: number) =>
    Effect.suspend(() => {
      const wait = at - timeline.now()
      return wait > 0 ? Effect.sleep(wait) : Effect.void
    })

  const server = () => {
    if (target.server === undefined) throw new Error("this fault needs the embedded server")
    return target.server
  }

  const inject = (kind: FaultKind): Effect.Effect<void, DrillError> => {
    const { proxy } = target
    switch (kind) {
      case "reset":
        return proxy.resetAll
      case "latency":
        return proxy.latency(LATENCY_MILLIS)
      case "blackhole":
        return proxy.blackhole
      case "outage":
        return Effect.andThen(proxy.refuse, proxy.resetAll)
      case "freeze":
        return Effect.suspend(() => server().pause)
      case "restart":
        return Effect.suspend(() => server().stop)
    }
  }

  const lift = (kind: FaultKind): Effect.Effect<void, DrillError> => {
    switch (kind) {
      case "reset":
        return Effect.void
      case "latency":
      case "blackhole":
      case "outage":
        return target.proxy.restore
      case "freeze":
        return Effect.suspend(() => server().resume)
      case "restart":
        return Effect.suspend(() => server().start).pipe(
          Effect.mapError((error) => new DrillError({ message: `The restart fault failed: ${error.message}` }))
        )
    }
  }

  // Ready, circuit closed, and a GET through the layer succeeds.
  const awaitRecovery = (since: number) =>
    Effect.gen(function*() {
      const deadline = since + env.recoveryWaitMillis
      while (timeline.now() < deadline) {
        const health = yield* env.redis.health
        if (health.connection === "ready" && health.circuit === "closed") {
          const exit = yield* Effect.exit(env.redis.get(env.probeKey))
          if (Exit.isSuccess(exit)) return timeline.now()
        }
        yield* Effect.sleep(20)
      }
      return undefined
    })

  let snapshot = { errors: new Map<string, number>(), ok: 0, failed: 0, durations: 0 }
  const takeSnapshot = () => {
    const figures = Object.values(stats.byOperation)
    return {
      errors: new Map(stats.errors),
      ok: figures.reduce((sum, f) => sum + f.ok, 0),
      failed: figures.reduce((sum, f) => sum + f.failed, 0),
      durations: figures.reduce((sum, f) => sum + f.durations.length, 0)
    }
  }
  const durationsSince = (starts: ReadonlyArray<number>) =>
    Object.values(stats.byOperation).flatMap((f, i) => f.durations.slice(starts[i]))

  const closePhase = (phase: Phase) => {
    const now = takeSnapshot()
    for (const [tag, count] of now.errors) {
      const delta = count - (snapshot.errors.get(tag) ?? 0)
      if (delta > 0) phase.errors[tag] = delta
    }
    phase.ok = now.ok - snapshot.ok
    phase.failed = now.failed - snapshot.failed
    phase.status = "done"
  }

  const runPhase = (phase: Phase) =>
    Effect.gen(function*() {
      yield* sleepUntil(phase.plannedAt)
      if (current !== undefined) closePhase(current)
      snapshot = takeSnapshot()
      const starts = Object.values(stats.byOperation).map((f) => f.durations.length)
      current = phase
      const { spec } = phase
      phase.status = "active"
      phase.injectedAt = timeline.now()
      if (spec.disruptive) armed = phase
      timeline.emit("fault", `fault ${phase.index + 1}/${phases.length}: ${spec.title}: ${spec.how}`)
      yield* inject(spec.kind)
      if (!spec.instant) yield* sleepUntil(phase.injectedAt + plan.holdMillis)
      const during = durationsSince(starts)
      if (during.length > 0) {
        phase.p50Millis = percentile(during, 0.5)
        phase.p99Millis = percentile(during, 0.99)
      }
      yield* lift(spec.kind)
      phase.liftedAt = timeline.now()
      phase.status = "recovering"
      if (!spec.instant) timeline.emit("fault", `${spec.title} lifted`)
      if (!spec.disruptive) return
      phase.recoveredAt = yield* awaitRecovery(phase.liftedAt)
      armed = undefined
      timeline.emit(
        "fault",
        phase.recoveredAt === undefined
          ? `${spec.title}: NOT recovered within ${Math.round(env.recoveryWaitMillis)} ms`
          : `${spec.title}: recovered ${Math.round(phase.recoveredAt - phase.liftedAt)} ms after the fault ended`
      )
      // The subscriber may come back a little later than the command connection.
      const deadline = timeline.now() + 2_000
      while (monitor.subscriberMode() !== "live" && timeline.now() < deadline) yield* Effect.sleep(20)
      if (monitor.subscriberMode() === "live") {
        const injectedAt = phase.injectedAt
        phase.pubsubLiveAt = monitor.liveAgain.find((at) => at >= injectedAt) ?? phase.liftedAt
      }
    })

  const run = Effect.gen(function*() {
    for (const phase of phases) yield* runPhase(phase)
    yield* sleepUntil(plan.totalMillis - plan.cooldownMillis)
    if (current !== undefined) closePhase(current)
    current = undefined
    coolingDown = true
    timeline.emit("fault", "cool-down: no more faults")
    yield* sleepUntil(plan.totalMillis)
  })

  const describeCurrent = () => {
    if (coolingDown) return "none (cool-down)"
    if (current === undefined) return "none (warm-up)"
    const { spec } = current
    const label = `${current.index + 1}/${phases.length} ${spec.title}`
    if (current.status === "active" && !spec.instant && current.injectedAt !== undefined) {
      const left = Math.max(0, (current.injectedAt + plan.holdMillis - timeline.now()) / 1000)
      return `${label} (${left.toFixed(1)} s left)`
    }
    if (current.status === "recovering" && current.recoveredAt === undefined && spec.disruptive) {
      return `${label} (${spec.instant ? "injected" : "lifted"}, recovering)`
    }
    return `${label} (over)`
  }

  return { plan, phases, describeCurrent, run }
}
