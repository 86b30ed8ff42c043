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
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import { sendBounded } from "./internal/wire.ts"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Result from "effect/Result"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import type { Redis as IORedis } from "ioredis"
import * as Channels from "./RedisChannel.ts"
import { connectorFor, type ShardRoute } from "./internal/topology/connector.ts"
import type * as Health from "./Health.ts"
import * as Connection from "./internal/connection.ts"
import * as Core from "./internal/core.ts"
import * as Heartbeat from "./internal/heartbeat.ts"
import {
  classify,
  ConnectionClosed,
  type DecodeError,
  isTransient,
  type RedisError
} from "./RedisError.ts"
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
   * `SUNSUBSCRIBE` and receive what is published with `SPUBLISH` (`RedisChannel.publish(channel, value, { sharded: true })`),
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

interface Local {
  readonly queue: Queue.Queue<SubscriptionEvent<string>, RedisError>
  readonly since: number
  overflowFrom: number | undefined
  dropped: number
}

type Kind = "channel" | "pattern"

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
  const core = Core.of(redis)
  const config = core.config
  const bufferSize = options.bufferSize ?? 1024
  const sharded = options.sharded === true
  // Pure answers of the topology (where sharded channels go, where their messages arrive).
  const topology = connectorFor(config)
  const shardsOnClient = topology.shardsOnClient
  // Sharded channels carry the key prefix on the wire (ioredis prefixes SPUBLISH's channel, as a key); the subscriber
  // adds it itself, on a client without a prefix, so that routing and delivery see the real name on every topology.
  const prefix = config.keyPrefix
  const scope = yield* Effect.scope
  const clock = yield* Clock.Clock
  const now = () => clock.currentTimeMillisUnsafe()
  const registry: Record<Kind, Map<string, Set<Local>>> = { channel: new Map(), pattern: new Map() }
  // Keys whose first SUBSCRIBE is on its way on the current connection (not yet acknowledged).
  const inFlight: Record<Kind, Set<string>> = { channel: new Set(), pattern: new Set() }
  // `awaitSubscribed` callers, woken whenever what they wait for may have changed (an acknowledgement, the state).
  const waiters = new Set<() => void>()
  const wake = () => {
    // Taken out first: a waiter that is not satisfied yet adds itself back.
    const woken = [...waiters]
    waiters.clear()
    for (const waiter of woken) waiter()
  }
  const setState = (state: Health.ConnectionState) =>
    Effect.andThen(SubscriptionRef.set(stateRef, state), Effect.sync(wake))
  const stateRef = yield* SubscriptionRef.make<Health.ConnectionState>({ _tag: "Connecting", attempt: 0 })
  let lostAt: number | undefined
  let connection: Connection.Connection | undefined
  const startLock = Semaphore.makeUnsafe(1)

  const offer = (local: Local, channel: string, event: SubscriptionEvent<string>): void => {
    if (local.overflowFrom !== undefined) {
      if (Queue.isFullUnsafe(local.queue)) {
        local.dropped++
        return
      }
      Queue.offerUnsafe(local.queue, {
        _tag: "Gap",
        channel,
        from: DateTime.makeUnsafe(local.overflowFrom),
        to: DateTime.makeUnsafe(now()),
        reason: "overflow",
        dropped: local.dropped
      })
      local.overflowFrom = undefined
      local.dropped = 0
    }
    if (!Queue.offerUnsafe(local.queue, event)) {
      local.overflowFrom = now()
      local.dropped = 1
    }
  }

  const deliver = (kind: Kind, key: string, event: SubscriptionEvent<string> & { readonly channel: string }) => {
    const locals = registry[kind].get(key)
    if (locals === undefined) return
    for (const local of locals) offer(local, event.channel, event)
  }

  const onShardMessage = (wire: string, message: string) => {
    const channel = wire.startsWith(prefix) ? wire.slice(prefix.length) : wire
    deliver("channel", channel, { _tag: "Message", channel, message })
  }

  const listen = (client: Connection.Client) => {
    if (!sharded) {
      client.on("message", (channel: string, message: string) => {
        deliver("channel", channel, { _tag: "Message", channel, message })
      })
    } else if (shardsOnClient) {
      client.on("smessage", onShardMessage)
    }
    client.on("pmessage", (pattern: string, channel: string, message: string) => {
      deliver("pattern", pattern, { _tag: "Message", channel, message, pattern })
    })
  }

  // Cluster nodes whose connection carries sharded subscriptions of the current cluster client. ioredis never
  // reconnects a node connection (nor resubscribes it): losing one replaces the whole client, which reads a fresh slot
  // map, and every channel is subscribed again on its owner with Gap/Resubscribed.
  const shardNodes = new WeakSet<IORedis>()
  const watchShardNode = (live: Connection.Live, node: IORedis) => {
    if (shardNodes.has(node)) return
    shardNodes.add(node)
    let socketError: unknown
    node.on("smessage", onShardMessage)
    node.on("error", (error: unknown) => {
      socketError = error
    })
    node.on("close", () => {
      Effect.runSync(connection!.invalidate(
        live,
        classify(socketError ?? new Error("Connection is closed."), { sent: false, established: true })
      ))
    })
    // A MOVED reply to SSUBSCRIBE, or the server dropping a slot's channels (SUNSUBSCRIBE push: slot migrated, master
    // demoted): the slot map is stale.
    node.on("moved", () => {
      Effect.runSync(connection!.invalidate(
        live,
        new ConnectionClosed({ message: "A sharded channel's slot moved to another node", sent: false })
      ))
    })
  }

  // Subscriber commands are bounded like every other command: a silent socket must not wedge a resubscription or a
  // stream's teardown.
  const command = (
    live: Connection.Live,
    name: string,
    keys: ReadonlyArray<string>,
    target: Connection.Client = live.client
  ) =>
    sendBounded(live, name, () => target.call(name, [...keys]), config.commandTimeout)

  const verb = (kind: Kind, subscribe: boolean) =>
    kind === "pattern"
      ? subscribe ? "PSUBSCRIBE" : "PUNSUBSCRIBE"
      : sharded
      ? subscribe ? "SSUBSCRIBE" : "SUNSUBSCRIBE"
      : subscribe
      ? "SUBSCRIBE"
      : "UNSUBSCRIBE"

  // Where sharded channels go (see the topology's `shardRoutes`); on a Cluster each owner's connection is watched.
  const routes = (live: Connection.Live, wire: ReadonlyArray<string>) =>
    Effect.suspend(() => {
      const routed = topology.shardRoutes(live.client, wire)
      if (!Array.isArray(routed)) return Effect.fail(routed as RedisError)
      if (!shardsOnClient) {
        for (const route of routed) watchShardNode(live, route.target as IORedis)
      }
      return Effect.succeed(routed as ReadonlyArray<ShardRoute>)
    })

  // One (P|S)(UN)SUBSCRIBE for `keys`: sharded channels are prefixed and routed to their owners.
  const send = (
    live: Connection.Live,
    kind: Kind,
    subscribe: boolean,
    keys: ReadonlyArray<string>
  ): Effect.Effect<void, RedisError> => {
    const name = verb(kind, subscribe)
    if (kind === "pattern" || !sharded) return Effect.asVoid(command(live, name, keys))
    return Effect.flatMap(
      routes(live, keys.map((key) => prefix + key)),
      (groups) =>
        Effect.forEach(groups, (group) => command(live, name, group.keys, group.target), {
          concurrency: "unbounded",
          discard: true
        })
    )
  }

  // A reply that refuses a channel for good (e.g. NOPERM), as opposed to one that says "not now" or "wrong node".
  const isRefusal = (error: RedisError) =>
    error._tag === "ReplyError" && !isTransient(error) && error.code !== "MOVED" && error.code !== "ASK"

  // A channel Redis refuses (e.g. NOPERM under an ACL) ends its local streams with the error; it is not retried.
  const refuse = (kind: Kind, key: string, error: RedisError) =>
    Effect.sync(() => {
      const locals = registry[kind].get(key)
      registry[kind].delete(key)
      for (const local of locals ?? []) Queue.failCauseUnsafe(local.queue, Cause.fail(error))
    })

  // SUBSCRIBE everything of one kind in one command; if Redis refuses it, find out channel by channel which ones.
  const subscribeAll = (live: Connection.Live, kind: Kind, keys: ReadonlyArray<string>) =>
    keys.length === 0 ? Effect.void : send(live, kind, true, keys).pipe(
      Effect.catchIf(isRefusal, () =>
        Effect.forEach(keys, (key) =>
          send(live, kind, true, [key]).pipe(
            Effect.catchIf(isRefusal, (error) => refuse(kind, key, error))
          ), { discard: true }))
    )

  // After a (re)connect: subscribe everything, then tell each local stream what it may have missed.
  const resubscribe = (live: Connection.Live) =>
    Effect.gen(function*() {
      const channels = [...registry.channel.keys()]
      const patterns = [...registry.pattern.keys()]
      const result = yield* Effect.result(
        Effect.andThen(subscribeAll(live, "channel", channels), subscribeAll(live, "pattern", patterns))
      )
      // A broken connection is replaced (reply errors were handled channel by channel above).
      if (result._tag === "Failure") return yield* connection!.invalidate(live, result.failure)
      const to = now()
      const lost = lostAt
      lostAt = undefined
      for (const kind of ["channel", "pattern"] as const) {
        for (const [key, locals] of registry[kind]) {
          for (const local of locals) {
            if (lost !== undefined && local.since <= lost) {
              offer(local, key, {
                _tag: "Gap",
                channel: key,
                from: DateTime.makeUnsafe(lost),
                to: DateTime.makeUnsafe(to),
                reason: "disconnected"
              })
            }
            if (lost !== undefined) offer(local, key, { _tag: "Resubscribed", channel: key })
          }
        }
      }
      // Only now, with every channel subscribed again, is the subscriber ready (and `mode` live).
      yield* setState({ _tag: "Ready", generation: live.generation })
    })

  const start = startLock.withPermits(1)(Effect.suspend(() => {
    if (connection !== undefined) return Effect.succeed(connection)
    return Effect.gen(function*() {
      // The subscriber's connection feeds the same circuit breaker as the command connection.
      const signals = core.signals
      const opened = yield* core.open("subscriber", {
        onClient: listen,
        onReady: (live) => Effect.andThen(signals.success, resubscribe(live)),
        onLost: () =>
          Effect.andThen(
            signals.failure,
            Effect.sync(() => {
              // A connection lost before its resubscription was answered extends the same gap.
              if (lostAt === undefined) lostAt = now()
            })
          ),
        // Ready is published by `resubscribe`, once every channel is subscribed again.
        onState: (state) => state._tag === "Ready" ? Effect.void : setState(state)
      }, {
        // Sharded channel names are prefixed by `send` itself (classic pub/sub commands have no keys to prefix).
        keyPrefix: ""
      })
      connection = opened
      if (config.heartbeat !== undefined) {
        yield* Heartbeat.make(opened, config.heartbeat, {
          onSuccess: () => signals.success,
          onFailure: () => signals.failure
        })
      }
      return opened
    }).pipe(Scope.provide(scope))
  }))

  const register = (
    kind: Kind,
    key: string
  ): Effect.Effect<Queue.Dequeue<SubscriptionEvent<string>, RedisError>, RedisError, Scope.Scope> =>
    Effect.gen(function*() {
      const conn = yield* start
      const queue = yield* Queue.dropping<SubscriptionEvent<string>, RedisError>(bufferSize)
      const local: Local = { queue, since: now(), overflowFrom: undefined, dropped: 0 }
      const map = registry[kind]
      let locals = map.get(key)
      const first = locals === undefined
      const live = conn.current()
      if (locals === undefined) {
        locals = new Set()
        map.set(key, locals)
        // In the same step as the registration: the channel is never seen registered and not in flight while its
        // first SUBSCRIBE has not been answered.
        if (live !== undefined) inFlight[kind].add(key)
      }
      locals.add(local)
      yield* Effect.addFinalizer(() =>
        Effect.suspend(() => {
          locals.delete(local)
          if (locals.size > 0 || map.get(key) !== locals) return Queue.shutdown(queue)
          map.delete(key)
          inFlight[kind].delete(key)
          const live = conn.current()
          return Effect.andThen(
            live === undefined
              ? Effect.void
              : Effect.ignore(send(live, kind, false, [key])),
            Queue.shutdown(queue)
          )
        })
      )
      if (first && live !== undefined) {
        const subscribed = yield* Effect.result(send(live, kind, true, [key])).pipe(
          Effect.ensuring(Effect.sync(() => {
            inFlight[kind].delete(key)
            wake()
          }))
        )
        if (subscribed._tag === "Failure") {
          // A refusal (e.g. no permission) ends this stream; a broken connection (or a stale slot map) is replaced and
          // the channel is subscribed again when the next connection is ready.
          if (isRefusal(subscribed.failure)) {
            yield* refuse(kind, key, subscribed.failure)
            return yield* Effect.fail(subscribed.failure)
          }
          yield* conn.invalidate(live, subscribed.failure)
        }
      }
      return queue
    })

  const eventsOf = (kind: Kind, key: string): Stream.Stream<SubscriptionEvent<string>, RedisError> =>
    Stream.unwrap(Effect.map(register(kind, key), (queue) => Stream.fromQueue(queue)))

  const events = (
    channel: Channels.ChannelLike
  ): Stream.Stream<SubscriptionEvent<any>, RedisError | Channels.InvalidChannelName> => {
    const name = Channels.nameOf(channel)
    const invalid = Channels.validateChannelName(name)
    if (invalid !== undefined) return Stream.fail(invalid)
    const raw = eventsOf("channel", name)
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

  const subscribe = (channel: Channels.ChannelLike): Stream.Stream<any, RedisError | Channels.InvalidChannelName> =>
    Stream.filterMap(
      events(channel),
      (event) => event._tag === "Message" ? Result.succeed(event.message) : Result.failVoid
    )

  const stateStream = SubscriptionRef.changes(stateRef)
  const mode: Stream.Stream<DeliveryMode> = Stream.zipLatest(stateStream, redis.circuit).pipe(
    Stream.map(([state, circuit]): DeliveryMode => state._tag === "Ready" && circuit === "closed" ? "live" : "polling"),
    Stream.changes
  )

  const subscribeWithFallback = <A, E, R>(
    channel: Channels.ChannelLike,
    options: FallbackOptions<A, E, R>
  ): Stream.Stream<A, E | RedisError | Channels.InvalidChannelName, R> => {
    const polled = (stream: Stream.Stream<ReadonlyArray<A>, E, R>) =>
      Stream.flatMap(stream, (values) => Stream.fromIterable(values))
    // On the way back to live, poll once more: what was written after the last poll and before the subscription was
    // live again (a PUBLISH that failed while the circuit was open, one that reached Redis just before the SUBSCRIBE)
    // reaches neither the subscription nor the polling otherwise.
    const polling = Stream.suspend(() => {
      let wasPolling = false
      return mode.pipe(
        Stream.switchMap((current) => {
          if (current === "live") {
            const catchUp = wasPolling ? polled(Stream.fromEffect(options.poll)) : Stream.empty
            wasPolling = false
            return catchUp
          }
          wasPolling = true
          return polled(Stream.fromEffectSchedule(options.poll, Schedule.spaced(options.interval)))
        })
      )
    })
    return Stream.merge(subscribe(channel) as Stream.Stream<A, RedisError | Channels.InvalidChannelName>, polling)
  }

  // Acknowledged: registered, no first SUBSCRIBE of it still on its way, and the subscriber Ready on the connection it
  // is using now (it only is once every registered channel was subscribed again on it). Checked when called and each
  // time something it depends on changes; no polling, so it works the same under TestClock.
  const subscribedNow = (channel: string): boolean => {
    const state = SubscriptionRef.getUnsafe(stateRef)
    if (state._tag === "Closed") return true
    return state._tag === "Ready" && connection?.current()?.generation === state.generation &&
      registry.channel.has(channel) && !inFlight.channel.has(channel)
  }
  const awaitSubscribed = (channel: string): Effect.Effect<void> =>
    Effect.callback<void>((resume) => {
      const check = () => {
        if (subscribedNow(channel)) resume(Effect.void)
        else waiters.add(check)
      }
      check()
      return Effect.sync(() => {
        waiters.delete(check)
      })
    })

  return RedisSubscriber.of({
    subscribe: subscribe as RedisSubscriberShape["subscribe"],
    events: events as RedisSubscriberShape["events"],
    psubscribe: (pattern) => eventsOf("pattern", pattern),
    subscribeWithFallback: subscribeWithFallback as RedisSubscriberShape["subscribeWithFallback"],
    mode,
    states: stateStream,
    subscriptions: Effect.sync(() => ({
      channels: [...registry.channel.keys()],
      patterns: [...registry.pattern.keys()]
    })),
    awaitSubscribed
  })
})
