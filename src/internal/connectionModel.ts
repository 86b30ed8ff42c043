/**
 * The model of a connection: one ready connection (`Live`), what a `Connection` offers the rest of the layer, the
 * hooks it reports through, and the record its loop changes.
 *
 * @internal
 */
import type * as Deferred from "effect/Deferred"
import type * as Effect from "effect/Effect"
import type * as Stream from "effect/Stream"
import type { Redis as IORedis } from "ioredis"
import type { ConnectionState } from "../Health.ts"
import type { ConnectionClosed, ConnectionTimeout, RedisError } from "../RedisError.ts"
import type { Client, Connector } from "./topology/connector.ts"

/**
 * One ready connection. It stays the same object for its whole life, so that a failure can be reported against the
 * connection it happened on (`invalidate` ignores signals for a connection that was already replaced).
 *
 * @since 0.1.0
 * @category models
 */
export interface Live {
  readonly client: Client
  readonly generation: number
  /**
   * The last error the socket reported (scrubbed: see `RedisError.scrubCause`); used to classify commands that fail
   * with a bare "Connection is closed.".
   */
  readonly socketError: unknown
}

/** A `Live` as the loop holds it: its last socket error and the deferred its loss completes. */
export interface MutableLive extends Live {
  socketError: unknown
  readonly lost: Deferred.Deferred<RedisError>
}

/**
 * A connection owned by a scope.
 *
 * @since 0.1.0
 * @category models
 */
export interface Connection {
  /** The ready connection, if there is one now. Synchronous: this is the hot path. */
  readonly current: () => Live | undefined
  /**
   * The ready connection, waiting at most `acquireTimeout` for one (then `ConnectionTimeout` with phase "acquire").
   * Waiters share one timer, so the bound holds with 100,000 of them.
   */
  readonly acquire: (command?: string) => Effect.Effect<Live, ConnectionTimeout | ConnectionClosed>
  /**
   * Waits for a ready connection at most `connectTimeout` (what `awaitReady: true` does while the layer is built);
   * fails with `ConnectionTimeout` (phase "connect") whose message and `cause` give the last attempt's error.
   */
  readonly awaitReady: Effect.Effect<void, ConnectionTimeout>
  /**
   * Why no connection is ready: the error of the last failed attempt, or what lost the last connection. `undefined`
   * while a connection is ready (and before the first attempt ended).
   */
  readonly lastError: Effect.Effect<RedisError | undefined>
  /**
   * Reports that `live` is broken. The first report for a connection starts one reconnect cycle and returns true;
   * later ones (and reports about a connection already replaced) are no-ops and return false.
   */
  readonly invalidate: (live: Live, reason: RedisError) => Effect.Effect<boolean>
  /**
   * Reports that a command lost its connection (or reached a node that is no longer a master). On one server and
   * behind Sentinel this is `invalidate`. On a Cluster that is still up it was one node's connection: the slot map is
   * refreshed (ioredis reconnects what it needs) and the Cluster client stays.
   */
  readonly lost: (live: Live, reason: RedisError) => Effect.Effect<void>
  /**
   * Cluster only: one master stopped answering. Its connection is dropped (commands in flight on it fail at once and
   * ioredis opens a new one when the node is needed again) and the slot map is refreshed, so that a failover is
   * picked up; the other nodes' connections stay.
   */
  readonly recoverNode: (live: Live, node: IORedis, reason: RedisError) => Effect.Effect<void>
  /** Node recoveries (`recoverNode` and slot-map refreshes by `lost`) since the start. */
  readonly nodeRecoveries: Effect.Effect<number>
  readonly state: Effect.Effect<ConnectionState>
  /** The current state, then every change. */
  readonly states: Stream.Stream<ConnectionState>
  /** Reconnect cycles started (connections lost) since the start. */
  readonly reconnects: Effect.Effect<number>
  /** Connections that became ready since the start. */
  readonly connectionsOpened: Effect.Effect<number>
  /** Connection attempts made since the start (successful or not). */
  readonly attempts: Effect.Effect<number>
  /** What the topology answers (masters, node-level losses, slots, ...). */
  readonly connector: Connector
}

/**
 * What the connection tells the rest of the layer.
 *
 * @since 0.1.0
 * @category models
 */
export interface ConnectionHooks {
  /** A client was created for a connection attempt (before it connects): the place to attach event listeners. */
  readonly onClient?: ((client: Client) => void) | undefined
  /** A connection attempt failed (feeds the circuit breaker). */
  readonly onAttemptFailed?: ((error: RedisError) => Effect.Effect<void>) | undefined
  /** A new connection is ready. */
  readonly onReady?: ((live: Live) => Effect.Effect<void>) | undefined
  /** A ready connection was lost. */
  readonly onLost?: ((reason: RedisError) => Effect.Effect<void>) | undefined
  /** The state changed. */
  readonly onState?: ((state: ConnectionState) => Effect.Effect<void>) | undefined
  /** Cluster: commands lost one node's connection (the Cluster client stays); once per slot-map refresh. */
  readonly onNodeLost?: ((reason: RedisError) => Effect.Effect<void>) | undefined
}

/**
 * Everything the connection's loop changes, in one record (read synchronously on the hot path: `current`).
 */
export interface LoopState {
  /** The ready connection, if there is one now. */
  current: MutableLive | undefined
  generation: number
  reconnects: number
  connectionsOpened: number
  attempts: number
  closed: boolean
  /** Cluster: node recoveries so far, and whether a slot-map refresh is running. */
  nodeRecoveries: number
  refreshing: boolean
}

