/**
 * Helpers for tests that mix real I/O with TestClock: waiting uses real timers, never Effect's Clock, so it works
 * whether or not the clock is a TestClock.
 */
import { Effect, Exit } from "effect"

/** Sleeps for real, outside Effect's Clock. */
export const sleepReal = (millis: number): Effect.Effect<void> =>
  Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, millis)))

/** Polls `effect` (real time) until `predicate` holds; dies after `timeoutMillis`. */
export const waitUntil = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  predicate: (a: A) => boolean,
  timeoutMillis = 5_000
): Effect.Effect<A, E, R> =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMillis
    while (true) {
      const value = yield* effect
      if (predicate(value)) return value
      if (Date.now() > deadline) {
        return yield* Effect.die(new Error(`condition not met within ${timeoutMillis} ms; last value: ${JSON.stringify(value)}`))
      }
      yield* sleepReal(5)
    }
  })

/** The `_tag` of the typed failure of an exit, "defect" for a defect, undefined for a success. */
export const failureTag = <A, E extends { readonly _tag: string }>(exit: Exit.Exit<A, E>): string | undefined => {
  if (Exit.isSuccess(exit)) return undefined
  const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
  return reason?._tag === "Fail" ? reason.error._tag : "defect"
}
