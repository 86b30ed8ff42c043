/**
 * Redis Cluster: one `Cluster` client with a connection per node, its slot map and redirections. A lost command
 * connection is one node's: the slot map is refreshed and the client stays (see `Connection.lost`). Keys of one
 * transaction must share a slot; sharded channels are subscribed on the master owning their slot.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import { Cluster, type Redis as IORedis } from "ioredis"
import type { ResolvedRedisConfig, Topology } from "../../RedisConfig.ts"
import { ConnectionClosed } from "../../RedisError.ts"
import type { Client, Connector, ShardRoute } from "./connector.ts"
import { connectionOptions, describeNode, passedThrough } from "./options.ts"
import { slotOf } from "./slot.ts"

type ClusterTopology = Extract<Topology, { readonly _tag: "Cluster" }>

export const make = (config: ResolvedRedisConfig, topology: ClusterTopology): Connector => {
  // Node connections get half the command timeout to open, at least 100 ms (see `boundNodeOpening`).
  const nodeOpeningMillis = Math.max(
    100,
    Math.min(Duration.toMillis(config.connectTimeout), Duration.toMillis(config.commandTimeout) / 2)
  )
  const asCluster = (client: Client) => client as Cluster
  return {
    name: "cluster",
    makeClient: (overrides) => makeClient(config, topology, overrides),
    prepare: (client) => {
      client.on("+node", (node: IORedis) => boundNodeOpening(node, nodeOpeningMillis))
    },
    // Redis Cluster has database 0 only (RedisConfig refuses another `db`).
    select: () => Promise.resolve(),
    masters: masterNodes,
    nodes: (client) => {
      const cluster = asCluster(client)
      const primaries = new Set(cluster.nodes("master"))
      return cluster.nodes("all").map((node) => describeNode(node, primaries.has(node) ? "master" : "replica"))
    },
    watchCycle: undefined,
    cluster: asCluster,
    slotted: true,
    corks: false,
    mastersMove: true,
    // Many servers: no one address names the deployment.
    serverAttributes: {},
    shardRoutes: (client, channels) => shardRoutes(asCluster(client), channels),
    shardsOnClient: false
  }
}

/**
 * The `Cluster` of one connection attempt: `clusterRetryStrategy` off and no resending of commands whose node
 * connection closed or that got CLUSTERDOWN; a command for a node whose connection is still opening waits for it, at
 * most half the command timeout (`boundNodeOpening`). ioredis keeps control of what only it can do: the slot map,
 * MOVED/ASK redirections (never reported as failures), TRYAGAIN (retried after 100 ms, up to 16 redirections: the
 * command was not applied) and the per-node connections, which it opens lazily with an offline queue of their own (it
 * forces that) and never reconnects (a lost node is found again through the slot map).
 */
const makeClient = (
  config: ResolvedRedisConfig,
  topology: ClusterTopology,
  overrides: Partial<ReturnType<typeof connectionOptions>> | undefined
): Cluster => {
  // Node connections: the same options, less what the Cluster decides per node (address, queue, retries).
  const {
    db: _db,
    enableAutoPipelining,
    enableOfflineQueue: _queue,
    host: _host,
    keyPrefix,
    lazyConnect: _lazy,
    port: _port,
    retryStrategy: _retry,
    ...nodeOptions
  } = connectionOptions(config, overrides)
  return new Cluster<"legacy">(topology.nodes.map((node) => ({ host: node.host, port: node.port })), {
    lazyConnect: true,
    // Node connections open lazily (and again after a node was recovered): with the queue off, ioredis rejects a
    // command for a node still opening, and only its 100 ms resend (off below) would hide that. With it on, such a
    // command waits for its node, which gets half the command timeout to open (`boundNodeOpening`: else ioredis
    // would send it whenever the node opens). The layer only uses a Cluster that is ready; one that closes (every
    // node gone) fails what it holds.
    enableOfflineQueue: true,
    enableReadyCheck: true,
    clusterRetryStrategy: () => null,
    // ioredis would resend a command whose node connection closed (after 100 ms), which could apply a write
    // twice, and would hide CLUSTERDOWN by retrying it until the command times out: both are ours to decide.
    retryDelayOnFailover: 0,
    retryDelayOnClusterDown: 0,
    maxRedirections: 16,
    // CLUSTER SLOTS is a command: a frozen node is given up on after commandTimeout, and the next node is asked.
    slotsRefreshTimeout: Duration.toMillis(config.commandTimeout),
    // The slot map is also read every 5 s: a failover is otherwise learnt only from a failing command or a MOVED, and a
    // command the old master accepts after it came back as a replica (SPUBLISH: 0 receivers) would never tell.
    slotsRefreshInterval: slotsRefreshMillis,
    // A Cluster pipelines per node itself; its node connections must not do it again.
    ...(enableAutoPipelining === true ? { enableAutoPipelining } : {}),
    ...(keyPrefix === undefined ? {} : { keyPrefix }),
    ...passedThrough(config).cluster,
    redisOptions: nodeOptions
  })
}

/** How often a Cluster client reads the slot map again, unless `RedisOptions.ioredis.slotsRefreshInterval` says. */
export const slotsRefreshMillis = 5_000

/**
 * Drops a Cluster node connection that does not become ready within `millis` of starting to open. ioredis holds the
 * commands for a node whose connection is still opening (its node connections always queue) and sends them whenever it
 * opens: against a frozen node (TCP accepted, handshake unanswered) that could be long after the layer reported them
 * timed out. Dropped, the node fails what it holds (`ConnectionClosed`), before the callers' own deadlines, and ioredis
 * opens a new connection when the node is next needed. (A plain timer, as ioredis' own `connectTimeout` is: it only
 * bounds an ioredis-internal state.)
 */
export const boundNodeOpening = (node: IORedis, millis: number): void => {
  let timer: ReturnType<typeof setTimeout> | undefined
  const clear = () => {
    if (timer !== undefined) clearTimeout(timer)
    timer = undefined
  }
  node.on("connecting", () => {
    clear()
    timer = setTimeout(() => {
      timer = undefined
      if (node.status !== "ready" && node.status !== "end") node.disconnect()
    }, millis)
    timer.unref()
  })
  node.on("ready", clear)
  node.on("end", clear)
}

/** The master nodes of a Cluster client. */
export const masterNodes = (client: Client): ReadonlyArray<IORedis> => (client as Cluster).nodes("master")

/** A node's configured address, `host:port`: how the Cluster's slot map names it. */
export const address = (node: IORedis): string => `${node.options.host ?? "?"}:${node.options.port ?? 0}`

/** ioredis' slot map: for each slot, the addresses of its master and replicas. */
export const slotsOf = (client: Cluster): ReadonlyArray<ReadonlyArray<string> | undefined> =>
  (client as unknown as { readonly slots: ReadonlyArray<ReadonlyArray<string> | undefined> }).slots

/** A slot `node` (an address) is master of, if any. */
export const ownedSlot = (client: Cluster, node: string): number | undefined => {
  const slot = slotsOf(client).findIndex((owners) => owners?.[0] === node)
  return slot === -1 ? undefined : slot
}

// Sharded channels go to the master owning each slot, one command per slot (a multi-channel SSUBSCRIBE must stay
// within one slot there).
const shardRoutes = (
  client: Cluster,
  channels: ReadonlyArray<string>
): ReadonlyArray<ShardRoute> | ConnectionClosed => {
  const bySlot = new Map<number, Array<string>>()
  for (const name of channels) {
    const slot = slotOf(name)
    const group = bySlot.get(slot)
    if (group === undefined) bySlot.set(slot, [name])
    else group.push(name)
  }
  const masters = new Map(client.nodes("master").map((node) => [`${node.options.host}:${node.options.port}`, node]))
  const out: Array<ShardRoute> = []
  for (const [slot, keys] of bySlot) {
    const owner = slotsOf(client)[slot]?.[0]
    const node = owner === undefined ? undefined : masters.get(owner)
    if (node === undefined) {
      return new ConnectionClosed({ message: `No master owns slot ${slot} in the cluster's slot map`, sent: false })
    }
    out.push({ target: node, keys })
  }
  return out
}
