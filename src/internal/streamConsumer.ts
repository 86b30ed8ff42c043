/**
 * The loop behind `RedisStream.consume` and `RedisStream.entries`: rounds of (own pending entries when due, claims when
 * due, new entries), each entry handed to a handler (acknowledged once it succeeded) or to a queue (acknowledged by its
 * reader), dead-lettered when it cannot be processed, and recovery from transient failures with the layer's reconnect
 * backoff.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import type { RedisBlockingShape } from "../RedisBlocking.ts"
import { valueCodec, type ValueCodec } from "../RedisCache.ts"
import { InvalidArgument, isTransient, isWrongRole, type RedisError } from "../RedisError.ts"
import { redactValues } from "./errors/scrub.ts"
import type { RedisServiceShape } from "../RedisService.ts"
import type { AckableEntry, ConsumeOptions, Entry } from "../RedisStream.ts"
import { make as makeCommand, string } from "./command.ts"
import { blockTime } from "./dedicated.ts"
import * as Reply from "./streamReply.ts"
import type { StreamEntry } from "./streamReply.ts"
import { ack, type Delivery, type Parts, type Settings, toHandler, toQueue } from "./streamDelivery.ts"

/**
 * Runs a consumer until interrupted (see `RedisStream.consume`).
 *
 * @internal
 */
export const run = <A, I, E, R>(
  redis: RedisServiceShape,
  blocking: RedisBlockingShape,
  options: ConsumeOptions<A, I>,
  handler: (entry: Entry<A>) => Effect.Effect<unknown, E, R>
): Effect.Effect<never, RedisError, R> => loop(redis, blocking, options, () => toHandler(handler))

/**
 * Runs a consumer until interrupted that offers each entry, with its `ack`, to `queue` (see `RedisStream.entries`).
 *
 * @internal
 */
export const offerTo = <A, I>(
  redis: RedisServiceShape,
  blocking: RedisBlockingShape,
  options: ConsumeOptions<A, I>,
  queue: Queue.Queue<AckableEntry<A>, RedisError | Cause.Done>
): Effect.Effect<never, RedisError> => loop(redis, blocking, options, (c) => toQueue(c, queue))

const loop = <A, I, R>(
  redis: RedisServiceShape,
  blocking: RedisBlockingShape,
  options: ConsumeOptions<A, I>,
  delivery: (parts: Parts) => Delivery<A, R>
): Effect.Effect<never, RedisError, R> =>
  Effect.gen(function*() {
    const parts: Parts = { redis, settings: yield* resolve(options) }
    const consumer: Consumer<A, R> = {
      ...parts,
      blocking,
      codec: valueCodec(options.schema),
      delivery: delivery(parts),
      state: { group: false, history: true, retryAt: undefined, nextClaim: 0, failures: 0 }
    }
    return yield* Effect.forever(
      round(consumer).pipe(
        Effect.matchEffect({
          onSuccess: () => Effect.sync(() => (consumer.state.failures = 0)),
          onFailure: (error) => recover(consumer, error)
        })
      )
    )
  })

interface Consumer<A, R> extends Parts {
  readonly blocking: RedisBlockingShape
  readonly codec: ValueCodec<A>
  readonly delivery: Delivery<A, R>
  /**
   * `group`: the group is known to exist; `history`: re-read the own pending entries first; `retryAt`: when failed
   * entries are due again (millis); `failures`: consecutive failed rounds (the backoff).
   */
  readonly state: {
    group: boolean
    history: boolean
    retryAt: number | undefined
    nextClaim: number
    failures: number
  }
}

const positive = (name: string, value: number | undefined, fallback: number) =>
  value === undefined
    ? Effect.succeed(fallback)
    : Number.isSafeInteger(value) && value > 0
    ? Effect.succeed(value)
    : Effect.fail(
      new InvalidArgument({ message: `RedisStream.consume: ${name} must be a positive integer`, argument: name })
    )

const duration = (name: string, value: Duration.Input | undefined, fallback: Duration.Duration) =>
  value === undefined
    ? Effect.succeed(fallback)
    : Effect.flatMap(blockTime("XREADGROUP", value, name), (d) =>
      Duration.isZero(d)
        ? Effect.fail(new InvalidArgument({ message: `RedisStream.consume: ${name} must be positive`, argument: name }))
        : Effect.succeed(d))

const resolve = <A, I>(options: ConsumeOptions<A, I>): Effect.Effect<Settings, InvalidArgument> =>
  Effect.gen(function*() {
    return {
      stream: options.stream,
      group: options.group,
      consumer: options.consumer,
      claimAfter: yield* duration("claimAfter", options.claimAfter, Duration.seconds(30)),
      maxDeliveries: yield* positive("maxDeliveries", options.maxDeliveries, 10),
      deadLetter: options.deadLetter ?? `${options.stream}:dead`,
      batch: yield* positive("batch", options.batch, 10),
      block: yield* duration("block", options.block, Duration.seconds(2)),
      startId: options.startId ?? "0",
      retryDelay: yield* duration("retryDelay", options.retryDelay, Duration.seconds(1))
    }
  })

// BUSYGROUP: it exists already, which is what was asked (and what a retry after a lost reply finds).
const createGroup = ({ redis, settings }: Parts) =>
  redis.run(makeCommand({
    name: "XGROUP",
    args: ["CREATE", settings.stream, settings.group, settings.startId, "MKSTREAM"],
    keys: [1],
    idempotent: true
  })).pipe(Effect.catchIf((error) => error._tag === "ReplyError" && error.code === "BUSYGROUP", () => Effect.void))

// How many times each of these entries (now this consumer's) was delivered: XPENDING over their id range.
const deliveriesOf = ({ redis, settings }: Parts, entries: ReadonlyArray<StreamEntry>) =>
  entries.length === 0 ? Effect.succeed(new Map<string, number>() as ReadonlyMap<string, number>) : redis.run(
    makeCommand({
      name: "XPENDING",
      args: [
        settings.stream,
        settings.group,
        entries[0]!.id,
        entries[entries.length - 1]!.id,
        // Other entries of this consumer may lie in the same id range: ask for enough to see these ones.
        Math.min(10_000, entries.length * 10 + 100),
        settings.consumer
      ],
      keys: [0],
      idempotent: true,
      readOnly: true,
      decode: Reply.pending
    })
  )

// One round: own pending entries when due, claims when due, then new entries (blocking at most until the next due).
const round = <A, R>(c: Consumer<A, R>): Effect.Effect<void, RedisError, R> =>
  Effect.gen(function*() {
    const state = c.state
    // In the round, so that a Redis that is down when the consumer starts is waited for like any other failure.
    if (!state.group) {
      yield* createGroup(c)
      state.group = true
    }
    const now = yield* Clock.currentTimeMillis
    if (state.history || (state.retryAt !== undefined && now >= state.retryAt)) {
      state.retryAt = undefined
      yield* readHistory(c)
      state.history = false
    }
    if (now >= state.nextClaim) {
      yield* claimIdle(c)
      state.nextClaim = now + Math.max(10, Duration.toMillis(c.settings.claimAfter) / 2)
    }
    const after = yield* Clock.currentTimeMillis
    const due = Math.min(state.nextClaim, state.retryAt ?? Infinity) - after
    // At least a millisecond: a block of 0 would wait forever.
    const wait = Math.max(1, Math.min(Duration.toMillis(c.settings.block), due))
    const read = yield* c.blocking.xreadgroup(
      c.settings.group,
      c.settings.consumer,
      [{ stream: c.settings.stream, id: ">" }],
      Duration.millis(wait),
      { count: c.settings.batch }
    )
    // Entries read with ">" were never delivered before.
    const entries = Option.isSome(read) ? (read.value[0]?.entries ?? []) : []
    yield* processAll(c, entries, new Map(entries.map((entry) => [entry.id, 1])))
  })

// The consumer's own pending entries, from the start, a batch at a time (read from the shared connection: no block).
const readHistory = <A, R>(c: Consumer<A, R>): Effect.Effect<void, RedisError, R> =>
  Effect.gen(function*() {
    const { batch, consumer, group, stream } = c.settings
    const decode = Reply.streams("XREADGROUP", c.redis.config.keyPrefix)
    let cursor = "0"
    while (true) {
      const read = yield* c.redis.run(makeCommand({
        name: "XREADGROUP",
        args: ["GROUP", group, consumer, "COUNT", batch, "STREAMS", stream, cursor],
        keys: [6],
        idempotent: true,
        decode
      }))
      const entries = read?.[0]?.entries ?? []
      if (entries.length === 0) return
      yield* processAll(c, entries, yield* deliveriesOf(c, entries))
      cursor = entries[entries.length - 1]!.id
    }
  })

// Entries idle longer than claimAfter in any consumer of the group become this consumer's (XAUTOCLAIM).
const claimIdle = <A, R>(c: Consumer<A, R>): Effect.Effect<void, RedisError, R> =>
  Effect.gen(function*() {
    const { batch, claimAfter, consumer, group, stream } = c.settings
    let cursor = "0-0"
    // Bounded, so that new entries are not kept waiting behind a huge backlog of claims.
    for (let page = 0; page < 10; page++) {
      const claimed = yield* c.redis.run(makeCommand({
        name: "XAUTOCLAIM",
        args: [stream, group, consumer, Math.ceil(Duration.toMillis(claimAfter)), cursor, "COUNT", batch],
        keys: [0],
        // Retried after a lost connection. If the lost reply had claimed entries, the retry finds them no longer idle
        // and returns nothing: they are this consumer's now and come back when they are idle again (claimAfter), or
        // sooner with the next re-read of its own pending entries. Delayed, never lost.
        idempotent: true,
        decode: Reply.autoclaim
      }))
      // A claimed entry was delivered before, to the consumer it was taken from.
      yield* processAll(c, claimed.entries, yield* deliveriesOf(c, claimed.entries), 2)
      cursor = claimed.cursor
      if (cursor === "0-0") return
    }
  })

const processAll = <A, R>(
  c: Consumer<A, R>,
  entries: ReadonlyArray<StreamEntry>,
  deliveries: ReadonlyMap<string, number>,
  atLeast = 1
): Effect.Effect<void, RedisError, R> =>
  Effect.flatMap(Clock.currentTimeMillis, (now) =>
    Effect.forEach(
      // Re-read or claimed while its reader still has it: it is not lost, and handing it over again would only make a
      // duplicate (and count a delivery towards maxDeliveries).
      entries.filter((entry) => !c.delivery.inFlight(entry.id, now)),
      (entry) => processOne(c, entry, Math.max(atLeast, deliveries.get(entry.id) ?? atLeast)),
      { discard: true }
    ))

const processOne = <A, R>(
  c: Consumer<A, R>,
  entry: StreamEntry,
  deliveries: number
): Effect.Effect<void, RedisError, R> => {
  // Deleted while pending (XDEL, trimming): nothing to process.
  if (entry.fields === undefined) return Effect.asVoid(ack(c, entry.id))
  if (deliveries > c.settings.maxDeliveries) {
    return deadLetter(c, entry, deliveries, "max-deliveries", `delivered ${deliveries} times`)
  }
  const raw = entry.fields.value
  const decoded = raw === undefined ? undefined : c.codec.decode(raw)
  if (decoded === undefined || Exit.isFailure(decoded)) {
    const why = decoded === undefined ? "no value field" : schemaMessage(decoded.cause)
    return deadLetter(c, entry, deliveries, "decode", why)
  }
  return Effect.flatMap(c.delivery.deliver({ id: entry.id, value: decoded.value, deliveries }), (outcome) => {
    if (outcome === "ack") return Effect.asVoid(ack(c, entry.id))
    if (outcome === "leave") return Effect.void
    return Effect.map(Clock.currentTimeMillis, (now) => {
      const state = c.state
      state.retryAt = Math.min(state.retryAt ?? Infinity, now + Duration.toMillis(c.settings.retryDelay))
    })
  })
}

// `consume`: the handler's success acknowledges the entry, its failure retries it; nothing is ever in flight.
// At-least-once too: a dead letter written but not acknowledged (a lost reply) is written again on the next delivery.
const deadLetter = <A, R>(
  c: Consumer<A, R>,
  entry: StreamEntry,
  deliveries: number,
  reason: "max-deliveries" | "decode",
  detail: string
) => {
  const { consumer, deadLetter: target, group, stream } = c.settings
  return c.redis.run(makeCommand({
    name: "XADD",
    args: [
      target,
      "*",
      "reason",
      reason,
      "error",
      detail,
      "stream",
      stream,
      "group",
      group,
      "consumer",
      consumer,
      "id",
      entry.id,
      "deliveries",
      deliveries,
      "fields",
      JSON.stringify(entry.fields ?? {})
    ],
    keys: [0],
    decode: string("XADD")
  }), {
    // A round that fails after this XADD (the XACK, say) dead-letters the entry again: once per entry, not per round.
    idempotencyKey: `dead:${group}:${entry.id}`
  }).pipe(
    Effect.andThen(ack(c, entry.id)),
    // No stream or group name in logs: keys may carry ids (see docs/security.md).
    Effect.andThen(Effect.logWarning(`RedisStream: entry dead-lettered (${reason})`)),
    Effect.annotateLogs({ id: entry.id })
  )
}

// What the loop survives: anything transient (after a backoff), the circuit breaker (after retryAfter), a group that
// vanished (re-created), a master that became a replica under it (READONLY, or UNBLOCKED for a blocked read: the
// dedicated connection was dropped and the next one finds the new master). The rest fails `consume`.
const recover = <A, R>(c: Consumer<A, R>, error: RedisError): Effect.Effect<void, RedisError> => {
  const state = c.state
  state.history = true
  const noGroup = error._tag === "ReplyError" && error.code === "NOGROUP"
  if (noGroup) state.group = false
  const demoted = isWrongRole(error) || (error._tag === "ReplyError" && error.code === "UNBLOCKED")
  const survivable = noGroup || demoted || isTransient(error) || error._tag === "CircuitOpen" ||
    error._tag === "ConnectionClosed"
  if (!survivable) {
    return Effect.fail(error)
  }
  state.failures++
  const { base, cap } = c.redis.config.reconnect
  const backoff = Math.min(Duration.toMillis(cap), Duration.toMillis(base) * 2 ** Math.min(state.failures - 1, 20))
  const delay = error._tag === "CircuitOpen" ? Math.max(backoff, Duration.toMillis(error.retryAfter)) : backoff
  return Effect.logWarning(`RedisStream: ${error._tag}; reading again in ${Math.round(delay)} ms`).pipe(
    Effect.andThen(Effect.sleep(Duration.millis(delay)))
  )
}

/** The message of a Schema failure. @internal */
export const schemaMessage = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  // What the Schema expected, never the value it was given.
  return redactValues(error instanceof Error ? error.message : String(error))
}
