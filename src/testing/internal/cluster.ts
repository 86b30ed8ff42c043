/**
 * Pieces of `RedisTestCluster` that need none of its state: starting a node on a free port pair (client and
 * cluster bus), running `redis-cli --cluster`, and reading `CLUSTER NODES` / `INFO replication` replies.
 * Internal: not exported from `effect-redis-resilience/testing`.
 *
 * Every wait here uses real timers, never Effect's `Clock`, so the kit works under `TestClock`.
 *
 * @internal
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as Path from "node:path"
import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"
import * as RedisTestServer from "../RedisTestServer.ts"
import * as Process from "./process.ts"

/** Slots of a Redis Cluster: every one must be assigned before the cluster reports `ok`. */
export const slotCount = 16_384
const portAttempts = 5
// Client ports 10000-22767 put the cluster bus (port + 10000) at 20000-32767: both stay below Linux'
// ephemeral range (32768-60999), so outgoing connections never hold them, and the bus port stays
// below 65536 (Redis refuses a client port above 55535).
const minPort = 10_000
const maxPort = 22_767
const busOffset = 10_000

/** One line of `CLUSTER NODES`: a node as one node of the cluster sees it. */
export interface NodeView {
  readonly id: string
  readonly port: number
  readonly flags: ReadonlySet<string>
  readonly masterId: string | undefined
  readonly slots: ReadonlyArray<readonly [number, number]>
}

/** Parses `CLUSTER NODES`: `<id> <ip:port@cport[,hostname]> <flags> <master|-> ... <slot> <slot> ...`. */
export const parseClusterNodes = (reply: string): Array<NodeView> =>
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

/** How many slots the ranges cover. */
export const slotTotal = (slots: ReadonlyArray<readonly [number, number]>): number =>
  slots.reduce((sum, [from, to]) => sum + to - from + 1, 0)

/** The masters that own slots and are not marked failed. */
export const slotOwners = (view: ReadonlyArray<NodeView>): Array<NodeView> =>
  view.filter((node) => node.flags.has("master") && !node.flags.has("fail") && node.slots.length > 0)

/** What a formed cluster looks like: how many nodes, how many of them masters. */
export interface Expected {
  readonly masters: number
  readonly total: number
}

/**
 * Why `view` (the `CLUSTER NODES` reply of the node `name`) is not the formed cluster yet, or `undefined`
 * when it is: every node known and healthy, `masters` masters owning every slot, the node listing itself.
 */
export const viewProblem = (name: string, view: ReadonlyArray<NodeView>, expected: Expected): string | undefined => {
  const { masters, total } = expected
  if (view.length !== total) return `${name} knows ${view.length} of ${total} nodes`
  const unhealthy = view.find((node) => ["fail", "fail?", "handshake", "noaddr"].some((flag) => node.flags.has(flag)))
  if (unhealthy !== undefined) {
    return `${name} sees ${Process.host}:${unhealthy.port} as ${[...unhealthy.flags].join(",")}`
  }
  const owners = view.filter((node) => node.flags.has("master") && node.slots.length > 0)
  if (owners.length !== masters) return `${name} sees ${owners.length} of ${masters} masters with slots`
  const covered = owners.reduce((sum, node) => sum + slotTotal(node.slots), 0)
  if (covered !== slotCount) return `${name} sees ${covered} of ${slotCount} slots assigned`
  if (!view.some((node) => node.flags.has("myself"))) return `${name} does not list itself in CLUSTER NODES`
  return undefined
}

/**
 * Why the node `name` does not replicate as formed yet (`replication`: its `INFO replication`), or `undefined`:
 * a replica's link to its master is up and in sync; a master has every replica of its view online.
 */
export const replicationProblem = (
  name: string,
  view: ReadonlyArray<NodeView>,
  replication: Record<string, string>
): string | undefined => {
  const self = view.find((node) => node.flags.has("myself"))
  if (self === undefined) return `${name} does not list itself in CLUSTER NODES`
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
}

/** What starting a node needs: the cluster's settings, where nodes.conf files go, the ports taken, the scope. */
export interface NodeStartup {
  readonly dir: string
  readonly nodeTimeout: number
  /** Extra `redis-server` arguments, last, so they override the kit's. */
  readonly args: ReadonlyArray<string>
  // Ports handed to this cluster's nodes, so that nodes started together never pick the same one. (Another cluster
  // starting at the same time may still race for a port: the bind fails and `startNode` picks another.)
  readonly ports: Set<number>
  /** The nodes' shared scope. */
  readonly scope: Scope.Scope
}

/**
 * Starts one cluster-enabled server on a free port pair: `cluster-replica-validity-factor 0` so any replica
 * may take over, diskless sync without delay so replicas sync at once.
 */
export const startNode = <E>(
  startup: NodeStartup,
  error: Process.ErrorClass<E>
): Effect.Effect<RedisTestServer.RedisTestServer, E> =>
  Effect.gen(function*() {
    const { ports } = startup
    let attempt = 1
    while (true) {
      const port = yield* pickPort(ports, error)
      ports.add(port)
      const args = nodeArgs(startup, port)
      const result = yield* Effect.result(Scope.provide(RedisTestServer.make({ port, args }), startup.scope))
      if (result._tag === "Success") return result.success
      ports.delete(port)
      // Another process may take the port or its bus port (port + 10000) between our probe and the bind.
      if (attempt >= portAttempts || !result.failure.message.includes("Address already in use")) {
        const message = `could not start a cluster node: ${result.failure.message}`
        return yield* Effect.fail(new error({ message, cause: result.failure }))
      }
      attempt++
    }
  })

const nodeArgs = (startup: NodeStartup, port: number): Array<string> => [
  "--cluster-enabled",
  "yes",
  "--cluster-config-file",
  Path.join(startup.dir, `nodes-${port}.conf`),
  "--cluster-node-timeout",
  String(startup.nodeTimeout),
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
  ...startup.args
]

/** A random port in 10000-22767, not in `taken`, that is free, with its cluster bus port (+10000) free too. */
const pickPort = <E>(taken: ReadonlySet<number>, error: Process.ErrorClass<E>): Effect.Effect<number, E> =>
  Effect.gen(function*() {
    for (let attempt = 0; attempt < 100; attempt++) {
      const port = minPort + Math.floor(Math.random() * (maxPort - minPort + 1))
      if (taken.has(port)) continue
      if ((yield* Process.canListen(port)) && (yield* Process.canListen(port + busOffset))) return port
    }
    return yield* Effect.fail(
      new error({ message: `found no free port pair (port and port + ${busOffset}) in ${minPort}-${maxPort}` })
    )
  })

/** Runs `redis-cli args` to completion (at most `timeoutMillis`), failing with its output on a non-zero exit. */
export const runRedisCli = <E>(
  args: ReadonlyArray<string>,
  timeoutMillis: number,
  error: Process.ErrorClass<E>
): Effect.Effect<void, E> =>
  Effect.callback<void, E>((resume) => {
    const spawnError = (cause: unknown) =>
      new error({ message: Process.spawnErrorMessage("redis-cli", cause, "redis-tools", "run"), cause })
    let output = ""
    const append = (chunk: Buffer) => {
      output = Process.appendOutput(output, chunk)
    }
    const tail = () => Process.outputTail(output, "output")
    let child: ChildProcess
    try {
      child = spawn("redis-cli", args, { stdio: ["ignore", "pipe", "pipe"] })
    } catch (cause) {
      resume(Effect.fail(spawnError(cause)))
      return
    }
    child.stdout?.on("data", append)
    child.stderr?.on("data", append)
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      resume(Effect.fail(
        new error({ message: `redis-cli ${args.join(" ")} did not finish within ${timeoutMillis} ms${tail()}` })
      ))
    }, timeoutMillis)
    child.once("error", (cause) => {
      clearTimeout(timer)
      resume(Effect.fail(spawnError(cause)))
    })
    child.once("exit", (code, signal) => {
      clearTimeout(timer)
      // redis-cli --cluster reports some failures ("[ERR] ...") with exit code 0.
      if (code === 0 && !output.includes("[ERR]")) resume(Effect.void)
      else {
        resume(Effect.fail(
          new error({ message: `redis-cli ${args.join(" ")} failed (${signal ?? `code ${code}`})${tail()}` })
        ))
      }
    })
    return Effect.sync(() => {
      clearTimeout(timer)
      if (!Process.hasExited(child)) child.kill("SIGKILL")
    })
  })
