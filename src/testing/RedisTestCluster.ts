/**
 * A real Redis Cluster for tests: masters and replicas as `redis-server` processes on free loopback
 * ports, joined with `redis-cli --cluster create`, ready only once every node reports
 * `cluster_state:ok` and every replica is in sync. Nodes are `RedisTestServer`s (pause, resume, stop,
 * start, command), so a test can freeze a master and watch a replica take over. Everything is killed
 * and every temporary directory removed when the scope closes.
 *
 * Every wait in this module uses real timers, never Effect's `Clock`, so the kit works unchanged
 * inside `it.effect` tests that run under `TestClock`.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"
import * as ClusterInternal from "./internal/cluster.ts"
import * as Process from "./internal/process.ts"
import * as RedisTestServer from "./RedisTestServer.ts"

/**
 * Options of {@link make}. All are optional.
 *
 * - `masters`: number of masters, at least 3 (Redis Cluster's minimum); default 3.
 * - `replicasPerMaster`: replicas of each master; default 1. With 0 no failover is possible.
 * - `nodeTimeout`: `cluster-node-timeout` in milliseconds; default 1000, so a frozen master is failed
 *   over within a few seconds.
 * - `args`: extra `redis-server` arguments for every node, appended last so they override the kit's.
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisTestClusterOptions {
  readonly masters?: number | undefined
  readonly replicasPerMaster?: number | undefined
  readonly nodeTimeout?: number | undefined
  readonly args?: ReadonlyArray<string> | undefined
}

/**
 * One node of the cluster: a {@link RedisTestServer.RedisTestServer} plus its cluster identity.
 *
 * `role` and `replicaOf` describe the cluster as it formed; a failover changes the live roles, which
 * {@link RedisTestCluster.currentMasters} and {@link RedisTestCluster.masterOf} report.
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisTestClusterNode extends RedisTestServer.RedisTestServer {
  /** The node's cluster id (40 hex characters); kept across `stop`/`start` (its nodes.conf is kept). */
  readonly id: string
  /** Role when the cluster formed. */
  readonly role: "master" | "replica"
  /** For a replica, the port of the master it replicated when the cluster formed; `undefined` for a master. */
  readonly replicaOf: number | undefined
}

/**
 * A running cluster owned by a scope.
 *
 * Topology queries (`currentMasters`, `masterOf`, `waitForFailover`) ask nodes the kit has not
 * paused or stopped (through the nodes' `pause`/`stop`), so they keep answering while a master is
 * frozen.
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisTestCluster {
  /** Every node: the masters first, then the replicas (roles as formed). */
  readonly nodes: ReadonlyArray<RedisTestClusterNode>
  /** Nodes that were masters when the cluster formed. */
  readonly masters: ReadonlyArray<RedisTestClusterNode>
  /** Nodes that were replicas when the cluster formed. */
  readonly replicas: ReadonlyArray<RedisTestClusterNode>
  /** `{ host, port }` of every node: what a cluster client (e.g. ioredis' `Cluster`) starts from. */
  readonly startupNodes: ReadonlyArray<{ readonly host: string; readonly port: number }>
  /** The masters that own slots and are not marked failed, in a live node's `CLUSTER NODES` view. */
  readonly currentMasters: Effect.Effect<ReadonlyArray<RedisTestClusterNode>, RedisTestClusterError>
  /** The master serving `key` now (`CLUSTER KEYSLOT` + `CLUSTER NODES` on a live node). */
  readonly masterOf: (key: string) => Effect.Effect<RedisTestClusterNode, RedisTestClusterError>
  /**
   * Waits (default at most 20 s) until a replica of the master on `oldMasterPort` has become a master
   * that owns slots, the old master owns none, and every live node reports `cluster_state:ok` and sees
   * it so. Returns the promoted node. Fails at once for a port that is not a node, or a master without
   * replicas.
   */
  readonly waitForFailover: (
    oldMasterPort: number,
    options?: { readonly timeout?: number | undefined }
  ) => Effect.Effect<RedisTestClusterNode, RedisTestClusterError>
}

/**
 * The cluster could not start or form in time, a topology query failed, or `waitForFailover` timed
 * out. The message says which node and which condition.
 *
 * @since 0.1.0
 * @category errors
 */
export class RedisTestClusterError extends Data.TaggedError("RedisTestClusterError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

const host = Process.host
const formTimeoutMillis = 30_000
const createTimeoutMillis = 30_000
const failoverTimeoutMillis = 20_000

/** The options of {@link make}, checked and with their defaults. */
interface Settings {
  readonly masters: number
  readonly replicasPerMaster: number
  readonly nodeTimeout: number
  /** Every node: `masters * (1 + replicasPerMaster)`. */
  readonly total: number
  readonly args: ReadonlyArray<string>
}

/** A formed cluster: what its topology queries share. */
interface Formed {
  /** The servers in start order; the first live one answers topology queries. */
  readonly servers: ReadonlyArray<RedisTestServer.RedisTestServer>
  /** The masters first, then the replicas (roles as formed). */
  readonly nodes: ReadonlyArray<RedisTestClusterNode>
  // Nodes the kit paused or stopped: topology queries skip them instead of waiting on them.
  readonly down: Set<number>
}

/**
 * Starts `masters * (1 + replicasPerMaster)` cluster-enabled `redis-server`s (persistence off,
 * `cluster-node-timeout` = `nodeTimeout`, `cluster-replica-validity-factor 0` so any replica may take
 * over, `repl-diskless-sync-delay 0` so replicas sync at once), joins them with
 * `redis-cli --cluster create ... --cluster-replicas R --cluster-yes`, and waits (at most 30 s) until
 * every node reports `cluster_state:ok` and sees all nodes, all slots and every replica, and every
 * replica's link to its master is up and in sync. Closing the scope kills every node (in parallel)
 * and removes the temporary directories.
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import { RedisTestCluster } from "effect-redis-resilience/testing"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const cluster = yield* RedisTestCluster.make()
 *   const master = yield* cluster.masterOf("user:1")
 *   yield* master.pause
 *   const promoted = yield* cluster.waitForFailover(master.port)
 *   // promoted.replicaOf === master.port
 * }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options?: RedisTestClusterOptions
) => Effect.Effect<RedisTestCluster, RedisTestClusterError, Scope.Scope> = Effect.fnUntraced(function*(
  options?: RedisTestClusterOptions
) {
  const settings = yield* validate(options)
  const scope = yield* Scope.Scope
  const dir = yield* Process.tempDir("redis-test-cluster-", RedisTestClusterError)
  // The nodes share one child scope that closes them in parallel: tear-down costs one shutdown, not six.
  const serversScope = yield* Scope.fork(scope, "parallel")
  const { nodeTimeout, args } = settings
  const startup: ClusterInternal.NodeStartup = { dir, nodeTimeout, args, ports: new Set(), scope: serversScope }

  const servers = yield* Effect.forEach(
    Array.from({ length: settings.total }),
    () => ClusterInternal.startNode(startup, RedisTestClusterError),
    { concurrency: "unbounded" }
  )

  yield* ClusterInternal.runRedisCli(
    [
      "--cluster",
      "create",
      ...servers.map((server) => `${host}:${server.port}`),
      "--cluster-replicas",
      String(settings.replicasPerMaster),
      "--cluster-yes"
    ],
    createTimeoutMillis,
    RedisTestClusterError
  )

  yield* Process.poll(
    Effect.map(
      Effect.forEach(servers, (server) => notReady(settings, server), { concurrency: "unbounded" }),
      (reasons) => reasons.find((reason) => reason !== undefined)
    ),
    formTimeoutMillis,
    (reason) => `the cluster did not form within ${formTimeoutMillis} ms: ${reason}`,
    RedisTestClusterError
  )

  const formed = yield* identify(servers)
  return {
    nodes: formed.nodes,
    masters: formed.nodes.filter((node) => node.role === "master"),
    replicas: formed.nodes.filter((node) => node.role === "replica"),
    startupNodes: formed.nodes.map((node) => ({ host, port: node.port })),
    currentMasters: currentMasters(formed),
    masterOf: (key: string) => masterOf(formed, key),
    waitForFailover: (oldMasterPort: number, options?: { readonly timeout?: number | undefined }) =>
      waitForFailover(formed, oldMasterPort, options)
  } satisfies RedisTestCluster
})

// ---------------------------------------------------------------------------------------------------------------------
// forming the cluster (real timers only)
// ---------------------------------------------------------------------------------------------------------------------

const validate = (options: RedisTestClusterOptions | undefined): Effect.Effect<Settings, RedisTestClusterError> => {
  const masters = options?.masters ?? 3
  const replicasPerMaster = options?.replicasPerMaster ?? 1
  const nodeTimeout = options?.nodeTimeout ?? 1_000
  if (!Number.isInteger(masters) || masters < 3) {
    return invalid(`masters must be an integer of at least 3 (Redis Cluster's minimum), got ${masters}`)
  }
  if (!Number.isInteger(replicasPerMaster) || replicasPerMaster < 0) {
    return invalid(`replicasPerMaster must be a non-negative integer, got ${replicasPerMaster}`)
  }
  if (!Number.isInteger(nodeTimeout) || nodeTimeout < 100) {
    return invalid(`nodeTimeout must be an integer number of milliseconds, at least 100, got ${nodeTimeout}`)
  }
  const total = masters * (1 + replicasPerMaster)
  return Effect.succeed({ masters, replicasPerMaster, nodeTimeout, total, args: options?.args ?? [] })
}

const invalid = (message: string) => Effect.fail(new RedisTestClusterError({ message }))

const ask = (server: RedisTestServer.RedisTestServer, ...args: ReadonlyArray<string>) =>
  Process.ask(server, args, RedisTestClusterError)

const viewOf = (server: RedisTestServer.RedisTestServer) =>
  Effect.map(ask(server, "CLUSTER", "NODES"), (reply) => ClusterInternal.parseClusterNodes(String(reply)))

const clusterInfo = (server: RedisTestServer.RedisTestServer) =>
  Effect.map(ask(server, "CLUSTER", "INFO"), (reply) => Process.parseInfo(String(reply)))

const replicationInfo = (server: RedisTestServer.RedisTestServer) =>
  Effect.map(ask(server, "INFO", "replication"), (reply) => Process.parseInfo(String(reply)))

/** Why `server` is not ready yet, or `undefined` when it is. */
const notReady = Effect.fnUntraced(function*(settings: Settings, server: RedisTestServer.RedisTestServer) {
  const name = `${host}:${server.port}`
  const info = yield* clusterInfo(server)
  if (info.cluster_state !== "ok") return `${name} reports cluster_state:${info.cluster_state}`
  const view = yield* viewOf(server)
  const problem = ClusterInternal.viewProblem(name, view, settings)
  if (problem !== undefined) return problem
  return ClusterInternal.replicationProblem(name, view, yield* replicationInfo(server))
})

/**
 * Identity and formation roles, from one node's (now consistent) view. Each node's `pause`/`stop` marks it
 * down before acting and `resume`/`start` marks it up after, so topology queries never wait on it.
 */
const identify = Effect.fnUntraced(function*(servers: ReadonlyArray<RedisTestServer.RedisTestServer>) {
  const view = yield* viewOf(servers[0]!)
  const byId = new Map(view.map((node) => [node.id, node]))
  const down = new Set<number>()
  const nodes = servers.map((server): RedisTestClusterNode => {
    const self = view.find((node) => node.port === server.port)!
    const master = self.masterId === undefined ? undefined : byId.get(self.masterId)
    const markDown = Effect.sync(() => down.add(server.port))
    const markUp = Effect.sync(() => down.delete(server.port))
    return {
      ...server,
      id: self.id,
      role: self.flags.has("slave") ? "replica" : "master",
      replicaOf: master?.port,
      pause: Effect.andThen(markDown, server.pause),
      resume: Effect.andThen(server.resume, markUp),
      stop: Effect.andThen(markDown, server.stop),
      start: Effect.andThen(server.start, markUp),
      restart: Effect.andThen(Effect.andThen(markDown, server.restart), markUp)
    }
  })
  const masters = nodes.filter((node) => node.role === "master")
  const replicas = nodes.filter((node) => node.role === "replica")
  return { servers, nodes: [...masters, ...replicas], down } satisfies Formed
})

// ---------------------------------------------------------------------------------------------------------------------
// topology queries (real timers only)
// ---------------------------------------------------------------------------------------------------------------------

const live = (formed: Formed) => formed.servers.filter((server) => !formed.down.has(server.port))

const nodeByPort = (formed: Formed, port: number) => formed.nodes.find((node) => node.port === port)

const anyLive = (formed: Formed) =>
  Effect.suspend(() => {
    const server = live(formed)[0]
    return server === undefined
      ? Effect.fail(new RedisTestClusterError({ message: "every node of the cluster is paused or stopped" }))
      : Effect.succeed(server)
  })

const currentMasters = (formed: Formed) =>
  Effect.gen(function*() {
    const view = yield* viewOf(yield* anyLive(formed))
    return ClusterInternal.slotOwners(view).flatMap((node) => nodeByPort(formed, node.port) ?? [])
  })

const masterOf = Effect.fnUntraced(function*(formed: Formed, key: string) {
  const server = yield* anyLive(formed)
  const slot = Number(yield* ask(server, "CLUSTER", "KEYSLOT", key))
  const view = yield* viewOf(server)
  const owner = ClusterInternal.slotOwners(view).find((node) =>
    node.slots.some(([from, to]) => slot >= from && slot <= to)
  )
  const node = owner === undefined ? undefined : nodeByPort(formed, owner.port)
  if (node === undefined) {
    return yield* new RedisTestClusterError({
      message: `no live master owns slot ${slot} (key ${JSON.stringify(key)}) in the view of ${host}:${server.port}`
    })
  }
  return node
})

const waitForFailover = Effect.fnUntraced(function*(
  formed: Formed,
  oldMasterPort: number,
  options?: { readonly timeout?: number | undefined }
) {
  const timeout = options?.timeout ?? failoverTimeoutMillis
  const old = nodeByPort(formed, oldMasterPort)
  if (old === undefined) {
    const ports = formed.nodes.map((n) => n.port).join(", ")
    return yield* new RedisTestClusterError({
      message: `${oldMasterPort} is not the port of a node of this cluster (${ports})`
    })
  }
  // Candidates: its replicas as formed and as the cluster sees them now.
  const candidates = new Set(formed.nodes.filter((node) => node.replicaOf === old.port).map((node) => node.id))
  for (const node of yield* viewOf(yield* anyLive(formed))) {
    if (node.masterId === old.id) candidates.add(node.id)
  }
  if (candidates.size === 0) {
    return yield* new RedisTestClusterError({
      message: `the node on port ${oldMasterPort} has no replicas: it cannot fail over`
    })
  }
  const found: Promotion = { promoted: undefined }
  yield* Process.poll(
    Effect.suspend(() => {
      found.promoted = undefined
      return notFailedOver(formed, old, candidates, found)
    }),
    timeout,
    (reason) => `no failover of the master on port ${oldMasterPort} within ${timeout} ms: ${reason}`,
    RedisTestClusterError
  )
  return found.promoted!
})

/** The node every live node agrees has taken over, once they do; reset before each check. */
interface Promotion {
  promoted: RedisTestClusterNode | undefined
}

/** Why the failover from `old` is not complete in every live node's view, or `undefined` when it is. */
const notFailedOver = (
  formed: Formed,
  old: RedisTestClusterNode,
  candidates: ReadonlySet<string>,
  found: Promotion
) =>
  Effect.gen(function*() {
    const servers = live(formed)
    if (servers.length === 0) return "every node is paused or stopped"
    for (const server of servers) {
      const name = `${host}:${server.port}`
      const info = yield* clusterInfo(server)
      if (info.cluster_state !== "ok") return `${name} reports cluster_state:${info.cluster_state}`
      const owners = ClusterInternal.slotOwners(yield* viewOf(server))
      if (owners.some((node) => node.id === old.id)) return `${name} still sees ${old.port} as a master`
      const winner = owners.find((node) => candidates.has(node.id))
      if (winner === undefined) return `${name} sees no replica of ${old.port} as a master`
      if (found.promoted !== undefined && found.promoted.id !== winner.id) return "the nodes disagree on the new master"
      found.promoted = nodeByPort(formed, winner.port)
    }
    return undefined
  })
