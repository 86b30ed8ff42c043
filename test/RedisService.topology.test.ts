/**
 * The same RedisService contract on Redis Cluster and behind Sentinel, against real processes: commands across many
 * slots, hash tags and CROSSSLOT, pub/sub, and a master frozen with SIGSTOP: the layer serves reads and writes again
 * within a measured bound, and data replicated before the failure is there afterwards.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Option, Stream } from "effect"
import * as RedisService from "../src/RedisService.ts"
import * as RedisSubscriber from "../src/RedisSubscriber.ts"
import * as RedisTestCluster from "../src/testing/RedisTestCluster.ts"
import * as RedisTestSentinel from "../src/testing/RedisTestSentinel.ts"
import { failoverOptions, sleepReal, waitUntil } from "./helpers.ts"

// Test settings: fast detection and reconnection, short timeouts.
const fast = failoverOptions

/** Keeps writing until a write succeeds; returns how long it took (ms). */
const untilWritable = (redis: RedisService.RedisServiceShape, key: string, limitMillis: number) =>
  Effect.gen(function*() {
    const started = Date.now()
    while (Date.now() - started < limitMillis) {
      const result = yield* Effect.result(redis.set(key, "after"))
      if (result._tag === "Success") return Date.now() - started
      yield* sleepReal(50)
    }
    return yield* Effect.die(new Error(`not writable within ${limitMillis} ms`))
  })

/**
 * A cluster whose masters have no replica (a frozen master stays the master) and that serves the other masters' slots
 * while one is down, with a layer on it that has no heartbeat (nothing drops a node connection but the test).
 */
const replicaLessCluster = Effect.gen(function*() {
  const cluster = yield* RedisTestCluster.make({
    replicasPerMaster: 0,
    args: ["--cluster-require-full-coverage", "no"]
  })
  const redis = yield* RedisService.make({
    ...fast,
    heartbeat: false,
    topology: { _tag: "Cluster", nodes: cluster.startupNodes }
  })
  return { cluster, redis }
})

describe("RedisService on Redis Cluster", () => {
  it.live("commands across many slots, hash tags, a typed CROSSSLOT error, health per node", () =>
    Effect.gen(function*() {
      const cluster = yield* RedisTestCluster.make()
      const redis = yield* RedisService.make({ ...fast, topology: { _tag: "Cluster", nodes: cluster.startupNodes } })
      yield* Effect.forEach(Array.from({ length: 200 }, (_, i) => i), (i) => redis.set(`key:${i}`, String(i)), {
        concurrency: 20
      })
      const values = yield* Effect.forEach(Array.from({ length: 200 }, (_, i) => i), (i) => redis.get(`key:${i}`), {
        concurrency: 20
      })
      assert.deepStrictEqual(values.map(Option.getOrThrow), Array.from({ length: 200 }, (_, i) => String(i)))
      // The keys really are spread over the masters.
      const owners = new Set<number>()
      for (let i = 0; i < 20; i++) owners.add((yield* cluster.masterOf(`key:${i}`)).port)
      assert.strictEqual(owners.size, 3)
      // Multi-key commands: one slot with a hash tag works, several slots is a clear typed error.
      yield* redis.set("{user:1}:name", "Ada")
      yield* redis.set("{user:1}:email", "ada@example.org")
      assert.deepStrictEqual(yield* redis.mget(["{user:1}:name", "{user:1}:email"]), [
        Option.some("Ada"),
        Option.some("ada@example.org")
      ])
      const cross = yield* Effect.flip(redis.mget(["key:1", "key:2", "key:3"]))
      assert.strictEqual(cross._tag, "ReplyError")
      if (cross._tag === "ReplyError") {
        assert.strictEqual(cross.code, "CROSSSLOT")
        assert.include(cross.message, "hash tag")
      }
      const health = yield* redis.health
      assert.strictEqual(health.topology, "cluster")
      assert.strictEqual(health.circuit, "closed")
      assert.strictEqual(health.nodes.filter((n) => n.role === "master").length, 3)
    }))

  it.live("a master frozen with SIGSTOP: the other masters keep serving; that node is recovered on its own", () =>
    Effect.gen(function*() {
      const cluster = yield* RedisTestCluster.make()
      const redis = yield* RedisService.make({ ...fast, topology: { _tag: "Cluster", nodes: cluster.startupNodes } })
      const kept = "{failover}:kept"
      yield* redis.set(kept, "before")
      const master = yield* cluster.masterOf(kept)
      // A key on another master.
      let other = ""
      for (let i = 0; other === ""; i++) {
        if ((yield* cluster.masterOf(`other:${i}`)).port !== master.port) other = `other:${i}`
      }
      yield* redis.set(other, "0")
      // Replicated before the failure: the replica's acknowledged offset reaches the master's.
      yield* waitUntil(master.command("INFO", "replication"), (info) => {
        const text = String(info)
        const masterOffset = Number(/master_repl_offset:(\d+)/.exec(text)?.[1] ?? -1)
        const replicaOffset = Number(/slave0:.*offset=(\d+)/.exec(text)?.[1] ?? -2)
        return replicaOffset >= masterOffset
      })
      yield* master.pause
      const frozenAt = Date.now()
      // Meanwhile a writer on the other master: it never waits for the frozen one.
      const otherWrites = yield* Effect.forkChild(Effect.gen(function*() {
        const outcomes: Array<string> = []
        while (Date.now() - frozenAt < 3_000) {
          const t0 = Date.now()
          const result = yield* Effect.result(redis.set(other, String(outcomes.length)))
          const at = t0 - frozenAt
          outcomes.push(result._tag === "Success" ? `ok@${at}` : `${result.failure._tag}@${at}+${Date.now() - t0}`)
          yield* sleepReal(50)
        }
        return outcomes
      }))
      const took = yield* untilWritable(redis, "{failover}:written", 15_000).pipe(Effect.ensuring(master.resume))
      // Measured bound (see docs/scaling.md): cluster-node-timeout 1 s + election + detection + reconnect.
      assert.isTrue(took < 10_000, `writes back after ${took} ms`)
      yield* Effect.logInfo(`cluster failover: writes back ${Date.now() - frozenAt} ms after SIGSTOP`)
      // The promoted replica serves that slot now, with the data written before the failure.
      // (Every node's view of the promotion may take a moment: the kit asks one of them.)
      yield* waitUntil(
        Effect.result(cluster.masterOf(kept)),
        (r) => r._tag === "Success" && r.success.port !== master.port
      )
      assert.deepStrictEqual(yield* redis.get(kept), Option.some("before"))
      assert.deepStrictEqual(yield* redis.get("{failover}:written"), Option.some("after"))
      // The other master never made a caller wait: it served, except while the cluster itself was down (Redis'
      // default cluster-require-full-coverage: CLUSTERDOWN until the replica took over), and that failed fast.
      const outcomes = yield* Fiber.join(otherWrites)
      assert.deepStrictEqual(outcomes.filter((o) => o.startsWith("CommandTimeout")), [], `other master: ${outcomes}`)
      // Until the cluster declares the node failed (cluster-node-timeout, 1 s here), the other master serves.
      const early = outcomes.filter((o) => o.startsWith("ok@") && Number(o.slice(3)) < 600)
      assert.isAtLeast(early.length, 3, `other master: ${outcomes}`)
      assert.deepStrictEqual(
        outcomes.filter((o) => !o.startsWith("ok@") && Number(/@(\d+)/.exec(o)?.[1]) < 600),
        [],
        `other master: ${outcomes}`
      )
      // The Cluster client was never replaced: only the frozen node's connection was.

      const health = yield* redis.health
      assert.strictEqual(health.connectionsOpened, 1)
      assert.strictEqual(health.reconnects, 0)
      assert.isAtLeast(health.nodeRecoveries, 1)
    }))

  it.live("cluster-require-full-coverage no: the other masters serve throughout; a write is never resent", () =>
    Effect.gen(function*() {
      const cluster = yield* RedisTestCluster.make({ args: ["--cluster-require-full-coverage", "no"] })
      const topology = { _tag: "Cluster", nodes: cluster.startupNodes } as const
      const redis = yield* RedisService.make({ ...fast, topology })
      // A layer that waits longer for replies than the heartbeat takes to give up on a node.
      const patient = yield* RedisService.make({ ...fast, topology, commandTimeout: "5 seconds" })
      const frozenKey = "{frozen}:counter"
      yield* redis.set(frozenKey, "0")
      const master = yield* cluster.masterOf(frozenKey)
      const others: Array<string> = []
      for (let i = 0; others.length < 20; i++) {
        if ((yield* cluster.masterOf(`other:${i}`)).port !== master.port) others.push(`other:${i}`)
      }
      yield* Effect.forEach(others, (key) => redis.set(key, "0"))
      yield* patient.get(frozenKey)

      yield* master.pause
      const frozenAt = Date.now()
      // An INCR sent to the frozen master: when the heartbeat drops that node's connection, the INCR fails at once,
      // with `sent: true`; it is not resent to the node (which would leave the caller waiting for the command timeout
      // and could apply it twice).
      const incr = yield* Effect.forkChild(Effect.flip(patient.incr(frozenKey)))
      const outcomes: Array<string> = []
      while (Date.now() - frozenAt < 2_500) {
        const result = yield* Effect.result(redis.set(others[outcomes.length % others.length]!, "1"))
        outcomes.push(result._tag === "Success" ? "ok" : result.failure._tag)
        yield* sleepReal(25)
      }
      const incrError = yield* Fiber.join(incr)
      const incrTook = Date.now() - frozenAt
      yield* master.resume
      // Applied at most once: the frozen master may still process it from its socket buffer when it resumes.
      yield* sleepReal(200)
      const counter = Number(Option.getOrElse(yield* patient.get(frozenKey), () => "0"))
      assert.isAtMost(counter, 1)
      assert.deepStrictEqual(outcomes.filter((o) => o !== "ok"), [], `writes to the other masters: ${outcomes}`)
      assert.strictEqual(incrError._tag, "ConnectionClosed", `${incrError._tag}: ${incrError.message}`)
      assert.isTrue(incrError._tag === "ConnectionClosed" && incrError.sent)
      assert.isBelow(incrTook, 5_000)
      const health = yield* redis.health
      assert.strictEqual(health.connectionsOpened, 1)
      assert.isAtLeast(health.nodeRecoveries, 1)
      assert.isAtLeast((yield* patient.health).nodeRecoveries, 1)
    }))

  it.live("a command for a node whose connection is still opening fails; it is never sent later", () =>
    Effect.gen(function*() {
      // No replicas: the frozen master stays the master, so a late write would be visible after it resumes. No
      // heartbeat: nothing else drops the node connection that ioredis is opening.
      const { cluster, redis } = yield* replicaLessCluster
      const key = "{late}:counter"
      yield* redis.del(key)
      const master = yield* cluster.masterOf(key)
      // The layer's connection to that node goes; then the node freezes. The next command makes ioredis open a new
      // connection to it (TCP is accepted, the handshake is never answered) and hold the command meanwhile.
      assert.isAtLeast(yield* master.killClients("normal"), 1)
      yield* sleepReal(100)
      yield* master.pause
      const error = yield* Effect.flip(redis.incr(key)).pipe(Effect.ensuring(master.resume))
      assert.strictEqual(error._tag, "ConnectionClosed", `${error._tag}: ${error.message}`)
      // Had ioredis kept it, it would be sent once the node answers its handshake.
      yield* sleepReal(500)
      assert.deepStrictEqual(yield* master.command("GET", key), null)
    }))

  it.live("a master that stays down (no replica) does not hold the circuit open for the others", () =>
    Effect.gen(function*() {
      // No heartbeat: the silent master's connection stays in the pool as it was (ready, never answering again).
      const { cluster, redis } = yield* replicaLessCluster
      const down = "{down}:key"
      yield* redis.set(down, "0")
      const master = yield* cluster.masterOf(down)
      let other = ""
      for (let i = 0; other === ""; i++) {
        if ((yield* cluster.masterOf(`up:${i}`)).port !== master.port) other = `up:${i}`
      }
      yield* redis.set(other, "0")
      yield* master.pause
      // Traffic to the silent master alone opens that master's circuit (its commands time out or lose their
      // connection); the layer's circuit, which speaks for the cluster, stays closed.
      const health = yield* waitUntil(
        Effect.andThen(
          Effect.forEach(Array.from({ length: 5 }), () => Effect.ignore(redis.set(down, "1")), { concurrency: 5 }),
          redis.health
        ),
        (h) => h.nodes.some((node) => node.address.endsWith(`:${master.port}`) && node.circuit !== "closed"),
        8_000
      ).pipe(Effect.onError(() => master.resume))
      assert.strictEqual(health.circuit, "closed")
      // The other masters serve at once, while the silent master stays silent.
      yield* redis.set(other, "1").pipe(Effect.ensuring(master.resume))
    }))

  it.live("pub/sub on a cluster: one shared subscriber, messages from any node", () =>
    Effect.gen(function*() {
      const cluster = yield* RedisTestCluster.make()
      const redis = yield* RedisService.make({ ...fast, topology: { _tag: "Cluster", nodes: cluster.startupNodes } })
      const subscriber = yield* RedisSubscriber.make(redis)
      const received: Array<string> = []
      yield* Effect.forkChild(
        Stream.runForEach(subscriber.subscribe("cluster:news"), (m) => Effect.sync(() => received.push(m)))
      )
      yield* waitUntil(Effect.map(Stream.runHead(subscriber.mode), Option.getOrThrow), (m) => m === "live")
      yield* sleepReal(100)
      for (let i = 0; i < 3; i++) yield* redis.publish("cluster:news", `m${i}`)
      yield* waitUntil(Effect.sync(() => received.length), (n) => n === 3)
      // PUBLISH has no key: each one goes to some node, which forwards it over the cluster bus. Publishes sent to
      // different nodes are not ordered with respect to each other.
      assert.deepStrictEqual([...received].sort(), ["m0", "m1", "m2"])
    }))
})

describe("RedisService behind Sentinel", () => {
  it.live("finds the master through the sentinels; a frozen master: writes come back on the promoted replica", () =>
    Effect.gen(function*() {
      const sentinel = yield* RedisTestSentinel.make()
      const redis = yield* RedisService.make({
        ...fast,
        // Production-like waits: an attempt stuck in the frozen master's handshake (ioredis' failoverDetector ends it
        // when the sentinels switch) and a backoff of ~2 s after it, which the switch cuts short too.
        connectTimeout: "5 seconds",
        reconnect: { base: "2 seconds", cap: "5 seconds" },
        topology: {
          _tag: "Sentinel",
          name: sentinel.name,
          sentinels: sentinel.sentinels.map(({ host, port }) => ({ host, port }))
        }
      })
      const health = yield* redis.health
      assert.strictEqual(health.topology, "sentinel")
      assert.deepStrictEqual(health.nodes.map((n) => n.address), [`127.0.0.1:${sentinel.master.port}`])
      yield* redis.set("k", "before")
      // Replicated before the failure: WAIT for the replica's acknowledgement (short waits, within commandTimeout).
      // (WAIT blocks the shared connection: keep each one shorter than the heartbeat's timeout.)
      // A WAIT that lost its connection under load (the heartbeat's PING queued behind it) is asked again.
      yield* waitUntil(
        redis.command<number>("WAIT", ["1", "50"]).pipe(Effect.orElseSucceed(() => 0)),
        (acked) => acked >= 1
      )
      yield* sentinel.master.pause
      const frozenAt = Date.now()
      // When the sentinels start naming the promoted replica.
      const switched = yield* Effect.forkChild(Effect.gen(function*() {
        while (true) {
          const named = yield* Effect.result(sentinel.currentMaster)
          if (named._tag === "Success" && named.success.port !== sentinel.master.port) return Date.now() - frozenAt
          yield* sleepReal(20)
        }
      }))
      const took = yield* untilWritable(redis, "k2", 15_000).pipe(Effect.ensuring(sentinel.master.resume))
      const switchedAfter = yield* Fiber.join(switched)
      assert.isTrue(took < 10_000, `writes back after ${took} ms`)
      yield* Effect.logInfo(`sentinel failover: sentinels switched ${switchedAfter} ms, writes back ${took} ms`)
      // Once the sentinels name the promoted replica, the layer goes to it at once, whatever it was waiting for.
      assert.isBelow(took - switchedAfter, 1_500, `writes back ${took - switchedAfter} ms after the sentinels switched`)
      assert.deepStrictEqual(yield* redis.get("k"), Option.some("before"))
      const after = yield* redis.health
      assert.deepStrictEqual(after.nodes.map((n) => n.address), [`127.0.0.1:${sentinel.replica.port}`])
    }))
})
