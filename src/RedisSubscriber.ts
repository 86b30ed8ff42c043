/**
 * Pub/sub over one shared subscriber connection, with the same reconnect schedule, debounce and heartbeat as the
 * command connection, feeding the same circuit breaker, and honest about what it cannot deliver.
 *
 * The connection is opened on the first subscription and shared by all: 50 local streams on one channel make one
 * SUBSCRIBE, the last one gone sends UNSUBSCRIBE. After every reconnect everything is subscribed again, and each
 * local stream that was subscribed when the connection was lost gets `Gap { channel, from, to }` (Redis pub/sub
 * does not keep what was published meanwhile) and then `Resubscribed`. Each local stream has a bounded buffer: when a
 * consumer falls behind, new messages are dropped and a `Gap` with `reason: "overflow"` tells it so.
 *
 * `subscribeWithFallback` keeps a stream going while pub/sub cannot: it polls a user-given effect while the
 * subscriber is down or the circuit breaker is open, and returns to live messages when healthy.
 *
 * With `sharded: true` (Redis >= 7), channel subscriptions use sharded pub/sub (`SSUBSCRIBE`, messages published with
 * `SPUBLISH`) with the same guarantees; on a Cluster each channel is subscribed on the master owning its slot, over
 * that node's connection of the subscriber's own cluster client. Patterns stay classic (Redis has no sharded patterns).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as DateTime from "effect/DateTime"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Result from "effect/Result"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import type * as Health from "./Health.ts"
import * as Core from "./internal/core.ts"
import * as Session from "./internal/subscriber/connection.ts"
import * as Fallback from "./internal/subscriber/fallback.ts"
import * as Registry from "./internal/subscriber/registry.ts"
import * as Channels from "./RedisChannel.ts"
import type { DecodeError, RedisError } from "./RedisError.ts"
import { RedisService } from "./RedisService.ts"

/**
 * What a subscription sees.
 *
 * - `Message`: a message (`pattern` is set for pattern subscriptions).
 * - `Gap`: messages may have been lost between `from` and `to`: the connection was down (`reason: "disconnected"`)
 *   or the consumer fell behind and its buffer was full (`reason: "overflow"`, `dropped` messages).
 * - `Resubscribed`: the subscription is live again after a reconnect.
 * - `Invalid`: a message on a typed channel that does not match its Schema (the stream goes on).
 *
 * @since 0.1.0
 * @category models
 */
export type SubscriptionEvent<A = string> =
  | { readonly _tag: "Message"; readonly channel: string; readonly message: A; readonly pattern?: string | undefined }
  | {
    readonly _tag: "Gap"
    readonly channel: string
    readonly from: DateTime.Utc
    readonly to: DateTime.Utc
    readonly reason: "disconnected" | "overflow"
    readonly dropped?: number | undefined
  }
  | { readonly _tag: "Resubscribed"; readonly channel: string }
  | { readonly _tag: "Invalid"; readonly channel: string; readonly message: string; readonly error: DecodeError }

/**
 * Options of the subscriber.
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisSubscriberOptions {
  /** Messages buffered per local stream before new ones are dropped (with an overflow `Gap`). Default 1024. */
  readonly bufferSize?: number | undefined
  /**
   * Sharded pub/sub (Redis >= 7): `subscribe`, `events` and `subscribeWithFallback` use `SSUBSCRIBE` /
   * `SUNSUBSCRIBE` and receive what is published with `SPUBLISH`
   * (`RedisChannel.publish(channel, value, { sharded: true })`),
   * and nothing published with `PUBLISH`. `psubscribe` stays classic: Redis has no sharded patterns. The layer's
   * `keyPrefix` is put in front of sharded channel names, as ioredis does for `SPUBLISH`. Default false.
   */
  readonly sharded?: boolean | undefined
}

/**
 * Options of `subscribeWithFallback`.
 *
 * @since 0.1.0
 * @category models
 */
export interface FallbackOptions<A, E, R> {
  /** What to emit while pub/sub is unavailable; called every `interval`. */
  readonly poll: Effect.Effect<ReadonlyArray<A>, E, R>
  readonly interval: Duration.Input
}

/**
 * Whether live messages can be trusted right now: `live` (subscribed, circuit closed) or `polling`.
 *
 * @since 0.1.0
 * @category models
 */
export type DeliveryMode = "live" | "polling"

/**
 * The service shape.
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisSubscriberShape {
  /** Live messages of a channel. Typed channels decode; messages that do not decode are skipped (see `events`). */
  readonly subscribe: {
    <A, I>(channel: Channels.RedisChannel<A, I>): Stream.Stream<A, RedisError | Channels.InvalidChannelName>
    (channel: string): Stream.Stream<string, RedisError | Channels.InvalidChannelName>
  }
  /** Everything a subscription sees: messages, gaps, resubscriptions, invalid messages. */
  readonly events: {
    <A, I>(
      channel: Channels.RedisChannel<A, I>
    ): Stream.Stream<SubscriptionEvent<A>, RedisError | Channels.InvalidChannelName>
    (channel: string): Stream.Stream<SubscriptionEvent<string>, RedisError | Channels.InvalidChannelName>
  }
  /** A pattern subscription (PSUBSCRIBE): `Message` events carry the channel and the pattern. */
  readonly psubscribe: (pattern: string) => Stream.Stream<SubscriptionEvent<string>, RedisError>
  /** Live messages while healthy, polled values while the subscriber is down or the circuit is open. */
  readonly subscribeWithFallback: {
    <A, I, E, R>(
      channel: Channels.RedisChannel<A, I>,
      options: FallbackOptions<A, E, R>
    ): Stream.Stream<A, E | RedisError | Channels.InvalidChannelName, R>
    <E, R>(
      channel: string,
      options: FallbackOptions<string, E, R>
    ): Stream.Stream<string, E | RedisError | Channels.InvalidChannelName, R>
  }
  /** `live` while the subscriber connection is ready and the circuit is closed, else `polling`; then every change. */
  readonly mode: Stream.Stream<DeliveryMode>
  /** The subscriber connection's state, then every change. */
  readonly states: Stream.Stream<Health.ConnectionState>
  /** Channels and patterns with at least one local stream. */
  readonly subscriptions: Effect.Effect<{
    readonly channels: ReadonlyArray<string>
    readonly patterns: ReadonlyArray<string>
  }>
  /**
   * Waits until `channel` has a local stream and Redis has acknowledged its SUBSCRIBE on a ready connection: from
   * then on, a message published to it is delivered (unless the connection is lost, which a `Gap` reports). Also
   * returns when the subscriber is closed. Otherwise it waits as long as that takes (through reconnects, or forever
   * for a channel nobody subscribes to or that Redis refused): bound it with a timeout. Useful before publishing
   * right after subscribing (tests, request/reply).
   */
  readonly awaitSubscribed: (channel: string) => Effect.Effect<void>
}

/**
 * The pub/sub service. `RedisSubscriber.layer` needs `RedisService` and opens its own connection with the same options.
 *
 * @since 0.1.0
 * @category services
 */
export class RedisSubscriber extends Context.Service<RedisSubscriber, RedisSubscriberShape>()(
  "effect-redis-resilience/RedisSubscriber"
) {
  static readonly layer: Layer.Layer<RedisSubscriber, never, RedisService> = Layer.effect(
    RedisSubscriber,
    RedisService.use((redis) => make(redis))
  )

  /** Like `layer`, with options (buffer size). */
  static readonly layerWith = (options: RedisSubscriberOptions): Layer.Layer<RedisSubscriber, never, RedisService> =>
    Layer.effect(RedisSubscriber, RedisService.use((redis) => make(redis, options)))
}

/**
 * Builds the subscriber in the current scope (its connection opens on the first subscription).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(
  redis: RedisService["Service"],
  options: RedisSubscriberOptions = {}
) {
  const session = yield* Session.make(Core.of(redis), {
    bufferSize: options.bufferSize ?? 1024,
    sharded: options.sharded === true
  })
  const states = SubscriptionRef.changes(session.state)
  const mode = Fallback.deliveryMode(states, redis.circuit)
  const events = (channel: Channels.ChannelLike) => channelEvents(session, channel)
  const subscribe = (channel: Channels.ChannelLike) => messagesOf(events(channel))
  return RedisSubscriber.of({
    subscribe: subscribe as RedisSubscriberShape["subscribe"],
    events: events as RedisSubscriberShape["events"],
    psubscribe: (pattern) => eventsOf(session, "pattern", pattern),
    subscribeWithFallback: (<A, E, R>(channel: Channels.ChannelLike, options: FallbackOptions<A, E, R>) =>
      Fallback.withFallback(subscribe(channel), mode, options)) as RedisSubscriberShape["subscribeWithFallback"],
    mode,
    states,
    subscriptions: Effect.sync(() => ({
      channels: Registry.keys(session.registry, "channel"),
      patterns: Registry.keys(session.registry, "pattern")
    })),
    awaitSubscribed: (channel) => Session.awaitSubscribed(session, channel)
  })
})

// The events of one key, through a local stream registered for as long as the stream runs.
const eventsOf = (
  session: Session.Session,
  kind: Registry.Kind,
  key: string
): Stream.Stream<SubscriptionEvent<string>, RedisError> =>
  Stream.unwrap(Effect.map(Session.register(session, kind, key), (queue) => Stream.fromQueue(queue)))

// A channel's events; a typed channel decodes its messages, and one that does not decode is an `Invalid` event (the
// stream goes on). A bad name fails before anything is registered.
const channelEvents = (
  session: Session.Session,
  channel: Channels.ChannelLike
): Stream.Stream<SubscriptionEvent<any>, RedisError | Channels.InvalidChannelName> => {
  const name = Channels.nameOf(channel)
  const invalid = Channels.validateChannelName(name)
  if (invalid !== undefined) return Stream.fail(invalid)
  const raw = eventsOf(session, "channel", name)
  if (typeof channel === "string") return raw
  return Stream.mapEffect(raw, (event) =>
    event._tag !== "Message" ? Effect.succeed(event) : channel.decode(event.message).pipe(
      Effect.map((message): SubscriptionEvent<any> => ({ ...event, message })),
      Effect.catch((error) =>
        Effect.succeed<SubscriptionEvent<any>>({
          _tag: "Invalid",
          channel: event.channel,
          message: event.message,
          error
        })
      )
    ))
}

// What `subscribe` shows of the events: the messages.
const messagesOf = <E>(events: Stream.Stream<SubscriptionEvent<any>, E>): Stream.Stream<any, E> =>
  Stream.filterMap(events, (event) => event._tag === "Message" ? Result.succeed(event.message) : Result.failVoid)
