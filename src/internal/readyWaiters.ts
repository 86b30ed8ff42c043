/**
 * The callers waiting for a ready connection, with one timer for all of them. Every waiter has the same timeout, so
 * deadlines are in arrival order: one fiber sleeps until the oldest deadline, fails every waiter whose deadline has
 * passed, and sleeps again until the next one. A timer (and a racing fiber) per waiter, as `Effect.timeout` makes,
 * does not scale: at 100,000 waiters it overshot a 1 s timeout by more than 4 s.
 *
 * It runs on Effect's `Clock`, so `TestClock` drives it like every other timing of the layer.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Latch from "effect/Latch"
import type * as Scope from "effect/Scope"
import { monotonicMillis } from "./watchdog.ts"

interface Waiter<A, E> {
  readonly at: number
  readonly label: string | undefined
  /** Cleared once the waiter is settled (resumed, or interrupted by its caller). */
  resume: ((effect: Effect.Effect<A, E>) => void) | undefined
}

/** @internal */
export interface ReadyWaiters<A, E> {
  /** Waits until `succeed` or `fail` settles every waiter, at most the timeout (then fails with `onTimeout(label)`). */
  readonly wait: (label: string | undefined) => Effect.Effect<A, E>
  /** Resumes every waiter with `value`. */
  readonly succeed: (value: A) => void
  /** Fails every waiter with `error`. */
  readonly fail: (error: E) => void
}

/**
 * Starts the timer fiber in the current scope. `onTimeout` is called once per label and sweep (the waiters of one
 * sweep share the error value: building 100,000 errors, stack traces included, would delay the last of them).
 *
 * @internal
 */
export const make = <A, E>(
  timeout: Duration.Duration,
  onTimeout: (label: string | undefined) => E
): Effect.Effect<ReadyWaiters<A, E>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const now = monotonicMillis(yield* Clock.Clock)
    const timeoutMillis = Duration.toMillis(timeout)
    // Arrival order; `head` is the oldest waiter not yet passed by the timer.
    let queue: Array<Waiter<A, E>> = []
    let head = 0
    // Open while there are waiters: the timer fiber parks on it otherwise.
    const pending = Latch.makeUnsafe(false)

    const takeAll = (): Array<Waiter<A, E>> => {
      const all = head === 0 ? queue : queue.slice(head)
      queue = []
      head = 0
      return all
    }

    const settleAll = (effect: Effect.Effect<A, E>) => {
      for (const waiter of takeAll()) {
        const resume = waiter.resume
        waiter.resume = undefined
        resume?.(effect)
      }
    }

    const expire = () => {
      const time = now()
      const errors = new Map<string | undefined, Effect.Effect<never, E>>()
      const expired: Array<Waiter<A, E>> = []
      while (head < queue.length && (queue[head]!.resume === undefined || queue[head]!.at <= time)) {
        const waiter = queue[head++]!
        if (waiter.resume !== undefined) expired.push(waiter)
      }
      if (head === queue.length) {
        queue = []
        head = 0
      } else if (head > 1024 && head * 2 > queue.length) {
        queue = queue.slice(head)
        head = 0
      }
      // Resumed only once the queue is consistent: a resumed fiber may wait again from inside this loop.
      for (const waiter of expired) {
        const resume = waiter.resume
        waiter.resume = undefined
        let error = errors.get(waiter.label)
        if (error === undefined) {
          error = Effect.fail(onTimeout(waiter.label))
          errors.set(waiter.label, error)
        }
        resume?.(error)
      }
    }

    const timer = Effect.gen(function*() {
      while (true) {
        yield* pending.await
        // Skip waiters already settled (interrupted callers) so as not to sleep for them.
        while (head < queue.length && queue[head]!.resume === undefined) head++
        if (head >= queue.length) {
          queue = []
          head = 0
          pending.closeUnsafe()
          continue
        }
        const delay = queue[head]!.at - now()
        if (delay > 0) yield* Effect.sleep(Duration.millis(delay))
        expire()
      }
    })
    yield* Effect.forkScoped(timer)

    return {
      wait: (label) =>
        Effect.callback<A, E>((resume) => {
          const waiter: Waiter<A, E> = { at: now() + timeoutMillis, label, resume }
          queue.push(waiter)
          pending.openUnsafe()
          return Effect.sync(() => {
            waiter.resume = undefined
          })
        }),
      succeed: (value) => settleAll(Effect.succeed(value)),
      fail: (error) => settleAll(Effect.fail(error))
    }
  })
