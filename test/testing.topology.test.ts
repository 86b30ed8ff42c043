/**
 * Tests of the topology test kit (`RedisTestCluster`, `RedisTestSentinel`) against real `redis-server`
 * and sentinel processes: the topologies form, keys spread over the masters, and a master frozen with
 * SIGSTOP is failed over (cluster and sentinel) with the replicated data intact. The failover tests
 * run under `TestClock` to prove the kit waits on real timers only. Tests in this file run one after
 * the other (vitest's default within a file): each spawns 5-6 processes.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect } from "effect"
import { Cluster, Redis } from "ioredis"
import * as Fs from "node:fs"
import { RedisTestCluster, RedisTestSentinel } from "../src/testing/index.ts"
import { processExists, tcpConnect } from "./helpers.ts"

// ---------------------------------------------------------------------------------------------------------------------
// helpers (real timers only)
// ---------------------------------------------------------------------------------------------------------------------

/** A scoped ioredis client on one node that never reconnects or queues on its own. */
const connected = (port: number) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const redis = new Redis({
        host: "127.0.0.1",
        port,
        lazyConnect: true,
        retryStrategy: () => null,
        maxRetriesPerRequest: 0,
        enableOfflineQueue: false,
        connectTimeout: 2_000
      })
      redis.on("error", () => {})
      await redis.connect()
      return redis
    }),
    (redis) => Effect.sync(() => redis.disconnect())
  )

/** Real elapsed milliseconds of `effect` (never Effect's `Clock`, which may be a `TestClock`). */
const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const start = performance.now()
    const value = yield* effect
    return { value, millis: Math.round(performance.now() - start) }
  })

const parseInfo = (reply: unknown): Record<string, string> =>
  Object.fromEntries(
    String(reply).split("\n").filter((line) => line.includes(":") && !line.startsWith("#")).map((line) => {
      const index = line.indexOf(":")
      return [line.slice(0, index), line.slice(index + 1).trim()]
    })
  )

/** `SENTINEL MASTER name` (a flat RESP2 array) as an object. */
const fieldsOf = (reply: unknown): Record<string, string> => {
  const list = reply as Array<string>
  const fields: Record<string, string> = {}
  for (let i = 0; i + 1 < list.length; i += 2) fields[list[i]!] = list[i + 1]!
  return fields
}

// ---------------------------------------------------------------------------------------------------------------------
// RedisTestCluster
// ---------------------------------------------------------------------------------------------------------------------

describe("RedisTestCluster", () => {
  it.live("rejects invalid options before spawning anything", () =>
    Effect.gen(function*() {
      const masters = yield* Effect.flip(RedisTestCluster.make({ masters: 2 }))
      assert.strictEqual(masters._tag, "RedisTestClusterError")
      assert.include(masters.message, "at least 3")
      const replicas = yield* Effect.flip(RedisTestCluster.make({ replicasPerMaster: -1 }))
      assert.include(replicas.message, "replicasPerMaster")
      const timeout = yield* Effect.flip(RedisTestCluster.make({ nodeTimeout: 1.5 }))
      assert.include(timeout.message, "nodeTimeout")
      // A node that cannot start fails the whole cluster with that node's output.
      const broken = yield* Effect.flip(RedisTestCluster.make({ args: ["--no-such-directive", "x"] }))
      assert.include(broken.message, "could not start a cluster node")
      assert.include(broken.message, "no-such-directive")
    }))

  // One cluster for formation, key placement, failover and tear-down: forming costs ~2 s (a master
  // reports cluster_state:ok no sooner than 2 s after it started), so it is done once.
  it.effect("forms, spreads keys over the masters, fails a frozen master over with its data, leaves nothing", () =>
    Effect.gen(function*() {
      const { dir, pids, ports } = yield* Effect.scoped(Effect.gen(function*() {
        const { millis: formMillis, value: cluster } = yield* timed(RedisTestCluster.make())
        console.log(`cluster formed in ${formMillis} ms`)

        // --- formation: 3 masters, 3 synced replicas, every slot covered, as every node sees it.
        assert.strictEqual(cluster.nodes.length, 6)
        assert.strictEqual(cluster.masters.length, 3)
        assert.strictEqual(cluster.replicas.length, 3)
        assert.deepStrictEqual(cluster.nodes, [...cluster.masters, ...cluster.replicas])
        assert.deepStrictEqual(
          cluster.startupNodes,
          cluster.nodes.map((node) => ({ host: "127.0.0.1", port: node.port }))
        )
        assert.strictEqual(new Set(cluster.nodes.map((node) => node.port)).size, 6)
        assert.strictEqual(new Set(cluster.nodes.map((node) => node.id)).size, 6)
        const masterPorts = cluster.masters.map((node) => node.port).sort()
        assert.deepStrictEqual(cluster.replicas.map((node) => node.replicaOf!).sort(), masterPorts)
        for (const master of cluster.masters) assert.isUndefined(master.replicaOf)
        for (const node of cluster.nodes) {
          const info = parseInfo(yield* node.command("CLUSTER", "INFO"))
          assert.strictEqual(info.cluster_state, "ok", `${node.port}`)
          assert.strictEqual(info.cluster_slots_assigned, "16384")
          assert.strictEqual(info.cluster_slots_ok, "16384")
          assert.strictEqual(info.cluster_known_nodes, "6")
          assert.strictEqual(info.cluster_size, "3")
          assert.strictEqual(yield* node.command("CLUSTER", "MYID"), node.id)
          const replication = parseInfo(yield* node.command("INFO", "replication"))
          if (node.role === "replica") {
            assert.strictEqual(replication.role, "slave")
            assert.strictEqual(replication.master_port, String(node.replicaOf))
            assert.strictEqual(replication.master_link_status, "up")
          } else {
            assert.strictEqual(replication.role, "master")
            assert.strictEqual(replication.connected_slaves, "1")
            assert.include(replication.slave0!, "state=online")
          }
        }
        assert.deepStrictEqual((yield* cluster.currentMasters).map((node) => node.port).sort(), masterPorts)

        // --- keys: masterOf agrees with the servers (the owner takes the key, another master answers
        // MOVED to it), and 30 keys land on all 3 masters.
        const owners = new Map<number, number>()
        for (let i = 0; i < 30; i++) {
          const key = `key:${i}`
          const owner = yield* cluster.masterOf(key)
          assert.strictEqual(owner.role, "master")
          owners.set(owner.port, (owners.get(owner.port) ?? 0) + 1)
          assert.strictEqual(yield* owner.command("SET", key, String(i)), "OK")
          const other = cluster.masters.find((node) => node.port !== owner.port)!
          const moved = yield* Effect.flip(other.command("GET", key))
          assert.include(moved.message, "MOVED")
          assert.include(moved.message, `127.0.0.1:${owner.port}`)
        }
        assert.strictEqual(owners.size, 3, "30 keys should land on all 3 masters")
        // A cluster client starts from startupNodes and reads what the nodes hold.
        yield* Effect.scoped(Effect.gen(function*() {
          const client = yield* Effect.acquireRelease(
            Effect.sync(() => {
              const client = new Cluster([...cluster.startupNodes], { clusterRetryStrategy: () => null })
              client.on("error", () => {})
              return client
            }),
            (client) => Effect.sync(() => client.disconnect())
          )
          const values = yield* Effect.promise(() =>
            Promise.all(Array.from({ length: 30 }, (_, i) => client.get(`key:${i}`)))
          )
          assert.deepStrictEqual(values, Array.from({ length: 30 }, (_, i) => String(i)))
        }))

        // --- failover: freeze the master of a key written and replicated (WAIT on the same connection).
        const key = "survives"
        const master = yield* cluster.masterOf(key)
        const redis = yield* connected(master.port)
        assert.strictEqual(yield* Effect.promise(() => redis.set(key, "before")), "OK")
        assert.strictEqual(yield* Effect.promise(() => redis.call("WAIT", "1", "1000")), 1)
        yield* master.pause
        const { millis, value: promoted } = yield* timed(cluster.waitForFailover(master.port))
        console.log(`cluster failover took ${millis} ms`)
        assert.isBelow(millis, 10_000)
        assert.strictEqual(promoted.role, "replica")
        assert.strictEqual(promoted.replicaOf, master.port)
        assert.strictEqual((yield* cluster.masterOf(key)).port, promoted.port)
        assert.strictEqual(yield* promoted.command("GET", key), "before")
        assert.strictEqual(yield* promoted.command("SET", key, "after"), "OK")
        const current = (yield* cluster.currentMasters).map((node) => node.port)
        assert.include(current, promoted.port)
        assert.notInclude(current, master.port)
        assert.strictEqual(current.length, 3)
        // Waiting for a failover of a master without replicas, or of a stranger, fails at once.
        const noReplica = yield* Effect.flip(cluster.waitForFailover(promoted.port))
        assert.include(noReplica.message, "has no replicas")
        const unknown = yield* Effect.flip(cluster.waitForFailover(1))
        assert.include(unknown.message, "is not the port of a node")

        const config = (yield* promoted.command("CONFIG", "GET", "cluster-config-file")) as Array<string>
        assert.isTrue(Fs.existsSync(config[1]!))
        return {
          dir: config[1]!.slice(0, config[1]!.lastIndexOf("/")),
          pids: yield* Effect.forEach(cluster.nodes, (node) => node.pid),
          ports: cluster.nodes.map((node) => node.port)
        }
      }))
      // --- tear-down: every process is gone (the frozen master too), every port closed, the directory removed.
      for (const pid of pids) assert.isFalse(processExists(pid!))
      for (const port of ports) assert.strictEqual(yield* tcpConnect(port), "ECONNREFUSED")
      assert.isFalse(Fs.existsSync(dir))
      assert.strictEqual(yield* Clock.currentTimeMillis, 0)
    }), 20_000)
})

// ---------------------------------------------------------------------------------------------------------------------
// RedisTestSentinel
// ---------------------------------------------------------------------------------------------------------------------

describe("RedisTestSentinel", () => {
  it.live("rejects invalid options before spawning anything", () =>
    Effect.gen(function*() {
      const quorum = yield* Effect.flip(RedisTestSentinel.make({ sentinels: 3, quorum: 4 }))
      assert.strictEqual(quorum._tag, "RedisTestSentinelError")
      assert.include(quorum.message, "quorum must be an integer from 1 to sentinels (3)")
      const sentinels = yield* Effect.flip(RedisTestSentinel.make({ sentinels: 0 }))
      assert.include(sentinels.message, "sentinels must be a positive integer")
      const name = yield* Effect.flip(RedisTestSentinel.make({ name: "my master" }))
      assert.include(name.message, "name must be")
      const downAfter = yield* Effect.flip(RedisTestSentinel.make({ downAfter: 0 }))
      assert.include(downAfter.message, "downAfter")
    }))

  it.live("forms: a synced replica and 3 sentinels that know the master, the replica and each other", () =>
    Effect.gen(function*() {
      const { millis: formMillis, value: setup } = yield* timed(RedisTestSentinel.make())
      console.log(`sentinel setup formed in ${formMillis} ms`)
      assert.strictEqual(setup.name, "mymaster")
      assert.strictEqual(setup.sentinels.length, 3)
      const ports = [setup.master.port, setup.replica.port, ...setup.sentinels.map((s) => s.port)]
      assert.strictEqual(new Set(ports).size, 5)
      assert.deepStrictEqual(yield* setup.currentMaster, { host: "127.0.0.1", port: setup.master.port })

      const replication = parseInfo(yield* setup.replica.command("INFO", "replication"))
      assert.strictEqual(replication.role, "slave")
      assert.strictEqual(replication.master_port, String(setup.master.port))
      assert.strictEqual(replication.master_link_status, "up")
      for (const sentinel of setup.sentinels) {
        const master = fieldsOf(yield* sentinel.command("SENTINEL", "MASTER", "mymaster"))
        assert.strictEqual(master.port, String(setup.master.port))
        assert.strictEqual(master.flags, "master")
        assert.strictEqual(master["num-slaves"], "1")
        assert.strictEqual(master["num-other-sentinels"], "2")
        assert.strictEqual(master.quorum, "2")
        assert.strictEqual(master["down-after-milliseconds"], "1000")
        assert.strictEqual(master["failover-timeout"], "3000")
        const replicas = (yield* sentinel.command("SENTINEL", "REPLICAS", "mymaster")) as Array<unknown>
        assert.deepStrictEqual(replicas.map((replica) => fieldsOf(replica).port), [String(setup.replica.port)])
      }

      // A sentinel client finds the master through the sentinels.
      const redis = yield* Effect.acquireRelease(
        Effect.sync(() => {
          const redis = new Redis({
            sentinels: setup.sentinels.map(({ host, port }) => ({ host, port })),
            name: setup.name,
            lazyConnect: true,
            sentinelRetryStrategy: () => null,
            retryStrategy: () => null
          })
          redis.on("error", () => {})
          return redis
        }),
        (redis) => Effect.sync(() => redis.disconnect())
      )
      yield* Effect.promise(() => redis.connect())
      assert.strictEqual(yield* Effect.promise(() => redis.set("via-sentinel", "yes")), "OK")
      assert.strictEqual(yield* setup.master.command("GET", "via-sentinel"), "yes")

      // A stopped sentinel is skipped by currentMaster and comes back on its port.
      const [first] = setup.sentinels
      const pid = yield* first!.pid
      yield* first!.stop
      assert.isUndefined(yield* first!.pid)
      assert.isFalse(processExists(pid!))
      assert.strictEqual(yield* tcpConnect(first!.port), "ECONNREFUSED")
      assert.strictEqual((yield* setup.currentMaster).port, setup.master.port)
      yield* first!.start
      assert.notStrictEqual(yield* first!.pid, pid)
      assert.strictEqual(yield* first!.command("PING"), "PONG")
      const error = yield* Effect.flip(first!.command("SENTINEL", "MASTER", "nosuchmaster"))
      assert.strictEqual(error._tag, "RedisTestSentinelError")
      assert.include(error.message, "No such master")
    }), 20_000)

  it.effect("a frozen master is failed over to the replica with the replicated data; the scope kills everything", () =>
    Effect.gen(function*() {
      const { dir, pids, ports } = yield* Effect.scoped(Effect.gen(function*() {
        const setup = yield* RedisTestSentinel.make()
        const redis = yield* connected(setup.master.port)
        assert.strictEqual(yield* Effect.promise(() => redis.set("survives", "before")), "OK")
        // WAIT on the same connection: the write reached the replica before the master froze.
        assert.strictEqual(yield* Effect.promise(() => redis.call("WAIT", "1", "1000")), 1)

        yield* setup.master.pause
        const { millis, value: promoted } = yield* timed(setup.waitForFailover(setup.master.port))
        console.log(`sentinel failover took ${millis} ms`)
        assert.isBelow(millis, 10_000)
        assert.strictEqual(promoted.port, setup.replica.port)
        assert.deepStrictEqual(yield* setup.currentMaster, { host: "127.0.0.1", port: setup.replica.port })
        for (const sentinel of setup.sentinels) {
          const address = (yield* sentinel.command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster")) as Array<string>
          assert.strictEqual(address[1], String(setup.replica.port))
        }
        assert.strictEqual(yield* promoted.command("GET", "survives"), "before")
        // Promoted: it accepts writes now.
        assert.strictEqual(yield* promoted.command("SET", "survives", "after"), "OK")

        const unknown = yield* Effect.flip(setup.waitForFailover(1))
        assert.include(unknown.message, "is neither the master's")

        const info = parseInfo(yield* setup.sentinels[0]!.command("INFO", "server"))
        const pids = [
          yield* setup.master.pid,
          yield* setup.replica.pid,
          ...(yield* Effect.forEach(setup.sentinels, (sentinel) => sentinel.pid))
        ]
        const ports = [setup.master.port, setup.replica.port, ...setup.sentinels.map((s) => s.port)]
        return { dir: info.config_file!.slice(0, info.config_file!.lastIndexOf("/")), pids, ports }
      }))
      // Everything is gone, including the frozen master.
      for (const pid of pids) assert.isFalse(processExists(pid!))
      for (const port of ports) assert.strictEqual(yield* tcpConnect(port), "ECONNREFUSED")
      assert.isFalse(Fs.existsSync(dir))
      assert.strictEqual(yield* Clock.currentTimeMillis, 0)
    }), 20_000)
})
