/**
 * What the rest of the layer asks of a topology (one server, Sentinel, Cluster), answered once per topology: how to
 * make the client, which nodes are masters, what a lost connection means, what to watch during a reconnect cycle,
 * whether keys must share a slot. `connectorFor` is the only place that branches on `RedisOptions.topology`.
 *
 * @internal
 */
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { Cluster, Redis as IORedis } from "ioredis"
import type { NodeHealth } from "../../Health.ts"
import type { ResolvedRedisConfig } from "../../RedisConfig.ts"
import type { RedisError } from "../../RedisError.ts"
import * as ClusterConnector from "./cluster.ts"
import type { IORedisOptions } from "./options.ts"
import * as Sentinel from "./sentinel.ts"
import * as Standalone from "./standalone.ts"

/**
 * The ioredis client behind a connection: a `Redis` (standalone, or the current master found through Sentinel) or a
 * `Cluster` (its own connection per node, slot map and redirections).
 */
export type Client = IORedis | Cluster

/** Where sharded pub/sub commands go: the client itself, or on a Cluster the master owning each slot. */
export interface ShardRoute {
  readonly target: Client
  readonly keys: ReadonlyArray<string>
}

/**
 * Asks, during a reconnect cycle, whether the deployment named a new master (Sentinel): `changed` completes with the
 * new master's address when it does, and never otherwise.
 */
export interface CycleWatch {
  readonly changed: Effect.Effect<string>
}

export interface Connector {
  /** How `RedisHealth.topology` names it. */
  readonly name: "standalone" | "sentinel" | "cluster"
  /** Creates the (unconnected) client of one connection attempt. */
  readonly makeClient: (overrides?: Partial<IORedisOptions>) => Client
  /** Called once per new client, before it connects (the Cluster bounds how long a node connection may open). */
  readonly prepare: (client: Client) => void
  /** The last step of a connection attempt: SELECT the `db` (see `select`); rejects with the attempt's error. */
  readonly select: (client: Client, socketError: () => unknown) => Promise<void>
  /** The masters of a client: the one `Redis`, or every master node of a `Cluster`. */
  readonly masters: (client: Client) => ReadonlyArray<IORedis>
  /** The nodes a client talks to, with their role and status. */
  readonly nodes: (client: Client) => ReadonlyArray<NodeHealth>
  /**
   * What a reconnect cycle watches beside its attempts (Sentinel: the master the sentinels name); `undefined` when
   * there is nothing to watch.
   */
  readonly watchCycle: Effect.Effect<CycleWatch, never, Scope.Scope> | undefined
  /**
   * The Cluster client, when a lost command connection is one node's (the client stays and refreshes its slot map);
   * `undefined` where a lost connection is the connection.
   */
  readonly cluster: (client: Client) => Cluster | undefined
  /**
   * Keys route to a master by hash slot (Cluster): the keys of one transaction, script or blocking command must share a
   * slot, SCAN walks every master, and each master has a circuit breaker of its own.
   */
  readonly slotted: boolean
  /**
   * The executor corks the client's socket to write a tick's commands at once. A Cluster writes to many node sockets:
   * the executor corks each master's connection instead (see `nodeCorker`).
   */
  readonly corks: boolean
  /** A READONLY reply means the master moved (Sentinel failover, Cluster), not a plain reply error. */
  readonly mastersMove: boolean
  /** OpenTelemetry attributes of the server, where one address names it. */
  readonly serverAttributes: Readonly<Record<string, string | number>>
  /** Where sharded pub/sub commands for `channels` (wire names) go; fails when no master owns a slot. */
  readonly shardRoutes: (client: Client, channels: ReadonlyArray<string>) => ReadonlyArray<ShardRoute> | RedisError
  /** Sharded messages arrive on the client itself (else on each Cluster node connection). */
  readonly shardsOnClient: boolean
}

/** The connector of a resolved config's topology. */
export const connectorFor = (config: ResolvedRedisConfig): Connector => {
  switch (config.topology._tag) {
    case "Standalone":
      return Standalone.make(config)
    case "Sentinel":
      return Sentinel.make(config, config.topology)
    case "Cluster":
      return ClusterConnector.make(config, config.topology)
  }
}
