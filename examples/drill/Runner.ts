/**
 * The fault runner: injects each fault of the plan, holds it, lifts it, and measures how long the layer took to
 * notice (detection) and to serve again (recovery). Between two faults it waits for recovery, so that each
 * measurement starts from a healthy layer.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type { RedisServiceShape } from "../../src/index.ts"
import * as Faults from "./Faults.ts"
import type { Monitor, Timeline } from "./Monitor.ts"
import type { Plan } from "./Plan.ts"
import type { DrillError, Target } from "./Target.ts"
import { percentile, type Stats } from "./Workload.ts"

/**
 * One fault as it happened. Times are milliseconds since the drill started.
 *
 * @since 0.1.0
 * @category models
 */
export interface Phase {
  readonly index: number
  readonly spec: Faults.FaultSpec
  readonly plannedAt: number
  /**
   * The planned hold; a disruptive fault stays injected until both connections noticed it (at most the detection
   * bound).
   */
  readonly holdMillis: number
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
  /** The longest a disruptive fault is held while the layer has not noticed it. */
  readonly detectionWaitMillis: number
}

/**
 * The fault runner: `phases` fill in as `run` goes; `describeCurrent` is what the dashboard shows.
 *
 * @since 0.1.0
 * @category models
 */
export interface Runner {
  readonly plan: Plan
  /** Every fault of the plan; in a soak, those that did not fit stay `pending` (see `injected`). */
  readonly phases: ReadonlyArray<Phase>
  readonly describeCurrent: () => string
  /** Runs the whole plan: warm-up, every fault, cool-down. */
  readonly run: Effect.Effect<void, DrillError>
}

/**
 * The faults that were injected.
 *
 * @since 0.1.0
 * @category figures
 */
export const injected = (phases: ReadonlyArray<Phase>): ReadonlyArray<Phase> =>
  phases.filter((phase) => phase.injectedAt !== undefined)

interface Snapshot {
  readonly errors: ReadonlyMap<string, number>
  readonly ok: number
  readonly failed: number
}

interface State {
  readonly plan: Plan
  readonly env: RunnerEnv
  readonly timeline: Timeline
  readonly phases: ReadonlyArray<Phase>
  current: Phase | undefined
  /** The disruptive fault waiting for its detection. */
  armed: Phase | undefined
  /** When the previous fault was over: a call started before may still fail because of it, not of the next. */
  calmSince: number
  coolingDown: boolean
  snapshot: Snapshot
}

/**
 * Builds the runner of a plan.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeRunner = (plan: Plan, env: RunnerEnv): Runner => {
  const timeline = env.monitor.timeline
  const state: State = {
    plan,
    env,
    timeline,
    phases: plan.schedule.map((fault, index) => makePhase(index, fault.kind, fault.at, fault.holdMillis)),
    current: undefined,
    armed: undefined,
    calmSince: 0,
    coolingDown: false,
    snapshot: takeSnapshot(env.stats)
  }
  env.stats.onFailure((at, operation, tag, startedAt) =>
    detect(state, at, `${operation} failed with ${tag}`, startedAt)
  )
  env.monitor.onLoss((at, reason) => detect(state, at, `connection lost (${reason})`, at))

  const run = Effect.gen(function*() {
    for (const phase of state.phases) {
      if (!(yield* runPhase(state, phase))) break
    }
    yield* sleepUntil(timeline, plan.totalMillis - plan.cooldownMillis)
    if (state.current !== undefined) closePhase(state, state.current)
    state.current = undefined
    state.coolingDown = true
    timeline.emit("fault", "cool-down: no more faults")
    yield* sleepUntil(timeline, plan.totalMillis)
  })

  return { plan, phases: state.phases, describeCurrent: () => describeCurrent(state), run }
}

const makePhase = (index: number, kind: Faults.FaultKind, plannedAt: number, holdMillis: number): Phase => ({
  index,
  spec: Faults.catalog[kind],
  plannedAt,
  holdMillis,
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
})

const detect = (state: State, at: number, how: string, startedAt: number) => {
  const phase = state.armed
  if (phase === undefined || phase.injectedAt === undefined || at < phase.injectedAt) return
  if (startedAt < state.calmSince) return
  state.armed = undefined
  phase.detectedAt = at
  phase.detectedBy = how
  state.timeline.emit("detection", `${phase.spec.title} detected after ${Math.round(at - phase.injectedAt)} ms: ${how}`)
}

const sleepUntil = (timeline: Timeline, at: number) =>
  Effect.suspend(() => {
    const wait = at - timeline.now()
    return wait > 0 ? Effect.sleep(wait) : Effect.void
  })

const takeSnapshot = (stats: Stats): Snapshot => {
  const figures = Object.values(stats.byOperation)
  return {
    errors: new Map(stats.errors),
    ok: figures.reduce((sum, f) => sum + f.ok, 0),
    failed: figures.reduce((sum, f) => sum + f.failed, 0)
  }
}

const closePhase = (state: State, phase: Phase) => {
  const now = takeSnapshot(state.env.stats)
  for (const [tag, count] of now.errors) {
    const delta = count - (state.snapshot.errors.get(tag) ?? 0)
    if (delta > 0) phase.errors[tag] = delta
  }
  phase.ok = now.ok - state.snapshot.ok
  phase.failed = now.failed - state.snapshot.failed
  phase.status = "done"
}

// Returns false when a soak has no time left for this fault (the layer took longer to recover than planned).
const runPhase = (state: State, phase: Phase): Effect.Effect<boolean, DrillError> =>
  Effect.gen(function*() {
    const { env, plan, timeline } = state
    const previous = state.current
    const startAt = Math.max(phase.plannedAt, (previous?.injectedAt ?? 0) + plan.minGapMillis)
    const latest = plan.totalMillis - plan.cooldownMillis - phase.holdMillis
    if (plan.soak && Math.max(startAt, timeline.now()) > latest) return false
    yield* sleepUntil(timeline, startAt)
    if (previous !== undefined) closePhase(state, previous)
    state.snapshot = takeSnapshot(env.stats)
    const starts = Object.values(env.stats.byOperation).map((f) => f.durations.length)
    state.current = phase
    const { spec } = phase
    phase.status = "active"
    phase.injectedAt = timeline.now()
    if (spec.disruptive) state.armed = phase
    const of = plan.soak ? "" : `/${state.phases.length}`
    timeline.emit("fault", `fault ${phase.index + 1}${of}: ${spec.title}: ${spec.how}`)
    yield* Faults.inject(env.target, spec.kind)
    if (!spec.instant) yield* hold(state, phase)
    const during = Object.values(env.stats.byOperation).flatMap((f, i) => f.durations.slice(starts[i]))
    if (during.length > 0) {
      phase.p50Millis = percentile(during, 0.5)
      phase.p99Millis = percentile(during, 0.99)
    }
    yield* Faults.lift(env.target, spec.kind)
    phase.liftedAt = timeline.now()
    phase.status = "recovering"
    if (!spec.instant) timeline.emit("fault", `${spec.title} lifted`)
    if (spec.disruptive) yield* awaitRecovery(state, phase)
    state.calmSince = timeline.now()
    return true
  })

// A disruptive fault stays until both connections noticed it (at most the detection bound). Lifted earlier, a silent
// fault (blackhole, freeze) could end before a heartbeat saw it: nothing would have been tested, and a PUBLISH that
// failed on the command connection while the subscriber stayed live would reach it neither live nor by the fallback,
// which polls only while the subscriber is down (the drill's publisher does not retry; see docs/drill.md).
const hold = (state: State, phase: Phase) =>
  Effect.gen(function*() {
    const { env, timeline } = state
    const injectedAt = phase.injectedAt ?? timeline.now()
    yield* sleepUntil(timeline, injectedAt + phase.holdMillis)
    if (!phase.spec.disruptive) return
    const { monitor } = env
    const noticed = () =>
      phase.detectedAt !== undefined &&
      (monitor.subscriberMode() !== "live" || monitor.fellBack.some((at) => at >= injectedAt))
    const deadline = injectedAt + env.detectionWaitMillis
    while (!noticed() && timeline.now() < deadline) yield* Effect.sleep(10)
  })

// Ready, circuit closed, and a GET through the layer succeeds; then the subscriber back to live delivery.
const awaitRecovery = (state: State, phase: Phase) =>
  Effect.gen(function*() {
    const { env, timeline } = state
    const liftedAt = phase.liftedAt ?? timeline.now()
    const deadline = liftedAt + env.recoveryWaitMillis
    while (phase.recoveredAt === undefined && timeline.now() < deadline) {
      const health = yield* env.redis.health
      if (health.connection === "ready" && health.circuit === "closed") {
        const exit = yield* Effect.exit(env.redis.get(env.probeKey))
        if (Exit.isSuccess(exit)) phase.recoveredAt = timeline.now()
      }
      if (phase.recoveredAt === undefined) yield* Effect.sleep(20)
    }
    state.armed = undefined
    const { title } = phase.spec
    timeline.emit(
      "fault",
      phase.recoveredAt === undefined
        ? `${title}: NOT recovered within ${Math.round(env.recoveryWaitMillis)} ms`
        : `${title}: recovered ${Math.round(phase.recoveredAt - liftedAt)} ms after the fault ended`
    )
    // The subscriber may come back a little later than the command connection.
    const monitor = env.monitor
    const until = timeline.now() + 2_000
    while (monitor.subscriberMode() !== "live" && timeline.now() < until) yield* Effect.sleep(20)
    if (monitor.subscriberMode() === "live") {
      const injectedAt = phase.injectedAt ?? liftedAt
      phase.pubsubLiveAt = monitor.liveAgain.find((at) => at >= injectedAt) ?? liftedAt
    }
  })

const describeCurrent = (state: State): string => {
  const { current, plan } = state
  if (state.coolingDown) return "none (cool-down)"
  if (current === undefined) return "none (warm-up)"
  const { spec } = current
  const label = `${current.index + 1}${plan.soak ? "" : `/${state.phases.length}`} ${spec.title}`
  if (current.status === "active" && !spec.instant && current.injectedAt !== undefined) {
    const left = Math.max(0, (current.injectedAt + current.holdMillis - state.timeline.now()) / 1000)
    return `${label} (${left.toFixed(1)} s left)`
  }
  if (current.status === "recovering" && current.recoveredAt === undefined && spec.disruptive) {
    return `${label} (${spec.instant ? "injected" : "lifted"}, recovering)`
  }
  return `${label} (over)`
}
