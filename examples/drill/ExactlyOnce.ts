/**
 * The exactly-once incrementer: INCRs of its own counter through `RedisService.run` with an idempotency key, the way
 * an app makes a non-idempotent write safe to retry. A call that fails keeps its key and is retried later (as an app
 * would retry a job); at the end every pending key is settled, so the counter must equal the number of keys exactly.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { Command, type RedisError, type RedisServiceShape } from "../../src/index.ts"

/**
 * What the exactly-once incrementers did.
 *
 * @since 0.1.0
 * @category models
 */
export interface ExactlyOnceFigures {
  /** Their counter (without the key prefix). */
  readonly key: string
  /** Idempotency keys used: each is one increment the app wants applied exactly once. */
  keys: number
  /** Keys whose INCR returned a value, on the first call or a later one. */
  settled: number
  /** Keys still failing after the settling retries at the end (the check cannot hold while any is left). */
  pending: number
  calls: number
  /** Calls that failed; each key is retried later with the same key. */
  failed: number
  /** Of those, the calls that failed with `sent: true`: without the key, the app could not tell if they applied. */
  failedSent: number
  /** Calls made at the end to settle the keys still pending. */
  settleCalls: number
  /**
   * Retries answered with the recorded reply (an older counter value): a call that failed had applied the INCR.
   * A lower bound (a replay with no INCR since reads as new).
   */
  replayed: number
  /** Of those, keys whose failed calls all said `sent: false`: told "not sent", the INCR had been applied. */
  replayedUnsent: number
}

/**
 * How a call is made: timed and guarded by the workload, which records it under `operation`.
 *
 * @since 0.1.0
 * @category models
 */
export type Call = <A>(
  operation: "INCR-once",
  effect: Effect.Effect<A, RedisError>
) => Effect.Effect<Exit.Exit<A, RedisError>>

/**
 * A running set of exactly-once incrementers.
 *
 * @since 0.1.0
 * @category models
 */
export interface ExactlyOnce {
  readonly figures: ExactlyOnceFigures
  /** One step of incrementer `worker`: the oldest of its failed keys when it is due, else a new key. */
  readonly step: (worker: number) => (n: number) => Effect.Effect<void>
  /** Retries every pending key until it succeeds (at most `settleMillis` in all). Run once the workload stopped. */
  readonly settle: Effect.Effect<void>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ExactlyOnceOptions {
  readonly redis: RedisServiceShape
  readonly call: Call
  /** How long a recorded reply is kept: longer than any retry of the run. */
  readonly idempotencyTtl: Duration.Input
  /** How long a failed key waits before it is retried. Default 250 ms. */
  readonly retryAfterMillis?: number | undefined
  /** The longest the settling at the end may take. Default 10 s. */
  readonly settleMillis?: number | undefined
}

/**
 * Whether a failed call may have been applied: it failed with `sent: true` (the command reached the wire and no reply
 * came back).
 *
 * @since 0.1.0
 * @category figures
 */
export const mayHaveBeenApplied = (exit: Exit.Exit<unknown, RedisError>): boolean => {
  if (Exit.isSuccess(exit)) return false
  const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
  const error = reason?._tag === "Fail" ? reason.error : undefined
  return error !== undefined && "sent" in error && error.sent === true
}

/**
 * The exactly-once incrementers' state and steps.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: ExactlyOnceOptions): ExactlyOnce => {
  const retryAfter = options.retryAfterMillis ?? 250
  const figures: ExactlyOnceFigures = {
    key: "counter:once",
    keys: 0,
    settled: 0,
    pending: 0,
    calls: 0,
    failed: 0,
    failedSent: 0,
    settleCalls: 0,
    replayed: 0,
    replayedUnsent: 0
  }
  // Failed keys by incrementer, oldest first: each is retried by the incrementer that made it, never concurrently.
  const pending = new Map<number, Array<Pending>>()
  const command = Command.incr(figures.key)
  // Every INCR applied returns a value above all those returned before, give or take the other incrementers' calls in
  // flight (one each); a recorded reply returns an older one.
  let highest = 0

  // Whether the key's INCR is now known to be applied; `entry` keeps what its failures said.
  const attempt = (entry: Pending) =>
    Effect.gen(function*() {
      figures.calls++
      const exit = yield* options.call(
        "INCR-once",
        options.redis.run(command, { idempotencyKey: entry.key, idempotencyTtl: options.idempotencyTtl })
      )
      if (Exit.isSuccess(exit)) {
        figures.settled++
        if (exit.value < highest - pending.size) {
          figures.replayed++
          if (!entry.sent) figures.replayedUnsent++
        }
        highest = Math.max(highest, exit.value)
        return true
      }
      figures.failed++
      if (mayHaveBeenApplied(exit)) {
        figures.failedSent++
        entry.sent = true
      }
      entry.failedAt = performance.now()
      return false
    })

  const step = (worker: number) => {
    const failed: Array<Pending> = []
    pending.set(worker, failed)
    return (n: number) =>
      Effect.gen(function*() {
        const due = failed[0] !== undefined && performance.now() - failed[0].failedAt >= retryAfter
        const entry = due ? failed.shift()! : { key: `once:${worker}:${n}`, failedAt: 0, sent: false }
        if (!due) figures.keys++
        if (!(yield* attempt(entry))) failed.push(entry)
      })
  }

  const settle = Effect.gen(function*() {
    const deadline = performance.now() + (options.settleMillis ?? 10_000)
    for (const entry of [...pending.values()].flat()) {
      while (true) {
        figures.settleCalls++
        if (yield* attempt(entry)) break
        if (performance.now() >= deadline) {
          figures.pending++
          break
        }
        yield* Effect.sleep(100)
      }
    }
    pending.clear()
  })

  return { figures, step, settle }
}

interface Pending {
  readonly key: string
  failedAt: number
  /** One of its failed calls said `sent: true`. */
  sent: boolean
}
