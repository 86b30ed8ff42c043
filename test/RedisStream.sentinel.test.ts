/**
 * RedisStream behind Sentinel, against real processes (a master, a replica, three sentinels): a producer and three
 * consumers through a failover of a frozen master (SIGSTOP), then a forced failover back (SENTINEL FAILOVER). Every
 * acknowledged add is processed at least once, duplicates are counted, nothing is left pending.
 *
 * Replication is asynchronous: an XADD the old master answered may not have reached the replica when the replica is
 * promoted, and is then gone. So the producer calls an add acknowledged only when a `WAIT 1 <ms>` on the same
 * connection, right after it, reports the replica has it (the layer's `connectionsOpened` unchanged across both
 * proves they ran on one connection: WAIT counts the writes of its own connection). Adds that Redis answered but
 * that were not confirmed this way are counted, and so are those of them the failover lost.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Fiber, Layer, Schema } from "effect"
import { RedisBlocking, RedisService, RedisStream } from "../src/index.ts"
import { RedisTestSentinel } from "../src/testing/index.ts"
import { failoverOptions, sleepReal, waitUntil } from "./helpers.ts"

const Job = Schema.Struct({ n: Schema.Number })

describe("RedisStream behind Sentinel", () => {
  it.live("3 consumers through a frozen master's failover and a forced failover back: every acknowledged add", () =>
    Effect.gen(function*() {
      const started = Date.now()
      const sentinel = yield* RedisTestSentinel.make()
      const context = yield* Layer.build(
        RedisBlocking.layer.pipe(Layer.provideMerge(RedisService.layer({
          ...failoverOptions,
          topology: {
            _tag: "Sentinel",
            name: sentinel.name,
            sentinels: sentinel.sentinels.map(({ host, port }) => ({ host, port }))
          }
        })))
      )
      const redis = Context.get(context, RedisService)
      const run = <A, E>(effect: Effect.Effect<A, E, RedisService | RedisBlocking>) => Effect.provide(effect, context)
      /** The server the sentinels name as the master now. */
      const currentMaster = Effect.map(
        sentinel.currentMaster,
        ({ port }) => port === sentinel.master.port ? sentinel.master : sentinel.replica
      )
      const onMaster = (...args: ReadonlyArray<string>) =>
        Effect.flatMap(currentMaster, (server) => server.command(...args))

      const options = {
        stream: "jobs",
        group: "workers",
        schema: Job,
        claimAfter: "1 second",
        block: "200 millis",
        batch: 5,
        retryDelay: "100 millis"
      } as const
      const times = new Map<number, number>()
      let redelivered = 0
      const consumers = yield* Effect.forEach(["c1", "c2", "c3"], (consumer) =>
        Effect.forkChild(run(RedisStream.consume({ ...options, consumer }, (entry) =>
          Effect.sync(() => {
            if (entry.deliveries > 1) redelivered++
            times.set(entry.value.n, (times.get(entry.value.n) ?? 0) + 1)
          })))))
      yield* waitUntil(
        onMaster("XINFO", "GROUPS", "jobs").pipe(Effect.orElseSucceed(() => [])),
        (groups) => (groups as Array<unknown>).length === 1
      )
      const setupMillis = Date.now() - started

      // The producer: XADD, then WAIT for the replica on the same connection.
      const acknowledged = new Set<number>()
      const unconfirmed = new Map<number, string>() // answered by Redis, not confirmed on the replica: n -> id
      let failedAdds = 0
      let producing = true
      const firstAck = yield* Deferred.make<void>()
      const produce = (n: number): Effect.Effect<number> =>
        Effect.gen(function*() {
          const before = (yield* redis.health).connectionsOpened
          const id = yield* run(RedisStream.add("jobs", Job, { n }))
          const replicas = yield* redis.command<number>("WAIT", ["1", "50"]).pipe(Effect.orElseSucceed(() => 0))
          const after = (yield* redis.health).connectionsOpened
          if (replicas >= 1 && before === after) {
            acknowledged.add(n)
            yield* Deferred.succeed(firstAck, undefined)
          } else {
            unconfirmed.set(n, id)
          }
        }).pipe(
          // A failed add is not retried (it may have been applied); the producer slows down while Redis is away.
          Effect.catch(() => Effect.andThen(Effect.sync(() => failedAdds++), sleepReal(20))),
          Effect.andThen(sleepReal(2)),
          Effect.andThen(Effect.suspend(() => producing ? produce(n + 1) : Effect.succeed(n + 1)))
        )
      const producer = yield* Effect.forkChild(produce(0))
      yield* Deferred.await(firstAck)
      yield* sleepReal(500)

      // 1. The master freezes (SIGSTOP): the sentinels promote the replica after down-after (1 s).
      const frozenAt = Date.now()
      const oldMaster = sentinel.master
      yield* oldMaster.pause
      const promoted = yield* sentinel.waitForFailover(oldMaster.port).pipe(Effect.ensuring(oldMaster.resume))
      const firstFailover = Date.now() - frozenAt
      // Entries are processed on the promoted master again.
      const processedBefore = times.size
      yield* waitUntil(Effect.sync(() => times.size), (n) => n > processedBefore + 20, 10_000)
      const resumed = Date.now() - frozenAt

      // 2. The old master, now a replica of the promoted one, in sync: a forced failover back (no agreement needed).
      yield* waitUntil(
        oldMaster.command("INFO", "replication").pipe(Effect.orElseSucceed(() => "")),
        (info) => /role:slave/.test(String(info)) && /master_link_status:up/.test(String(info)),
        10_000
      )
      // The sentinel refuses (NOGOODSLAVE) until it sees the old master as a healthy replica: asked until it agrees.
      const askedAt = Date.now()
      const force = Effect.result(sentinel.sentinels[0]!.command("SENTINEL", "FAILOVER", sentinel.name))
      while ((yield* force)._tag !== "Success") {
        if (Date.now() - askedAt > 15_000) return yield* Effect.die(new Error("SENTINEL FAILOVER refused for 15 s"))
        yield* sleepReal(200)
      }
      const forcedAt = Date.now()
      yield* sentinel.waitForFailover(promoted.port)
      const secondFailover = Date.now() - forcedAt
      const processedAfterBack = times.size
      yield* waitUntil(Effect.sync(() => times.size), (n) => n > processedAfterBack + 20, 10_000)
      yield* sleepReal(300)
      producing = false
      const added = yield* Fiber.join(producer)

      // Everything acknowledged is processed; everything in the stream (on the final master) too; nothing pending.
      const final = yield* currentMaster
      assert.strictEqual(final.port, oldMaster.port, "the forced failover went back to the first master")
      yield* waitUntil(
        Effect.map(final.command("XPENDING", "jobs", "workers"), (reply) => ({
          pending: Number((reply as Array<unknown>)[0]),
          missing: [...acknowledged].filter((n) => !times.has(n))
        })),
        (s) => s.pending === 0 && s.missing.length === 0,
        10_000
      )
      for (const consumer of consumers) assert.isUndefined(consumer.pollUnsafe(), "a consumer died")
      const range = (yield* final.command("XRANGE", "jobs", "-", "+")) as Array<[string, Array<string>]>
      const inStream = new Set(range.map(([, fields]) => (JSON.parse(fields[1]!) as { n: number }).n))
      for (const n of acknowledged) assert.isTrue(inStream.has(n), `acknowledged add ${n} lost in the failover`)
      for (const n of inStream) assert.isTrue(times.has(n), `entry ${n} never processed`)
      assert.strictEqual(Number(yield* final.command("XLEN", "jobs:dead")), 0)
      const duplicates = [...times.values()].reduce((sum, count) => sum + count - 1, 0)
      const lostUnconfirmed = [...unconfirmed.keys()].filter((n) => !inStream.has(n)).length
      // Processed on the old master, then lost with its unreplicated writes: not in the final stream.
      const processedLost = [...times.keys()].filter((n) => !inStream.has(n)).length
      console.log(
        `RedisStream sentinel: ${added} adds, ${acknowledged.size} acknowledged (XADD + WAIT 1), ` +
          `${unconfirmed.size} answered but unconfirmed (${lostUnconfirmed} of them lost in the failovers), ` +
          `${failedAdds} failed; ${inStream.size} entries, ${times.size} processed (${processedLost} of them no ` +
          `longer in the stream), ${duplicates} duplicates, ${redelivered} redelivered; setup ${setupMillis} ms, ` +
          `SIGSTOP failover ${firstFailover} ms (processing again ${resumed} ms after the freeze), ` +
          `forced failover ${secondFailover} ms (accepted after ${forcedAt - askedAt} ms), ` +
          `total ${Date.now() - started} ms`
      )
      assert.isTrue(acknowledged.size > 100, `only ${acknowledged.size} adds acknowledged`)
      yield* Effect.forEach(consumers, Fiber.interrupt, { discard: true })
    }), 55_000)
})
