/**
 * `RedisStream.entries` (the consumer as a `Stream` of entries that carry their `ack`) against a real redis-server
 * behind a chaos proxy: every entry processed through connection resets with nothing left pending; a reply lost in a
 * reset re-read from the consumer's pending list; an entry not acknowledged stays pending, is not handed over again
 * while it is out (not even by the re-read after a reset), and comes back after claimAfter; maxDeliveries and decode
 * failures dead-lettered; entries read but not taken when the stream ends come back to the next run. Each test is
 * bounded to a few seconds.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, Queue, Schema, Stream } from "effect"
import { RedisBlocking, type RedisOptions, RedisService, RedisStream } from "../src/index.ts"
import { ChaosProxy, RedisTestServer } from "../src/testing/index.ts"
import { fastOptions, sleepReal, waitUntil } from "./helpers.ts"

const Job = Schema.Struct({ n: Schema.Number })
type Job = typeof Job.Type

/** A server, a chaos proxy in front of it, and the context `entries` and `add` need, on the proxy. */
const setup = (options: RedisOptions = {}) =>
  Effect.gen(function*() {
    const server = yield* RedisTestServer.make()
    const proxy = yield* ChaosProxy.make({ target: server })
    const context = yield* Layer.build(
      RedisBlocking.layer.pipe(Layer.provideMerge(RedisService.layer({ ...fastOptions, ...options, url: proxy.url })))
    )
    yield* waitUntil(Context.get(context, RedisService).health, (h) => h.connection === "ready")
    const run = <A, E>(effect: Effect.Effect<A, E, RedisService | RedisBlocking>) => Effect.provide(effect, context)
    /** Runs `entries` in a fiber, each entry put in a queue the test reads. */
    const start = (options: RedisStream.ConsumeOptions<Job, { readonly n: number }>) =>
      Effect.gen(function*() {
        const taken = yield* Queue.unbounded<RedisStream.AckableEntry<Job>>()
        const fiber = yield* Effect.forkChild(
          run(Stream.runForEach(RedisStream.entries(options), (entry) => Queue.offer(taken, entry)))
        )
        return { taken, fiber }
      })
    return { server, proxy, run, start }
  })

/** Entries pending in a group (XPENDING summary). */
const pendingCount = (server: RedisTestServer.RedisTestServer, stream: string, group: string) =>
  Effect.map(server.command("XPENDING", stream, group), (reply) => Number((reply as Array<unknown>)[0]))

/** Connections blocked in a command (XREADGROUP BLOCK ...) on the server. */
const blockedClients = (server: RedisTestServer.RedisTestServer) =>
  Effect.map(server.command("INFO", "clients"), (info) => Number(/blocked_clients:(\d+)/.exec(String(info))?.[1]))

const takeWithin = <A>(queue: Queue.Queue<A>, millis: number) =>
  Queue.take(queue).pipe(
    Effect.timeoutOrElse({ duration: millis, orElse: () => Effect.die(new Error(`nothing taken within ${millis} ms`)) })
  )

describe("RedisStream.entries (real redis-server)", () => {
  it.live("two streams through 5 resets: every acknowledged add processed, acknowledged, nothing pending", () =>
    Effect.gen(function*() {
      const { proxy, run, server } = yield* setup({ heartbeat: false })
      const options = {
        stream: "jobs",
        group: "workers",
        schema: Job,
        claimAfter: "500 millis",
        block: "200 millis",
        batch: 5
      } as const
      const times = new Map<number, number>()
      let redelivered = 0
      // Processed 4 at a time, each acknowledged when done; an ack lost to a reset fails the stream in a user's code,
      // here it is tolerated (the entry stays pending and comes back).
      const worker = (consumer: string) =>
        RedisStream.entries({ ...options, consumer }).pipe(
          Stream.mapEffect((entry) =>
            Effect.sync(() => {
              if (entry.deliveries > 1) redelivered++
              times.set(entry.value.n, (times.get(entry.value.n) ?? 0) + 1)
            }).pipe(Effect.andThen(sleepReal(1)), Effect.andThen(entry.ack), Effect.ignore), { concurrency: 4 }),
          Stream.runDrain
        )
      const workers = yield* Effect.forEach(["c1", "c2"], (consumer) => Effect.forkChild(run(worker(consumer))))

      const acknowledged = new Set<number>()
      let producing = true
      const produce = (n: number): Effect.Effect<number> =>
        run(RedisStream.add("jobs", Job, { n })).pipe(
          Effect.tap(() => Effect.sync(() => acknowledged.add(n))),
          Effect.catch(() => sleepReal(20)),
          Effect.andThen(sleepReal(2)),
          Effect.andThen(Effect.suspend(() => producing ? produce(n + 1) : Effect.succeed(n + 1)))
        )
      const producer = yield* Effect.forkChild(produce(0))
      // 20 ms each way: replies spend that long in flight, where a reset loses them.
      yield* proxy.latency(20)
      for (let i = 0; i < 5; i++) {
        yield* sleepReal(300)
        yield* proxy.resetAll
      }
      yield* proxy.restore
      yield* sleepReal(300)
      producing = false
      const added = yield* Fiber.join(producer)

      yield* waitUntil(
        Effect.map(pendingCount(server, "jobs", "workers"), (pending) => ({
          pending,
          missing: [...acknowledged].filter((n) => !times.has(n)).length
        })),
        (s) => s.pending === 0 && s.missing === 0,
        10_000
      )
      for (const worker of workers) assert.isUndefined(worker.pollUnsafe(), "a stream ended")
      const streamLength = Number(yield* server.command("XLEN", "jobs"))
      assert.strictEqual(times.size, streamLength)
      assert.strictEqual(Number(yield* server.command("XLEN", "jobs:dead")), 0)
      assert.isTrue(acknowledged.size > 50, `only ${acknowledged.size} adds acknowledged`)
      const duplicates = [...times.values()].reduce((sum, count) => sum + count - 1, 0)
      console.log(
        `RedisStream.entries resets: ${added} adds, ${acknowledged.size} acknowledged, ${streamLength} entries, ` +
          `${times.size} processed, ${duplicates} duplicates, ${redelivered} redelivered, 5 resets`
      )
      yield* Effect.forEach(workers, Fiber.interrupt, { discard: true })
    }), 30_000)

  it.live("a reply lost in a reset (delivered, never seen) is re-read from the consumer's own pending list", () =>
    Effect.gen(function*() {
      const { proxy, server, start } = yield* setup({ heartbeat: false })
      // claimAfter is a minute: only the re-read of its own pending entries can bring the entry back within the test.
      const { fiber, taken } = yield* start({
        stream: "s",
        group: "g",
        consumer: "c",
        schema: Job,
        claimAfter: "1 minute",
        block: "2 seconds"
      })
      yield* waitUntil(blockedClients(server), (n) => n === 1)
      // The server delivers the entry to the blocked XREADGROUP; the proxy holds the reply, and the reset drops it.
      yield* proxy.blackhole
      yield* server.command("XADD", "s", "*", "value", JSON.stringify({ n: 5 }))
      yield* waitUntil(pendingCount(server, "s", "g"), (n) => n === 1)
      yield* proxy.resetAll
      yield* proxy.restore
      const entry = yield* takeWithin(taken, 3_000)
      assert.deepStrictEqual(entry.value, { n: 5 })
      assert.strictEqual(entry.deliveries, 2)
      assert.strictEqual(yield* pendingCount(server, "s", "g"), 1)
      yield* entry.ack
      assert.strictEqual(yield* pendingCount(server, "s", "g"), 0)
      yield* Fiber.interrupt(fiber)
    }))

  it.live("an unacknowledged entry stays pending, is not handed over again while out, is back after claimAfter", () =>
    Effect.gen(function*() {
      const { proxy, run, server, start } = yield* setup({ heartbeat: false })
      const { fiber, taken } = yield* start({
        stream: "s",
        group: "g",
        consumer: "c",
        schema: Job,
        claimAfter: "800 millis",
        block: "100 millis"
      })
      const id = yield* run(RedisStream.add("s", Job, { n: 1 }))
      const first = yield* takeWithin(taken, 2_000)
      const handedAt = Date.now()
      assert.deepStrictEqual([first.id, first.deliveries], [id, 1])
      // A reset makes the consumer re-read its own pending entries: this one is out, so it is not handed over again.
      yield* proxy.resetAll
      yield* server.command("XADD", "s", "*", "value", JSON.stringify({ n: 2 }))
      const second = yield* takeWithin(taken, 2_000)
      assert.deepStrictEqual([second.value.n, second.deliveries], [2, 1])
      yield* second.ack
      assert.strictEqual(yield* pendingCount(server, "s", "g"), 1)
      // Never acknowledged: it comes back once it has been out for claimAfter (and before 1.5 x claimAfter + slack).
      // Delivered 3 times by Redis' count: read, re-read after the reset (not handed over), claimed.
      const again = yield* takeWithin(taken, 3_000)
      const after = Date.now() - handedAt
      assert.deepStrictEqual([again.id, again.deliveries], [id, 3])
      assert.isTrue(after >= 750 && after < 2_000, `handed over again after ${after} ms`)
      assert.strictEqual(yield* Queue.size(taken), 0)
      yield* again.ack
      yield* first.ack // acknowledging twice is harmless
      assert.strictEqual(yield* pendingCount(server, "s", "g"), 0)
      yield* Fiber.interrupt(fiber)
    }))

  it.live("dead letters: an entry never acknowledged after maxDeliveries, one that does not decode at once", () =>
    Effect.gen(function*() {
      const { run, server, start } = yield* setup()
      const { fiber, taken } = yield* start({
        stream: "s",
        group: "g",
        consumer: "c",
        schema: Job,
        maxDeliveries: 2,
        claimAfter: "200 millis",
        block: "100 millis"
      })
      const bad = String(yield* server.command("XADD", "s", "*", "value", "{\"n\":\"not a number\"}"))
      const poison = yield* run(RedisStream.add("s", Job, { n: 13 }))
      // Delivered twice, never acknowledged; the third delivery goes to the dead letters instead.
      const deliveries = [(yield* takeWithin(taken, 2_000)).deliveries, (yield* takeWithin(taken, 2_000)).deliveries]
      assert.deepStrictEqual(deliveries, [1, 2])
      yield* waitUntil(
        Effect.zip(pendingCount(server, "s", "g"), Effect.map(server.command("XLEN", "s:dead"), Number)),
        ([pending, dead]) => pending === 0 && dead === 2,
        3_000
      )
      const dead = (yield* server.command("XRANGE", "s:dead", "-", "+")) as Array<[string, Array<string>]>
      const reasons = dead.map(([, fields]) => {
        const record: Record<string, string> = {}
        for (let i = 0; i + 1 < fields.length; i += 2) record[fields[i]!] = fields[i + 1]!
        return [record.id, record.reason]
      })
      assert.sameDeepMembers(reasons, [[bad, "decode"], [poison, "max-deliveries"]])
      assert.strictEqual(yield* Queue.size(taken), 0)
      yield* Fiber.interrupt(fiber)
    }))

  it.live("the group is created when missing; entries read, not taken when the stream ends, come to the next run", () =>
    Effect.gen(function*() {
      const { run, server } = yield* setup({ keyPrefix: "app:" })
      yield* Effect.forEach([1, 2, 3, 4, 5], (n) => run(RedisStream.add("s", Job, { n })), { discard: true })
      const options = {
        stream: "s",
        group: "g",
        consumer: "c",
        schema: Job,
        claimAfter: "1 minute",
        block: "100 millis",
        batch: 5
      } as const
      // Two taken and acknowledged; the stream ends with the other three read (the batch) but never taken.
      const firstRun = yield* run(
        RedisStream.entries(options).pipe(
          Stream.take(2),
          Stream.mapEffect((e) => Effect.as(e.ack, e.value.n)),
          Stream.runCollect
        )
      )
      assert.deepStrictEqual(firstRun, [1, 2])
      assert.strictEqual(yield* pendingCount(server, "app:s", "g"), 3)
      // The next run of the same consumer re-reads them first (claimAfter is a minute: only the re-read brings them).
      const secondRun = yield* run(
        RedisStream.entries(options).pipe(
          Stream.take(3),
          Stream.mapEffect((e) => Effect.as(e.ack, [e.value.n, e.deliveries] as const)),
          Stream.runCollect
        )
      ).pipe(Effect.timeout("3 seconds"))
      assert.deepStrictEqual(secondRun, [[3, 2], [4, 2], [5, 2]])
      assert.strictEqual(yield* pendingCount(server, "app:s", "g"), 0)
      // Options are validated: the stream fails.
      const invalid = yield* Effect.flip(run(Stream.runDrain(RedisStream.entries({ ...options, batch: 0 }))))
      assert.strictEqual(invalid._tag, "InvalidArgument")
    }))
})
