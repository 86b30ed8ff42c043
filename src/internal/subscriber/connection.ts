/**
 * The subscriber's connection and what drives it: opened on the first subscription (through the layer's core, so its
 * losses and recoveries feed the one circuit breaker), every key subscribed again after each reconnect before the
 * subscriber counts as Ready, the local streams registered and torn down against it, and `awaitSubscribed`.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as SubscriptionRef from "effect/SubscriptionRef"
import type { ConnectionState } from "../../Health.ts"
import type { RedisError } from "../../RedisError.ts"
import type { SubscriptionEvent } from "../../RedisSubscriber.ts"
import type * as Connection from "../connection.ts"
import type * as Core from "../core.ts"
import * as Heartbeat from "../heartbeat.ts"
import { connectorFor } from "../topology/connector.ts"
import * as Registry from "./registry.ts"
import * as Wire from "./wire.ts"

/** Everything the subscriber holds, in one record. */
export interface Session {
  readonly core: Core.Core
  readonly registry: Registry.Registry
  readonly wire: Wire.Wire
  /** Events buffered per local stream before new ones are dropped. */
  readonly bufferSize: number
  /** The subscriber's own scope: the connection a first subscription opens outlives that subscription. */
  readonly scope: Scope.Scope
  readonly now: () => number
  /** What `states` shows: Ready only once every registered key is subscribed again on the current connection. */
  readonly state: SubscriptionRef.SubscriptionRef<ConnectionState>
  /** `awaitSubscribed` callers, woken whenever what they wait for may have changed (an acknowledgement, the state). */
  readonly waiters: Set<() => void>
  /** Concurrent first subscriptions open one connection. */
  readonly startLock: Semaphore.Semaphore
  /** Opened by the first subscription. */
  connection: Connection.Connection | undefined
}

/** The subscriber's session in the current scope; nothing is opened yet. */
export const make = Effect.fnUntraced(function*(
  core: Core.Core,
  options: { readonly bufferSize: number; readonly sharded: boolean }
): Effect.fn.Return<Session, never, Scope.Scope> {
  const clock = yield* Clock.Clock
  const now = () => clock.currentTimeMillisUnsafe()
  const registry = Registry.make()
  const session: Session = {
    core,
    registry,
    wire: {
      registry,
      sharded: options.sharded,
      // Sharded channel names are prefixed by the wire itself, on a client without a prefix, so that routing and
      // delivery see the real name on every topology.
      prefix: core.config.keyPrefix,
      commandTimeout: core.config.commandTimeout,
      topology: connectorFor(core.config),
      now,
      // Only ever called about a connection that was opened, so `connection` is set by then.
      invalidate: (live, reason) => Effect.suspend(() => session.connection!.invalidate(live, reason)),
      shardNodes: new WeakSet(),
      // Its commands are counted (client `<name>:subscriber`) and traced like the command connection's.
      observe: core.observe("subscriber")
    },
    bufferSize: options.bufferSize,
    scope: yield* Effect.scope,
    now,
    state: yield* SubscriptionRef.make<ConnectionState>({ _tag: "Connecting", attempt: 0 }),
    waiters: new Set(),
    startLock: Semaphore.makeUnsafe(1),
    connection: undefined
  }
  return session
})

/** The subscriber's connection, opened (with its heartbeat) by the first caller. */
export const start = (session: Session): Effect.Effect<Connection.Connection> =>
  session.startLock.withPermits(1)(Effect.suspend(() => {
    if (session.connection !== undefined) return Effect.succeed(session.connection)
    return open(session).pipe(Scope.provide(session.scope))
  }))

// Opened through the layer's core: the subscriber's connection feeds the same circuit breaker as the commands'.
const open = Effect.fnUntraced(function*(session: Session) {
  const { core, registry } = session
  const signals = core.signals
  const opened = yield* core.open("subscriber", {
    onClient: (client) => Wire.listen(session.wire, client),
    onReady: (live) => Effect.andThen(signals.success, resubscribe(session, live)),
    // A connection lost before its resubscription was answered extends the same gap.
    onLost: () => Effect.andThen(signals.failure, Effect.sync(() => Registry.connectionLost(registry, session.now()))),
    // Ready is published by `resubscribe`, once every channel is subscribed again.
    onState: (state) => state._tag === "Ready" ? Effect.void : setState(session, state)
  }, {
    // Sharded channel names are prefixed by the wire (classic pub/sub commands have no keys to prefix).
    keyPrefix: ""
  })
  session.connection = opened
  if (core.config.heartbeat !== undefined) {
    yield* Heartbeat.make(opened, core.config.heartbeat, {
      onSuccess: () => signals.success,
      onFailure: () => signals.failure
    })
  }
  return opened
})

// After a (re)connect: subscribe everything, then tell each local stream what it may have missed.
const resubscribe = (session: Session, live: Connection.Live): Effect.Effect<void> =>
  Effect.gen(function*() {
    const { registry, wire } = session
    const refuse = (kind: Registry.Kind) => (key: string, error: RedisError) =>
      Effect.sync(() => Registry.refuse(registry, kind, key, error))
    const result = yield* Effect.result(Effect.andThen(
      Wire.subscribeAll(wire, live, "channel", Registry.keys(registry, "channel"), refuse("channel")),
      Wire.subscribeAll(wire, live, "pattern", Registry.keys(registry, "pattern"), refuse("pattern"))
    ))
    // A broken connection is replaced (reply errors were handled key by key above).
    if (result._tag === "Failure") return yield* session.connection!.invalidate(live, result.failure)
    Registry.resubscribed(registry, session.now())
    // Only now, with every channel subscribed again, is the subscriber ready (and `mode` live).
    yield* setState(session, { _tag: "Ready", generation: live.generation })
  })

/**
 * A new local stream of `key`, registered until the current scope closes. The first stream of a key on a ready
 * connection sends its SUBSCRIBE; a key Redis refuses fails here (and ends its other streams); a broken connection is
 * replaced, and the key is subscribed with every other one when the next connection is ready.
 */
export const register = (
  session: Session,
  kind: Registry.Kind,
  key: string
): Effect.Effect<Queue.Dequeue<SubscriptionEvent<string>, RedisError>, RedisError, Scope.Scope> =>
  Effect.gen(function*() {
    const { registry, wire } = session
    const conn = yield* start(session)
    const queue = yield* Queue.dropping<SubscriptionEvent<string>, RedisError>(session.bufferSize)
    const local = Registry.makeLocal(queue, session.now())
    const live = conn.current()
    const first = Registry.add(registry, kind, key, local, live !== undefined)
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        if (!Registry.remove(registry, kind, key, local)) return Queue.shutdown(queue)
        const current = conn.current()
        return Effect.andThen(
          current === undefined ? Effect.void : Effect.ignore(Wire.send(wire, current, kind, false, [key])),
          Queue.shutdown(queue)
        )
      })
    )
    if (first && live !== undefined) {
      const subscribed = yield* Effect.result(Wire.send(wire, live, kind, true, [key])).pipe(
        Effect.ensuring(Effect.sync(() => {
          Registry.settle(registry, kind, key)
          wake(session)
        }))
      )
      if (subscribed._tag === "Failure") {
        // A refusal (e.g. no permission) ends this stream; a broken connection (or a stale slot map) is replaced and
        // the channel is subscribed again when the next connection is ready.
        if (Wire.isRefusal(subscribed.failure)) {
          Registry.refuse(registry, kind, key, subscribed.failure)
          return yield* Effect.fail(subscribed.failure)
        }
        yield* conn.invalidate(live, subscribed.failure)
      }
    }
    return queue
  })

/**
 * Waits until `channel` is acknowledged on the connection in use, or the subscriber is closed. Checked when called and
 * each time something it depends on changes; no polling, so it works the same under TestClock.
 */
export const awaitSubscribed = (session: Session, channel: string): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    const check = () => {
      if (subscribedNow(session, channel)) resume(Effect.void)
      else session.waiters.add(check)
    }
    check()
    return Effect.sync(() => {
      session.waiters.delete(check)
    })
  })

// Acknowledged: registered, no first SUBSCRIBE of it still on its way, and the subscriber Ready on the connection it
// is using now (it only is once every registered channel was subscribed again on it).
const subscribedNow = (session: Session, channel: string): boolean => {
  const state = SubscriptionRef.getUnsafe(session.state)
  if (state._tag === "Closed") return true
  return state._tag === "Ready" && session.connection?.current()?.generation === state.generation &&
    Registry.isAcknowledged(session.registry, channel)
}

// Every state change may satisfy a waiter (Ready on the connection in use, or Closed).
const setState = (session: Session, state: ConnectionState): Effect.Effect<void> =>
  Effect.andThen(SubscriptionRef.set(session.state, state), Effect.sync(() => wake(session)))

const wake = (session: Session): void => {
  // Taken out first: a waiter that is not satisfied yet adds itself back.
  const woken = [...session.waiters]
  session.waiters.clear()
  for (const waiter of woken) waiter()
}
