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
import { type ChildProcess, spawn } from "node:child_process"
import * as Path from "node:path"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"
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
const slotCount = 16_384
const formTimeoutMillis = 30_000
const createTimeoutMillis = 30_000
const failoverTimeoutMillis = 20_000
const portAttempts = 5
// Client ports 10000-22767 put the cluster bus (port + 10000) at 20000-32767: both stay below Linux'
// ephemeral range (32768-60999), so outgoing connections never hold them, and the bus port stays
// below 65536 (Redis refuses a client port above 55535).
const minPort = 10_000
const maxPort = 22_767
const busOffset = 10_000

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
  const mastersCount = options?.masters ?? 3
  const replicasPerMaster = options?.replicasPerMaster ?? 1
  const nodeTimeout = options?.nodeTimeout ?? 1_000
  if (!Number.isInteger(mastersCount) || mastersCount < 3) {
    return yield* new RedisTestClusterError({
      message: `masters must be an integer of at least 3 (Redis Cluster's minimum), got ${mastersCount}`
    })
  }
  if (!Number.isInteger(replicasPerMaster) || replicasPerMaster < 0) {
    return yield* new RedisTestClusterError({
      message: `replicasPerMaster must be a non-negative integer, got ${replicasPerMaster}`
    })
  }
  if (!Number.isInteger(nodeTimeout) || nodeTimeout < 100) {
    return yield* new RedisTestClusterError({
      message: `nodeTimeout must be an integer number of milliseconds, at least 100, got ${nodeTimeout}`
    })
  }
  const total = mastersCount * (1 + replicasPerMaster)

  const scope = yield* Scope.Scope
  const dir = yield* Process.tempDir("redis-test-cluster-", RedisTestClusterError)
  // Ports handed to this cluster's nodes, so that nodes started together never pick the same one. (Another cluster
  // starting at the same time may still race for a port: the bind fails and `startNode` picks another.)
  const ports = new Set<number>()
  // The nodes share one child scope that closes them in parallel: tear-down costs one shutdown, not six.
  const serversScope = yield* Scope.fork(scope, "parallel")

  const nodeArgs = (port: number): Array<string> => [
    "--cluster-enabled",
    "yes",
    "--cluster-config-file",
    Path.join(dir, `nodes-${port}.conf`),
    "--cluster-node-timeout",
    String(nodeTimeout),
    "--cluster-replica-validity-factor",
    "0",
    "--cluster-allow-replica-migration",
    "no",
    "--repl-diskless-sync",
    "yes",
    "--repl-diskless-sync-delay",
    "0",
    "--shutdown-timeout",
    "0",
    ...(options?.args ?? [])
  ]

  const startNode = Effect.fnUntraced(function*() {
    let attempt = 1
    while (true) {
      const port = yield* pickPort(ports)
      ports.add(port)
      const result = yield* Effect.result(
        Scope.provide(RedisTestServer.make({ port, args: nodeArgs(port) }), serversScope)
      )
      if (result._tag === "Success") return result.success
      ports.delete(port)
      // Another process may take the port or its bus port (port + 10000) between our probe and the bind.
      if (attempt >= portAttempts || !result.failure.message.includes("Address already in use")) {
        return yield* new RedisTestClusterError({
          message: `could not start a cluster node: ${result.failure.message}`,
          cause: result.failure
        })
      }
      attempt++
    }
  })

  const servers = yield* Effect.forEach(Array.from({ length: total }), () => startNode(), {
    concurrency: "unbounded"
  })

  yield* runRedisCli(
    [
      "--cluster",
      "create",
      ...servers.map((server) => `${host}:${server.port}`),
      "--cluster-replicas",
      String(replicasPerMaster),
      "--cluster-yes"
    ],
    createTimeoutMillis
  )

  // Nodes the kit paused or stopped: topology queries skip them instead of waiting on them.
  const down = new Set<number>()
  const live = () => servers.filter((server) => !down.has(server.port))

  const ask = (server: RedisTestServer.RedisTestServer, ...args: ReadonlyArray<string>) =>
    Process.ask(server, args, RedisTestClusterError)

  const viewOf = (server: RedisTestServer.RedisTestServer) =>
    Effect.map(ask(server, "CLUSTER", "NODES"), (reply) => parseClusterNodes(String(reply)))

  const clusterInfo = (server: RedisTestServer.RedisTestServer) =>
    Effect.map(ask(server, "CLUSTER", "INFO"), (reply) => Process.parseInfo(String(reply)))

  const replicationInfo = (server: RedisTestServer.RedisTestServer) =>
    Effect.map(ask(server, "INFO", "replication"), (reply) => Process.parseInfo(String(reply)))

  /** Why `server` is not ready yet, or `undefined` when it is. */
  const notReady = Effect.fnUntraced(function*(server: RedisTestServer.RedisTestServer) {
    const name = `${host}:${server.port}`
    const info = yield* clusterInfo(server)
    if (info.cluster_state !== "ok") return `${name} reports cluster_state:${info.cluster_state}`
    const view = yield* viewOf(server)
    if (view.length !== total) return `${name} knows ${view.length} of ${total} nodes`
    const unhealthy = view.find((node) => ["fail", "fail?", "handshake", "noaddr"].some((flag) => node.flags.has(flag)))
    if (unhealthy !== undefined) {
      return `${name} sees ${host}:${unhealthy.port} as ${[...unhealthy.flags].join(",")}`
    }
    const owners = view.filter((node) => node.flags.has("master") && node.slots.length > 0)
    if (owners.length !== mastersCount) return `${name} sees ${owners.length} of ${mastersCount} masters with slots`
    const covered = owners.reduce((sum, node) => sum + slotTotal(node.slots), 0)
    if (covered !== slotCount) return `${name} sees ${covered} of ${slotCount} slots assigned`
    const self = view.find((node) => node.flags.has("myself"))
    if (self === undefined) return `${name} does not list itself in CLUSTER NODES`
    const replication = yield* replicationInfo(server)
    if (self.flags.has("slave")) {
      if (replication.master_link_status !== "up") {
        return `replica ${name}: master_link_status:${replication.master_link_status}`
      }
      if (replication.master_sync_in_progress !== "0") return `replica ${name}: initial sync in progress`
      return undefined
    }
    const replicaIds = view.filter((node) => node.masterId === self.id).map((node) => node.id)
    const online = Object.entries(replication).filter(([key, value]) =>
      /^slave\d+$/.test(key) && value.includes("state=online")
    ).length
    if (online < replicaIds.length) return `master ${name}: ${online} of ${replicaIds.length} replicas online`
    return undefined
  })

  yield* Process.poll(
    Effect.map(
      Effect.forEach(servers, notReady, { concurrency: "unbounded" }),
      (reasons) => reasons.find((reason) => reason !== undefined)
    ),
    formTimeoutMillis,
    (reason) => `the cluster did not form within ${formTimeoutMillis} ms: ${reason}`,
    RedisTestClusterError
  )

  // Identity and formation roles, from one node's (now consistent) view.
  const formed = yield* viewOf(servers[0]!)
  const byId = new Map(formed.map((node) => [node.id, node]))
  const nodes = servers.map((server): RedisTestClusterNode => {
    const view = formed.find((node) => node.port === server.port)!
    const master = view.masterId === undefined ? undefined : byId.get(view.masterId)
    const markDown = Effect.sync(() => down.add(server.port))
    const markUp = Effect.sync(() => down.delete(server.port))
    return {
      ...server,
      id: view.id,
      role: view.flags.has("slave") ? "replica" : "master",
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
  const ordered = [...masters, ...replicas]
  const nodeByPort = (port: number) => ordered.find((node) => node.port === port)

  const anyLive = Effect.suspend(() => {
    const server = live()[0]
    return server === undefined
      ? Effect.fail(new RedisTestClusterError({ message: "every node of the cluster is paused or stopped" }))
      : Effect.succeed(server)
  })

  const slotOwners = (view: ReadonlyArray<NodeView>) =>
    view.filter((node) => node.flags.has("master") && !node.flags.has("fail") && node.slots.length > 0)

  const currentMasters = Effect.gen(function*() {
    const view = yield* viewOf(yield* anyLive)
    return slotOwners(view).flatMap((node) => nodeByPort(node.port) ?? [])
  })

  const masterOf = Effect.fnUntraced(function*(key: string) {
    const server = yield* anyLive
    const slot = Number(yield* ask(server, "CLUSTER", "KEYSLOT", key))
    const view = yield* viewOf(server)
    const owner = slotOwners(view).find((node) => node.slots.some(([from, to]) => slot >= from && slot <= to))
    const node = owner === undefined ? undefined : nodeByPort(owner.port)
    if (node === undefined) {
      return yield* new RedisTestClusterError({
        message: `no live master owns slot ${slot} (key ${JSON.stringify(key)}) in the view of ${host}:${server.port}`
      })
    }
    return node
  })

  const waitForFailover = Effect.fnUntraced(function*(
    oldMasterPort: number,
    options?: { readonly timeout?: number | undefined }
  ) {
    const timeout = options?.timeout ?? failoverTimeoutMillis
    const old = nodeByPort(oldMasterPort)
    if (old === undefined) {
      return yield* new RedisTestClusterError({
        message: `${oldMasterPort} is not the port of a node of this cluster (${ordered.map((n) => n.port).join(", ")})`
      })
    }
    // Candidates: its replicas as formed and as the cluster sees them now.
    const candidates = new Set(nodes.filter((node) => node.replicaOf === old.port).map((node) => node.id))
    for (const node of yield* viewOf(yield* anyLive)) {
      if (node.masterId === old.id) candidates.add(node.id)
    }
    if (candidates.size === 0) {
      return yield* new RedisTestClusterError({
        message: `the node on port ${oldMasterPort} has no replicas: it cannot fail over`
      })
    }
    let promoted: RedisTestClusterNode | undefined
    const check = Effect.gen(function*() {
      const servers = live()
      if (servers.length === 0) return "every node is paused or stopped"
      for (const server of servers) {
        const name = `${host}:${server.port}`
        const info = yield* clusterInfo(server)
        if (info.cluster_state !== "ok") return `${name} reports cluster_state:${info.cluster_state}`
        const owners = slotOwners(yield* viewOf(server))
        if (owners.some((node) => node.id === old.id)) return `${name} still sees ${oldMasterPort} as a master`
        const winner = owners.find((node) => candidates.has(node.id))
        if (winner === undefined) return `${name} sees no replica of ${oldMasterPort} as a master`
        if (promoted !== undefined && promoted.id !== winner.id) return `the nodes disagree on the new master`
        promoted = nodeByPort(winner.port)
      }
      return undefined
    })
    yield* Process.poll(
      Effect.suspend(() => {
        promoted = undefined
        return check
      }),
      timeout,
      (reason) => `no failover of the master on port ${oldMasterPort} within ${timeout} ms: ${reason}`,
      RedisTestClusterError
    )
    return promoted!
  })

  return {
    nodes: ordered,
    masters,
    replicas,
    startupNodes: ordered.map((node) => ({ host, port: node.port })),
    currentMasters,
    masterOf,
    waitForFailover
  } satisfies RedisTestCluster
})

// ---------------------------------------------------------------------------------------------------------------------
// internals (real timers only)
// ---------------------------------------------------------------------------------------------------------------------

interface NodeView {
  readonly id: string
  readonly port: number
  readonly flags: ReadonlySet<string>
  readonly masterId: string | undefined
  readonly slots: ReadonlyArray<readonly [number, number]>
}

/** Parses `CLUSTER NODES`: `<id> <ip:port@cport[,hostname]> <flags> <master|-> ... <slot> <slot> ...`. */
const parseClusterNodes = (reply: string): Array<NodeView> =>
  reply.split("\n").map((line) => line.trim()).filter((line) => line !== "").map((line) => {
    const [id = "", address = "", flags = "", master = "-", , , , , ...slots] = line.split(" ")
    const hostPort = address.split("@")[0] ?? ""
    return {
      id,
      port: Number(hostPort.slice(hostPort.lastIndexOf(":") + 1)),
      flags: new Set(flags.split(",")),
      masterId: master === "-" ? undefined : master,
      // "[slot->-id]" / "[slot-<-id]" entries are migrations in progress, not owned ranges.
      slots: slots.filter((slot) => !slot.startsWith("[")).map((slot) => {
        const [from, to = from] = slot.split("-")
        return [Number(from), Number(to)] as const
      })
    }
  })

const slotTotal = (slots: ReadonlyArray<readonly [number, number]>) =>
  slots.reduce((sum, [from, to]) => sum + to - from + 1, 0)

/** A random port in 10000-22767, not in `taken`, that is free, with its cluster bus port (+10000) free too. */
const pickPort = (taken: ReadonlySet<number>): Effect.Effect<number, RedisTestClusterError> =>
  Effect.gen(function*() {
    for (let attempt = 0; attempt < 100; attempt++) {
      const port = minPort + Math.floor(Math.random() * (maxPort - minPort + 1))
      if (taken.has(port)) continue
      if ((yield* Process.canListen(port)) && (yield* Process.canListen(port + busOffset))) return port
    }
    return yield* new RedisTestClusterError({
      message: `found no free port pair (port and port + ${busOffset}) in ${minPort}-${maxPort}`
    })
  })

/** Runs `redis-cli args` to completion (at most `timeoutMillis`), failing with its output on a non-zero exit. */
const runRedisCli = (args: ReadonlyArray<string>, timeoutMillis: number) =>
  Effect.callback<void, RedisTestClusterError>((resume) => {
    let output = ""
    const append = (chunk: Buffer) => {
      output = Process.appendOutput(output, chunk)
    }
    const tail = () => Process.outputTail(output, "output")
    let child: ChildProcess
    try {
      child = spawn("redis-cli", args, { stdio: ["ignore", "pipe", "pipe"] })
    } catch (cause) {
      resume(Effect.fail(redisCliError(cause)))
      return
    }
    child.stdout?.on("data", append)
    child.stderr?.on("data", append)
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      resume(Effect.fail(
        new RedisTestClusterError({
          message: `redis-cli ${args.join(" ")} did not finish within ${timeoutMillis} ms${tail()}`
        })
      ))
    }, timeoutMillis)
    child.once("error", (cause) => {
      clearTimeout(timer)
      resume(Effect.fail(redisCliError(cause)))
    })
    child.once("exit", (code, signal) => {
      clearTimeout(timer)
      // redis-cli --cluster reports some failures ("[ERR] ...") with exit code 0.
      if (code === 0 && !output.includes("[ERR]")) resume(Effect.void)
      else {
        resume(Effect.fail(
          new RedisTestClusterError({
            message: `redis-cli ${args.join(" ")} failed (${signal ?? `code ${code}`})${tail()}`
          })
        ))
      }
    })
    return Effect.sync(() => {
      clearTimeout(timer)
      if (!Process.hasExited(child)) child.kill("SIGKILL")
    })
  })

const redisCliError = (cause: unknown): RedisTestClusterError =>
  new RedisTestClusterError({ message: Process.spawnErrorMessage("redis-cli", cause, "redis-tools", "run"), cause })
