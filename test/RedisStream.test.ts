/**
 * RedisStream against a real redis-server, behind a chaos proxy: a producer and three consumers through connection
 * resets, a blackhole, SIGSTOP, a restart (AOF) and a consumer interrupted mid-processing (at-least-once: every
 * acknowledged add processed, duplicates counted, nothing pending at the end); a lost reply re-read from the pending
 * list; dead letters after maxDeliveries and on decode failure; claims from a dead consumer; a consumer started while
 * Redis is down, and a group that vanishes. Each test is bounded to a few seconds.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Fiber, Layer, Schema } from "effect"
import type { RedisOptions } from "../src/index.ts"
import { RedisBlocking } from "../src/RedisBlocking.ts"
import { RedisService } from "../src/RedisService.ts"
import * as RedisStream from "../src/RedisStream.ts"
import * as ChaosProxy from "../src/testing/ChaosProxy.ts"
import * as RedisTestServer from "../src/testing/RedisTestServer.ts"
import { fastOptions, sleepReal, waitUntil } from "./helpers.ts"

const Job = Schema.Struct({ n: Schema.Number })

/** A server, a chaos proxy in front of it, and the context `consume` and `add` need, on the proxy. */
const setup = (options: RedisOptions = {}, serverOptions: RedisTestServer.RedisTestServerOptions = {}) =>
  Effect.gen(function*() {
    const server = yield* RedisTestServer.make(serverOptions)
    const proxy = yield* ChaosProxy.make({ target: server })
    const context = yield* Layer.build(
      RedisBlocking.layer.pipe(Layer.provideMerge(RedisService.layer({ ...fastOptions, ...options, url: proxy.url })))
    )
    yield* waitUntil(Context.get(context, RedisService).health, (h) => h.connection === "ready")
    const run = <A, E>(effect: Effect.Effect<A, E, RedisService | RedisBlocking>) => Effect.provide(effect, context)
    return { server, proxy, run }
  })

/** Entries pending in a group (XPENDING summary). */
const pendingCount = (server: RedisTestServer.RedisTestServer, stream: string, group: string) =>
  Effect.map(server.command("XPENDING", stream, group), (reply) => Number((reply as Array<unknown>)[0]))

/** Connections blocked in a command (XREADGROUP BLOCK ...) on the server. */
const blockedClients = (server: RedisTestServer.RedisTestServer) =>
  Effect.map(server.command("INFO", "clients"), (info) => Number(/blocked_clients:(\d+)/.exec(String(info))?.[1]))

/** The entries of a stream as field records. */
const entriesOf = (server: RedisTestServer.RedisTestServer, stream: string) =>
  Effect.map(server.command("XRANGE", stream, "-", "+"), (reply) =>
    (reply as Array<[string, Array<string>]>).map(([, flat]) => {
      const fields: Record<string, string> = {}
      for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i]!] = flat[i + 1]!
      return fields
    }))

describe("RedisStream (real redis-server)", () => {
  it.live("3 consumers through resets, a blackhole, SIGSTOP, a restart, one interrupted: every acknowledged add", () =>
    Effect.gen(function*() {
      const { proxy, run, server } = yield* setup({ heartbeat: false }, { appendOnly: true })
      const times = new Map<number, number>()
      const options = {
        stream: "jobs",
        group: "workers",
        schema: Job,
        claimAfter: "400 millis",
        block: "200 millis",
        batch: 5,
        retryDelay: "100 millis"
      } as const
      let redelivered = 0
      const record = (entry: RedisStream.Entry<{ readonly n: number }>) =>
        Effect.sync(() => {
          if (entry.deliveries > 1) redelivered++
          times.set(entry.value.n, (times.get(entry.value.n) ?? 0) + 1)
        })
      const consumers = yield* Effect.forEach(["c1", "c2"], (consumer) =>
        Effect.forkChild(run(RedisStream.consume({ ...options, consumer }, record))))
      // c3 hangs in its handler on its 5th entry (early: under load it may see only a few), and is interrupted there:
      // that entry stays in its pending list.
      const stuck = yield* Deferred.make<number>()
      let seen = 0
      const c3 = yield* Effect.forkChild(run(RedisStream.consume({ ...options, consumer: "c3" }, (entry) =>
        ++seen === 5
          ? Effect.andThen(Deferred.succeed(stuck, entry.value.n), Effect.never)
          : record(entry))))
      const groups = Effect.map(server.command("XINFO", "GROUPS", "jobs"), (r) => (r as Array<unknown>).length)
      yield* waitUntil(groups, (n) => n === 1)

      // The producer adds one entry after another, through resets, a blackhole, SIGSTOP and a restart, until told.
      const acknowledged = new Set<number>()
      let failedAdds = 0
      let producing = true
      const produce = (n: number): Effect.Effect<number> =>
        run(RedisStream.add("jobs", Job, { n })).pipe(
          Effect.tap(() => Effect.sync(() => acknowledged.add(n))),
          // A failed add is not retried (it may have been applied); the producer slows down while Redis is away.
          Effect.catch(() => Effect.andThen(Effect.sync(() => failedAdds++), sleepReal(20))),
          Effect.andThen(sleepReal(2)),
          Effect.andThen(Effect.suspend(() => producing ? produce(n + 1) : Effect.succeed(n + 1)))
        )
      const producer = yield* Effect.forkChild(produce(0))
      // 20 ms each way: replies spend that long in flight, where a reset loses them (delivered, never seen).
      yield* proxy.latency(20)
      for (let i = 0; i < 6; i++) {
        yield* sleepReal(300)
        yield* proxy.resetAll
      }
      yield* proxy.restore
      // A network partition (bytes held), a frozen server (SIGSTOP), a restart (appendonly, fsync always).
      yield* proxy.blackhole
      yield* sleepReal(400)
      yield* proxy.restore
      yield* server.pause
      yield* sleepReal(400)
      yield* server.resume
      yield* sleepReal(200)
      yield* server.restart
      yield* sleepReal(300)
      producing = false
      const added = yield* Fiber.join(producer)
      const stuckOn = yield* Deferred.await(stuck).pipe(Effect.timeout("5 seconds"))
      yield* Fiber.interrupt(c3)

      // Everything acknowledged is processed (the stuck entry by c1 or c2, claimed after claimAfter); nothing pending.
      yield* waitUntil(
        Effect.map(pendingCount(server, "jobs", "workers"), (pending) => ({
          pending,
          missing: [...acknowledged].filter((n) => !times.has(n)).length
        })),
        (s) => s.pending === 0 && s.missing === 0,
        10_000
      )
      assert.isTrue(times.has(stuckOn))
      for (const consumer of consumers) assert.isUndefined(consumer.pollUnsafe(), "a consumer died")
      const duplicates = [...times.values()].reduce((sum, count) => sum + count - 1, 0)
      const streamLength = Number(yield* server.command("XLEN", "jobs"))
      assert.isTrue(acknowledged.size > 100, `only ${acknowledged.size} adds acknowledged`)
      assert.strictEqual(Number(yield* server.command("XLEN", "jobs:dead")), 0)
      // Every entry in the stream (acknowledged adds and applied-but-failed ones alike) was processed.
      assert.strictEqual(times.size, streamLength)
      console.log(
        `RedisStream chaos: ${added} adds, ${acknowledged.size} acknowledged, ${failedAdds} failed, ` +
          `${streamLength} entries, ` +
          `${times.size} processed, ${duplicates} duplicates, ${redelivered} redelivered (claimed or re-read), ` +
          "6 resets, a blackhole, SIGSTOP, a restart, 1 consumer interrupted mid-processing"
      )
      yield* Effect.forEach(consumers, Fiber.interrupt, { discard: true })
    }), 30_000)

  it.live("a reply lost in a reset (delivered, never seen) is re-read from the consumer's own pending list", () =>
    Effect.gen(function*() {
      const { proxy, run, server } = yield* setup({ heartbeat: false })
      const handled = yield* Deferred.make<RedisStream.Entry<{ readonly n: number }>>()
      // claimAfter is a minute: only the re-read of its own pending entries can bring the entry back within the test.
      const consumer = yield* Effect.forkChild(run(RedisStream.consume({
        stream: "s",
        group: "g",
        consumer: "c",
        schema: Job,
        claimAfter: "1 minute",
        block: "2 seconds"
      }, (entry) => Deferred.succeed(handled, entry))))
      yield* waitUntil(blockedClients(server), (n) => n === 1)
      // The server delivers the entry to the blocked XREADGROUP; the proxy holds the reply, and the reset drops it.
      yield* proxy.blackhole
      yield* server.command("XADD", "s", "*", "value", JSON.stringify({ n: 5 }))
      yield* waitUntil(pendingCount(server, "s", "g"), (n) => n === 1)
      yield* proxy.resetAll
      yield* proxy.restore
      const entry = yield* Deferred.await(handled).pipe(Effect.timeout("3 seconds"))
      assert.deepStrictEqual(entry.value, { n: 5 })
      assert.strictEqual(entry.deliveries, 2)
      yield* waitUntil(pendingCount(server, "s", "g"), (n) => n === 0, 2_000)
      yield* Fiber.interrupt(consumer)
    }))

  it.live("dead letters: after maxDeliveries failed deliveries, and at once for a value that does not decode", () =>
    Effect.gen(function*() {
      const { run, server } = yield* setup()
      const calls = new Map<number, Array<number>>()
      const consumer = yield* Effect.forkChild(run(RedisStream.consume({
        stream: "s",
        group: "g",
        consumer: "c",
        schema: Job,
        maxDeliveries: 3,
        retryDelay: "50 millis",
        block: "100 millis"
      }, (entry) =>
        Effect.suspend(() => {
          calls.set(entry.value.n, [...(calls.get(entry.value.n) ?? []), entry.deliveries])
          return entry.value.n === 13 ? Effect.fail("poison" as const) : Effect.void
        }))))
      yield* run(RedisStream.add("s", Job, { n: 1 }))
      yield* run(RedisStream.add("s", Job, { n: 13 }))
      const bad = String(yield* server.command("XADD", "s", "*", "value", "{\"n\":\"not a number\"}"))
      const raw = String(yield* server.command("XADD", "s", "*", "other", "x"))
      yield* run(RedisStream.add("s", Job, { n: 2 }))
      yield* waitUntil(
        Effect.zip(pendingCount(server, "s", "g"), Effect.map(server.command("XLEN", "s:dead"), Number)),
        ([pending, dead]) => pending === 0 && dead === 3,
        5_000
      )
      // The poison entry was handled exactly maxDeliveries times, with growing delivery counts.
      assert.deepStrictEqual(calls.get(13), [1, 2, 3])
      assert.deepStrictEqual(calls.get(1), [1])
      assert.deepStrictEqual(calls.get(2), [1])
      const dead = yield* entriesOf(server, "s:dead")
      const byReason = dead.map((d) => [d.reason, d.id === bad || d.id === raw ? "raw" : "poison"])
      assert.sameDeepMembers(byReason, [["decode", "raw"], ["decode", "raw"], ["max-deliveries", "poison"]])
      const poison = dead.find((d) => d.reason === "max-deliveries")!
      assert.strictEqual(poison.deliveries, "4")
      assert.deepStrictEqual(JSON.parse(poison.fields!), { value: "{\"n\":13}" })
      assert.strictEqual(dead.find((d) => d.id === raw)?.fields, JSON.stringify({ other: "x" }))
      assert.isUndefined(consumer.pollUnsafe())
    }))

  it.live("an entry left pending by a dead consumer is claimed after claimAfter, with its delivery count", () =>
    Effect.gen(function*() {
      const { run, server } = yield* setup()
      yield* server.command("XGROUP", "CREATE", "s", "g", "0", "MKSTREAM")
      const id = yield* run(RedisStream.add("s", Job, { n: 7 }))
      // "dead" read it and never acknowledged it.
      yield* server.command("XREADGROUP", "GROUP", "g", "dead", "COUNT", "1", "STREAMS", "s", ">")
      const started = Date.now()
      const handled = yield* Deferred.make<RedisStream.Entry<{ readonly n: number }>>()
      const consumer = yield* Effect.forkChild(run(RedisStream.consume({
        stream: "s",
        group: "g",
        consumer: "alive",
        schema: Job,
        claimAfter: "500 millis",
        block: "100 millis"
      }, (entry) => Deferred.succeed(handled, entry))))
      const entry = yield* Deferred.await(handled).pipe(Effect.timeout("3 seconds"))
      const elapsed = Date.now() - started
      assert.deepStrictEqual(entry, { id, value: { n: 7 }, deliveries: 2 })
      assert.isTrue(elapsed >= 450 && elapsed < 4_000, `claimed after ${elapsed} ms`)
      yield* waitUntil(pendingCount(server, "s", "g"), (n) => n === 0, 2_000)
      yield* Fiber.interrupt(consumer)
    }))

  it.live("a consumer started while Redis is down waits for it; a group that vanishes is created again", () =>
    Effect.gen(function*() {
      const { run, server } = yield* setup()
      yield* server.stop
      const seen: Array<number> = []
      const consumer = yield* Effect.forkChild(run(RedisStream.consume({
        stream: "s",
        group: "g",
        consumer: "c",
        schema: Job,
        block: "100 millis"
      }, (entry) => Effect.sync(() => seen.push(entry.value.n)))))
      yield* sleepReal(500)
      assert.isUndefined(consumer.pollUnsafe(), "the consumer failed while Redis was down")
      yield* server.start
      yield* waitUntil(server.command("XINFO", "GROUPS", "s").pipe(Effect.orElseSucceed(() => [])), (groups) =>
        (groups as Array<unknown>).length === 1, 5_000)
      yield* server.command("XADD", "s", "*", "value", JSON.stringify({ n: 1 }))
      yield* waitUntil(Effect.sync(() => seen.length), (n) => n === 1, 3_000)
      // The group is destroyed under the consumer (a restart without persistence does the same).
      yield* server.command("XGROUP", "DESTROY", "s", "g")
      yield* server.command("XADD", "s", "*", "value", JSON.stringify({ n: 2 }))
      yield* waitUntil(Effect.sync(() => seen), (all) => all.includes(2), 3_000)
      yield* waitUntil(pendingCount(server, "s", "g"), (n) => n === 0, 2_000)
      assert.isUndefined(consumer.pollUnsafe())
      yield* Fiber.interrupt(consumer)
    }))

  it.live("the group is created when missing (from the start); a failed handler is retried, then acknowledged", () =>
    Effect.gen(function*() {
      const { run, server } = yield* setup({ keyPrefix: "app:" })
      yield* run(RedisStream.add("s", Job, { n: 1 }, { maxLen: 100 }))
      let failures = 1
      const seen: Array<[number, number]> = []
      const consumer = yield* Effect.forkChild(run(RedisStream.consume({
        stream: "s",
        group: "g",
        consumer: "c",
        schema: Job,
        retryDelay: "100 millis",
        block: "100 millis"
      }, (entry) =>
        Effect.suspend(() => {
          seen.push([entry.value.n, entry.deliveries])
          return failures-- > 0 ? Effect.fail("once") : Effect.void
        }))))
      yield* waitUntil(Effect.sync(() => seen.length), (n) => n === 2, 3_000)
      yield* waitUntil(pendingCount(server, "app:s", "g"), (n) => n === 0, 2_000)
      assert.deepStrictEqual(seen, [[1, 1], [1, 2]])
      // Options are validated.
      const invalid = yield* Effect.flip(run(RedisStream.consume({
        stream: "s",
        group: "g",
        consumer: "c",
        schema: Job,
        batch: 0
      }, () => Effect.void)))
      assert.strictEqual(invalid._tag, "InvalidArgument")
      yield* Fiber.interrupt(consumer)
    }))
})
