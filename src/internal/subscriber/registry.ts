/**
 * The subscriber's registry: which local streams listen to which channel or pattern, and what each of them is told.
 * A message reaches every local stream of its key through that stream's own bounded queue; a stream that falls behind
 * loses the newest messages and hears how many (an overflow `Gap`) before the next event it gets; after a reconnect,
 * every stream that was subscribed when the connection was lost gets a `Gap` and then `Resubscribed`; a key Redis
 * refuses ends its streams with the error. No I/O beyond the queues' synchronous offers, and the time is the caller's.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as DateTime from "effect/DateTime"
import * as Queue from "effect/Queue"
import type { RedisError } from "../../RedisError.ts"
import type { SubscriptionEvent } from "../../RedisSubscriber.ts"

/** A subscription to a channel (SUBSCRIBE, or SSUBSCRIBE when sharded) or to a pattern (PSUBSCRIBE). */
export type Kind = "channel" | "pattern"

/** Both kinds, in the order a new connection subscribes them again. */
export const kinds: ReadonlyArray<Kind> = ["channel", "pattern"]

/** One local stream: its queue and its overflow accounting. */
export interface Local {
  readonly queue: Queue.Queue<SubscriptionEvent<string>, RedisError>
  /** When it registered: a stream registered after the connection was lost has no disconnection gap to hear about. */
  readonly since: number
  /** When its full buffer first refused a message, until the overflow `Gap` reporting it is queued. */
  overflowFrom: number | undefined
  /** Messages refused since `overflowFrom`. */
  dropped: number
}

/** Everything the registry knows, in one record. */
export interface Registry {
  /** The local streams of each key; a key is here exactly while it has at least one. */
  readonly locals: Record<Kind, Map<string, Set<Local>>>
  /** Keys whose first SUBSCRIBE is on its way on the current connection (not yet acknowledged). */
  readonly inFlight: Record<Kind, Set<string>>
  /** When the connection was lost, until the resubscription that follows reports the gap. */
  lostAt: number | undefined
}

/** An empty registry. */
export const make = (): Registry => ({
  locals: { channel: new Map(), pattern: new Map() },
  inFlight: { channel: new Set(), pattern: new Set() },
  lostAt: undefined
})

/** A local stream registering at `now`, fed through `queue` (a dropping queue: a full one refuses the offer). */
export const makeLocal = (queue: Queue.Queue<SubscriptionEvent<string>, RedisError>, now: number): Local => ({
  queue,
  since: now,
  overflowFrom: undefined,
  dropped: 0
})

/**
 * Adds `local` to the streams of `key`; true when it is the key's first, whose SUBSCRIBE is the caller's to send.
 * `sending`: that SUBSCRIBE goes out now on a ready connection. The key is then in flight from this very step (until
 * `settle`), so it is never seen registered and acknowledged while its first SUBSCRIBE is unanswered.
 */
export const add = (registry: Registry, kind: Kind, key: string, local: Local, sending: boolean): boolean => {
  const map = registry.locals[kind]
  let locals = map.get(key)
  const first = locals === undefined
  if (locals === undefined) {
    locals = new Set()
    map.set(key, locals)
    if (sending) registry.inFlight[kind].add(key)
  }
  locals.add(local)
  return first
}

/** The first SUBSCRIBE of `key` was answered, or failed: the key is no longer in flight. */
export const settle = (registry: Registry, kind: Kind, key: string): void => {
  registry.inFlight[kind].delete(key)
}

/**
 * Removes `local`; true when it was the last stream of `key`, whose UNSUBSCRIBE is the caller's to send. A key that
 * was refused meanwhile (and perhaps registered again by newer streams) is no longer the old stream's to unsubscribe.
 */
export const remove = (registry: Registry, kind: Kind, key: string, local: Local): boolean => {
  const locals = registry.locals[kind].get(key)
  if (locals === undefined || !locals.delete(local) || locals.size > 0) return false
  registry.locals[kind].delete(key)
  registry.inFlight[kind].delete(key)
  return true
}

/** The keys of one kind with at least one local stream (what a new connection subscribes again). */
export const keys = (registry: Registry, kind: Kind): Array<string> => [...registry.locals[kind].keys()]

/**
 * `channel` has a local stream and no first SUBSCRIBE of it is unanswered. Whether the connection that answered is
 * still the one in use is the caller's question.
 */
export const isAcknowledged = (registry: Registry, channel: string): boolean =>
  registry.locals.channel.has(channel) && !registry.inFlight.channel.has(channel)

/**
 * Offers `event` to one local stream. A full buffer drops it and counts it; the next offer that finds room first
 * queues an overflow `Gap` (from the first drop to `now`, with the count), so the stream learns about the loss before
 * anything that follows it. A drop while reporting the gap starts a new one.
 */
export const offer = (local: Local, channel: string, event: SubscriptionEvent<string>, now: number): void => {
  if (local.overflowFrom !== undefined) {
    if (Queue.isFullUnsafe(local.queue)) {
      local.dropped++
      return
    }
    Queue.offerUnsafe(local.queue, {
      _tag: "Gap",
      channel,
      from: DateTime.makeUnsafe(local.overflowFrom),
      to: DateTime.makeUnsafe(now),
      reason: "overflow",
      dropped: local.dropped
    })
    local.overflowFrom = undefined
    local.dropped = 0
  }
  if (!Queue.offerUnsafe(local.queue, event)) {
    local.overflowFrom = now
    local.dropped = 1
  }
}

/** Offers `event` to every local stream of `key` (a message nobody here listens to any more is ignored). */
export const deliver = (
  registry: Registry,
  kind: Kind,
  key: string,
  event: SubscriptionEvent<string> & { readonly channel: string },
  now: number
): void => {
  const locals = registry.locals[kind].get(key)
  if (locals === undefined) return
  for (const local of locals) offer(local, event.channel, event, now)
}

/**
 * Redis refuses `key` for good (e.g. NOPERM under an ACL): its local streams end with `error` (after what they have
 * buffered) and the key is forgotten, so no later connection subscribes it again.
 */
export const refuse = (registry: Registry, kind: Kind, key: string, error: RedisError): void => {
  const locals = registry.locals[kind].get(key)
  registry.locals[kind].delete(key)
  for (const local of locals ?? []) Queue.failCauseUnsafe(local.queue, Cause.fail(error))
}

/** The connection was lost at `now`. A loss before the resubscription that follows it extends the same gap. */
export const connectionLost = (registry: Registry, now: number): void => {
  if (registry.lostAt === undefined) registry.lostAt = now
}

/**
 * Every key is subscribed again on a new connection (at `now`): each stream that was registered when the connection
 * was lost gets `Gap { reason: "disconnected" }` (Redis kept nothing of what was published meanwhile), and every
 * stream then gets `Resubscribed`. Nothing when no connection was lost (the first connection).
 */
export const resubscribed = (registry: Registry, now: number): void => {
  const lost = registry.lostAt
  registry.lostAt = undefined
  if (lost === undefined) return
  for (const kind of kinds) {
    for (const [key, locals] of registry.locals[kind]) {
      for (const local of locals) {
        if (local.since <= lost) {
          offer(local, key, {
            _tag: "Gap",
            channel: key,
            from: DateTime.makeUnsafe(lost),
            to: DateTime.makeUnsafe(now),
            reason: "disconnected"
          }, now)
        }
        offer(local, key, { _tag: "Resubscribed", channel: key }, now)
      }
    }
  }
}
