/**
 * The reconnect backoff, read step by step (no sleeping): exponential growth, jitter bounds, the cap.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import * as fc from "fast-check"
import * as ReconnectSchedule from "../src/internal/schedule.ts"

const policy = (overrides: Partial<ReconnectSchedule.ReconnectPolicy> = {}): ReconnectSchedule.ReconnectPolicy => ({
  base: Duration.millis(100),
  factor: 2,
  cap: Duration.seconds(5),
  jitter: false,
  ...overrides
})

const millis = (delays: ReadonlyArray<Duration.Duration>) => delays.map(Duration.toMillis)

describe("ReconnectSchedule", () => {
  it.effect("grows exponentially from base by factor and stops growing at the cap", () =>
    Effect.gen(function*() {
      const delays = yield* ReconnectSchedule.delays(ReconnectSchedule.make(policy()), 10, undefined)
      assert.deepStrictEqual(millis(delays), [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000])
    }))

  it.effect("honours another factor", () =>
    Effect.gen(function*() {
      const delays = yield* ReconnectSchedule.delays(
        ReconnectSchedule.make(policy({ base: Duration.millis(50), factor: 3, cap: Duration.seconds(1) })),
        5,
        undefined
      )
      assert.deepStrictEqual(millis(delays), [50, 150, 450, 1000, 1000])
    }))

  it.effect("jitter keeps every delay within [0.8, 1.2] of the plain one and never above the cap", () =>
    Effect.gen(function*() {
      for (let run = 0; run < 50; run++) {
        const delays = yield* ReconnectSchedule.delays(ReconnectSchedule.make(policy({ jitter: true })), 10, undefined)
        delays.forEach((delay, i) => {
          const plain = 100 * Math.pow(2, i)
          const ms = Duration.toMillis(delay)
          assert.isTrue(ms >= Math.min(plain * 0.8, 5000) - 1e-9, `delay ${i} = ${ms}`)
          assert.isTrue(ms <= Math.min(plain * 1.2, 5000) + 1e-9, `delay ${i} = ${ms}`)
        })
      }
    }))

  it.effect("jitter actually varies the delays", () =>
    Effect.gen(function*() {
      const seen = new Set<number>()
      for (let run = 0; run < 20; run++) {
        const [first] = yield* ReconnectSchedule.delays(ReconnectSchedule.make(policy({ jitter: true })), 1, undefined)
        seen.add(Duration.toMillis(first!))
      }
      assert.isTrue(seen.size > 1)
    }))

  it.effect("a fresh schedule starts again from base (this is how the loop resets after a ready connection)", () =>
    Effect.gen(function*() {
      const schedule = ReconnectSchedule.make(policy())
      const first = yield* ReconnectSchedule.delays(schedule, 4, undefined)
      const again = yield* ReconnectSchedule.delays(schedule, 2, undefined)
      assert.deepStrictEqual(millis(first), [100, 200, 400, 800])
      assert.deepStrictEqual(millis(again), [100, 200])
    }))

  it("property: delays are positive, never above the cap and never shrink without jitter", () =>
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1000 }),
        fc.double({ min: 1, max: 4, noNaN: true }),
        fc.integer({ min: 1, max: 60_000 }),
        (base, factor, capExtra) => {
          const cap = base + capExtra
          const delays = Effect.runSync(ReconnectSchedule.delays(
            ReconnectSchedule.make(policy({ base: Duration.millis(base), factor, cap: Duration.millis(cap) })),
            30,
            undefined
          )).map(Duration.toMillis)
          return delays.every((d, i) => d > 0 && d <= cap && (i === 0 || d >= delays[i - 1]!))
        }
      )
    ))
})
