/**
 * Redis Streams with consumer groups, at-least-once through resets, restarts, failovers and dead consumers: `consume`
 * runs a consumer that acknowledges an entry only once its handler succeeded, re-reads its own pending entries after
 * every failure, claims the entries of consumers that stopped, and dead-letters what cannot be processed. `entries` is
 * the same consumer as an Effect `Stream` of entries that each carry their `ack`. `add` appends a typed entry.
 *
 * **Gotchas**
 *
 * - At-least-once means duplicates: an entry whose handler succeeded but whose XACK was lost is processed again, and
 *   so is one claimed from a consumer that was merely slow (its handler took longer than `claimAfter`). Make handlers
 *   idempotent (e.g. `RedisService.run(command, { idempotencyKey: entry.id })`).
 * - Entries are stored as one field, `value`: the JSON of the Schema's encoded value. `consume` reads the same.
 *
 * **Example**
 *
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { RedisStream } from "effect-redis-resilience"
 *
 * const Order = Schema.Struct({ id: Schema.String, total: Schema.Number })
 *
 * const producer = RedisStream.add("orders", Order, { id: "o-1", total: 42 })
 * const worker = RedisStream.consume(
 *   { stream: "orders", group: "billing", consumer: "worker-1", schema: Order, claimAfter: "30 seconds" },
 *   (entry) => Effect.log(`order ${entry.value.id}, delivery ${entry.deliveries}`)
 * )
 * ```
 *
 * @since 0.2.0
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { type Argument, make as makeCommand, string } from "./internal/command.ts"
import * as Consumer from "./internal/streamConsumer.ts"
import { RedisBlocking } from "./RedisBlocking.ts"
import { valueCodec } from "./RedisCache.ts"
import { EncodeError, InvalidArgument, type RedisError } from "./RedisError.ts"
import { RedisService } from "./RedisService.ts"

/**
 * Options of `consume`.
 *
 * @since 0.2.0
 * @category models
 */
export interface ConsumeOptions<A, I> {
  readonly stream: string
  readonly group: string
  /** This consumer's name in the group; keep it stable across restarts, so that its pending entries are re-read. */
  readonly consumer: string
  readonly schema: Schema.Codec<A, I>
  /**
   * Entries pending longer than this in any consumer (one that died, say) are claimed (XAUTOCLAIM, every half of it).
   * Longer than the slowest handler, or a slow consumer's entries are processed twice. Default 30 seconds.
   */
  readonly claimAfter?: Duration.Input | undefined
  /** An entry delivered more often than this is dead-lettered instead of handled. Default 10. */
  readonly maxDeliveries?: number | undefined
  /** The stream dead letters go to. Default `${stream}:dead`. */
  readonly deadLetter?: string | undefined
  /** Entries read per round trip. Default 10. */
  readonly batch?: number | undefined
  /** How long one read waits for new entries (XREADGROUP BLOCK) before the loop looks at claims. Default 2 seconds. */
  readonly block?: Duration.Input | undefined
  /**
   * Where a group created by `consume` starts. Default `"0"`: entries added before the group existed are processed
   * too; `"$"` for new entries only.
   */
  readonly startId?: string | undefined
  /** How long a failed entry waits before it is read again. Default 1 second. */
  readonly retryDelay?: Duration.Input | undefined
}

/**
 * An entry given to the handler: its id, its decoded value and how many times it was delivered (1 the first time).
 *
 * @since 0.2.0
 * @category models
 */
export interface Entry<A> {
  readonly id: string
  readonly value: A
  readonly deliveries: number
}

/**
 * An entry of `entries`: an `Entry` with the effect that acknowledges it (XACK on the shared connection, retried once
 * after a lost connection). Acknowledging twice is harmless.
 *
 * @since 0.2.0
 * @category models
 */
export interface AckableEntry<A> extends Entry<A> {
  readonly ack: Effect.Effect<void, RedisError>
}

/**
 * Options of `add`.
 *
 * @since 0.2.0
 * @category models
 */
export interface AddOptions {
  /** Trim the stream to about (`approximate`, the default) or exactly this many entries (MAXLEN). */
  readonly maxLen?: number | undefined
  /** Trim the entries with a lower id (MINID). */
  readonly minId?: string | undefined
  /** Default true: `~` trimming, which Redis does in whole nodes (much cheaper). */
  readonly approximate?: boolean | undefined
  /** Append at most once per key, even across a lost connection (see `RedisService.run`). */
  readonly idempotencyKey?: string | undefined
}

/**
 * Appends `value` (encoded with `schema`, as JSON in the field `value`) to `stream` and returns its id. Not resent
 * after a lost connection (it fails with `sent: true`) unless `idempotencyKey` is given.
 *
 * @since 0.2.0
 * @category constructors
 */
export const add = <A, I>(
  stream: string,
  schema: Schema.Codec<A, I>,
  value: A,
  options?: AddOptions
): Effect.Effect<string, RedisError, RedisService> =>
  Effect.gen(function*() {
    const redis = yield* RedisService
    const encoded = valueCodec(schema).encode(value)
    if (Exit.isFailure(encoded)) {
      return yield* Effect.fail(
        new EncodeError({
          message: `Cannot encode the entry: ${Consumer.schemaMessage(encoded.cause)}`,
          key: stream
        })
      )
    }
    const trim = options?.approximate === false ? "=" : "~"
    const maxLen = options?.maxLen
    if (maxLen !== undefined && !(Number.isSafeInteger(maxLen) && maxLen >= 0)) {
      return yield* Effect.fail(
        new InvalidArgument({
          message: "XADD: maxLen must be an integer of 0 or more",
          command: "XADD",
          argument: "maxLen"
        })
      )
    }
    const args: Array<Argument> = [stream]
    if (maxLen !== undefined) args.push("MAXLEN", trim, maxLen)
    if (options?.minId !== undefined) args.push("MINID", trim, options.minId)
    args.push("*", "value", encoded.value)
    const command = makeCommand({ name: "XADD", args, keys: [0], decode: string("XADD") })
    return yield* options?.idempotencyKey === undefined
      ? redis.run(command)
      : redis.run(command, { idempotencyKey: options.idempotencyKey })
  })

/**
 * Runs a consumer of `group` until interrupted.
 *
 * **Details**
 *
 * - The group is created when missing (XGROUP CREATE ... MKSTREAM, at `startId`), and again if it disappears (a
 *   server restarted without persistence).
 * - New entries are read with XREADGROUP BLOCK on a dedicated connection (`RedisBlocking`); everything else runs on
 *   the shared connection.
 * - At the start and after every failure (a reset, a timeout, a lost reply), the consumer first re-reads its own
 *   pending entries (ID 0): an entry delivered but not acknowledged is never forgotten.
 * - An entry is acknowledged (XACK) only when its handler succeeded. A handler failure leaves it pending: it is read
 *   again after `retryDelay`.
 * - An entry delivered more than `maxDeliveries` times, or whose value does not decode, goes to `deadLetter` with
 *   the reason, its id, its delivery count and its original fields (as JSON), then is acknowledged.
 * - Transient Redis failures are retried with the layer's reconnect backoff (after `retryAfter` for
 *   `CircuitOpen`); the effect fails only on what retrying cannot fix (a WRONGTYPE stream key, a reply it cannot
 *   read).
 *
 * @since 0.2.0
 * @category constructors
 */
export const consume = <A, I, E, R>(
  options: ConsumeOptions<A, I>,
  handler: (entry: Entry<A>) => Effect.Effect<unknown, E, R>
): Effect.Effect<never, RedisError, RedisService | RedisBlocking | R> =>
  Effect.gen(function*() {
    const redis = yield* RedisService
    const blocking = yield* RedisBlocking
    return yield* Consumer.run(redis, blocking, options, handler)
  })

/**
 * The consumer of `consume` as a `Stream`: each entry comes with its `ack`, and stays pending in the group until it is
 * acknowledged. The group is created when missing, the consumer's own pending entries are re-read after every failure,
 * entries idle longer than `claimAfter` are claimed, and entries over `maxDeliveries` or that do not decode are
 * dead-lettered, as with `consume`. The stream fails only on what retrying cannot fix (see `consume`).
 *
 * **Details**
 *
 * - An entry not acknowledged (dropped, or its processing failed) is delivered again, with a higher `deliveries`,
 *   once it has been out for `claimAfter` (by the next claim, within `claimAfter` and a half), or when the stream is
 *   run again with the same `consumer`. `retryDelay` is not used.
 * - Until then this stream does not hand it over again, not even from the re-read after a reconnect (that would only
 *   make a duplicate). Redis still counts such a re-read as a delivery: `deliveries` can grow by one per reconnect
 *   while an entry is out.
 * - At most `batch` entries wait in the stream's buffer; the consumer reads no further until they are taken. Entries
 *   read but not yet taken when the stream ends stay pending and come back in the same way.
 *
 * **Example**
 *
 * ```ts
 * import { Effect, Schema, Stream } from "effect"
 * import { RedisStream } from "effect-redis-resilience"
 *
 * const Order = Schema.Struct({ id: Schema.String, total: Schema.Number })
 * const bill = (order: { readonly id: string; readonly total: number }) => Effect.log(`billing ${order.id}`)
 *
 * // Four orders billed at a time; an order is acknowledged only once billed.
 * const worker = RedisStream.entries({
 *   stream: "orders",
 *   group: "billing",
 *   consumer: "worker-1",
 *   schema: Order,
 *   claimAfter: "1 minute"
 * }).pipe(
 *   Stream.mapEffect((entry) => Effect.andThen(bill(entry.value), entry.ack), { concurrency: 4 }),
 *   Stream.runDrain
 * )
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const entries = <A, I>(
  options: ConsumeOptions<A, I>
): Stream.Stream<AckableEntry<A>, RedisError, RedisService | RedisBlocking> =>
  Stream.callback<AckableEntry<A>, RedisError, RedisService | RedisBlocking>((queue) =>
    Effect.gen(function*() {
      const redis = yield* RedisService
      const blocking = yield* RedisBlocking
      return yield* Consumer.offerTo(redis, blocking, options, queue)
    }), { bufferSize: bufferOf(options.batch), strategy: "suspend" })

// An invalid batch is refused by the consumer (InvalidArgument): the buffer only has to be valid until then.
const bufferOf = (batch: number | undefined) =>
  batch === undefined ? 10 : Number.isSafeInteger(batch) && batch > 0 ? batch : 1
