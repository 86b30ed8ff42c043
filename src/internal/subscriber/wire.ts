/**
 * The subscriber's side of the wire: the (P|S)(UN)SUBSCRIBE commands it sends, bounded like every other command and
 * routed to the masters owning sharded channels, and the messages that come back, handed to the registry. Sharded
 * channel names carry the layer's key prefix on the wire (ioredis prefixes SPUBLISH's channel, as a key); this module
 * adds it on the way out and strips it on the way in, so the registry and the streams only see plain names.
 *
 * @internal
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { Redis as IORedis } from "ioredis"
import { classify, ConnectionClosed, isTransient, type RedisError } from "../../RedisError.ts"
import type { Client, Live } from "../connection.ts"
import type { Connector, ShardRoute } from "../topology/connector.ts"
import type { Observe } from "../observe.ts"
import { queryText } from "../spans.ts"
import { sendBounded } from "../wire.ts"
import * as Registry from "./registry.ts"

/** What sending and receiving need, fixed for the subscriber's life (but `shardNodes`, which grows). */
export interface Wire {
  readonly registry: Registry.Registry
  /** Channel subscriptions use SSUBSCRIBE / SUNSUBSCRIBE (patterns stay classic). */
  readonly sharded: boolean
  /** The layer's key prefix, put in front of sharded channel names on the wire. */
  readonly prefix: string
  readonly commandTimeout: Duration.Duration
  /** Pure answers of the topology: where sharded channels go, where their messages arrive. */
  readonly topology: Connector
  readonly now: () => number
  /** Reports a broken subscriber connection (one of its Cluster node connections closed, or a slot moved). */
  readonly invalidate: (live: Live, reason: RedisError) => Effect.Effect<boolean>
  /** Cluster nodes whose connection already carries sharded subscriptions of the current cluster client. */
  readonly shardNodes: WeakSet<IORedis>
  /** Counts and traces each command (see internal/observe.ts). */
  readonly observe: Observe
}

/** The command that (un)subscribes `kind` keys. */
export const verb = (kind: Registry.Kind, subscribe: boolean, sharded: boolean): string =>
  kind === "pattern"
    ? subscribe ? "PSUBSCRIBE" : "PUNSUBSCRIBE"
    : sharded
    ? subscribe ? "SSUBSCRIBE" : "SUNSUBSCRIBE"
    : subscribe
    ? "SUBSCRIBE"
    : "UNSUBSCRIBE"

/** A reply that refuses a key for good (e.g. NOPERM), as opposed to one that says "not now" or "wrong node". */
export const isRefusal = (error: RedisError): boolean =>
  error._tag === "ReplyError" && !isTransient(error) && error.code !== "MOVED" && error.code !== "ASK"

/** One (P|S)(UN)SUBSCRIBE for `keys`: sharded channels are prefixed and routed to their owners. */
export const send = (
  wire: Wire,
  live: Live,
  kind: Registry.Kind,
  subscribe: boolean,
  keys: ReadonlyArray<string>
): Effect.Effect<void, RedisError> => {
  const name = verb(kind, subscribe, wire.sharded)
  if (kind === "pattern" || !wire.sharded) return Effect.asVoid(command(wire, live, name, keys))
  return Effect.flatMap(
    routes(wire, live, keys.map((key) => wire.prefix + key)),
    (groups) =>
      Effect.forEach(groups, (group) => command(wire, live, name, group.keys, group.target), {
        concurrency: "unbounded",
        discard: true
      })
  )
}

/**
 * SUBSCRIBE every key of one kind in one command; if Redis refuses it, finds out key by key which ones, and hands each
 * refused key to `onRefused`. Fails only when the connection does (then it is the caller's to replace).
 */
export const subscribeAll = (
  wire: Wire,
  live: Live,
  kind: Registry.Kind,
  keys: ReadonlyArray<string>,
  onRefused: (key: string, error: RedisError) => Effect.Effect<void>
): Effect.Effect<void, RedisError> =>
  keys.length === 0 ? Effect.void : send(wire, live, kind, true, keys).pipe(
    Effect.catchIf(isRefusal, () =>
      Effect.forEach(keys, (key) =>
        send(wire, live, kind, true, [key]).pipe(
          Effect.catchIf(isRefusal, (error) => onRefused(key, error))
        ), { discard: true }))
  )

/** Routes the messages of a new client to the registry (before it connects: nothing is missed). */
export const listen = (wire: Wire, client: Client): void => {
  const { registry, now } = wire
  if (!wire.sharded) {
    client.on("message", (channel: string, message: string) => {
      Registry.deliver(registry, "channel", channel, { _tag: "Message", channel, message }, now())
    })
  } else if (wire.topology.shardsOnClient) {
    client.on("smessage", (channel: string, message: string) => onShardMessage(wire, channel, message))
  }
  client.on("pmessage", (pattern: string, channel: string, message: string) => {
    Registry.deliver(registry, "pattern", pattern, { _tag: "Message", channel, message, pattern }, now())
  })
}

/** A sharded message arrives under its wire name: the streams know the channel by its plain name. */
const onShardMessage = (wire: Wire, name: string, message: string): void => {
  const channel = name.startsWith(wire.prefix) ? name.slice(wire.prefix.length) : name
  Registry.deliver(wire.registry, "channel", channel, { _tag: "Message", channel, message }, wire.now())
}

// Subscriber commands are bounded like every other command: a silent socket must not wedge a resubscription or a
// stream's teardown.
const command = (
  wire: Wire,
  live: Live,
  name: string,
  keys: ReadonlyArray<string>,
  target: Client = live.client
): Effect.Effect<unknown, RedisError> =>
  wire.observe(
    name,
    sendBounded(live, name, () => target.call(name, [...keys]), wire.commandTimeout),
    // Channel names are data: each is a `?`.
    () => queryText(name, keys.length)
  )

// Where sharded channels go (see the topology's `shardRoutes`); on a Cluster each owner's connection is watched.
const routes = (
  wire: Wire,
  live: Live,
  names: ReadonlyArray<string>
): Effect.Effect<ReadonlyArray<ShardRoute>, RedisError> =>
  Effect.suspend(() => {
    const routed = wire.topology.shardRoutes(live.client, names)
    if (!Array.isArray(routed)) return Effect.fail(routed as RedisError)
    if (!wire.topology.shardsOnClient) {
      for (const route of routed) watchShardNode(wire, live, route.target as IORedis)
    }
    return Effect.succeed(routed as ReadonlyArray<ShardRoute>)
  })

// A Cluster node whose connection carries sharded subscriptions. ioredis never reconnects a node connection (nor
// resubscribes it): losing one replaces the whole client, which reads a fresh slot map, and every channel is
// subscribed again on its owner with Gap/Resubscribed.
const watchShardNode = (wire: Wire, live: Live, node: IORedis): void => {
  if (wire.shardNodes.has(node)) return
  wire.shardNodes.add(node)
  const socket: { error: unknown } = { error: undefined }
  node.on("smessage", (channel: string, message: string) => onShardMessage(wire, channel, message))
  node.on("error", (error: unknown) => {
    socket.error = error
  })
  node.on("close", () => {
    Effect.runSync(wire.invalidate(
      live,
      classify(socket.error ?? new Error("Connection is closed."), { sent: false, established: true })
    ))
  })
  // A MOVED reply to SSUBSCRIBE, or the server dropping a slot's channels (SUNSUBSCRIBE push: slot migrated, master
  // demoted): the slot map is stale.
  node.on("moved", () => {
    Effect.runSync(wire.invalidate(
      live,
      new ConnectionClosed({ message: "A sharded channel's slot moved to another node", sent: false })
    ))
  })
}
