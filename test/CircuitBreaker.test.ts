/**
 * The circuit breaker: every transition of the pure function, the runner under TestClock (open, half-open probe,
 * growing open periods), and a property: no call is admitted while open before `retryAfter`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Ref, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import * as CircuitBreaker from "../src/internal/breaker.ts"

const policy: CircuitBreaker.BreakerPolicy = {
  failureThreshold: 3,
  openDuration: Duration.seconds(1),
  maxOpenDuration: Duration.seconds(5)
}
const { transition } = CircuitBreaker
const ev = (tag: CircuitBreaker.BreakerEvent["_tag"]) => ({ _tag: tag }) as CircuitBreaker.BreakerEvent

describe("CircuitBreaker.transition (pure)", () => {
  it("counts consecutive failures and opens at the threshold", () => {
    let state = CircuitBreaker.initial
    state = transition(policy, state, ev("Failure"), 0)
    state = transition(policy, state, ev("Failure"), 0)
    assert.deepStrictEqual(state, { _tag: "Closed", failures: 2 })
    state = transition(policy, state, ev("Failure"), 10)
    assert.deepStrictEqual(state, { _tag: "Open", since: 10, until: 1010, trips: 1 })
  })

  it("a success or a new ready connection resets the count; with no failures nothing changes (same object)", () => {
    const two = transition(policy, transition(policy, CircuitBreaker.initial, ev("Failure"), 0), ev("Failure"), 0)
    assert.deepStrictEqual(transition(policy, two, ev("Success"), 0), CircuitBreaker.initial)
    assert.deepStrictEqual(transition(policy, two, ev("ConnectionReady"), 0), CircuitBreaker.initial)
    assert.strictEqual(transition(policy, CircuitBreaker.initial, ev("ConnectionReady"), 0), CircuitBreaker.initial)
    assert.strictEqual(transition(policy, CircuitBreaker.initial, ev("Success"), 0), CircuitBreaker.initial)
  })

  it("open ignores command outcomes and goes half-open on a Tick at the end of the period", () => {
    const open: CircuitBreaker.BreakerState = { _tag: "Open", since: 0, until: 1000, trips: 1 }
    assert.strictEqual(transition(policy, open, ev("Success"), 500), open)
    assert.strictEqual(transition(policy, open, ev("Failure"), 500), open)
    assert.strictEqual(transition(policy, open, ev("Tick"), 999), open)
    assert.deepStrictEqual(transition(policy, open, ev("Tick"), 1000), { _tag: "HalfOpen", trips: 1 })
  })

  it("open goes half-open at once when a new connection is ready", () => {
    const open: CircuitBreaker.BreakerState = { _tag: "Open", since: 0, until: 1000, trips: 1 }
    assert.deepStrictEqual(transition(policy, open, ev("ConnectionReady"), 10), { _tag: "HalfOpen", trips: 1 })
  })

  it("half-open: only the probe decides; a failed probe doubles the open period up to the max", () => {
    const half: CircuitBreaker.BreakerState = { _tag: "HalfOpen", trips: 1 }
    assert.strictEqual(transition(policy, half, ev("Success"), 0), half)
    assert.strictEqual(transition(policy, half, ev("Failure"), 0), half)
    assert.deepStrictEqual(transition(policy, half, ev("ProbeSucceeded"), 0), CircuitBreaker.initial)
    assert.deepStrictEqual(transition(policy, half, ev("ProbeFailed"), 100), {
      _tag: "Open",
      since: 100,
      until: 2100,
      trips: 2
    })
    const periods = [1, 2, 3, 4, 5, 6].map((trips) =>
      Duration.toMillis(CircuitBreaker.openDurationFor(policy, trips))
    )
    assert.deepStrictEqual(periods, [1000, 2000, 4000, 5000, 5000, 5000])
  })

  it("retryAfter: none while closed, the rest of the period while open, zero while half-open", () => {
    assert.isUndefined(CircuitBreaker.retryAfter(CircuitBreaker.initial, 0))
    const open: CircuitBreaker.BreakerState = { _tag: "Open", since: 0, until: 1000, trips: 1 }
    assert.strictEqual(Duration.toMillis(CircuitBreaker.retryAfter(open, 250)!), 750)
    assert.strictEqual(Duration.toMillis(CircuitBreaker.retryAfter({ _tag: "HalfOpen", trips: 1 }, 0)!), 0)
  })

  it("property: no call is admitted while open before retryAfter, whatever the events", () =>
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            event: fc.constantFrom<CircuitBreaker.BreakerEvent["_tag"]>(
              "Success",
              "Failure",
              "Tick",
              "ConnectionReady",
              "ProbeSucceeded",
              "ProbeFailed"
            ),
            advance: fc.integer({ min: 0, max: 3000 })
          }),
          { maxLength: 60 }
        ),
        (steps) => {
          let now = 0
          let state = CircuitBreaker.initial
          for (const step of steps) {
            now += step.advance
            const next = transition(policy, state, ev(step.event), now)
            // Leaving Open before `until` is only allowed through ConnectionReady, and only to HalfOpen (probe only).
            if (state._tag === "Open" && next._tag !== "Open") {
              if (now < state.until && step.event !== "ConnectionReady") return false
              if (next._tag !== "HalfOpen") return false
            }
            // While open no call is admitted, and a caller is told to come back at the end of the period.
            if (next._tag === "Open") {
              const after = CircuitBreaker.retryAfter(next, now)
              if (after === undefined) return false
              if (now + Duration.toMillis(after) !== Math.max(next.until, now)) return false
            }
            // Only Closed admits calls.
            if ((CircuitBreaker.retryAfter(next, now) === undefined) !== (next._tag === "Closed")) return false
            state = next
          }
          return true
        }
      )
    ))
})

describe("CircuitBreaker runner (TestClock)", () => {
  it.effect("opens after the threshold and fails calls at once with CircuitOpen and retryAfter", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(policy)
      yield* breaker.admit("GET")
      yield* breaker.onFailure
      yield* breaker.onFailure
      yield* breaker.admit("GET")
      yield* breaker.onFailure
      const exit = yield* Effect.exit(breaker.admit("GET"))
      assert.isTrue(Exit.isFailure(exit))
      const error = yield* Effect.flip(breaker.admit("GET"))
      assert.strictEqual(error._tag, "CircuitOpen")
      assert.strictEqual(Duration.toMillis(error.retryAfter), 1000)
      assert.strictEqual(error.command, "GET")
      yield* TestClock.adjust("400 millis")
      const later = yield* Effect.flip(breaker.admit("GET"))
      assert.strictEqual(Duration.toMillis(later.retryAfter), 600)
    }))

  it.effect("after openDuration it probes (not a user call); a good probe closes the circuit", () =>
    Effect.gen(function*() {
      const probes = yield* Ref.make(0)
      const breaker = yield* CircuitBreaker.make(policy)
      yield* breaker.run(Ref.update(probes, (n) => n + 1))
      for (let i = 0; i < 3; i++) yield* breaker.onFailure
      yield* Effect.yieldNow
      assert.strictEqual((yield* breaker.state)._tag, "Open")
      yield* TestClock.adjust("999 millis")
      assert.strictEqual((yield* breaker.state)._tag, "Open")
      assert.strictEqual(yield* Ref.get(probes), 0)
      yield* TestClock.adjust("1 millis")
      yield* Effect.yieldNow
      assert.strictEqual(yield* Ref.get(probes), 1)
      assert.strictEqual((yield* breaker.state)._tag, "Closed")
      yield* breaker.admit("GET")
    }))

  it.effect("a failed probe opens it again for twice as long, up to maxOpenDuration", () =>
    Effect.gen(function*() {
      const probes = yield* Ref.make(0)
      const breaker = yield* CircuitBreaker.make(policy)
      yield* breaker.run(Effect.andThen(Ref.update(probes, (n) => n + 1), Effect.fail("down")))
      for (let i = 0; i < 3; i++) yield* breaker.onFailure
      yield* Effect.yieldNow
      // Open periods: 1 s, then 2 s, 4 s, 5 s (capped), 5 s.
      const expected = [1000, 2000, 4000, 5000, 5000]
      for (const [i, period] of expected.entries()) {
        const error = yield* Effect.flip(breaker.admit())
        assert.strictEqual(Duration.toMillis(error.retryAfter), period, `period ${i}`)
        yield* TestClock.adjust(Duration.millis(period))
        yield* Effect.yieldNow
        assert.strictEqual(yield* Ref.get(probes), i + 1)
      }
    }))

  it.effect("ConnectionReady makes an open circuit probe at once", () =>
    Effect.gen(function*() {
      const probes = yield* Ref.make(0)
      const breaker = yield* CircuitBreaker.make(policy)
      yield* breaker.run(Ref.update(probes, (n) => n + 1))
      for (let i = 0; i < 3; i++) yield* breaker.onFailure
      yield* Effect.yieldNow
      yield* breaker.onConnectionReady
      yield* Effect.yieldNow
      yield* Effect.yieldNow
      assert.strictEqual(yield* Ref.get(probes), 1)
      assert.strictEqual((yield* breaker.state)._tag, "Closed")
    }))

  it.effect("publishes every status change in order", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(policy)
      const collected = yield* Effect.forkChild(Stream.runCollect(Stream.take(breaker.changes, 4)))
      yield* Effect.yieldNow
      yield* breaker.run(Effect.void)
      for (let i = 0; i < 3; i++) yield* breaker.onFailure
      yield* TestClock.adjust("1 second")
      yield* Effect.yieldNow
      const changes = yield* Fiber.join(collected)
      assert.deepStrictEqual(Array.from(changes), ["closed", "open", "half-open", "closed"])
    }))
})
