/**
 * How `RedisStream`'s loop hands over an entry that is due for processing: to a handler, acknowledged once it
 * succeeded (`consume`), or to a queue with its `ack`, in flight until acknowledged or `claimAfter` passed (`entries`).
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Queue from "effect/Queue"
import type { RedisError } from "../RedisError.ts"
import type { RedisServiceShape } from "../RedisService.ts"
import type { AckableEntry, Entry } from "../RedisStream.ts"
import { integer, make as makeCommand } from "./command.ts"

/**
 * Where the loop hands an entry that is due for processing (decoded, not over `maxDeliveries`), and what became of it:
 * `"ack"` (processed: acknowledge it now), `"retry"` (failed: read it again after `retryDelay`) or `"leave"` (someone
 * else acknowledges it). `inFlight`: handed over, not acknowledged yet, so a re-read or a claim must not hand it over
 * again.
 */
export interface Delivery<A, R> {
  readonly deliver: (entry: Entry<A>) => Effect.Effect<"ack" | "retry" | "leave", never, R>
  readonly inFlight: (id: string, now: number) => boolean
}

/** The consumer's resolved options. */
export interface Settings {
  readonly stream: string
  readonly group: string
  readonly consumer: string
  readonly claimAfter: Duration.Duration
  readonly maxDeliveries: number
  readonly deadLetter: string
  readonly batch: number
  readonly block: Duration.Duration
  readonly startId: string
  readonly retryDelay: Duration.Duration
}

/** What acknowledging needs. */
export interface Parts {
  readonly redis: RedisServiceShape
  readonly settings: Settings
}

/** XACK of one entry of the consumer's group (idempotent: retried once after a lost connection). */
export const ack = ({ redis, settings }: Parts, id: string) =>
  redis.run(makeCommand({
    name: "XACK",
    args: [settings.stream, settings.group, id],
    keys: [0],
    idempotent: true,
    decode: integer("XACK")
  }))

/** `consume`: the handler processes the entry; it is acknowledged when the handler succeeded. */
export const toHandler = <A, E, R>(handler: (entry: Entry<A>) => Effect.Effect<unknown, E, R>): Delivery<A, R> => ({
  deliver: (entry) =>
    Effect.flatMap(Effect.exit(handler(entry)), (exit) => {
      if (Exit.isSuccess(exit)) return Effect.succeed("ack" as const)
      if (Cause.hasInterruptsOnly(exit.cause)) return Effect.interrupt
      return Effect.as(
        Effect.logWarning("RedisStream: the handler failed; the entry stays pending and is retried", exit.cause).pipe(
          Effect.annotateLogs({ id: entry.id })
        ),
        "retry" as const
      )
    }),
  inFlight: () => false
})

// `entries`: each entry goes to the queue with its `ack` and is in flight from then until acknowledged, or until
// `claimAfter` has passed (its reader dropped it, or is slower than claimAfter): then a claim hands it over again.
export const toQueue = <A>(
  parts: Parts,
  queue: Queue.Queue<AckableEntry<A>, RedisError | Cause.Done>
): Delivery<A, never> => {
  const handedOver = new Map<string, number>()
  const claimAfter = Duration.toMillis(parts.settings.claimAfter)
  let sweepAt = 1_000
  const inFlight = (id: string, now: number) => {
    const at = handedOver.get(id)
    if (at === undefined) return false
    if (now - at < claimAfter) return true
    handedOver.delete(id)
    return false
  }
  // Entries dropped unacknowledged and then processed elsewhere are never asked about again: forget them in sweeps.
  const sweep = (now: number) => {
    if (handedOver.size < sweepAt) return
    for (const id of handedOver.keys()) inFlight(id, now)
    sweepAt = Math.max(1_000, handedOver.size * 2)
  }
  return {
    deliver: (entry) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        sweep(now)
        handedOver.set(entry.id, now)
        const acknowledge = Effect.asVoid(ack(parts, entry.id)).pipe(
          // Done or failed: a failed XACK leaves it pending, to come back with the next re-read or claim.
          Effect.ensuring(Effect.sync(() => handedOver.delete(entry.id)))
        )
        return Effect.as(Queue.offer(queue, { ...entry, ack: acknowledge }), "leave" as const)
      }),
    inFlight
  }
}

