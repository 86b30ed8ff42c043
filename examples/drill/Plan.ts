/**
 * When each fault happens: a scenario and a duration become a timed plan. `all` runs every fault once, a single-fault
 * scenario repeats its fault, each in a slot of its own; `soak` draws faults at random, one every 1 to 2 seconds,
 * each held a random 0.3 to 1 second.
 *
 * @since 0.1.0
 */
import * as Result from "effect/Result"
import { available, catalog, type FaultKind, kinds } from "./Faults.ts"

/**
 * What `--scenario` accepts: every fault once (`all`), random faults for as long as it runs (`soak`), or one kind of
 * fault repeated.
 *
 * @since 0.1.0
 * @category models
 */
export type Scenario = "all" | "soak" | FaultKind

/**
 * @since 0.1.0
 * @category models
 */
export const scenarios = ["all", "soak", ...kinds] as const satisfies ReadonlyArray<Scenario>

/**
 * The soak's randomness: the time from one fault to the next, and how long a fault stays injected (a disruptive one
 * stays until the layer noticed it, see `Runner`).
 *
 * @since 0.1.0
 * @category models
 */
export const soakRanges = {
  gapMillis: { min: 1_000, max: 2_000 },
  holdMillis: { min: 300, max: 1_000 }
} as const

/**
 * One fault of the plan.
 *
 * @since 0.1.0
 * @category models
 */
export interface ScheduledFault {
  readonly kind: FaultKind
  /** When it is due, in ms since the start of the drill. */
  readonly at: number
  /** How long it stays injected (nothing for an instant fault). */
  readonly holdMillis: number
}

/**
 * When each fault happens.
 *
 * @since 0.1.0
 * @category models
 */
export interface Plan {
  readonly scenario: Scenario
  readonly schedule: ReadonlyArray<ScheduledFault>
  /** Faults of the scenario left out because they need the embedded server. */
  readonly skipped: ReadonlyArray<FaultKind>
  readonly warmupMillis: number
  /** From one fault to the next: the slot of a scripted scenario, the mean spacing of the soak. */
  readonly slotMillis: number
  /** How long a fault stays injected; for the soak, the longest of its random holds. */
  readonly holdMillis: number
  readonly cooldownMillis: number
  readonly totalMillis: number
  /**
   * Random faults, at least `minGapMillis` apart. When the layer took longer to recover than the spacing allowed,
   * the next fault starts late and the ones that no longer fit before the cool-down are left out.
   */
  readonly soak: boolean
  readonly minGapMillis: number
}

/** The length of one fault's slot (fault, recovery, calm) when the duration allows it. */
const IDEAL_SLOT_MILLIS = 6_500
const MIN_SLOT_MILLIS = 2_000
const MIN_SOAK_SECONDS = 10

/**
 * The minimum `--duration` for a scenario, in seconds.
 *
 * @since 0.1.0
 * @category plan
 */
export const minimumSeconds = (scenario: Scenario, embedded: boolean): number =>
  scenario === "soak"
    ? MIN_SOAK_SECONDS
    : 2 + (MIN_SLOT_MILLIS / 1000) * (scenario === "all" ? available(embedded).length : 1)

/**
 * Turns a scenario and a duration into a plan: a warm-up, the faults, a cool-down. Fails with a message when the
 * duration is too short or the scenario needs the embedded server. `random` (0..1) draws the soak's faults.
 *
 * @since 0.1.0
 * @category plan
 */
export const plan = (
  scenario: Scenario,
  durationSeconds: number,
  embedded: boolean,
  random: () => number = Math.random
): Result.Result<Plan, string> => {
  if (scenario !== "all" && scenario !== "soak" && catalog[scenario].embeddedOnly && !embedded) {
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
  const totalMillis = durationSeconds * 1000
  const edge = Math.min(3_000, Math.max(1_000, totalMillis * 0.07))
  const frame = { scenario, warmupMillis: edge, cooldownMillis: edge, totalMillis }
  if (scenario === "soak") {
    const kinds = available(embedded)
    return Result.succeed({
      ...frame,
      schedule: soakSchedule(kinds, edge, totalMillis - edge, random),
      skipped: available(true).filter((kind) => !kinds.includes(kind)),
      slotMillis: (soakRanges.gapMillis.min + soakRanges.gapMillis.max) / 2,
      holdMillis: soakRanges.holdMillis.max,
      soak: true,
      minGapMillis: soakRanges.gapMillis.min
    })
  }
  const base = scenario === "all" ? available(embedded) : [scenario]
  const window = totalMillis - 2 * edge
  const count = Math.max(base.length, Math.floor(window / IDEAL_SLOT_MILLIS))
  const slotMillis = window / count
  const holdMillis = Math.min(4_000, slotMillis * 0.55)
  return Result.succeed({
    ...frame,
    schedule: Array.from({ length: count }, (_, i) => ({
      kind: base[i % base.length]!,
      at: edge + i * slotMillis,
      holdMillis
    })),
    skipped: scenario === "all" ? available(true).filter((kind) => !base.includes(kind)) : [],
    slotMillis,
    holdMillis,
    soak: false,
    minGapMillis: 0
  })
}

const between = (random: () => number, range: { readonly min: number; readonly max: number }) =>
  range.min + random() * (range.max - range.min)

// Every kind is equally likely; what fits between `from` and `until` if the layer keeps up with the spacing.
const soakSchedule = (
  kinds: ReadonlyArray<FaultKind>,
  from: number,
  until: number,
  random: () => number
): Array<ScheduledFault> => {
  const schedule: Array<ScheduledFault> = []
  for (let at = from;; at += between(random, soakRanges.gapMillis)) {
    const kind = kinds[Math.min(kinds.length - 1, Math.floor(random() * kinds.length))]!
    const holdMillis = catalog[kind].instant ? 0 : Math.round(between(random, soakRanges.holdMillis))
    if (at + holdMillis > until) return schedule
    schedule.push({ kind, at: Math.round(at), holdMillis })
  }
}
